package projection_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/projection"
	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/test/kafkatest"
	"github.com/assent-dev/assent/test/systest"
)

// waitLimit bounds every wait for the runner; a healthy cluster needs a
// fraction of it.
const waitLimit = 60 * time.Second

// pos is where a record sits in the events topic.
type pos struct {
	p   int32
	off int64
}

func (x pos) String() string { return fmt.Sprintf("%d@%d", x.p, x.off) }

// recorder is a Handler that remembers every event it is given, fails the
// test if it is given one twice, and writes each event into the batch:
// x/<partition><offset> -> value and s/<subject> -> value, so that a test
// can check what the store holds.
type recorder struct {
	t testing.TB

	mu    sync.Mutex
	seen  map[pos]projection.Event
	order []pos
}

func newRecorder(t testing.TB) *recorder {
	return &recorder{t: t, seen: make(map[pos]projection.Event)}
}

func recordKey(p int32, off int64) []byte {
	k := binary.BigEndian.AppendUint32([]byte("x/"), uint32(p))
	return binary.BigEndian.AppendUint64(k, uint64(off))
}

func subjectKey(s string) []byte { return append([]byte("s/"), s...) }

func (h *recorder) Apply(b *pebble.Batch, e *projection.Event) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	at := pos{e.Partition, e.Offset}
	if _, again := h.seen[at]; again {
		h.t.Errorf("event %s applied twice", at)
	}
	c := *e
	c.Value = slices.Clone(e.Value)
	h.seen[at] = c
	h.order = append(h.order, at)
	if err := b.Set(recordKey(e.Partition, e.Offset), e.Value, nil); err != nil {
		return err
	}
	return b.Set(subjectKey(e.Envelope.Subject), e.Value, nil)
}

// inOrder returns the events in the order they were applied.
func (h *recorder) inOrder() []projection.Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]projection.Event, len(h.order))
	for i, at := range h.order {
		out[i] = h.seen[at]
	}
	return out
}

func (h *recorder) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.order)
}

// applied returns what the handler was given, by position.
func (h *recorder) applied() map[pos]projection.Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[pos]projection.Event, len(h.seen))
	for k, v := range h.seen {
		out[k] = v
	}
	return out
}

// stored reads back the x/ keys the recorder wrote, as position -> value.
func stored(t testing.TB, db *pebble.DB) map[pos][]byte {
	t.Helper()
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte("x/"), UpperBound: []byte("x0")})
	require.NoError(t, err)
	defer func() { _ = it.Close() }()
	out := make(map[pos][]byte)
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()[2:]
		out[pos{int32(binary.BigEndian.Uint32(k)), int64(binary.BigEndian.Uint64(k[4:]))}] = slices.Clone(it.Value())
	}
	require.NoError(t, it.Error())
	return out
}

// running is a Runner whose Run is in progress in its own goroutine.
type running struct {
	*projection.Runner
	cancel context.CancelFunc
	exited chan struct{}
	err    error // Run's result, once exited is closed
	once   sync.Once
}

func kafkaConfig(t testing.TB) eventlog.Config {
	return kafkatest.Config(t, "projection-test")
}

// openRunner opens a runner on dir for topic, without running it.
func openRunner(t testing.TB, dir, topic string, parts int32, h projection.Handler, observe func(projection.BatchStats), batch ...int) *projection.Runner {
	t.Helper()
	cfg := projection.Config{
		Dir: dir, Topic: topic, Partitions: parts, Kafka: kafkaConfig(t), Handler: h, Observe: observe, Keys: systest.DemoKeys(t),
	}
	if len(batch) > 0 {
		cfg.BatchRecords = batch[0]
	}
	r, err := projection.Open(cfg)
	require.NoError(t, err)
	return r
}

// run starts r.Run; stop (also a cleanup) cancels it, requires that it
// ended without error, and closes the store.
func run(t testing.TB, r *projection.Runner) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	rr := &running{Runner: r, cancel: cancel, exited: make(chan struct{})}
	go func() {
		defer close(rr.exited)
		rr.err = r.Run(ctx)
	}()
	t.Cleanup(func() { rr.stop(t) })
	return rr
}

func (rr *running) stop(t testing.TB) {
	t.Helper()
	rr.once.Do(func() {
		rr.cancel()
		<-rr.exited
		require.NoError(t, rr.err, "Run")
		require.NoError(t, rr.Close())
	})
}

// waitCtx is a context that ends after waitLimit or when Run exits.
func (rr *running) waitCtx(t testing.TB) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	go func() {
		select {
		case <-rr.exited:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// waitOffsets waits until every partition has reached its offset.
func (rr *running) waitOffsets(t testing.TB, want []int64) {
	t.Helper()
	ctx, cancel := rr.waitCtx(t)
	defer cancel()
	for p, off := range want {
		err := rr.WaitOffset(ctx, int32(p), off)
		select {
		case <-rr.exited:
			require.NoError(t, rr.err, "Run ended while waiting for partition %d to reach %d", p, off)
		default:
		}
		require.NoError(t, err, "partition %d to reach %d; it is at %d", p, off, rr.Next(int32(p)))
	}
}

// eventually polls cond until it holds, failing after waitLimit.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

// stableOffsets returns the last stable offset of every partition once no
// transaction is open: it waits until each equals the high watermark,
// because EndTransaction returns before the brokers have written the
// markers that move it.
func stableOffsets(t testing.TB, adm *kadm.Client, topic string, parts int32) []int64 {
	t.Helper()
	out := make([]int64, parts)
	eventually(t, "the last stable offsets to reach the high watermarks", func() bool {
		lso, err := adm.ListCommittedOffsets(t.Context(), topic)
		require.NoError(t, err)
		hwm, err := adm.ListEndOffsets(t.Context(), topic)
		require.NoError(t, err)
		for p := range parts {
			l, ok := lso.Lookup(topic, p)
			require.True(t, ok)
			require.NoError(t, l.Err)
			h, ok := hwm.Lookup(topic, p)
			require.True(t, ok)
			require.NoError(t, h.Err)
			if l.Offset != h.Offset {
				return false
			}
			out[p] = l.Offset
		}
		return true
	})
	return out
}

// subjects returns n request ids for each partition of parts, by Kafka's
// partitioner, named prefix-<i>.
func subjects(prefix string, parts int32, n int) [][]string {
	out := make([][]string, parts)
	full := 0
	for i := 0; full < int(parts); i++ {
		s := prefix + "-" + strconv.Itoa(i)
		p := wire.Partition([]byte(s), int(parts))
		if len(out[p]) < n {
			out[p] = append(out[p], s)
			if len(out[p]) == n {
				full++
			}
		}
	}
	return out
}

// producer writes hash-chained events to the events topic, as a decider
// would, and remembers what it committed and what it aborted.
type producer struct {
	t      testing.TB
	topic  string
	parts  int
	cl     *kgo.Client
	now    time.Time
	n      int // events built so far, for distinct times
	signer *wire.Signer

	seq       map[string]int   // committed events per subject
	heads     map[int32]string // committed chain head per partition
	committed map[pos][]byte
	aborted   map[pos][]byte
	last      map[int32]pos // last committed data record per partition
}

func newProducer(t testing.TB, topic string, parts int32) *producer {
	cl := kafkatest.NewClient(t, kgo.TransactionalID("projection-test-"+wire.NewID(time.Now())))
	return &producer{
		t: t, topic: topic, parts: int(parts), cl: cl, now: time.Now().UTC(), signer: systest.DemoSigner(t),
		seq: map[string]int{}, heads: map[int32]string{},
		committed: map[pos][]byte{}, aborted: map[pos][]byte{}, last: map[int32]pos{},
	}
}

func (pr *producer) head(p int32) string {
	if h, ok := pr.heads[p]; ok {
		return h
	}
	return wire.GenesisHash
}

// txn produces one event for each subject in one transaction, committed
// or aborted, and returns the records with their positions. The chain and
// the sequences roll back with an abort, as the decider's do.
func (pr *producer) txn(commit bool, subjects ...string) []*kgo.Record {
	pr.t.Helper()
	ctx, cancel := context.WithTimeout(pr.t.Context(), waitLimit)
	defer cancel()
	pending := map[pos][]byte{}
	heads := map[int32]string{}
	seqs := map[string]int{}
	require.NoError(pr.t, pr.cl.BeginTransaction())
	var out []*kgo.Record
	from := map[int32]string{}
	count := map[int32]int{}
	var order []int32
	for _, s := range subjects {
		p := wire.Partition([]byte(s), pr.parts)
		prev, ok := heads[p]
		if !ok {
			prev = pr.head(p)
			from[p] = prev
			order = append(order, p)
		}
		count[p]++
		seqs[s]++
		seq := pr.seq[s] + seqs[s]
		pr.n++
		at := pr.now.Add(time.Duration(pr.n) * time.Millisecond)
		rec, err := eventlog.NewRecord(pr.topic, wire.Envelope{
			ID:        wire.NewID(at),
			Source:    "assent/decider",
			Type:      "dev.assent.vote.recorded",
			Subject:   s,
			Time:      at,
			Actor:     "system:decider",
			CommandID: wire.NewID(at),
			Sequence:  strconv.Itoa(seq),
			PrevHash:  prev,
			Data:      json.RawMessage(fmt.Sprintf(`{"n":%d}`, pr.n)),
		})
		require.NoError(pr.t, err)
		require.NoError(pr.t, pr.cl.ProduceSync(ctx, rec).FirstErr())
		require.Equal(pr.t, p, rec.Partition)
		heads[p] = wire.Hash(rec.Value)
		pending[pos{rec.Partition, rec.Offset}] = rec.Value
		out = append(out, rec)
	}
	// Each partition's run ends with its seal, as the decider's does.
	for _, p := range order {
		pr.n++
		at := pr.now.Add(time.Duration(pr.n) * time.Millisecond)
		env, err := wire.NewSeal(pr.signer, "assent/decider", pr.topic, p, from[p], heads[p], count[p], at)
		require.NoError(pr.t, err)
		chain := wire.NewChain(heads[p])
		value, err := chain.Next(env)
		require.NoError(pr.t, err)
		rec := eventlog.RecordOf(pr.topic, nil, value)
		rec.Partition = p
		require.NoError(pr.t, pr.cl.ProduceSync(ctx, rec).FirstErr())
		heads[p] = chain.Head
		pending[pos{rec.Partition, rec.Offset}] = rec.Value
	}
	try := kgo.TryAbort
	if commit {
		try = kgo.TryCommit
	}
	require.NoError(pr.t, pr.cl.EndTransaction(ctx, try))
	if !commit {
		for at, v := range pending {
			pr.aborted[at] = v
		}
		return out
	}
	for at, v := range pending {
		pr.committed[at] = v
		if last, ok := pr.last[at.p]; !ok || at.off > last.off {
			pr.last[at.p] = at
		}
	}
	for p, h := range heads {
		pr.heads[p] = h
	}
	for s, n := range seqs {
		pr.seq[s] += n
	}
	return out
}

// flat lists every subject of subjects().
func flat(ss [][]string) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s...)
	}
	return out
}

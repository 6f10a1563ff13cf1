package requests_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/codec"
	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/projection"
	"github.com/assent-dev/assent/libs/projection/requests"
	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/test/kafkatest"
	"github.com/assent-dev/assent/test/loggen"
	"github.com/assent-dev/assent/test/systest"
)

const waitLimit = 60 * time.Second

// decider is the decider in miniature: it decides a command against its
// own state, produces the events in one transaction with the chain
// extended, and rolls back state and chain when the transaction aborts.
type decider struct {
	t      *testing.T
	topic  string
	parts  int
	cl     *kgo.Client
	states map[string]approval.State
	heads  map[int32]string
	ids    int
	signer *wire.Signer
}

func (d *decider) decide(rid, actor string, body approval.CommandBody, now time.Time, commit bool) approval.Decision {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(d.t.Context(), waitLimit)
	defer cancel()
	d.ids++
	c := approval.Command{ID: rid + "-cmd-" + strconv.Itoa(d.ids), RequestID: rid, Actor: actor, Time: now, Body: body}
	dec := approval.Decide(d.states[rid], c, policies(), now)
	p := wire.Partition([]byte(rid), d.parts)
	head, ok := d.heads[p]
	if !ok {
		head = wire.GenesisHash
	}
	st := d.states[rid]
	from := head
	require.NoError(d.t, d.cl.BeginTransaction())
	for _, ev := range dec.Events {
		env, err := codec.EventEnvelope(ev, "assent/decider", head)
		require.NoError(d.t, err)
		rec, err := eventlog.NewRecord(d.topic, env)
		require.NoError(d.t, err)
		require.NoError(d.t, d.cl.ProduceSync(ctx, rec).FirstErr())
		require.Equal(d.t, p, rec.Partition)
		head = wire.Hash(rec.Value)
		st = approval.Evolve(st, ev)
	}
	if len(dec.Events) > 0 { // the run ends with its seal, as the decider's does
		env, err := wire.NewSeal(d.signer, "assent/decider", d.topic, p, from, head, len(dec.Events), now)
		require.NoError(d.t, err)
		rec, err := eventlog.NewRecord(d.topic, env)
		require.NoError(d.t, err)
		rec.Partition = p
		require.NoError(d.t, d.cl.ProduceSync(ctx, rec).FirstErr())
		head = wire.Hash(rec.Value)
	}
	try := kgo.TryAbort
	if commit {
		try = kgo.TryCommit
	}
	require.NoError(d.t, d.cl.EndTransaction(ctx, try))
	if commit {
		d.heads[p], d.states[rid] = head, st
	}
	return dec
}

// TestIntegrationStoreFoldsTheLog runs the request projection on the real
// cluster against events a decider wrote, one decision aborted, and checks
// I5 the hard way: every stored state equals a fold of the events a plain
// read_committed consumer reads back, and every history is where the log
// says it is.
func TestIntegrationStoreFoldsTheLog(t *testing.T) {
	t.Parallel()
	const parts = 3
	spec := kafkatest.NewTopics(t, parts)
	adm := kafkatest.NewAdmin(t)
	d := &decider{signer: systest.DemoSigner(t),
		t: t, topic: spec.Events, parts: parts,
		cl:     kafkatest.NewClient(t, kgo.TransactionalID("requests-test-"+wire.NewID(time.Now()))),
		states: map[string]approval.State{}, heads: map[int32]string{},
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	deploy := func(requester string) approval.Submit {
		return approval.Submit{Action: approval.Action{Type: "deploy", Resource: "payments/api", Environment: "production"},
			Reason: "ship it", Requester: requester}
	}

	// Before the projection starts.
	for i := range 6 {
		require.Nil(t, d.decide("req-"+strconv.Itoa(i), dave, deploy(dave), now.Add(time.Duration(i)*time.Second), true).Refusal)
	}
	require.Nil(t, d.decide("req-0", alice, approval.Vote{Decision: approval.Approve}, now, true).Refusal)
	d.decide("req-0", bob, approval.Vote{Decision: approval.Approve}, now, false) // aborted: must leave no trace
	require.Nil(t, d.decide("req-1", carol, approval.Vote{Decision: approval.Reject}, now, true).Refusal)

	store := &requests.Store{}
	r, err := projection.Open(projection.Config{
		Dir: t.TempDir(), Topic: spec.Events, Partitions: parts, Handler: store,
		Kafka: kafkatest.Config(t, "requests-test"), Keys: systest.DemoKeys(t),
	})
	require.NoError(t, err)
	store.Attach(r.DB())
	ctx, cancel := context.WithCancel(context.Background())
	exited := make(chan struct{})
	var runErr error
	go func() {
		defer close(exited)
		runErr = r.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-exited
		require.NoError(t, runErr)
		require.NoError(t, r.Close())
	})

	// While it runs: wait for the outcome the way the api does. A watcher
	// wakes for any event of its subject (here, perhaps, the submit still
	// being caught up on), so the reader watches, reads, and waits again.
	require.Nil(t, d.decide("req-2", dave, approval.Cancel{Reason: "changed my mind"}, now, true).Refusal)
	deadline := time.After(waitLimit)
	for {
		woken, stop := r.Watch("req-2")
		st, _, err := store.Get("req-2")
		require.NoError(t, err)
		if st.Status == approval.StatusCancelled {
			stop()
			break
		}
		select {
		case <-woken:
		case <-exited:
			t.Fatalf("Run ended: %v", runErr)
		case <-deadline:
			t.Fatalf("req-2 is still %q", st.Status)
		}
	}

	require.Nil(t, d.decide("req-0", carol, approval.Vote{Decision: approval.Approve}, now, true).Refusal)
	require.Equal(t, approval.ReasonNotFound, d.decide("req-404", alice, approval.Vote{Decision: approval.Approve}, now, true).Refusal.Code)
	expireAt := d.states["req-3"].Policy.ExpiresAt
	require.Nil(t, d.decide("req-3", approval.SystemDecider, approval.Expire{}, expireAt, true).Refusal)

	// Catch up to the end of the log.
	lso := committedEnds(t, adm, spec.Events, parts)
	wctx, wcancel := context.WithTimeout(t.Context(), waitLimit)
	defer wcancel()
	for p, off := range lso {
		require.NoError(t, r.WaitOffset(wctx, int32(p), off))
		require.Equal(t, off, r.Next(int32(p)))
		want, ok := d.heads[int32(p)]
		if !ok {
			want = wire.GenesisHash
		}
		require.Equal(t, want, r.Head(int32(p)), "the chain head of partition %d", p)
	}
	require.True(t, r.Ready())
	require.Zero(t, store.Invalid.Load())

	// Replay the log independently and compare.
	type rec struct {
		p   int32
		off int64
		val []byte
		ev  approval.Event
	}
	logged := map[string][]rec{}
	reader := kafkatest.NewClient(t, kgo.ConsumeTopics(spec.Events), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.KeepControlRecords())
	seen := make([]int64, parts)
	for done := false; !done; {
		fs := reader.PollFetches(wctx)
		require.NoError(t, fs.Err())
		fs.EachRecord(func(r *kgo.Record) {
			seen[r.Partition] = r.Offset + 1
			if r.Attrs.IsControl() {
				return
			}
			env, err := eventlog.DecodeRecord(r)
			require.NoError(t, err)
			if env.Type == wire.TypeSeal {
				return // a partition's, not a request's
			}
			ev, err := codec.DomainEvent(env)
			require.NoError(t, err)
			logged[env.Subject] = append(logged[env.Subject], rec{r.Partition, r.Offset, r.Value, ev})
		})
		done = true
		for p, off := range lso {
			done = done && seen[p] >= off
		}
	}
	require.Len(t, logged, len(d.states))
	for rid, recs := range logged {
		var events []approval.Event
		for _, x := range recs {
			events = append(events, x.ev)
		}
		got, found, err := store.Get(rid)
		require.NoError(t, err)
		require.True(t, found)
		require.Equal(t, approval.Fold(events), got, "I5 for %s", rid)
		require.Equal(t, d.states[rid], got, "the decider agrees about %s", rid)

		hist, err := store.History(rid)
		require.NoError(t, err)
		require.Len(t, hist, len(recs))
		for i, h := range hist {
			require.Equal(t, recs[i].p, h.Partition)
			require.Equal(t, recs[i].off, h.Offset)
			require.Equal(t, recs[i].val, []byte(h.Value))
		}
	}
	require.Len(t, logged["req-0"], 4, "submit, two votes and the approval; nothing of the aborted vote")
	require.Equal(t, []string{alice, carol}, d.states["req-0"].DecidedBy)

	statuses := map[string]approval.Status{}
	for rid, st := range d.states {
		statuses[rid] = st.Status
	}
	require.Equal(t, map[string]approval.Status{
		"req-0": approval.StatusApproved, "req-1": approval.StatusRejected, "req-2": approval.StatusCancelled,
		"req-3": approval.StatusExpired, "req-4": approval.StatusPending, "req-5": approval.StatusPending,
		"req-404": approval.StatusNone,
	}, statuses)

	page, err := store.List(requests.Filter{Status: approval.StatusPending, Limit: 1})
	require.NoError(t, err)
	require.Equal(t, "req-5", page.Items[0].RequestID)
	page, err = store.List(requests.Filter{Status: approval.StatusPending, Limit: 1, Cursor: page.Next})
	require.NoError(t, err)
	require.Equal(t, "req-4", page.Items[0].RequestID)
	require.Empty(t, page.Next)

	p4 := wire.Partition([]byte("req-4"), parts)
	due, err := store.Due(p4, d.states["req-4"].Policy.ExpiresAt, 10)
	require.NoError(t, err)
	require.Contains(t, due, "req-4")
}

// committedEnds waits until no transaction is open on topic and returns
// the end offsets.
func committedEnds(t *testing.T, adm *kadm.Client, topic string, parts int32) []int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		lso, err := adm.ListCommittedOffsets(ctx, topic)
		require.NoError(t, err)
		hwm, err := adm.ListEndOffsets(ctx, topic)
		require.NoError(t, err)
		out, stable := make([]int64, parts), true
		for p := range parts {
			l, _ := lso.Lookup(topic, p)
			h, _ := hwm.Lookup(topic, p)
			require.NoError(t, l.Err)
			require.NoError(t, h.Err)
			stable = stable && l.Offset == h.Offset
			out[p] = l.Offset
		}
		if stable {
			return out
		}
		select {
		case <-ctx.Done():
			t.Fatal("a transaction stayed open")
		case <-tick.C:
		}
	}
}

// TestIntegrationCaughtUpKeepsNoBatch: once the runner has caught up on a
// log, neither the store nor Pebble keeps the catch-up's last batch in
// memory: the store holds none of the keys it wrote there (it held those
// of its last batch, about 16 MB after 10,000 events, until the next
// event), and the store's memtables are flushed (they held what the
// catch-up wrote last until they filled, hours in steady state)
// (docs/benchmarks.md, "Memory").
func TestIntegrationCaughtUpKeepsNoBatch(t *testing.T) {
	t.Parallel()
	const parts = 3
	spec := kafkatest.NewTopics(t, parts)
	log, err := loggen.Build(loggen.Options{Topic: spec.Events, Partitions: parts, Requests: 600, Signer: systest.DemoSigner(t),
		SealEvery: 50, Start: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Step: time.Second})
	require.NoError(t, err)
	_, err = loggen.Write(t.Context(), kafkatest.Config(t, "requests-test-writer"), spec.Events, log)
	require.NoError(t, err)

	store := &requests.Store{}
	r, err := projection.Open(projection.Config{
		Dir: t.TempDir(), Topic: spec.Events, Partitions: parts, Handler: store,
		Kafka: kafkatest.Config(t, "requests-test"), Keys: systest.DemoKeys(t),
	})
	require.NoError(t, err)
	store.Attach(r.DB())
	ctx, cancel := context.WithCancel(context.Background())
	exited := make(chan error, 1)
	go func() { exited <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-exited)
		require.NoError(t, r.Close())
	})
	wctx, wcancel := context.WithTimeout(t.Context(), waitLimit)
	defer wcancel()
	require.NoError(t, r.WaitReady(wctx))

	st, found, err := store.Get(loggen.RequestID(599))
	require.NoError(t, err)
	require.True(t, found)
	require.NotEmpty(t, st.Status)
	require.Zero(t, requests.HeldKeys(store), "keys of the last batch the store still holds once caught up")
	// The flush follows readiness (it does not delay it).
	require.Eventually(t, func() bool { return r.DB().Metrics().Flush.Count > 0 }, 10*time.Second, 10*time.Millisecond,
		"no flush of the store's memtables once caught up")
	require.Equal(t, int64(1), r.DB().Metrics().MemTable.Count, "memtables once caught up: the empty mutable one only")
}

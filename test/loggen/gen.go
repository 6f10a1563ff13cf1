// Package loggen makes realistic event logs for the auditor's tests and
// benchmarks: requests decided by the pure domain (approval.Decide), their
// events wrapped, chained by hash per partition and interleaved as a busy
// decider would write them, in runs that each end with a seal signed by a
// decider key, written in one Kafka transaction per run as the deciders
// write.
package loggen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/codec"
	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/wire"
)

// Options shape a log.
type Options struct {
	Topic      string
	Partitions int32
	Requests   int
	Signer     *wire.Signer // signs the seals (required)
	SealEvery  int          // events per sealed run, as one decider transaction writes (required)
	Start      time.Time    // the first submit; each request starts Step later than the one before
	Step       time.Duration
	// ProducerOpts are added to the producers of Stream (a compression
	// codec, say).
	ProducerOpts []kgo.Opt
}

// Approvers is the pool of approvers; request i is voted on by
// Approvers[i%len] and Approvers[(i+7)%len].
var Approvers = func() []string {
	out := make([]string, 50)
	for i := range out {
		out[i] = fmt.Sprintf("user:approver%02d@example.com", i)
	}
	return out
}()

// Policies is the single policy every generated request falls under.
func Policies() approval.Policies {
	return approval.Policies{Rules: []approval.Policy{{
		Name: "generated", Approvers: Approvers, MinApprovals: 2, RejectThreshold: 1,
		TTL: approval.Duration(time.Hour),
	}}}
}

// RequestID names request i.
func RequestID(i int) string { return fmt.Sprintf("req-%08d", i) }

// Requester of request i.
func Requester(i int) string { return fmt.Sprintf("service:svc-%d", i%17) }

// commands are request i's commands with their times.
func commands(i int, start time.Time, step time.Duration) []approval.Command {
	rid := RequestID(i)
	t0 := start.Add(time.Duration(i) * step)
	a, b := Approvers[i%len(Approvers)], Approvers[(i+7)%len(Approvers)]
	at := func(k int) time.Time { return t0.Add(time.Duration(k) * time.Second) }
	cmd := func(k int, actor string, body approval.CommandBody) approval.Command {
		return approval.Command{ID: fmt.Sprintf("%s-c%d", rid, k), RequestID: rid, Actor: actor, Time: at(k), Body: body}
	}
	out := []approval.Command{cmd(0, Requester(i), approval.Submit{
		Action: approval.Action{Type: "deploy", Resource: fmt.Sprintf("services/svc-%d/api", i%17), Environment: "production"},
		Reason: fmt.Sprintf("release %d", i),
	})}
	approve := func(k int, who string) approval.Command {
		return cmd(k, who, approval.Vote{Decision: approval.Approve, Comment: "lgtm"})
	}
	switch i % 6 {
	case 0:
		out = append(out, approve(1, a), approve(2, b))
	case 1:
		out = append(out, cmd(1, a, approval.Vote{Decision: approval.Reject, Comment: "not now"}))
	case 2:
		out = append(out, cmd(1, Requester(i), approval.Cancel{Reason: "superseded"}))
	case 3:
		out = append(out, approve(1, a), approve(2, b), approve(3, Approvers[(i+13)%len(Approvers)])) // the last is refused: already decided
	case 4:
		out = append(out, cmd(1, "user:mallory@example.com", approval.Vote{Decision: approval.Approve}), approve(2, a), approve(3, b))
	default:
		out = append(out, approval.Command{ID: "expire:" + rid, RequestID: rid, Actor: approval.SystemDecider,
			Time: t0.Add(time.Hour + time.Second), Body: approval.Expire{}})
	}
	return out
}

// Events are request i's events, decided by the domain.
func Events(i int, start time.Time, step time.Duration) []approval.Event {
	var (
		st  approval.State
		out []approval.Event
	)
	pols := Policies()
	for _, c := range commands(i, start, step) {
		d := approval.Decide(st, c, pols, c.Time)
		for _, e := range d.Events {
			st = approval.Evolve(st, e)
			out = append(out, e)
		}
	}
	return out
}

// Generate calls emit with every record of partition p in offset order,
// p's records only, then returns how many it emitted. Requests are
// interleaved in groups of 16, as concurrent requests are, one command's
// events at a time (a decider writes a command's events together). After
// at least o.SealEvery events (and at the end) a seal signed by o.Signer
// ends the run, as a decider's transaction does, never between two events
// of one command: Write and Stream commit a Kafka transaction after each
// seal.
func Generate(o Options, p int32, emit func(rec *kgo.Record) error) (int64, error) {
	w, err := newSealer(o, p, emit)
	if err != nil {
		return 0, err
	}
	var mine []int
	for i := range o.Requests {
		if wire.Partition([]byte(RequestID(i)), int(o.Partitions)) == p {
			mine = append(mine, i)
		}
	}
	for g := 0; g < len(mine); g += 16 {
		group := mine[g:min(g+16, len(mine))]
		decs := make([][][]approval.Event, len(group))
		for j, i := range group {
			decs[j] = decisions(Events(i, o.Start, o.Step))
		}
		for k := 0; ; k++ {
			any := false
			for j := range group {
				if k >= len(decs[j]) {
					continue
				}
				any = true
				for _, e := range decs[j][k] {
					if err := w.event(e); err != nil {
						return w.n, err
					}
				}
			}
			if !any {
				break
			}
		}
	}
	return w.n, w.seal()
}

// decisions splits a request's events into the runs one command caused
// (one command id each), which a decider writes together, in one
// transaction.
func decisions(events []approval.Event) [][]approval.Event {
	var out [][]approval.Event
	for i, e := range events {
		if i == 0 || e.CommandID != events[i-1].CommandID {
			out = append(out, nil)
		}
		out[len(out)-1] = append(out[len(out)-1], e)
	}
	return out
}

// Seal returns events as a decider writes them to partition p, whatever
// they say: chained by hash from the start of the partition, in order,
// with a seal signed by o.Signer after at least o.SealEvery events, where
// a command's events end, and at the end (o.Requests, o.Start and o.Step
// are not used). Every event's request
// must belong to p among o.Partitions partitions (wire.Partition), since
// Write's producer sends a keyed record to that partition. Tests write
// logs with it that the domain would never produce (an approval short of
// the quorum, a vote by the requester) under valid seals: only the
// auditor's domain replay can tell them from a legal log.
func Seal(o Options, p int32, events []approval.Event) ([]*kgo.Record, error) {
	if o.Partitions < 1 || p < 0 || p >= o.Partitions {
		return nil, fmt.Errorf("loggen: partition %d of %d partitions", p, o.Partitions)
	}
	for _, e := range events {
		if got := wire.Partition([]byte(e.RequestID), int(o.Partitions)); got != p {
			return nil, fmt.Errorf("loggen: request %s belongs to partition %d of %d, not %d", e.RequestID, got, o.Partitions, p)
		}
	}
	var out []*kgo.Record
	w, err := newSealer(o, p, func(r *kgo.Record) error {
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, e := range events {
		if err := w.event(e); err != nil {
			return nil, err
		}
	}
	return out, w.seal()
}

// sealer chains records of one partition and seals them in runs.
type sealer struct {
	o     Options
	p     int32
	emit  func(*kgo.Record) error
	chain *wire.Chain
	from  string         // the head the current run extends
	run   int            // events since the last seal
	last  approval.Event // the last event
	n     int64          // records emitted
}

func newSealer(o Options, p int32, emit func(*kgo.Record) error) (*sealer, error) {
	if o.Signer == nil || o.SealEvery <= 0 {
		return nil, errors.New("loggen: a Signer and SealEvery are required: readers apply only sealed records")
	}
	c := wire.NewChain("")
	return &sealer{o: o, p: p, emit: emit, chain: c, from: c.Head}, nil
}

func (w *sealer) put(env wire.Envelope) error {
	value, err := w.chain.Next(env)
	if err != nil {
		return err
	}
	var key []byte
	if env.Subject != "" {
		key = []byte(env.Subject)
	}
	rec := eventlog.RecordOf(w.o.Topic, key, value)
	rec.Partition = w.p
	w.n++
	return w.emit(rec)
}

func (w *sealer) event(e approval.Event) error {
	if w.run >= w.o.SealEvery && (e.RequestID != w.last.RequestID || e.CommandID != w.last.CommandID) {
		// A command's events are done: the transaction may end here.
		if err := w.seal(); err != nil {
			return err
		}
	}
	env, err := codec.EventEnvelope(e, "assent/decider", w.chain.Head)
	if err != nil {
		return err
	}
	if err := w.put(env); err != nil {
		return err
	}
	w.last = e
	w.run++
	return nil
}

// seal ends the run, if any, with a seal, as a decider's transaction does.
func (w *sealer) seal() error {
	if w.run == 0 {
		return nil
	}
	env, err := wire.NewSeal(w.o.Signer, "assent/decider", w.o.Topic, w.p, w.from, w.chain.Head, w.run, w.last.Time.Add(time.Millisecond))
	if err != nil {
		return err
	}
	if err := w.put(env); err != nil {
		return err
	}
	w.from, w.run = w.chain.Head, 0
	return nil
}

// Build returns every partition's records in log order (for small logs
// that tests copy and tamper with).
func Build(o Options) ([][]*kgo.Record, error) {
	out := make([][]*kgo.Record, o.Partitions)
	for p := range o.Partitions {
		_, err := Generate(o, p, func(r *kgo.Record) error {
			out[p] = append(out[p], r)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// isSeal reports whether a generated record ends a run.
func isSeal(r *kgo.Record) bool {
	return r.Key == nil && bytes.Contains(r.Value, []byte(`"type":"`+wire.TypeSeal+`"`))
}

// Write produces parts[p] to partition p of topic, in order, in Kafka
// transactions that each end after a seal (records after the last seal go
// in a last transaction), as the deciders write. It returns the offset of
// every record, by partition and index.
func Write(ctx context.Context, cfg eventlog.Config, topic string, parts [][]*kgo.Record) ([][]int64, error) {
	cl, err := eventlog.NewClient(cfg, kgo.TransactionalID("loggen-"+wire.NewID(time.Now())), kgo.MaxBufferedRecords(100_000))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	offsets := make([][]int64, len(parts))
	for p, recs := range parts {
		offsets[p] = make([]int64, len(recs))
		for i := 0; i < len(recs); {
			if err := cl.BeginTransaction(); err != nil {
				return nil, fmt.Errorf("loggen: begin: %w", err)
			}
			for ; i < len(recs); i++ {
				r := recs[i]
				rec := &kgo.Record{Topic: topic, Key: r.Key, Value: r.Value, Headers: r.Headers, Partition: int32(p)}
				res := cl.ProduceSync(ctx, rec)
				if err := res.FirstErr(); err != nil {
					return nil, fmt.Errorf("loggen: produce: %w", err)
				}
				offsets[p][i] = rec.Offset
				if isSeal(r) {
					i++
					break
				}
			}
			if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
				return nil, fmt.Errorf("loggen: commit: %w", err)
			}
		}
	}
	return offsets, waitStable(ctx, cl, topic)
}

// waitStable waits until no transaction is open on topic (its last stable
// offsets equal its high watermarks): EndTransaction returns before the
// brokers have written the commit markers, and a reader that starts then
// would not see the last transaction yet.
func waitStable(ctx context.Context, cl *kgo.Client, topic string) error {
	adm := kadm.NewClient(cl)
	for {
		hw, err := adm.ListEndOffsets(ctx, topic)
		if err != nil {
			return fmt.Errorf("loggen: end offsets: %w", err)
		}
		lso, err := adm.ListCommittedOffsets(ctx, topic)
		if err != nil {
			return fmt.Errorf("loggen: stable offsets: %w", err)
		}
		stable := true
		hw.Each(func(o kadm.ListedOffset) {
			if l, ok := lso.Lookup(topic, o.Partition); !ok || l.Offset != o.Offset {
				stable = false
			}
		})
		if stable {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Stream generates the whole log and produces it to topic in sealed
// transactions, partitions in parallel (one transactional producer each),
// returning the records written. progress, if set, is called with the
// running count now and then.
func Stream(ctx context.Context, cfg eventlog.Config, o Options, progress func(int64)) (int64, error) {
	var (
		mu    sync.Mutex
		first error
		total int64
		wg    sync.WaitGroup
		sem   = make(chan struct{}, 4)
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if first == nil {
			first = err
		}
	}
	for p := range o.Partitions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			opts := append([]kgo.Opt{kgo.TransactionalID(fmt.Sprintf("loggen-%s-%d", wire.NewID(time.Now()), p)),
				kgo.MaxBufferedRecords(200_000), kgo.ProducerLinger(20 * time.Millisecond), kgo.ProducerBatchMaxBytes(1 << 20)}, o.ProducerOpts...)
			cl, err := eventlog.NewClient(cfg, opts...)
			if err != nil {
				fail(err)
				return
			}
			defer cl.Close()
			open := false
			n, err := Generate(o, p, func(rec *kgo.Record) error {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if !open {
					if err := cl.BeginTransaction(); err != nil {
						return err
					}
					open = true
				}
				cl.Produce(ctx, rec, func(_ *kgo.Record, err error) {
					if err != nil {
						fail(err)
					}
				})
				if isSeal(rec) {
					open = false
					// EndTransaction does not flush: without Flush the commit
					// can overtake the run and the seal, which then fail with
					// INVALID_PRODUCER_EPOCH (the commit bumped the epoch) or
					// land in the next transaction.
					if err := cl.Flush(ctx); err != nil {
						return err
					}
					return cl.EndTransaction(ctx, kgo.TryCommit)
				}
				return nil
			})
			if err != nil {
				fail(err)
			}
			mu.Lock()
			total += n
			t := total
			mu.Unlock()
			if progress != nil {
				progress(t)
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return total, fmt.Errorf("loggen: produce: %w", first)
	}
	cl, err := eventlog.NewClient(cfg)
	if err != nil {
		return total, err
	}
	defer cl.Close()
	return total, waitStable(ctx, cl, o.Topic)
}

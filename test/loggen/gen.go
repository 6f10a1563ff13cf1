// Package loggen makes realistic event logs for the auditor's tests and
// benchmark: requests decided by the pure domain (approval.Decide), their
// events wrapped, chained by hash per partition and interleaved as a busy
// decider would write them, with signed checkpoints every few records. It
// writes them straight to a topic with a plain idempotent producer, so a
// fresh topic holds them at offsets 0, 1, 2, ... of each partition, which
// is what the checkpoints sign.
package loggen

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/codec"
	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/wire"
)

// Options shape a log.
type Options struct {
	Topic           string
	Partitions      int32
	Requests        int
	Signer          *wire.Signer // nil: no checkpoints
	CheckpointEvery int          // records between checkpoints; 0: none
	Start           time.Time    // the first submit; each request starts Step later than the one before
	Step            time.Duration
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
// interleaved in groups of 16, as concurrent requests are.
func Generate(o Options, p int32, emit func(rec *kgo.Record) error) (int64, error) {
	var mine []int
	for i := range o.Requests {
		if wire.Partition([]byte(RequestID(i)), int(o.Partitions)) == p {
			mine = append(mine, i)
		}
	}
	chain := wire.NewChain("")
	var n int64
	put := func(env wire.Envelope) error {
		value, err := chain.Next(env)
		if err != nil {
			return err
		}
		var key []byte
		if env.Subject != "" {
			key = []byte(env.Subject)
		}
		rec := eventlog.RecordOf(o.Topic, key, value)
		rec.Partition = p
		n++
		return emit(rec)
	}
	var lastTime time.Time
	since := 0 // events since the last checkpoint
	for g := 0; g < len(mine); g += 16 {
		group := mine[g:min(g+16, len(mine))]
		evs := make([][]approval.Event, len(group))
		for j, i := range group {
			evs[j] = Events(i, o.Start, o.Step)
		}
		for k := 0; ; k++ {
			any := false
			for j := range group {
				if k >= len(evs[j]) {
					continue
				}
				any = true
				e := evs[j][k]
				env, err := codec.EventEnvelope(e, "assent/decider", chain.Head)
				if err != nil {
					return n, err
				}
				if err := put(env); err != nil {
					return n, err
				}
				lastTime = e.Time
				if since++; o.Signer != nil && o.CheckpointEvery > 0 && since == o.CheckpointEvery {
					since = 0
					cp, err := wire.NewCheckpoint(o.Signer, "assent/decider", o.Topic, p, n-1, chain.Head, lastTime.Add(time.Millisecond))
					if err != nil {
						return n, err
					}
					if err := put(cp); err != nil {
						return n, err
					}
				}
			}
			if !any {
				break
			}
		}
	}
	return n, nil
}

// Build returns every partition's record values in offset order (for
// small logs that tests copy and tamper with).
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

// Write produces parts[p] to partition p of topic, in order, and waits
// until every record is acknowledged. Into a fresh topic, record k of
// partition p lands at offset k.
func Write(ctx context.Context, cfg eventlog.Config, topic string, parts [][]*kgo.Record) error {
	cl, err := eventlog.NewClient(cfg, kgo.MaxBufferedRecords(100_000))
	if err != nil {
		return err
	}
	defer cl.Close()
	var (
		mu    sync.Mutex
		first error
	)
	for p, recs := range parts {
		for _, r := range recs {
			rec := &kgo.Record{Topic: topic, Key: r.Key, Value: r.Value, Headers: r.Headers, Partition: int32(p)}
			cl.Produce(ctx, rec, func(r *kgo.Record, err error) {
				if err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			})
		}
	}
	if err := cl.Flush(ctx); err != nil {
		return fmt.Errorf("gen: flush: %w", err)
	}
	if first != nil {
		return fmt.Errorf("gen: produce: %w", first)
	}
	return nil
}

// Stream generates the whole log and produces it to topic, partitions in
// parallel, returning the records written. progress, if set, is called
// with the running count now and then.
func Stream(ctx context.Context, cfg eventlog.Config, o Options, progress func(int64)) (int64, error) {
	cl, err := eventlog.NewClient(cfg, kgo.MaxBufferedRecords(200_000), kgo.ProducerLinger(20*time.Millisecond),
		kgo.ProducerBatchMaxBytes(1<<20))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	var (
		mu    sync.Mutex
		first error
		total int64
		wg    sync.WaitGroup
		sem   = make(chan struct{}, 2)
	)
	for p := range o.Partitions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			n, err := Generate(o, p, func(rec *kgo.Record) error {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				cl.Produce(ctx, rec, func(_ *kgo.Record, err error) {
					if err != nil {
						mu.Lock()
						if first == nil {
							first = err
						}
						mu.Unlock()
					}
				})
				return nil
			})
			mu.Lock()
			total += n
			if err != nil && first == nil {
				first = err
			}
			t := total
			mu.Unlock()
			if progress != nil {
				progress(t)
			}
		}()
	}
	wg.Wait()
	if err := cl.Flush(ctx); err != nil {
		return total, fmt.Errorf("gen: flush: %w", err)
	}
	if first != nil {
		return total, fmt.Errorf("gen: produce: %w", first)
	}
	return total, nil
}

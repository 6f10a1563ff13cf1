package projection

import (
	"fmt"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/assent-dev/assent/libs/wire"
)

// The kinds of record the runner rejects, as counted in
// assent_consistency_violations_total{kind}.
const (
	kindUnauthenticated = iota
	kindInvalid
	kindGap
	kinds
)

var kindNames = [kinds]string{wire.KindUnauthenticated, wire.KindInvalid, wire.KindGap}

func kindIndex(kind string) int {
	if i := slices.Index(kindNames[:], kind); i >= 0 {
		return i
	}
	return kindInvalid
}

// apply writes one poll's records, in offset order within each partition,
// into one batch with the resume offset and authenticated head of every
// partition it touched, then publishes it. It knows nothing of Kafka: the
// records come as wire.Records. Only what a valid seal covers reaches the
// handler (see wire.Authenticator); the rest is counted, logged and given
// to a Rejecter handler. A gap (records missing before a valid seal) stops
// the partition: nothing more of it is applied, and the runner is never
// ready again until an operator acts (docs/runbook.md).
func (r *Runner) apply(recs []wire.Record) (stoppedNow map[int32]string, err error) {
	began := time.Now()
	r.applyMu.Lock()
	defer r.applyMu.Unlock()
	r.mu.Lock()
	next := slices.Clone(r.next)
	heads := slices.Clone(r.heads)
	stopped := slices.Clone(r.stopped)
	r.mu.Unlock()

	b := r.db.NewIndexedBatch()
	defer func() { _ = b.Close() }()
	touched := make(map[int32]bool)
	subjects := make(map[string]bool)
	stats := BatchStats{}
	for _, rec := range recs {
		p := rec.Partition
		if p < 0 || p >= r.cfg.Partitions {
			return nil, fmt.Errorf("projection: record in partition %d of %s, configured for %d", p, r.cfg.Topic, r.cfg.Partitions)
		}
		if stopped[p] != "" {
			continue
		}
		if rec.Offset < next[p] {
			return nil, fmt.Errorf("%w: partition %d offset %d < %d", errLogReset, p, rec.Offset, next[p])
		}
		touched[p] = true
		next[p] = rec.Offset + 1
		it := wire.Item{Record: rec}
		var decodeErr error
		if !rec.Control {
			it.Hash = wire.Hash(rec.Value)
			it.Env, decodeErr = wire.DecodeRecord(rec)
		}
		res, bypassed := bypass(it, decodeErr) // false, always, but in the assentbench_noauth benchmark build
		if !bypassed {
			res = r.authenticator(p).Add(it, decodeErr)
		}
		for _, x := range res.Apply {
			e := &Event{Partition: p, Offset: x.Record.Offset, Value: x.Record.Value, Hash: x.Hash, PrevHead: heads[p], Envelope: x.Env}
			heads[p] = x.Hash
			stats.Records++
			if x.Env.Subject != "" {
				subjects[x.Env.Subject] = true
			}
			if err := r.cfg.Handler.Apply(b, e); err != nil {
				return nil, fmt.Errorf("projection: apply %s/%d@%d: %w", r.cfg.Topic, p, x.Record.Offset, err)
			}
		}
		for _, rj := range res.Rejected {
			stats.Invalid++
			if err := r.reject(b, rj); err != nil {
				return nil, err
			}
		}
		if res.Gap != nil {
			stats.Invalid++
			if err := r.reject(b, *res.Gap); err != nil {
				return nil, err
			}
			stopped[p] = res.Gap.Reason
			next[p] = rec.Offset // resume at the gap, so a restart finds it again
			if stoppedNow == nil {
				stoppedNow = map[int32]string{}
			}
			stoppedNow[p] = res.Gap.Reason
		}
	}
	if len(touched) == 0 {
		return stoppedNow, nil
	}
	for p := range touched {
		resume := r.authenticator(p).FirstPending()
		if resume < 0 || stopped[p] != "" {
			resume = next[p]
		}
		if err := stage(b, p, resume, heads[p]); err != nil {
			return nil, err
		}
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return nil, fmt.Errorf("projection: commit batch: %w", err)
	}
	stats.Duration = time.Since(began)

	r.mu.Lock()
	r.next, r.heads, r.stopped = next, heads, stopped
	close(r.progress)
	r.progress = make(chan struct{})
	r.mu.Unlock()
	r.wake(subjects)
	r.updateReady()
	if m := r.metrics.Load(); m != nil {
		m.observe(stats)
	}
	if r.cfg.Observe != nil {
		r.cfg.Observe(stats)
	}
	return stoppedNow, nil
}

// reject counts, logs and records a rejected record.
func (r *Runner) reject(b *pebble.Batch, rj wire.Rejection) error {
	r.rejected[kindIndex(rj.Kind)].Add(1)
	r.log.Error("a record of the events topic is not applied", "kind", rj.Kind, "partition", rj.Record.Partition,
		"offset", rj.Record.Offset, "event_id", rj.Env.ID, "type", rj.Env.Type, "subject", rj.Env.Subject, "reason", rj.Reason)
	if h, ok := r.cfg.Handler.(Rejecter); ok {
		if err := h.Reject(b, &Rejected{Partition: rj.Record.Partition, Offset: rj.Record.Offset, Envelope: rj.Env,
			Kind: rj.Kind, Reason: rj.Reason}); err != nil {
			return fmt.Errorf("projection: record rejected %s/%d@%d: %w", r.cfg.Topic, rj.Record.Partition, rj.Record.Offset, err)
		}
	}
	return nil
}

// Rejections counts the records rejected since Open, by kind
// (wire.KindUnauthenticated, wire.KindInvalid, wire.KindGap).
func (r *Runner) Rejections() map[string]int64 {
	out := make(map[string]int64, kinds)
	for i, name := range kindNames {
		out[name] = r.rejected[i].Load()
	}
	return out
}

// Stopped lists the partitions the runner stopped reading, with why.
func (r *Runner) Stopped() map[int32]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[int32]string{}
	for p, why := range r.stopped {
		if why != "" {
			out[int32(p)] = why
		}
	}
	return out
}

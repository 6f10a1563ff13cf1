package projection

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/assent-dev/assent/libs/tracing"
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

// Applying a poll has two stages. decode hashes and decodes every record,
// runs it through its partition's authenticator and prepares what a valid
// seal covers (Preparer): it knows nothing of the store, so partitions are
// decoded in parallel, and the consumer decodes the next poll while the
// previous one is committed. commit then applies the result to the
// handler in one Pebble batch with every touched partition's resume
// offset and head, commits it, and only then publishes the progress and
// wakes the waiters. It knows nothing of Kafka: the records come as
// wire.Records. Only what a valid seal covers reaches the handler (see
// wire.Authenticator); the rest is counted, logged and given to a
// Rejecter handler. A gap (records missing before a valid seal) stops the
// partition: nothing more of it is applied, and the runner is never ready
// again until an operator acts (docs/runbook.md).

// decodeState is where decoding stands in each partition: ahead of what
// is committed (Runner.next, .heads) by at most the poll being committed.
// Only the consumer's goroutine uses it, one goroutine per partition.
type decodeState struct {
	next     []int64
	heads    []string
	headAt   []int64 // offset of the record whose hash is the head; -1 for genesis or unknown
	stopped  []string
	auth     []*wire.Authenticator
	keys     *wire.KeyRing
	topic    string
	handlerP Preparer // nil unless the handler prepares events
	traced   bool     // collect the trace contexts of applied records (Config.Tracer)
}

// decodeState returns the decoding state as the store stands, made once
// and kept until the store is wiped. r.applyMu is held.
func (r *Runner) decodeState() *decodeState {
	if r.dec != nil {
		return r.dec
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.cfg.Partitions
	st := &decodeState{
		next: slices.Clone(r.next), heads: slices.Clone(r.heads), headAt: slices.Clone(r.headAt),
		stopped: slices.Clone(r.stopped), auth: make([]*wire.Authenticator, n), keys: r.cfg.Keys, topic: r.cfg.Topic,
	}
	st.handlerP, _ = r.cfg.Handler.(Preparer)
	st.traced = r.cfg.Tracer != nil
	r.dec = st
	return st
}

// stopPartitions marks partitions stopped for decoding (data loss found
// by the consumer), so that nothing more of them is applied.
func (st *decodeState) stopPartitions(why map[int32]string) {
	for p, reason := range why {
		if p >= 0 && int(p) < len(st.stopped) && st.stopped[p] == "" {
			st.stopped[p] = reason
		}
	}
}

// rejectAt is a rejected record, recorded before the events[before] of
// its partition (after all of them when before == len(events)).
type rejectAt struct {
	before int
	rj     wire.Rejection
}

// decodedPart is one partition's share of a decoded poll.
type decodedPart struct {
	p       int32
	recs    []wire.Record // in, in offset order
	events  []Event
	rejects []rejectAt
	gap     string // set when this poll stopped the partition at a gap
	// traces are the distinct trace contexts the applied records carry
	// (decodeState.traced only).
	traces []trace.SpanContext
	// After the poll: where a restart resumes (the oldest record held for
	// its seal, or the next offset), and the authenticated head there.
	resume, next, headAt int64
	head                 string
	err                  error
}

// decoded is one poll, decoded and authenticated, ready to commit.
type decoded struct {
	began   time.Time
	parts   []*decodedPart // the partitions the poll touched, by partition
	stopped map[int32]string
}

// size guesses the bytes of the batch a decoded poll makes (the handler
// keeps about as much again as the record values), so that the batch
// need not grow as it fills.
func (d *decoded) size() int {
	n := 0
	for _, dp := range d.parts {
		for i := range dp.events {
			n += 2*len(dp.events[i].Value) + 256
		}
	}
	return min(n, 64<<20)
}

// decode runs the first stage on one poll. r.applyMu need not be held,
// but only one decode runs at a time, and never one ahead of a wipe.
func (r *Runner) decode(st *decodeState, recs []wire.Record) (*decoded, error) {
	d := &decoded{began: time.Now()}
	byPart := map[int32]*decodedPart{}
	for _, rec := range recs {
		p := rec.Partition
		if p < 0 || p >= r.cfg.Partitions {
			return nil, fmt.Errorf("projection: record in partition %d of %s, configured for %d", p, r.cfg.Topic, r.cfg.Partitions)
		}
		if st.stopped[p] != "" {
			continue
		}
		dp := byPart[p]
		if dp == nil {
			dp = &decodedPart{p: p}
			byPart[p] = dp
			d.parts = append(d.parts, dp)
		}
		dp.recs = append(dp.recs, rec)
	}
	slices.SortFunc(d.parts, func(a, b *decodedPart) int { return int(a.p - b.p) })
	// The partitions are independent: each has its own authenticator and
	// chain, and its own slots of st.
	work := make(chan *decodedPart, len(d.parts))
	for _, dp := range d.parts {
		work <- dp
	}
	close(work)
	var wg sync.WaitGroup
	for range min(len(d.parts), runtime.GOMAXPROCS(0)) {
		wg.Go(func() {
			for dp := range work {
				st.decodePart(dp)
			}
		})
	}
	wg.Wait()
	for _, dp := range d.parts {
		if dp.err != nil {
			return nil, dp.err
		}
		if dp.gap != "" {
			if d.stopped == nil {
				d.stopped = map[int32]string{}
			}
			d.stopped[dp.p] = dp.gap
		}
	}
	return d, nil
}

// decodePart decodes and authenticates one partition's records of a poll.
func (st *decodeState) decodePart(dp *decodedPart) {
	p := dp.p
	if st.auth[p] == nil {
		st.auth[p] = wire.NewAuthenticator(st.keys, st.topic, p, st.heads[p])
	}
	auth := st.auth[p]
	for _, rec := range dp.recs {
		if st.stopped[p] != "" {
			break
		}
		if rec.Offset < st.next[p] {
			dp.err = fmt.Errorf("%w: partition %d offset %d < %d", errLogReset, p, rec.Offset, st.next[p])
			return
		}
		st.next[p] = rec.Offset + 1
		it := wire.Item{Record: rec}
		var decodeErr error
		if !rec.Control {
			it.Hash = wire.Hash(rec.Value)
			it.Env, decodeErr = wire.DecodeRecord(rec)
		}
		res, bypassed := bypass(it, decodeErr) // false, always, but in the assentbench_noauth benchmark build
		if !bypassed {
			res = auth.Add(it, decodeErr)
		}
		for _, x := range res.Apply {
			e := Event{Partition: p, Offset: x.Record.Offset, Value: x.Record.Value, Hash: x.Hash, PrevHead: st.heads[p], Envelope: x.Env}
			if st.handlerP != nil {
				e.Prepared = st.handlerP.Prepare(&e)
			}
			st.heads[p], st.headAt[p] = x.Hash, x.Record.Offset
			dp.events = append(dp.events, e)
			if st.traced && len(dp.traces) < maxBatchTraces && tracing.HasHeader(x.Record.Headers) {
				if sc := trace.SpanContextFromContext(tracing.FromWire(context.Background(), x.Record.Headers)); sc.IsValid() && !slices.ContainsFunc(dp.traces, sc.Equal) {
					dp.traces = append(dp.traces, sc)
				}
			}
		}
		for _, rj := range res.Rejected {
			dp.rejects = append(dp.rejects, rejectAt{before: len(dp.events), rj: rj})
		}
		if res.Gap != nil {
			dp.rejects = append(dp.rejects, rejectAt{before: len(dp.events), rj: *res.Gap})
			st.stopped[p] = res.Gap.Reason
			dp.gap = res.Gap.Reason
			st.next[p] = rec.Offset // resume at the gap, so a restart finds it again
		}
	}
	dp.recs = nil
	dp.resume = auth.FirstPending()
	if dp.resume < 0 || st.stopped[p] != "" {
		dp.resume = st.next[p]
	}
	dp.next, dp.head, dp.headAt = st.next[p], st.heads[p], st.headAt[p]
}

// apply decodes and commits one poll: the two stages in turn.
func (r *Runner) apply(recs []wire.Record) (stoppedNow map[int32]string, err error) {
	r.applyMu.Lock()
	st := r.decodeState()
	r.applyMu.Unlock()
	d, err := r.decode(st, recs)
	if err != nil {
		return nil, err
	}
	return d.stopped, r.commit(d)
}

// commit is the second stage: it applies a decoded poll to the handler
// and the store in one batch, commits it, and publishes it.
func (r *Runner) commit(d *decoded) error {
	r.applyMu.Lock()
	defer r.applyMu.Unlock()
	if len(d.parts) == 0 {
		return nil
	}
	var b *pebble.Batch
	if r.plain {
		b = r.db.NewBatchWithSize(d.size())
	} else {
		b = r.db.NewIndexedBatchWithSize(d.size())
	}
	committer, _ := r.cfg.Handler.(Committer)
	defer func() {
		if b != nil {
			_ = b.Close()
		}
		if committer != nil {
			committer.Committed() // dropped: the runner stops
		}
	}()
	stats := BatchStats{}
	bh, _ := r.cfg.Handler.(BatchHandler)
	var pending []Event // authenticated, not yet given to a BatchHandler
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		if err := bh.ApplyBatch(b, pending); err != nil {
			first := pending[0]
			return fmt.Errorf("projection: apply %d events from %s/%d@%d: %w", len(pending), r.cfg.Topic, first.Partition, first.Offset, err)
		}
		pending = nil
		return nil
	}
	reject := func(rj wire.Rejection) error {
		if err := flush(); err != nil { // what came before a rejection is applied before it
			return err
		}
		stats.Invalid++
		return r.reject(b, rj)
	}
	for _, dp := range d.parts {
		k := 0
		for i := range dp.events {
			for ; k < len(dp.rejects) && dp.rejects[k].before == i; k++ {
				if err := reject(dp.rejects[k].rj); err != nil {
					return err
				}
			}
			stats.Records++
			if bh != nil {
				pending = append(pending, dp.events[i])
				continue
			}
			e := &dp.events[i]
			if err := r.cfg.Handler.Apply(b, e); err != nil {
				return fmt.Errorf("projection: apply %s/%d@%d: %w", r.cfg.Topic, e.Partition, e.Offset, err)
			}
		}
		for ; k < len(dp.rejects); k++ {
			if err := reject(dp.rejects[k].rj); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	if r.keeper {
		if err := r.keepRecords(b, d.parts); err != nil {
			return err
		}
	}
	for _, dp := range d.parts {
		if err := stage(b, dp.p, dp.resume, dp.head, dp.headAt); err != nil {
			return err
		}
	}
	data := largeData(b)
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("projection: commit batch: %w", err)
	}
	if len(b.Repr()) <= batchHeader {
		// Pebble took the batch as a memtable of its own (a batch of half
		// a memtable or more) and let go of its data, which that memtable
		// holds now.
		r.lastBatch = data
	}
	// Closed now, not when commit returns: a batch Pebble took as a
	// memtable of its own stays reachable from it until it is closed, and
	// the batch that makes the runner ready must not be (settle).
	_ = b.Close()
	b = nil
	if committer != nil {
		// Before the batch is published: whoever waits for it (readiness
		// among them) finds the handler done with it.
		committer.Committed()
		committer = nil
	}
	stats.Duration = time.Since(d.began)
	r.traceApplied(d, d.began.Add(stats.Duration), stats)

	r.mu.Lock()
	for _, dp := range d.parts {
		r.next[dp.p], r.heads[dp.p], r.headAt[dp.p] = dp.next, dp.head, dp.headAt
		if dp.gap != "" && r.stopped[dp.p] == "" {
			r.stopped[dp.p] = dp.gap
		}
	}
	close(r.progress)
	r.progress = make(chan struct{})
	r.mu.Unlock()
	r.wake(d)
	if m := r.metrics.Load(); m != nil {
		m.observe(stats) // before readiness, which a scrape may see at once
	}
	r.updateReady()
	if r.cfg.Observe != nil {
		r.cfg.Observe(stats)
	}
	return nil
}

// batchHeader is the size of a Pebble batch's header: what Repr returns
// of a batch Pebble took the data of.
const batchHeader = 12

// maxBatchTraces bounds the apply spans of one batch (and of each of its
// partitions): tracing is sampled, and a batch with more traces than this
// records the first ones.
const maxBatchTraces = 64

// traceApplied records a tracing.SpanApply span, from the end of the poll
// to applied, under each trace context the batch's applied records carry:
// the hop from the decider's commit to this replica's store. It ends
// before the waiters are woken, so that the next hop (tracing.EventWake)
// follows it.
func (r *Runner) traceApplied(d *decoded, applied time.Time, stats BatchStats) {
	// A replica catching up (a rebuild) applies records whose requests
	// nobody waits for here: no spans for them.
	if r.cfg.Tracer == nil || !r.Ready() {
		return
	}
	var seen []trace.SpanContext
	for _, dp := range d.parts {
		for _, sc := range dp.traces {
			if len(seen) == maxBatchTraces || slices.ContainsFunc(seen, sc.Equal) {
				continue
			}
			seen = append(seen, sc)
			_, span := r.cfg.Tracer.Start(trace.ContextWithRemoteSpanContext(context.Background(), sc), tracing.SpanApply,
				trace.WithSpanKind(trace.SpanKindConsumer), trace.WithTimestamp(d.began),
				trace.WithAttributes(attribute.String("messaging.destination.name", r.cfg.Topic), attribute.Int("assent.batch_records", stats.Records)))
			span.End(trace.WithTimestamp(applied))
		}
	}
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

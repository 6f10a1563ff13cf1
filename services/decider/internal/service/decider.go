package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/projection"
	"github.com/assent-dev/assent/libs/projection/requests"
)

// Source is the CloudEvents source of every event the decider writes.
const Source = "assent/decider"

// Decider is the transactional loop.
type Decider struct {
	cfg      Config
	log      *slog.Logger
	runner   *projection.Runner
	store    *requests.Store
	policies func() approval.Policies
	metrics  *metrics
	now      func() time.Time

	mu      sync.Mutex
	owned   map[int32]*partition    // assigned command partitions
	overlay map[string]overlayEntry // states written but not yet projected
	epoch   uint64
	revokes uint64 // revocations seen, to say why a transaction aborted
	commits atomic.Int64
}

type partition struct {
	epoch    uint64 // changes on every assignment, so stale effects are dropped
	caughtUp bool
	head     string // chain head of the events partition, once caught up
	// headOffset is the offset of the head record (-1: unknown, or an
	// empty partition); checkpointOffset is that of the last checkpoint
	// known (-1: none). A checkpoint is due when headOffset is past it.
	headOffset       int64
	checkpointOffset int64
	lastCheckpoint   time.Time
}

type overlayEntry struct {
	state     approval.State
	partition int32
	offset    int64 // of the last event written for the request
	epoch     uint64
}

// batch stages the effects of one transaction.
type batch struct {
	states  map[string]approval.State
	heads   map[int32]string
	epochs  map[int32]uint64
	parts   map[string]int32
	mu      sync.Mutex
	offsets map[string]int64 // request id -> last produced offset
	// per partition: the offset of the last record produced, and of the
	// checkpoint produced, if any
	headOffsets       map[int32]int64
	checkpointOffsets map[int32]int64
	err               error
	events            int
	checkpointAt      time.Time
}

func newBatch() *batch {
	return &batch{
		states: map[string]approval.State{}, heads: map[int32]string{}, epochs: map[int32]uint64{},
		parts: map[string]int32{}, offsets: map[string]int64{},
		headOffsets: map[int32]int64{}, checkpointOffsets: map[int32]int64{},
	}
}

func (d *Decider) onAssigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, p := range assigned[d.cfg.Topics.Commands] {
		d.epoch++
		d.owned[p] = &partition{epoch: d.epoch}
	}
	d.log.Info("partitions assigned", "partitions", assigned[d.cfg.Topics.Commands])
}

func (d *Decider) onRevoked(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.revokes++
	gone := map[int32]bool{}
	for _, p := range revoked[d.cfg.Topics.Commands] {
		delete(d.owned, p)
		gone[p] = true
	}
	for rid, e := range d.overlay {
		if gone[e.partition] {
			delete(d.overlay, rid)
		}
	}
	d.log.Info("partitions revoked", "partitions", revoked[d.cfg.Topics.Commands])
}

// loop runs the transactional session until ctx ends.
func (d *Decider) loop(ctx context.Context, sess *kgo.GroupTransactSession, adm *kadm.Client) error {
	lastExpiry := time.Time{}
	for {
		pollCtx, cancel := context.WithTimeout(ctx, d.cfg.ExpiryPeriod)
		fetches := sess.PollRecords(pollCtx, 2000)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(fetches.Err0(), kgo.ErrClientClosed) {
			return errors.New("decider: kafka client closed")
		}
		fetches.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				d.log.Warn("fetch error", "topic", t, "partition", p, "err", err)
			}
		})
		records := fetches.Records()
		doExpiry := time.Since(lastExpiry) >= d.cfg.ExpiryPeriod
		if len(records) == 0 && !doExpiry {
			continue
		}
		if doExpiry {
			lastExpiry = time.Now()
		}
		if err := d.transact(ctx, sess, adm, records, doExpiry); err != nil {
			return err
		}
	}
}

// transact runs one transaction: catch up new partitions, decide the
// records, expire what is due, commit.
func (d *Decider) transact(ctx context.Context, sess *kgo.GroupTransactSession, adm *kadm.Client, records []*kgo.Record, doExpiry bool) error {
	if err := sess.Begin(); err != nil {
		return fmt.Errorf("decider: begin transaction: %w", err)
	}
	began := time.Now()
	defer func() { d.metrics.txnSeconds.Observe(time.Since(began).Seconds()) }()
	b := newBatch()
	d.mu.Lock()
	revokesAtBegin := d.revokes
	d.mu.Unlock()
	ok := d.catchUp(ctx, adm, records)
	if ok {
		d.checkpoint(ctx, sess, b)
		for _, rec := range records {
			d.decideRecord(ctx, sess, b, rec)
		}
		if doExpiry {
			d.expireDue(ctx, sess, b)
		}
	}
	// Finish the transaction even when ctx ends (shutdown): an open
	// transaction would block the next owner's catch-up until it times out.
	endCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.TxnTimeout)
	defer cancel()
	if ok {
		if err := sess.Client().Flush(endCtx); err != nil {
			ok = false
			d.log.Warn("flush failed; aborting", "err", err)
		}
	}
	b.mu.Lock()
	if b.err != nil {
		ok = false
		d.log.Warn("a produce failed; aborting", "err", b.err)
	}
	b.mu.Unlock()
	try := kgo.TryCommit
	if !ok {
		try = kgo.TryAbort
	}
	committed, err := sess.End(endCtx, try)
	if err != nil {
		d.metrics.txns.WithLabelValues("error").Inc()
		return fmt.Errorf("decider: end transaction: %w", err)
	}
	if !committed {
		d.metrics.txns.WithLabelValues("aborted").Inc()
		if len(records) > 0 || b.events > 0 {
			d.mu.Lock()
			cause := "a produce or catch-up failed"
			if d.revokes != revokesAtBegin {
				cause = "partitions were revoked (rebalance)"
			} else if ok {
				cause = "the group generation changed before the commit (fenced)"
			}
			d.mu.Unlock()
			d.log.Info("transaction aborted; the batch will be decided again", "records", len(records), "cause", cause)
		}
		return nil
	}
	d.metrics.txns.WithLabelValues("committed").Inc()
	d.commits.Add(1)
	d.merge(b)
	if len(records) > 0 || b.events > 0 {
		d.log.Debug("transaction committed", "records", len(records), "events", b.events, "first_offset", firstOffset(records))
	}
	return nil
}

// catchUp makes sure every partition in records is caught up before any
// of its commands is decided. It reports false when it could not.
func (d *Decider) catchUp(ctx context.Context, adm *kadm.Client, records []*kgo.Record) bool {
	var need []int32
	d.mu.Lock()
	seen := map[int32]bool{}
	for _, r := range records {
		if pt, ok := d.owned[r.Partition]; ok && !pt.caughtUp && !seen[r.Partition] {
			need = append(need, r.Partition)
			seen[r.Partition] = true
		}
	}
	for p, pt := range d.owned {
		if !pt.caughtUp && !seen[p] {
			need = append(need, p) // expiries need it too
			seen[p] = true
		}
	}
	d.mu.Unlock()
	if len(need) == 0 {
		return true
	}
	began := time.Now()
	cctx, cancel := context.WithTimeout(ctx, d.cfg.TxnTimeout+d.cfg.SessionTTL+10*time.Second)
	defer cancel()
	ends, err := d.stableEnds(cctx, adm, need)
	if err != nil {
		d.log.Warn("cannot catch up yet", "partitions", need, "err", err)
		return false
	}
	for _, p := range need {
		if err := d.runner.WaitOffset(cctx, p, ends[p]); err != nil {
			d.log.Warn("projection did not catch up", "partition", p, "err", err)
			return false
		}
	}
	d.mu.Lock()
	for _, p := range need {
		if pt, ok := d.owned[p]; ok {
			pt.caughtUp = true
			pt.head = d.runner.Head(p)
			off, isCheckpoint := d.runner.Tip(p)
			pt.headOffset, pt.checkpointOffset = off, -1
			if isCheckpoint {
				pt.checkpointOffset = off
			}
		}
	}
	d.mu.Unlock()
	d.metrics.catchUp.Observe(time.Since(began).Seconds())
	d.log.Info("caught up", "partitions", need, "took", time.Since(began).String())
	return true
}

// stableEnds waits until no transaction is open on the given events
// partitions (the last stable offset equals the high watermark) and
// returns those end offsets.
func (d *Decider) stableEnds(ctx context.Context, adm *kadm.Client, parts []int32) (map[int32]int64, error) {
	for {
		hw, err := adm.ListEndOffsets(ctx, d.cfg.Topics.Events)
		if err != nil {
			return nil, err
		}
		lso, err := adm.ListCommittedOffsets(ctx, d.cfg.Topics.Events)
		if err != nil {
			return nil, err
		}
		out := map[int32]int64{}
		open := false
		for _, p := range parts {
			h, ok1 := hw.Lookup(d.cfg.Topics.Events, p)
			l, ok2 := lso.Lookup(d.cfg.Topics.Events, p)
			if !ok1 || !ok2 || h.Err != nil || l.Err != nil {
				return nil, fmt.Errorf("no end offset for %s/%d", d.cfg.Topics.Events, p)
			}
			if l.Offset != h.Offset {
				open = true
			}
			out[p] = l.Offset
		}
		if !open {
			return out, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("another producer still has a transaction open: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// load returns the state of a request: staged in this batch, else written
// by an earlier batch and not yet projected, else projected.
func (d *Decider) load(b *batch, rid string) (approval.State, error) {
	if s, ok := b.states[rid]; ok {
		return s, nil
	}
	d.mu.Lock()
	e, ok := d.overlay[rid]
	if ok && d.runner.Next(e.partition) > e.offset {
		delete(d.overlay, rid) // the projection has it now
		ok = false
	}
	d.mu.Unlock()
	if ok {
		return e.state, nil
	}
	s, _, err := d.store.Get(rid)
	return s, err
}

func (d *Decider) head(b *batch, p int32) (string, uint64, bool) {
	if h, ok := b.heads[p]; ok {
		return h, b.epochs[p], true
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	pt, ok := d.owned[p]
	if !ok || !pt.caughtUp {
		return "", 0, false
	}
	return pt.head, pt.epoch, true
}

// decideRecord decides one command record into the batch.
func (d *Decider) decideRecord(ctx context.Context, sess *kgo.GroupTransactSession, b *batch, rec *kgo.Record) {
	now := d.now()
	rid := string(rec.Key)
	if rid == "" {
		d.metrics.skipped.WithLabelValues("no_key").Inc()
		d.log.Error("skipping a command without a key: it names no request", "partition", rec.Partition, "offset", rec.Offset)
		return
	}
	if want := eventlog.Partition(rec.Key, int(d.cfg.Topics.Partitions)); want != rec.Partition {
		// Its events would belong to another decider's partition.
		d.metrics.skipped.WithLabelValues("misrouted").Inc()
		d.log.Error("skipping a command in the wrong partition; produce with Kafka's default (murmur2) partitioner",
			"partition", rec.Partition, "want", want, "offset", rec.Offset, "request", rid)
		return
	}
	state, err := d.load(b, rid)
	if err != nil {
		b.fail(err)
		return
	}
	var dec approval.Decision
	typ := ""
	env, err := eventlog.DecodeRecord(rec)
	switch {
	case err != nil:
		id := fmt.Sprintf("kafka:%s/%d/%d", rec.Topic, rec.Partition, rec.Offset)
		c := approval.Command{ID: id, RequestID: rid, Actor: approval.SystemDecider}
		dec = approval.Refuse(state, c, "", &approval.Refusal{Code: approval.ReasonInvalid, Detail: err.Error()}, now)
	default:
		typ = env.Type
		c, err := eventlog.DomainCommand(env)
		c.RequestID = rid
		var refusal *approval.Refusal
		switch {
		case errors.As(err, &refusal):
			if c.Actor == "" {
				c.Actor = approval.SystemDecider
			}
			dec = approval.Refuse(state, c, env.Type, refusal, now)
		case err != nil:
			dec = approval.Refuse(state, c, env.Type, &approval.Refusal{Code: approval.ReasonInvalid, Detail: err.Error()}, now)
		default:
			dec = approval.Decide(state, c, d.policies(), now)
			if !env.Time.IsZero() && len(dec.Events) > 0 {
				d.metrics.commandToEvent.Observe(now.Sub(env.Time).Seconds())
			}
		}
	}
	d.metrics.observeDecision(typ, dec)
	d.write(ctx, sess, b, rec.Partition, state, dec.Events)
}

// write produces a decision's events and stages the new state and head.
func (d *Decider) write(ctx context.Context, sess *kgo.GroupTransactSession, b *batch, p int32, state approval.State, events []approval.Event) {
	if len(events) == 0 {
		return
	}
	head, epoch, ok := d.head(b, p)
	if !ok {
		b.fail(fmt.Errorf("decider: partition %d is not owned or not caught up", p))
		return
	}
	rid := events[0].RequestID
	for _, e := range events {
		env, err := eventlog.EventEnvelope(e, Source, head)
		if err != nil {
			b.fail(err)
			return
		}
		rec, err := eventlog.NewRecord(d.cfg.Topics.Events, env)
		if err != nil {
			b.fail(err)
			return
		}
		rec.Partition = p
		head = eventlog.Hash(rec.Value)
		state = approval.Evolve(state, e)
		b.events++
		sess.Produce(ctx, rec, func(r *kgo.Record, err error) {
			b.mu.Lock()
			defer b.mu.Unlock()
			if err != nil {
				b.err = errors.Join(b.err, err)
				return
			}
			if r.Partition != p {
				b.err = errors.Join(b.err, fmt.Errorf("decider: event for %s landed in partition %d, not %d", rid, r.Partition, p))
			}
			b.offsets[rid] = max(b.offsets[rid], r.Offset)
			b.headOffsets[p] = max(b.headOffsets[p], r.Offset)
		})
	}
	b.states[rid] = state
	b.parts[rid] = p
	b.heads[p] = head
	b.epochs[p] = epoch
}

func (b *batch) fail(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.err = errors.Join(b.err, err)
}

// merge keeps the effects of a committed batch, unless the partition was
// reassigned meanwhile.
func (d *Decider) merge(b *batch) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for p, h := range b.heads {
		if pt, ok := d.owned[p]; ok && pt.epoch == b.epochs[p] {
			pt.head = h
			if off, ok := b.headOffsets[p]; ok {
				pt.headOffset = off
			}
			if off, ok := b.checkpointOffsets[p]; ok {
				pt.checkpointOffset = off
				pt.lastCheckpoint = b.checkpointAt
			}
		}
	}
	for rid, s := range b.states {
		p := b.parts[rid]
		if pt, ok := d.owned[p]; ok && pt.epoch == b.epochs[p] {
			d.overlay[rid] = overlayEntry{state: s, partition: p, offset: b.offsets[rid], epoch: pt.epoch}
		}
	}
	for rid, e := range d.overlay {
		if d.runner.Next(e.partition) > e.offset {
			delete(d.overlay, rid)
		}
	}
}

// checkpoint signs the head of every caught-up partition this replica owns
// that has new events since its last checkpoint, at most once every
// CheckpointInterval. It runs first in the transaction, so the head it
// signs was committed by an earlier one and its offset is known; the
// events of this transaction then link to the checkpoint.
func (d *Decider) checkpoint(ctx context.Context, sess *kgo.GroupTransactSession, b *batch) {
	if d.cfg.Signer == nil {
		return
	}
	now := d.now()
	type due struct {
		p      int32
		head   string
		offset int64
		epoch  uint64
	}
	var todo []due
	d.mu.Lock()
	for p, pt := range d.owned {
		if pt.caughtUp && pt.headOffset >= 0 && pt.headOffset > pt.checkpointOffset &&
			now.Sub(pt.lastCheckpoint) >= d.cfg.CheckpointInterval {
			todo = append(todo, due{p: p, head: pt.head, offset: pt.headOffset, epoch: pt.epoch})
		}
	}
	d.mu.Unlock()
	for _, c := range todo {
		env, err := eventlog.NewCheckpoint(d.cfg.Signer, Source, d.cfg.Topics.Events, c.p, c.offset, c.head, now)
		if err != nil {
			b.fail(err)
			return
		}
		rec, err := eventlog.NewRecord(d.cfg.Topics.Events, env)
		if err != nil {
			b.fail(err)
			return
		}
		rec.Partition = c.p
		p := c.p
		sess.Produce(ctx, rec, func(r *kgo.Record, err error) {
			b.mu.Lock()
			defer b.mu.Unlock()
			if err != nil {
				b.err = errors.Join(b.err, err)
				return
			}
			if r.Partition != p {
				b.err = errors.Join(b.err, fmt.Errorf("decider: checkpoint landed in partition %d, not %d", r.Partition, p))
			}
			b.checkpointOffsets[p] = r.Offset
			b.headOffsets[p] = max(b.headOffsets[p], r.Offset)
		})
		b.heads[p] = eventlog.Hash(rec.Value)
		b.epochs[p] = c.epoch
		b.checkpointAt = now
		d.metrics.checkpoints.Inc()
	}
}

// expireDue decides an Expire for every due request of the caught-up
// partitions this replica owns.
func (d *Decider) expireDue(ctx context.Context, sess *kgo.GroupTransactSession, b *batch) {
	now := d.now()
	d.mu.Lock()
	var parts []int32
	for p, pt := range d.owned {
		if pt.caughtUp {
			parts = append(parts, p)
		}
	}
	var pendingOverlay []string
	for rid, e := range d.overlay {
		if e.state.Status == approval.StatusPending && !now.Before(e.state.Policy.ExpiresAt) {
			pendingOverlay = append(pendingOverlay, rid)
		}
	}
	d.mu.Unlock()
	due := map[string]int32{}
	for _, p := range parts {
		ids, err := d.store.Due(p, now, 500)
		if err != nil {
			b.fail(err)
			return
		}
		for _, rid := range ids {
			due[rid] = p
		}
	}
	for _, rid := range pendingOverlay {
		due[rid] = eventlog.Partition([]byte(rid), int(d.cfg.Topics.Partitions))
	}
	for rid, p := range due {
		state, err := d.load(b, rid)
		if err != nil {
			b.fail(err)
			return
		}
		c := approval.Command{ID: "expire:" + rid, RequestID: rid, Actor: approval.SystemDecider, Time: now, Body: approval.Expire{}}
		dec := approval.Decide(state, c, d.policies(), now)
		d.metrics.observeDecision(approval.TypeExpire, dec)
		d.write(ctx, sess, b, p, state, dec.Events)
	}
}

func firstOffset(records []*kgo.Record) string {
	if len(records) == 0 {
		return ""
	}
	return fmt.Sprintf("%d@%d", records[0].Partition, records[0].Offset)
}

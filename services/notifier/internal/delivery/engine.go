// Package delivery drives the pending deliveries of the partitions this
// replica owns: per target, in per-request order, with exponential backoff
// and jitter up to a horizon, Retry-After honoured, a rate limit and a
// circuit breaker per target, and every outcome recorded in the log
// through a record-notification command.
//
// # Ownership
//
// A consumer group over the events topic gives each partition one owner.
// The owner drives the pending deliveries of the requests in it; the set
// itself is in the projection (see package queue), derived from the log,
// so on assignment the new owner waits for its projection to reach the
// partition's end and picks up every delivery still pending there: the
// ones a killed replica was in the middle of included. Each consumed
// event is handed to the queue once the projection has applied it, and
// only then is its offset committed: the event's deliveries are durable
// (they are a function of the log, kept in Pebble) before the offset
// moves, and a delivery ends only with its outcome in the log.
//
// # Order
//
// A request's deliveries to one target go one at a time, in sequence
// order: the next waits until the one before it is delivered or
// dead-lettered. Different requests to one target go concurrently (up to
// Config.Concurrency), and targets are independent: one dead receiver
// fills its own queue and opens its own breaker, and delays nobody else.
//
// # Duplicates
//
// A delivery is attempted again only after an attempt that did not
// succeed. When an attempt times out the receiver may have it, so the
// retry may be a duplicate; it carries the same webhook-id (the event id)
// for the receiver to drop. A replica killed between a receiver's 2xx and
// the record leaves the delivery pending, and the next owner delivers it
// again, with the same id.
package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/command"
	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/services/notifier/internal/queue"
)

// Source is the CloudEvents source of the notifier's commands; Actor
// records its notes (only a service may).
const (
	Source = "assent/notifier"
	Actor  = "service:notifier"
)

// OutcomeID names the record of a delivery's outcome: one per delivery
// and generation, so that two replicas recording it (a redelivery after a
// failover) write one note, the first.
func OutcomeID(e queue.Entry) string {
	return wire.DerivedID(Source, "delivery-outcome v1", e.RequestID, string(e.Kind), e.Channel(), e.EventID, fmt.Sprint(e.Generation))
}

// ReplayID names an operator's replay of a generation of a delivery.
func ReplayID(rid string, kind approval.NotificationKind, channel, eventID string, generation int) string {
	return wire.DerivedID(Source, "delivery-replay v1", rid, string(kind), channel, eventID, fmt.Sprint(generation))
}

// Store is the queue's projection, as the engine reads it.
type Store interface {
	Pending(p int32) ([]queue.Entry, error)
	PendingOf(p int32, rid string) ([]queue.Entry, error)
	IsPending(e queue.Entry) (bool, error)
	Event(e queue.Entry) ([]byte, error)
	Get(rid string) (approval.State, bool, error)
}

// Projection is what the engine waits on.
type Projection interface {
	WaitOffset(ctx context.Context, p int32, off int64) error
}

// Observer receives what the metrics count. Every method may be nil.
type Observer struct {
	Attempt    func(kind approval.NotificationKind, result string, took time.Duration)
	Outcome    func(kind approval.NotificationKind, outcome approval.DeliveryOutcome, sinceEvent time.Duration)
	Dropped    func(kind approval.NotificationKind)
	BreakerSet func(target string, open bool)
	Record     func(took time.Duration, err error)
}

// Config configures the engine.
type Config struct {
	Store      Store
	Projection Projection
	Senders    map[approval.NotificationKind]Sender
	Writer     command.Writer
	Logger     *slog.Logger
	Observer   Observer
	Now        func() time.Time

	Horizon         time.Duration // give up this long after the event (default 24h)
	BaseBackoff     time.Duration // the first retry's ceiling (default 1s)
	MaxBackoff      time.Duration // the largest ceiling (default 1m)
	Concurrency     int           // attempts in flight per target (default 4)
	Rate            rate.Limit    // attempts per second per target (default 50)
	Burst           int           // (default 50)
	BreakerFailures int           // consecutive failures that open a breaker (default 5)
	// Since, if set, skips events older than it: deploying the notifier
	// on an old log does not deliver (or dead-letter) its history.
	Since time.Time
	// Rescan is how often owned partitions are looked at again for
	// pending deliveries nothing woke the engine for (default 30s).
	Rescan time.Duration
	// AttemptTimeout bounds one attempt including its record (default 60s).
	AttemptTimeout time.Duration
}

func (c *Config) defaults() {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Horizon <= 0 {
		c.Horizon = 24 * time.Hour
	}
	if c.BaseBackoff <= 0 {
		c.BaseBackoff = time.Second
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = time.Minute
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 4
	}
	if c.Rate <= 0 {
		c.Rate = 50
	}
	if c.Burst <= 0 {
		c.Burst = int(math.Max(1, float64(c.Rate)))
	}
	if c.BreakerFailures <= 0 {
		c.BreakerFailures = 5
	}
	if c.Rescan <= 0 {
		c.Rescan = 30 * time.Second
	}
	if c.AttemptTimeout <= 0 {
		c.AttemptTimeout = time.Minute
	}
}

// Engine is the delivery side of one replica.
type Engine struct {
	cfg Config

	mu      sync.Mutex
	owned   map[int32]*part
	items   map[string]*item // by queue.Entry.Key
	targets map[string]*target
	// recorded remembers outcomes recorded but maybe not yet projected,
	// so that a rescan does not deliver them again.
	recorded map[string]recorded
	run      context.Context
}

type part struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // its attempts in flight
}

type recorded struct {
	e  queue.Entry
	at time.Time
}

type item struct {
	e        queue.Entry
	part     *part
	attempts int
	next     time.Time
	inflight bool
	// done is set once the receiver accepted (or refused for good) and
	// only the record is missing: a retry records, it does not deliver.
	done       approval.DeliveryOutcome
	doneAt     time.Time
	reason     string
	lastReason string
}

// New returns an engine; call Run with the service's context first.
func New(cfg Config) *Engine {
	cfg.defaults()
	return &Engine{cfg: cfg, owned: map[int32]*part{}, items: map[string]*item{}, targets: map[string]*target{}, recorded: map[string]recorded{}}
}

// Run keeps rescanning the owned partitions until ctx ends.
func (g *Engine) Run(ctx context.Context) error {
	g.mu.Lock()
	g.run = ctx
	g.mu.Unlock()
	t := time.NewTicker(g.cfg.Rescan)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		g.mu.Lock()
		ps := make([]int32, 0, len(g.owned))
		for p := range g.owned {
			ps = append(ps, p)
		}
		g.mu.Unlock()
		for _, p := range ps {
			g.scan(p)
		}
		g.forget()
	}
}

// Assign starts driving partition p, once the projection has reached
// end (the partition's end offset when it was assigned).
func (g *Engine) Assign(p int32, end int64) {
	g.mu.Lock()
	if _, ok := g.owned[p]; ok {
		g.mu.Unlock()
		return
	}
	base := g.run
	if base == nil {
		base = context.Background()
	}
	ctx, cancel := context.WithCancel(base)
	pt := &part{ctx: ctx, cancel: cancel}
	g.owned[p] = pt
	g.mu.Unlock()
	go func() {
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := g.cfg.Projection.WaitOffset(wctx, p, end)
		cancel()
		if err != nil && ctx.Err() == nil {
			g.cfg.Logger.Warn("the projection did not reach the partition's end in time; scanning what it has (the rescan picks up the rest)", "partition", p, "end", end)
		}
		g.scan(p)
	}()
}

// Revoke stops driving partitions and waits for their attempts in
// flight, and their records, to end.
func (g *Engine) Revoke(ps []int32) {
	var parts []*part
	g.mu.Lock()
	for _, p := range ps {
		pt, ok := g.owned[p]
		if !ok {
			continue
		}
		delete(g.owned, p)
		pt.cancel()
		parts = append(parts, pt)
		for k, it := range g.items {
			if it.part == pt {
				g.removeLocked(k, it)
			}
		}
	}
	g.mu.Unlock()
	for _, pt := range parts {
		pt.wg.Wait()
	}
}

// Owned reports whether p is driven here.
func (g *Engine) Owned(p int32) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, ok := g.owned[p]
	return ok
}

// SetObserver sets the observer before Run.
func (g *Engine) SetObserver(o Observer) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.cfg.Observer = o
}

// OwnedCount is the number of partitions driven here.
func (g *Engine) OwnedCount() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.owned)
}

// Pending is the number of deliveries queued here.
func (g *Engine) Pending() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.items)
}

// OldestPending is the age of the oldest queued delivery's event.
func (g *Engine) OldestPending() time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	var oldest time.Duration
	now := g.cfg.Now()
	for _, it := range g.items {
		oldest = max(oldest, now.Sub(it.e.EventTime))
	}
	return oldest
}

// OpenBreakers is the number of targets whose breaker is open.
func (g *Engine) OpenBreakers() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	now := g.cfg.Now()
	for _, t := range g.targets {
		if t.openUntil.After(now) {
			n++
		}
	}
	return n
}

// Wake enqueues the pending deliveries of a request (after the
// projection has applied the event that created them).
func (g *Engine) Wake(p int32, rid string) error {
	if !g.Owned(p) {
		return nil
	}
	entries, err := g.cfg.Store.PendingOf(p, rid)
	if err != nil {
		return err
	}
	g.enqueue(p, entries)
	return nil
}

func (g *Engine) scan(p int32) {
	entries, err := g.cfg.Store.Pending(p)
	if err != nil {
		g.cfg.Logger.Error("could not read the pending deliveries", "partition", p, "err", err)
		return
	}
	g.enqueue(p, entries)
}

func recordedKey(e queue.Entry) string { return fmt.Sprintf("%s#%d", e.Key(), e.Generation) }

func (g *Engine) enqueue(p int32, entries []queue.Entry) {
	g.mu.Lock()
	defer g.mu.Unlock()
	pt, ok := g.owned[p]
	if !ok {
		return
	}
	now := g.cfg.Now()
	for _, e := range entries {
		if e.Partition != p {
			continue
		}
		if _, done := g.recorded[recordedKey(e)]; done {
			continue // its outcome is on its way through the log
		}
		if !g.cfg.Since.IsZero() && e.EventTime.Before(g.cfg.Since) {
			continue
		}
		if old, ok := g.items[e.Key()]; ok {
			if old.e.Generation >= e.Generation {
				continue
			}
			g.removeLocked(e.Key(), old) // a replay of a delivery still queued here
		}
		it := &item{e: e, part: pt, next: now}
		g.items[e.Key()] = it
		t := g.targetLocked(e)
		t.add(it)
		t.wakeUp()
	}
}

func (g *Engine) removeLocked(key string, it *item) {
	delete(g.items, key)
	if t, ok := g.targets[it.e.TargetKey()]; ok {
		t.remove(it)
		t.wakeUp()
	}
}

// forget drops remembered outcomes that the projection now shows (or
// that are old enough to have been shown long ago).
func (g *Engine) forget() {
	g.mu.Lock()
	var check []recorded
	for _, r := range g.recorded {
		check = append(check, r)
	}
	g.mu.Unlock()
	now := g.cfg.Now()
	for _, r := range check {
		pending, err := g.cfg.Store.IsPending(r.e)
		if err == nil && (!pending || now.Sub(r.at) > 10*time.Minute) {
			g.mu.Lock()
			delete(g.recorded, recordedKey(r.e))
			g.mu.Unlock()
		}
	}
}

// WaitRecorded waits, up to d, until no outcome recorded here for the
// given partitions is still pending in the projection, so that the next
// owner does not deliver them again.
func (g *Engine) WaitRecorded(entries []queue.Entry, d time.Duration) {
	deadline := time.Now().Add(d)
	for _, e := range entries {
		for time.Now().Before(deadline) {
			pending, err := g.cfg.Store.IsPending(e)
			if err != nil || !pending {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// RecordedIn lists the outcomes recorded here, for partitions ps, that
// the projection may not show yet.
func (g *Engine) RecordedIn(ps []int32) []queue.Entry {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []queue.Entry
	for _, r := range g.recorded {
		if slices.Contains(ps, r.e.Partition) {
			out = append(out, r.e)
		}
	}
	return out
}

// attempt makes one attempt at it and acts on the result. It runs in its
// own goroutine; t.inflight counts it.
func (g *Engine) attempt(t *target, it *item) {
	defer it.part.wg.Done()
	ctx, cancel := context.WithTimeout(it.part.ctx, g.cfg.AttemptTimeout)
	defer cancel()
	e := it.e
	now := g.cfg.Now()
	deadline := e.Start().Add(g.cfg.Horizon)

	if it.done == "" {
		st, found, err := g.cfg.Store.Get(e.RequestID)
		var raw []byte
		if err == nil {
			raw, err = g.cfg.Store.Event(e)
		}
		if err != nil || !found {
			g.cfg.Logger.Error("a pending delivery's request is not in the store", "request", e.RequestID, "err", err)
			g.finish(t, it, func() { it.next = now.Add(g.cfg.MaxBackoff) })
			return
		}
		it.attempts++
		began := time.Now()
		res := g.cfg.Senders[e.Kind].Send(ctx, Job{Entry: e, Event: raw, State: st, Attempt: it.attempts})
		took := time.Since(began)
		if it.part.ctx.Err() != nil {
			g.finish(t, it, nil) // revoked: the next owner takes it from here
			return
		}
		g.observeAttempt(e.Kind, res, took)
		now = g.cfg.Now()
		g.mu.Lock()
		if res.Verdict == Retry {
			g.failureLocked(t, now, res)
		} else {
			g.successLocked(t) // it answered: the receiver is up
		}
		g.mu.Unlock()
		switch {
		case res.Verdict == Delivered:
			it.done, it.doneAt = approval.Delivered, now
		case res.Verdict == Permanent:
			it.done, it.doneAt, it.reason = approval.DeadLetter, now, res.Reason
		case !now.Before(deadline):
			it.done, it.doneAt = approval.DeadLetter, now
			it.reason = fmt.Sprintf("the retry horizon of %s passed after %d attempts; last: %s", g.cfg.Horizon, it.attempts, res.Reason)
		default:
			it.lastReason = res.Reason
			wait := g.backoff(it.attempts)
			if res.RetryAfter > wait {
				wait = res.RetryAfter
			}
			next := now.Add(wait)
			if next.After(deadline) {
				next = deadline // one last attempt at the horizon
			}
			g.cfg.Logger.Info("delivery failed; retrying", "kind", e.Kind, "request", e.RequestID, "event", e.EventID,
				"attempt", it.attempts, "reason", res.Reason, "timed_out", res.TimedOut, "in", next.Sub(now).Round(time.Millisecond))
			g.finish(t, it, func() { it.next = next })
			return
		}
	}

	// Record the outcome; until it is in the log the delivery stays
	// queued here, and a failed record is retried without delivering again.
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer rcancel()
	if err := g.record(rctx, it); err != nil {
		g.cfg.Logger.Warn("could not record a delivery's outcome; retrying the record", "request", e.RequestID, "event", e.EventID, "err", err)
		g.finish(t, it, func() { it.next = g.cfg.Now().Add(time.Second) })
		return
	}
	if g.cfg.Observer.Outcome != nil {
		g.cfg.Observer.Outcome(e.Kind, it.done, it.doneAt.Sub(e.EventTime))
	}
	if it.done == approval.DeadLetter {
		g.cfg.Logger.Warn("delivery dead-lettered", "kind", e.Kind, "request", e.RequestID, "event", e.EventID, "attempts", it.attempts, "reason", it.reason)
	}
	g.mu.Lock()
	g.recorded[recordedKey(e)] = recorded{e: e, at: g.cfg.Now()}
	if cur, ok := g.items[e.Key()]; ok && cur == it {
		g.removeLocked(e.Key(), it)
	}
	t.inflight--
	it.inflight = false
	t.wakeUp()
	g.mu.Unlock()
}

// finish ends an attempt that leaves the item queued; update, if set,
// changes it under the lock.
func (g *Engine) finish(t *target, it *item, update func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if update != nil {
		update()
	}
	it.inflight = false
	t.inflight--
	t.wakeUp()
}

func (g *Engine) record(ctx context.Context, it *item) error {
	e := it.e
	body := approval.RecordNotification{
		Kind: e.Kind, Channel: e.Channel(), TS: e.EventID, Recipient: e.Recipient,
		Outcome: it.done, Reason: Truncate(it.reason, approval.MaxReasonLen), Attempts: it.attempts,
		At: it.doneAt.UTC(), Generation: e.Generation,
	}
	cmd := g.cfg.Writer.New(OutcomeID(e), e.RequestID, Actor, body)
	if err := command.Preflight(cmd); err != nil {
		return fmt.Errorf("delivery: the outcome record is refused before it is sent: %w", err)
	}
	began := time.Now()
	err := g.cfg.Writer.Send(ctx, cmd)
	if g.cfg.Observer.Record != nil {
		g.cfg.Observer.Record(time.Since(began), err)
	}
	return err
}

// Truncate cuts s to at most n bytes on a rune boundary.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && (s[n]&0xc0) == 0x80 {
		n--
	}
	return s[:n]
}

// backoff is the wait before attempt n+1: full jitter under an
// exponential ceiling.
func (g *Engine) backoff(n int) time.Duration {
	ceiling := g.cfg.MaxBackoff
	if n < 30 {
		ceiling = min(ceiling, g.cfg.BaseBackoff*time.Duration(1<<(n-1)))
	}
	// Full jitter, but never less than a tenth of the ceiling, so that a
	// failing receiver is not retried in a tight loop.
	return ceiling/10 + time.Duration(rand.Int64N(int64(ceiling-ceiling/10)+1)) //nolint:gosec // jitter, not a secret
}

func (g *Engine) observeAttempt(kind approval.NotificationKind, res Result, took time.Duration) {
	if g.cfg.Observer.Attempt == nil {
		return
	}
	result := "delivered"
	switch {
	case res.Verdict == Permanent:
		result = "refused"
	case res.TimedOut:
		result = "timeout"
	case res.RateLimited:
		result = "rate_limited"
	case res.Verdict == Retry:
		result = "failed"
	}
	g.cfg.Observer.Attempt(kind, result, took)
}

// ErrNoSender is returned for a kind without a sender.
var ErrNoSender = errors.New("delivery: no sender for this kind")

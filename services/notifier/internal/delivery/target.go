package delivery

import (
	"cmp"
	"context"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"golang.org/x/time/rate"

	"github.com/assent-dev/assent/services/notifier/internal/queue"
)

// target is the queue of one receiver: its requests' deliveries, each
// request's in sequence order, its rate limit and its circuit breaker.
type target struct {
	key     string
	limiter *rate.Limiter
	reqs    map[string][]*item // by partition and request, by sequence
	wake    chan struct{}
	running bool

	inflight int
	// The circuit breaker: after BreakerFailures consecutive failures it
	// opens for a cooldown that doubles up to MaxBackoff; then one attempt
	// (half-open) decides whether it closes or opens again.
	failures  int
	openUntil time.Time
	// blockedUntil is the receiver's own Retry-After, for the whole target.
	blockedUntil time.Time
}

func reqKey(e queue.Entry) string { return strconv.Itoa(int(e.Partition)) + "/" + e.RequestID }

func (t *target) add(it *item) {
	k := reqKey(it.e)
	list := append(t.reqs[k], it)
	slices.SortFunc(list, func(a, b *item) int { return cmp.Compare(a.e.Sequence, b.e.Sequence) })
	t.reqs[k] = list
}

func (t *target) remove(it *item) {
	k := reqKey(it.e)
	list := slices.DeleteFunc(t.reqs[k], func(x *item) bool { return x == it })
	if len(list) == 0 {
		delete(t.reqs, k)
	} else {
		t.reqs[k] = list
	}
}

func (t *target) wakeUp() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// targetLocked returns the target of an entry, starting its driver.
func (g *Engine) targetLocked(e queue.Entry) *target {
	t, ok := g.targets[e.TargetKey()]
	if !ok {
		t = &target{key: e.TargetKey(), limiter: rate.NewLimiter(g.cfg.Rate, g.cfg.Burst), reqs: map[string][]*item{}, wake: make(chan struct{}, 1)}
		g.targets[t.key] = t
	}
	if !t.running {
		t.running = true
		ctx := g.run
		if ctx == nil {
			ctx = context.Background()
		}
		go g.drive(ctx, t)
	}
	return t
}

// drive starts the target's attempts as they fall due, until its queue is
// empty.
func (g *Engine) drive(ctx context.Context, t *target) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		g.mu.Lock()
		if len(t.reqs) == 0 && t.inflight == 0 {
			t.running = false
			if t.failures == 0 {
				delete(g.targets, t.key) // nothing to remember about it
			}
			g.mu.Unlock()
			return
		}
		wait := g.dispatchLocked(t)
		g.mu.Unlock()
		timer.Reset(wait)
		select {
		case <-t.wake:
		case <-timer.C:
		case <-ctx.Done():
			return
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// dispatchLocked starts what may start now and returns how long until
// something else may.
func (g *Engine) dispatchLocked(t *target) time.Duration {
	now := g.cfg.Now()
	wait := time.Hour
	if t.blockedUntil.After(now) {
		return t.blockedUntil.Sub(now)
	}
	if t.openUntil.After(now) {
		return t.openUntil.Sub(now)
	}
	halfOpen := t.failures >= g.cfg.BreakerFailures
	heads := make([]*item, 0, len(t.reqs))
	for _, list := range t.reqs {
		heads = append(heads, list[0])
	}
	slices.SortFunc(heads, func(a, b *item) int {
		return cmp.Or(a.e.EventTime.Compare(b.e.EventTime), cmp.Compare(a.e.RequestID, b.e.RequestID))
	})
	for _, it := range heads {
		if t.inflight >= g.cfg.Concurrency || (halfOpen && t.inflight > 0) {
			break
		}
		if it.inflight {
			continue
		}
		if it.next.After(now) {
			wait = min(wait, it.next.Sub(now))
			continue
		}
		if it.done == "" {
			r := t.limiter.ReserveN(now, 1)
			if d := r.DelayFrom(now); !r.OK() || d > 0 {
				r.CancelAt(now)
				wait = min(wait, max(d, time.Millisecond))
				break
			}
		}
		it.inflight = true
		t.inflight++
		it.part.wg.Add(1)
		go g.attempt(t, it)
		if halfOpen {
			break
		}
	}
	return max(wait, time.Millisecond)
}

func (g *Engine) successLocked(t *target) {
	if t.failures >= g.cfg.BreakerFailures && g.cfg.Observer.BreakerSet != nil {
		g.cfg.Observer.BreakerSet(t.key, false)
	}
	t.failures = 0
	t.openUntil = time.Time{}
}

func (g *Engine) failureLocked(t *target, now time.Time, res Result) {
	if res.RetryAfter > 0 {
		t.blockedUntil = now.Add(res.RetryAfter)
	}
	if res.RateLimited {
		return // busy, not broken
	}
	t.failures++
	if t.failures < g.cfg.BreakerFailures {
		return
	}
	if t.failures == g.cfg.BreakerFailures && g.cfg.Observer.BreakerSet != nil {
		g.cfg.Observer.BreakerSet(t.key, true)
	}
	cooldown := g.cfg.MaxBackoff
	if n := t.failures - g.cfg.BreakerFailures; n < 20 {
		cooldown = min(cooldown, g.cfg.BaseBackoff*time.Duration(1<<n))
	}
	cooldown += time.Duration(rand.Int64N(int64(cooldown/4) + 1)) //nolint:gosec // jitter, not a secret
	t.openUntil = now.Add(cooldown)
	g.cfg.Logger.Warn("circuit breaker open: the target failed repeatedly; pausing it", "target", t.key, "failures", t.failures, "for", cooldown.Round(time.Millisecond))
}

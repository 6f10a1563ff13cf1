package core

import (
	"slices"
	"time"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/command"
	"github.com/assent-dev/assent/libs/wire"
)

// TimerResend is how long a timer waits before it asks again for an
// expiry it already asked for and that is still pending (the command was
// lost, or another replica owns the partition now and asks itself).
const TimerResend = 2 * time.Second

// Timers returns an expire command for every pending request of the
// caught-up partitions this core owns whose deadline has passed, and that
// it has not asked for within TimerResend.
//
// A timer never writes an event itself: the adapter sends these commands
// to the commands topic, and whoever owns the request's partition when
// they arrive decides them in a transaction that consumes them, so the
// consumer group fences the write (a zombie that still believes it owns a
// partition can only ask; see docs/architecture.md, "Failure model").
// An expire command decided twice is one expiry: its id is derived from
// the request (command.ExpireID), and Decide ignores an expiry of a request
// that is no longer pending or not yet due.
func (c *Core) Timers(now time.Time) ([]approval.Command, error) {
	c.mu.Lock()
	var parts []int32
	for p, pt := range c.owned {
		if pt.caughtUp && pt.stopped == "" {
			parts = append(parts, p)
		}
	}
	due := map[string]bool{}
	for rid, e := range c.overlay {
		if e.state.Status == approval.StatusPending && !now.Before(e.state.Policy.ExpiresAt) {
			due[rid] = true
		}
	}
	c.mu.Unlock()
	for _, p := range parts {
		ids, err := c.store.Due(p, now, c.cfg.DueLimit)
		if err != nil {
			return nil, err
		}
		for _, rid := range ids {
			due[rid] = true
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.asked == nil {
		c.asked = map[string]time.Time{}
	}
	var out []approval.Command
	for rid := range due {
		if at, ok := c.asked[rid]; ok && now.Sub(at) < TimerResend {
			continue
		}
		// The overlay may say pending while the projection already has the
		// expiry; the decider finds out when it decides the command.
		p := wire.Partition([]byte(rid), int(c.cfg.Partitions))
		if pt, ok := c.owned[p]; !ok || !pt.caughtUp || pt.stopped != "" {
			continue
		}
		c.asked[rid] = now
		out = append(out, approval.Command{ID: command.ExpireID(rid), RequestID: rid, Actor: approval.SystemDecider,
			Time: now, Body: approval.Expire{}})
	}
	for rid, at := range c.asked {
		if !due[rid] && now.Sub(at) >= TimerResend {
			delete(c.asked, rid) // expired, decided, or not ours any more
		}
	}
	slices.SortFunc(out, func(a, b approval.Command) int {
		switch {
		case a.RequestID < b.RequestID:
			return -1
		case a.RequestID > b.RequestID:
			return 1
		}
		return 0
	})
	return out, nil
}

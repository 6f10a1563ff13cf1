package chaos

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/assent-dev/assent/libs/wire"
)

// ExpiryPause is the nemesis of issue 13's item 1: it pauses the decider
// that owns the most partitions just before requests on those partitions
// are due to expire, and keeps it stopped past its session timeout, so
// that the other decider takes the partitions over and expires the
// requests while the old owner's timers are overdue. When the old owner
// wakes, before it learns that it lost the partitions, it acts on those
// timers: every write it attempts must be fenced (its expire commands go
// through the commands topic and are decided by the partition's owner).
// A zombie write shows up as a forked chain (I6), a second terminal event
// (I3, I2) or a history that is not linearizable (LIN).
//
// Votes sent while the owner is stopped, after the deadline, race the
// expiry: the request's new owner must decide both in one order, and
// every client must be told that order.
type ExpiryPause struct {
	W          *Workload
	Prefix     string
	Partitions int
	Deciders   []*Proc
	// TTL is the requests' time to live; Before how long before the first
	// deadline the owner is stopped; Pause how long it stays stopped.
	TTL, Before, Pause time.Duration
	Requests           int
	round              atomic.Int64
}

// Inject runs the fault once and returns what it did.
func (x *ExpiryPause) Inject(ctx context.Context) (target, note string, err error) {
	p := busiest(x.Deciders)
	owned := p.Owned()
	target = fmt.Sprintf("%s (owned partitions %v)", p.Name, owned)
	if len(owned) == 0 {
		return target, "", fmt.Errorf("chaos: %s owns no partitions, by its log", p.Name)
	}
	round := x.round.Add(1)
	var rids []string
	for i := 0; len(rids) < x.Requests && i < 100_000; i++ {
		rid := fmt.Sprintf("%s-expiry-%d-%d", x.Prefix, round, i)
		if slices.Contains(owned, wire.Partition([]byte(rid), x.Partitions)) {
			rids = append(rids, rid)
		}
	}
	c := x.W.client(clientExpiry)
	first := time.Now()
	var pending []string
	for _, rid := range rids {
		if c.submit(ctx, billing, rid, "deploy", "expiry "+rid, x.TTL.String()) {
			pending = append(pending, rid)
		}
	}
	if len(pending) == 0 {
		return target, "", fmt.Errorf("chaos: none of the %d requests to expire was submitted", len(rids))
	}
	sleep(ctx, time.Until(first.Add(x.TTL-x.Before)))
	stopped := time.Now()
	if err := p.Pause(); err != nil {
		return target, "", err
	}
	// Votes after the deadline, while the owner is stopped: half the
	// requests, one each, sent on another client so that the pause stays
	// on time. A request's deadline is its submit's decision time plus
	// the ttl, on the decider's clock (the machine's), so each vote waits
	// for the deadline the request shows: a submit decided late (a slow
	// machine, a takeover) has a later one than the first.
	var wg sync.WaitGroup
	voter := x.W.client(clientExpiry + 10)
	var late atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i, rid := range pending {
			if i%2 != 0 {
				continue
			}
			deadline, ok := voter.deadline(ctx, rid, x.Pause)
			if !ok {
				continue // never seen submitted: not voted on
			}
			sleep(ctx, time.Until(deadline.Add(500*time.Millisecond)))
			voter.vote(ctx, bob, rid, "approve", voter.key())
			late.Add(1)
		}
	}()
	sleep(ctx, x.Pause)
	if err := p.Resume(); err != nil {
		return target, "", err
	}
	wg.Wait()
	// What each request ended as, as a backend waiting on it would see it.
	ended := map[string]int{}
	for _, rid := range pending {
		ended[c.readStatus(ctx, rid, "8s")]++
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(ended)) {
		parts = append(parts, fmt.Sprintf("%s %d", statusName(k), ended[k]))
	}
	note = fmt.Sprintf("%d requests with a %s ttl on its partitions; SIGSTOP %s before the first deadline, for %s, with %d votes sent after the deadlines; then SIGCONT; they ended %s",
		len(pending), x.TTL, first.Add(x.TTL).Sub(stopped).Round(time.Millisecond), x.Pause, late.Load(), strings.Join(parts, ", "))
	return target, note, nil
}

// deadline reads rid until a view shows its deadline, for at most
// within: the submit is decided by the paused owner before it stopped, or
// by the partition's next owner.
func (c *client) deadline(ctx context.Context, rid string, within time.Duration) (time.Time, bool) {
	end := time.Now().Add(within)
	for i := 0; i < 1000 && time.Now().Before(end) && ctx.Err() == nil; i++ {
		if op := c.read(ctx, rid, ""); op.ExpiresAt != 0 {
			return time.Unix(0, op.ExpiresAt), true
		}
		sleep(ctx, 100*time.Millisecond)
	}
	return time.Time{}, false
}

// busiest is the decider whose log says it owns the most partitions.
func busiest(ds []*Proc) *Proc {
	p := ds[0]
	for _, d := range ds {
		if len(d.Owned()) > len(p.Owned()) {
			p = d
		}
	}
	return p
}

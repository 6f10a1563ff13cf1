// Package live wakes the console's live-update streams (Server-Sent
// Events) when this replica's projection applies an event that concerns
// them. Every replica projects every events partition, so a vote written
// through any replica, the api or Slack wakes the streams on all of them.
//
// A page about one request waits on the runner's own Watch. A page about
// a person (the inbox, my requests) subscribes here by principal: the
// request store's OnEvent hook names the requester and the approvers of
// every event as it is folded, and the hub wakes their subscribers once
// the runner reports the event's offset applied, so that a woken stream
// always reads what woke it.
package live

import (
	"context"
	"slices"
	"sync"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/projection"
)

// Offsets is the part of the projection runner the hub waits on.
type Offsets interface {
	WaitOffset(ctx context.Context, p int32, off int64) error
}

// Hub fans projection events out to subscribers by principal.
type Hub struct {
	offsets Offsets

	mu      sync.Mutex
	subs    map[string]map[*Sub]struct{}
	pending []change
	kick    chan struct{}
}

type change struct {
	partition  int32
	offset     int64
	principals []string
}

// Sub is one subscription. C receives (without blocking the hub) when
// something about the principal changed; a burst becomes one wake-up.
type Sub struct {
	C         chan struct{}
	principal string
}

// NewHub returns a hub that waits on offsets before it wakes anyone.
func NewHub(offsets Offsets) *Hub {
	return &Hub{offsets: offsets, subs: map[string]map[*Sub]struct{}{}, kick: make(chan struct{}, 1)}
}

// Subscribe registers for changes that concern principal. Call the
// returned function to stop.
func (h *Hub) Subscribe(principal string) (*Sub, func()) {
	s := &Sub{C: make(chan struct{}, 1), principal: principal}
	h.mu.Lock()
	if h.subs[principal] == nil {
		h.subs[principal] = map[*Sub]struct{}{}
	}
	h.subs[principal][s] = struct{}{}
	h.mu.Unlock()
	return s, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		delete(h.subs[principal], s)
		if len(h.subs[principal]) == 0 {
			delete(h.subs, principal)
		}
	}
}

// OnEvent is the request store's hook: it is called inside the batch,
// before the batch is durable, so it only notes who to wake.
func (h *Hub) OnEvent(e *projection.Event, _ approval.Event, before, after approval.State) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.subs) == 0 {
		return
	}
	var who []string
	for _, p := range concerned(before, after) {
		if _, ok := h.subs[p]; ok {
			who = append(who, p)
		}
	}
	if len(who) == 0 {
		return
	}
	h.pending = append(h.pending, change{partition: e.Partition, offset: e.Offset, principals: who})
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

// concerned are the principals whose pages an event may change: the
// requester and every approver, before and after.
func concerned(before, after approval.State) []string {
	out := make([]string, 0, 2+len(after.Policy.Approvers))
	out = append(out, after.Requester)
	out = append(out, after.Policy.Approvers...)
	if before.Requester != after.Requester {
		out = append(out, before.Requester)
	}
	for _, a := range before.Policy.Approvers {
		if !slices.Contains(after.Policy.Approvers, a) {
			out = append(out, a)
		}
	}
	return out
}

// Run wakes subscribers until ctx ends.
func (h *Hub) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-h.kick:
		}
		h.mu.Lock()
		batch := h.pending
		h.pending = nil
		h.mu.Unlock()
		for _, c := range batch {
			// Wake only once the batch holding the event is durable.
			if err := h.offsets.WaitOffset(ctx, c.partition, c.offset+1); err != nil {
				return nil //nolint:nilerr // ctx ended: the service is stopping
			}
			h.wake(c.principals)
		}
	}
}

func (h *Hub) wake(principals []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range principals {
		for s := range h.subs[p] {
			select {
			case s.C <- struct{}{}:
			default:
			}
		}
	}
}

// Subscribers returns how many subscriptions are open.
func (h *Hub) Subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, m := range h.subs {
		n += len(m)
	}
	return n
}

// Limit bounds concurrent streams: per replica, and per person.
type Limit struct {
	mu        sync.Mutex
	max, each int
	n         int
	by        map[string]int
}

// NewLimit allows max streams in all and each per principal.
func NewLimit(max, each int) *Limit { return &Limit{max: max, each: each, by: map[string]int{}} }

// Acquire takes a slot for principal, or reports false at either cap.
func (l *Limit) Acquire(principal string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n >= l.max || l.by[principal] >= l.each {
		return false
	}
	l.n++
	l.by[principal]++
	return true
}

// Release gives a slot back.
func (l *Limit) Release(principal string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n--
	if l.by[principal]--; l.by[principal] <= 0 {
		delete(l.by, principal)
	}
}

// Open returns the number of streams open.
func (l *Limit) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}

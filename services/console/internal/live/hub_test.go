package live_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/projection"
	"github.com/assent-dev/assent/services/console/internal/live"
)

// offsets is a runner whose batches become durable when the test says so.
type offsets struct {
	mu      sync.Mutex
	applied int64
	changed chan struct{}
}

func (o *offsets) WaitOffset(ctx context.Context, _ int32, off int64) error {
	for {
		o.mu.Lock()
		done, ch := o.applied >= off, o.changed
		o.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

func (o *offsets) apply(off int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.applied = off
	close(o.changed)
	o.changed = make(chan struct{})
}

func TestHubWakesConcernedPeopleOnceTheBatchIsDurable(t *testing.T) {
	t.Parallel()
	o := &offsets{changed: make(chan struct{})}
	h := live.NewHub(o)
	go func() { _ = h.Run(t.Context()) }()
	alice, stopA := h.Subscribe("user:alice@example.com")
	defer stopA()
	erin, stopE := h.Subscribe("user:erin@example.com")
	defer stopE()
	carol, stopC := h.Subscribe("user:carol@example.com")
	require.Equal(t, 3, h.Subscribers())

	st := approval.State{Requester: "user:carol@example.com", Policy: approval.PolicySnapshot{Approvers: []string{"user:alice@example.com", "user:bob@example.com"}}}
	h.OnEvent(&projection.Event{Partition: 0, Offset: 41}, approval.Event{}, approval.State{}, st)

	select {
	case <-alice.C:
		t.Fatal("woken before the batch was durable")
	case <-time.After(50 * time.Millisecond):
	}
	o.apply(42)
	for name, c := range map[string]chan struct{}{"alice": alice.C, "carol": carol.C} {
		select {
		case <-c:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s was not woken", name)
		}
	}
	select {
	case <-erin.C:
		t.Fatal("erin is not concerned")
	case <-time.After(50 * time.Millisecond):
	}
	stopC()
	require.Equal(t, 2, h.Subscribers())
}

func TestLimit(t *testing.T) {
	t.Parallel()
	l := live.NewLimit(3, 2)
	require.True(t, l.Acquire("a"))
	require.True(t, l.Acquire("a"))
	require.False(t, l.Acquire("a"), "per person")
	require.True(t, l.Acquire("b"))
	require.False(t, l.Acquire("c"), "per replica")
	l.Release("a")
	require.True(t, l.Acquire("c"))
	require.Equal(t, 3, l.Open())
}

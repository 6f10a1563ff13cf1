package service

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestKafkaWatchNoticesAStall: a ping that never answers (a network
// partition: franz-go waits for its read timeout) still marks Kafka away
// within the watch's timeouts, with at most one ping in flight, and the
// watch notices Kafka back as soon as a ping answers.
func TestKafkaWatchNoticesAStall(t *testing.T) {
	t.Parallel()
	var (
		stalled  atomic.Bool
		inflight atomic.Int32
		most     atomic.Int32
		release  = make(chan struct{})
	)
	w := newKafkaWatch(func(ctx context.Context) error {
		n := inflight.Add(1)
		defer inflight.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		if stalled.Load() {
			<-release // ignores ctx, as a stalled franz-go request does
		}
		return nil
	}, slog.New(slog.DiscardHandler))
	w.interval, w.timeout = 20*time.Millisecond, 50*time.Millisecond
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() {
		cancel()
		require.NoError(t, <-done)
	}()
	var once sync.Once
	unstall := func() { once.Do(func() { close(release) }) }
	defer unstall() // first, so that Run can end

	time.Sleep(100 * time.Millisecond)
	require.NoError(t, w.Err())
	stalled.Store(true)
	began := time.Now()
	require.Eventually(t, func() bool { return w.Err() != nil }, 2*time.Second, 5*time.Millisecond, "a stall was never noticed")
	require.Less(t, time.Since(began), time.Second)
	require.Contains(t, w.Err().Error(), "no answer")
	time.Sleep(200 * time.Millisecond)
	require.Equal(t, int32(1), most.Load(), "one ping in flight at most")

	stalled.Store(false)
	unstall()
	require.Eventually(t, func() bool { return w.Err() == nil }, 2*time.Second, 5*time.Millisecond, "Kafka back was never noticed")
}

// TestKafkaWatchIgnoresOneFailure: one failed ping among answered ones
// does not refuse writes; failures in a row do.
func TestKafkaWatchIgnoresOneFailure(t *testing.T) {
	t.Parallel()
	w := newKafkaWatch(nil, slog.New(slog.DiscardHandler))
	boom := errors.New("boom")
	w.observe(boom)
	require.NoError(t, w.Err())
	w.observe(nil)
	w.observe(boom)
	require.NoError(t, w.Err())
	w.observe(boom)
	require.ErrorIs(t, w.Err(), boom)
	w.observe(nil)
	require.NoError(t, w.Err())
}

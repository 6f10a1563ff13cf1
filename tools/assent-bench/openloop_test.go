package main

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Arrivals do not wait for completions: 100 arrivals of 300ms each at
// 200/s all start within the half second, so many run at once, and each
// latency counts from its scheduled arrival.
func TestOpenLoopArrivalsDoNotWaitForCompletions(t *testing.T) {
	var running, most atomic.Int64
	s := openLoop(context.Background(), 200, 500*time.Millisecond, 5*time.Second, 1000, func(context.Context, int) error {
		n := running.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		defer running.Add(-1)
		time.Sleep(300 * time.Millisecond)
		return nil
	})
	require.Equal(t, 100, s.arrivals)
	require.Equal(t, 100, s.issued)
	require.Equal(t, 100, s.completed)
	require.Zero(t, s.shed+s.failed+s.incomplete)
	require.Len(t, s.latencies, 100)
	// A closed loop would have one at a time; the open loop has about 60.
	require.Greater(t, most.Load(), int64(30))
	// The open loop counts an arrival in flight from its issue to its
	// recorded completion, a little longer than the call itself runs.
	require.GreaterOrEqual(t, s.maxInFlight, int(most.Load()))
	require.LessOrEqual(t, s.maxInFlight, 100)
	require.GreaterOrEqual(t, s.pct(50), 300*time.Millisecond)
	// A closed loop would take 30s for the 100 (p99 near 30s, 3.3/s);
	// the open loop finishes them about 0.8s after the start. The bounds
	// leave room for a loaded machine's scheduling delays.
	require.Less(t, s.pct(99), 5*time.Second)
	require.Greater(t, s.achieved(), 20.0)
	require.Less(t, s.achieved(), 340.0)
}

// With maxOutstanding in flight, an arrival is shed, never queued and
// never waited for; shed arrivals count over any bound.
func TestOpenLoopShedsPastMaxOutstanding(t *testing.T) {
	var running, most atomic.Int64
	s := openLoop(context.Background(), 1000, 200*time.Millisecond, 5*time.Second, 10, func(context.Context, int) error {
		n := running.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		defer running.Add(-1)
		time.Sleep(100 * time.Millisecond)
		return nil
	})
	require.Equal(t, 200, s.arrivals)
	require.Equal(t, s.arrivals, s.issued+s.shed)
	require.LessOrEqual(t, most.Load(), int64(10))
	require.Equal(t, 10, s.maxInFlight)
	require.Greater(t, s.shed, 100)
	require.Equal(t, s.issued, s.completed)
	require.Equal(t, overBound, s.pct(99))
	require.Equal(t, overBound, s.pct(50)) // over half were shed
}

// A step that cannot finish is cut at the drain deadline: the stuck
// arrivals count as incomplete, the call returns, and errors are counted
// rather than ending the step.
func TestOpenLoopCutsAtDrainAndCountsFailures(t *testing.T) {
	began := time.Now()
	s := openLoop(context.Background(), 100, 200*time.Millisecond, time.Second, 1000, func(ctx context.Context, i int) error {
		switch i % 4 {
		case 0:
			return errors.New("refused")
		case 1:
			<-ctx.Done() // stuck until the drain deadline
			return ctx.Err()
		}
		return nil
	})
	// Bounds wide enough for a loaded CI machine: the stuck ones would
	// otherwise hold the call forever.
	require.Less(t, time.Since(began), 10*time.Second)
	require.Equal(t, 20, s.arrivals)
	require.Equal(t, 5, s.failed)
	require.Equal(t, 5, s.incomplete)
	require.Equal(t, 10, s.completed)
	require.Less(t, s.pct(50), time.Second)
	require.Equal(t, overBound, s.pct(99))
}

func TestKneeAndCapacity(t *testing.T) {
	step := func(rate, done int, lat time.Duration, shed int) stepResult {
		s := stepResult{offered: rate, arrivals: done + shed, issued: done, completed: done, shed: shed, elapsed: 10 * time.Second}
		for range done {
			s.latencies = append(s.latencies, lat)
		}
		return s
	}
	steps := []stepResult{
		step(100, 1000, 20*time.Millisecond, 0),
		step(250, 2500, 40*time.Millisecond, 0),
		step(500, 4000, 900*time.Millisecond, 0), // within the bound, achieved less than offered
		step(1000, 6000, 3*time.Second, 0),       // past it
	}
	require.Equal(t, 3, knee(steps, time.Second))
	c, at, lower := capacity(steps, time.Second)
	require.InDelta(t, 400, c, 0.01)
	require.Equal(t, 500, at)
	require.False(t, lower)

	// Shedding 2% pushes p99 past any bound even when the rest were fast.
	shedding := []stepResult{step(100, 1000, time.Millisecond, 0), step(250, 2450, time.Millisecond, 50)}
	require.Equal(t, 1, knee(shedding, time.Second))
	c, at, _ = capacity(shedding, time.Second)
	require.InDelta(t, 100, c, 0.01)
	require.Equal(t, 100, at)

	// No knee: the capacity is only a lower bound.
	k := knee(steps[:2], time.Second)
	require.Equal(t, -1, k)
	c, at, lower = capacity(steps[:2], time.Second)
	require.InDelta(t, 250, c, 0.01)
	require.Equal(t, 250, at)
	require.True(t, lower)

	// Past the knee at the first step: no capacity within the bound.
	c, at, _ = capacity(steps[3:], time.Second)
	require.Zero(t, c)
	require.Zero(t, at)
}

func TestGoalVerdicts(t *testing.T) {
	ms := time.Millisecond
	// a: 5/20 ms, b: 15/40 ms: limits 2x20 = 40 ms at p50 and 3x60 = 180 ms at p99.
	p50, p99, l50, l99 := latencyGoals(40*ms, 180*ms, 5*ms, 20*ms, 15*ms, 40*ms)
	require.Equal(t, 40*ms, l50)
	require.Equal(t, 180*ms, l99)
	require.True(t, p50) // the limits themselves are met
	require.True(t, p99)
	p50, p99, _, _ = latencyGoals(41*ms, 181*ms, 5*ms, 20*ms, 15*ms, 40*ms)
	require.False(t, p50)
	require.False(t, p99)
	// No floor samples: nothing to compare with, never met.
	p50, p99, _, _ = latencyGoals(ms, ms, 0, 0, 0, 0)
	require.False(t, p50)
	require.False(t, p99)

	require.True(t, capacityMet(800, 1000))
	require.False(t, capacityMet(799, 1000))
	require.False(t, capacityMet(100, 0))
}

func TestParseRates(t *testing.T) {
	r, err := parseRates("100, 250,500,1000,2000,4000")
	require.NoError(t, err)
	require.Equal(t, []int{100, 250, 500, 1000, 2000, 4000}, r)
	for _, bad := range []string{"100,50", "0", "x", "100,100", "200000"} {
		_, err := parseRates(bad)
		require.Error(t, err, bad)
	}
}

// paced makes exactly rate x d calls, on schedule, without waiting for
// earlier calls to return, and then waits for all of them.
func TestPacedMakesEveryCallOnSchedule(t *testing.T) {
	var calls, running, most atomic.Int64
	began := time.Now()
	err := paced(context.Background(), 100, time.Second, func(int) error {
		calls.Add(1)
		n := running.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		defer running.Add(-1)
		time.Sleep(200 * time.Millisecond)
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, int64(100), calls.Load())
	require.Zero(t, running.Load()) // every call returned before paced did
	require.Greater(t, most.Load(), int64(10))
	// One call at a time would take 20s; on schedule it is about 1.2s
	// (the bound leaves room for a loaded machine).
	require.Less(t, time.Since(began), 8*time.Second)
}

func TestFloorKeptUp(t *testing.T) {
	require.InDelta(t, 74.07, achievedRate(2000, 27*time.Second), 0.01)
	require.Zero(t, achievedRate(10, 0))
	require.True(t, keptUp(180, 200))
	require.False(t, keptUp(179.9, 200))
	require.False(t, keptUp(achievedRate(2000, 27*time.Second), 200))
}

// TestFloorCaveat: a verdict against floors (a) and (b) stands only when
// both kept up and floor (b)'s transaction is no slower than floor (c)'s
// whole copy.
func TestFloorCaveat(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	require.Empty(t, floorCaveat(200, 200, 199, 20*ms, 90*ms), "both kept up, (b) cheaper than (c)")
	require.Contains(t, floorCaveat(200, 200, 150, 20*ms, 90*ms), "did not keep up")
	require.Contains(t, floorCaveat(200, 170, 200, 20*ms, 90*ms), "did not keep up")
	require.Contains(t, floorCaveat(200, 200, 199, 553*ms, 117*ms), "floor b saturated the brokers")
}

package main

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The capacity sweep (issue 14, item 4): an open loop offers a rate for a
// step, arrivals on a fixed schedule that never waits for completions, and
// records what it achieved. A benchmark never aborts: an arrival that
// finds maxOutstanding requests in flight is shed, one that fails or is not
// done by the drain deadline is counted, and all three count as samples
// over any latency bound (overBound), so a step that cannot keep up shows
// it in its p99 instead of ending the run.

// overBound is the latency of an arrival that was shed, failed, or was not
// done by the drain deadline: worse than any bound.
const overBound = time.Duration(math.MaxInt64)

// kneeBound is the p99 past which a step is beyond the knee.
const kneeBound = time.Second

// capacityGoal is the fraction of floor (c)'s capacity Assent must reach.
const capacityGoal = 0.8

// stepResult is one open-loop step at one offered rate.
type stepResult struct {
	offered     int // arrivals per second offered
	arrivals    int // arrivals scheduled in the step
	issued      int // arrivals started (arrivals - shed)
	shed        int // arrivals not started: maxOutstanding were in flight
	completed   int
	failed      int             // started and ended in an error
	incomplete  int             // started and not done by the drain deadline
	maxInFlight int             // the most in flight at once
	latencies   []time.Duration // of the completed, from the scheduled arrival
	elapsed     time.Duration   // from the step's start to its last completion
	note        string          // why the step was not run, if it was not
}

// achieved is completions per second over the step.
func (s stepResult) achieved() float64 {
	if s.elapsed <= 0 {
		return 0
	}
	return float64(s.completed) / s.elapsed.Seconds()
}

// pct is the p-th percentile latency over every arrival: the shed, the
// failed and the incomplete count as overBound.
func (s stepResult) pct(p int) time.Duration {
	all := make([]time.Duration, 0, s.arrivals)
	all = append(all, s.latencies...)
	for range s.arrivals - len(s.latencies) {
		all = append(all, overBound)
	}
	return pct(all, p)
}

// openLoop offers rate arrivals per second for d: arrival i is due at
// start + i/rate and is started then (or at once, if the scheduler is late)
// in its own goroutine, without waiting for any earlier one. Its latency
// runs from when it was due. At most maxOutstanding run at once. After the
// last arrival, in-flight ones have until drain to finish; then the context
// f gets is cancelled, f must return promptly, and they count as
// incomplete. Every loop is bounded: d*rate arrivals, one drain, and a
// last grace for f to honour the cancellation.
func openLoop(ctx context.Context, rate int, d, drain time.Duration, maxOutstanding int, f func(ctx context.Context, i int) error) stepResult {
	res := stepResult{offered: rate}
	if rate <= 0 || d <= 0 || maxOutstanding <= 0 {
		res.note = "nothing offered"
		return res
	}
	n := int(float64(rate) * d.Seconds())
	interval := time.Second / time.Duration(rate)
	stepCtx, cancel := context.WithCancel(ctx)
	defer cancel()

	var mu sync.Mutex
	inFlight, cut := 0, false
	var last time.Time
	var wg sync.WaitGroup
	start := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
arrivals:
	for i := range n {
		at := start.Add(time.Duration(i) * interval)
		if w := time.Until(at); w > 0 {
			timer.Reset(w)
			select {
			case <-ctx.Done():
				break arrivals
			case <-timer.C:
			}
		}
		res.arrivals++
		mu.Lock()
		if inFlight >= maxOutstanding {
			res.shed++
			mu.Unlock()
			continue
		}
		inFlight++
		res.maxInFlight = max(res.maxInFlight, inFlight)
		res.issued++
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := f(stepCtx, i)
			now := time.Now()
			mu.Lock()
			defer mu.Unlock()
			inFlight--
			switch {
			case cut:
				res.incomplete++
			case err != nil:
				res.failed++
			default:
				res.completed++
				res.latencies = append(res.latencies, now.Sub(at))
				last = now
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(drain):
		mu.Lock()
		cut = true
		mu.Unlock()
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second): // f ignored its context: leave it
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if !last.IsZero() {
		res.elapsed = last.Sub(start)
	}
	// Those still running after the last grace are incomplete too.
	res.incomplete += res.issued - res.completed - res.failed - res.incomplete
	res.latencies = append([]time.Duration(nil), res.latencies...)
	return res
}

// sweep runs one open-loop step per rate, in order, and stops after the
// first step past the knee (the rates above it would only queue more). A
// step whose prepare fails is recorded with the reason and ends the sweep.
func sweep(ctx context.Context, rates []int, step, drain time.Duration, maxOutstanding int,
	prepare func(rate, n int) error, f func(ctx context.Context, rate, i int) error, say func(string, ...any),
) []stepResult {
	var out []stepResult
	for _, rate := range rates {
		if ctx.Err() != nil {
			break
		}
		if prepare != nil {
			if err := prepare(rate, int(float64(rate)*step.Seconds())); err != nil {
				out = append(out, stepResult{offered: rate, note: "not run: " + err.Error()})
				say("sweep: %d/s not run: %v", rate, err)
				break
			}
		}
		s := openLoop(ctx, rate, step, drain, maxOutstanding, func(ctx context.Context, i int) error { return f(ctx, rate, i) })
		say("sweep: offered %d/s: achieved %.0f/s, p50 %s, p99 %s, shed %d, failed %d, incomplete %d",
			rate, s.achieved(), latency(s.pct(50)), latency(s.pct(99)), s.shed, s.failed, s.incomplete)
		out = append(out, s)
		if s.pct(99) > kneeBound {
			break
		}
	}
	return out
}

// knee is the index of the first step whose p99 passes bound, or -1.
func knee(steps []stepResult, bound time.Duration) int {
	for i, s := range steps {
		if s.note == "" && s.pct(99) > bound {
			return i
		}
	}
	return -1
}

// capacity is the highest achieved rate among the steps before the knee
// (each with p99 within bound); atRate is its offered rate (0 if no step
// was within bound). lowerBound says no step passed the knee, so the real
// capacity may be higher than the rates offered show.
func capacity(steps []stepResult, bound time.Duration) (perSec float64, atRate int, lowerBound bool) {
	k := knee(steps, bound)
	upto := steps
	if k >= 0 {
		upto = steps[:k]
	}
	for _, s := range upto {
		if s.note == "" && s.achieved() > perSec {
			perSec, atRate = s.achieved(), s.offered
		}
	}
	return perSec, atRate, k < 0
}

// capacityMet: Assent's capacity is at least capacityGoal of floor (c)'s.
func capacityMet(assent, floor float64) bool {
	return floor > 0 && assent >= capacityGoal*floor
}

// latencyGoals are issue 14's latency goals: Assent's decision latency p50
// at most 2x (floor b p50 + floor a p50), p99 at most 3x (floor b p99 +
// floor a p99). It returns each verdict and its limit.
func latencyGoals(assentP50, assentP99, aP50, aP99, bP50, bP99 time.Duration) (p50Met, p99Met bool, p50Limit, p99Limit time.Duration) {
	p50Limit, p99Limit = 2*(bP50+aP50), 3*(bP99+aP99)
	ok := func(got, limit time.Duration) bool { return limit > 0 && got > 0 && got <= limit }
	return ok(assentP50, p50Limit), ok(assentP99, p99Limit), p50Limit, p99Limit
}

// parseRates reads --sweep-rates: positive rates, ascending, bounded.
func parseRates(s string) ([]int, error) {
	var rates []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		r, err := strconv.Atoi(f)
		if err != nil || r < 1 || r > 100000 {
			return nil, fmt.Errorf("--sweep-rates: %q is not a rate from 1 to 100000 per second", f)
		}
		if len(rates) > 0 && r <= rates[len(rates)-1] {
			return nil, fmt.Errorf("--sweep-rates must ascend: %d after %d", r, rates[len(rates)-1])
		}
		rates = append(rates, r)
	}
	if len(rates) > 20 {
		return nil, fmt.Errorf("--sweep-rates: at most 20 rates, got %d", len(rates))
	}
	return rates, nil
}

// latency prints a percentile; overBound reads as "none within the drain".
func latency(d time.Duration) string {
	if d == overBound {
		return "> drain"
	}
	return ms(d)
}

package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/assent-dev/assent/test/systest"
)

// sweepAssent offers each rate of the sweep to Assent as deciding votes:
// before each step, rate x step requests are submitted (not timed, by
// cfg.clients clients); then the open loop votes on them, one arrival a
// vote, and a sample lasts until the vote's answer carries the outcome
// (or, for a 202, until a GET ?wait= sees it).
func sweepAssent(ctx context.Context, cfg config, apis []string, say func(string, ...any)) []stepResult {
	billing := &systest.Client{URLs: apis, Token: "demo-billing", HTTP: httpClient()}
	alice := &systest.Client{URLs: apis, Token: "demo-alice", HTTP: httpClient()}
	stamp := time.Now().UnixNano()
	rid := func(rate, i int) string { return fmt.Sprintf("sweep-%d-%d-%d", stamp, rate, i) }
	prepare := func(rate, n int) error {
		say("assent: submitting %d requests for the %d/s step (not timed)", n, rate)
		return submitAll(ctx, cfg.clients, billing, alice, n, func(i int) string { return rid(rate, i) })
	}
	vote := func(ctx context.Context, rate, i int) error {
		r, err := alice.Do(ctx, i, "POST", "/v1/requests/"+rid(rate, i)+"/votes", map[string]any{"decision": "approve"}, 1)
		if err != nil {
			return err
		}
		switch r.Status {
		case 200:
			return nil
		case 202: // the sample runs until the outcome is seen
			accepted202.votes.Add(1)
			return awaitDecided(ctx, alice, i+1, rid(rate, i))
		}
		return fmt.Errorf("vote %s: %d %s", rid(rate, i), r.Status, r.Raw)
	}
	return sweep(ctx, cfg.sweepRates, cfg.sweepStep, sweepDrain, cfg.sweepMaxOutstanding, prepare, vote, say)
}

// submitAll submits n requests, named by rid, with clients concurrent
// clients, and waits until each can be voted on (a 202 is durable but not
// yet decided: it waits until alice sees it). Not timed: the requests of
// the latency run and of each sweep step are submitted before their votes.
func submitAll(ctx context.Context, clients int, billing, alice *systest.Client, n int, rid func(i int) string) error {
	var next atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || firstErr.Load() != nil || ctx.Err() != nil {
					return
				}
				r, err := billing.Do(ctx, c, "POST", "/v1/requests", submitBody(rid(i)), 3)
				switch {
				case err != nil:
					firstErr.CompareAndSwap(nil, fmt.Errorf("submit %s: %w", rid(i), err))
				case r.Status == 202:
					accepted202.submits.Add(1)
					if err := awaitPresent(ctx, alice, c+1, rid(i)); err != nil {
						firstErr.CompareAndSwap(nil, err)
					}
				case r.Status != 201:
					firstErr.CompareAndSwap(nil, fmt.Errorf("submit %s: %d %s", rid(i), r.Status, r.Raw))
				}
			}
		}()
	}
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		return e.(error)
	}
	return ctx.Err()
}

// printFloors prints floors (a), (b) and (c) beside Assent's decision
// latency at the latency run's rate, and issue 14's latency goals.
func printFloors(w io.Writer, cfg config, floor floorResult, assent []time.Duration) {
	rows := []floorStats{
		statsOf("(a) acks=all produce -> read", floor.a),
		statsOf("(b) 1-record txn -> read_committed read", floor.b),
		statsOf("(c) txn consume->produce copy -> read", floor.latencies),
		statsOf("Assent: vote POST -> parked GET", assent),
	}
	_, _ = fmt.Fprintf(w, "\nlatency at %d/s offered, each for %s, same cluster, same run:\n", cfg.rate, cfg.duration)
	_, _ = fmt.Fprintf(w, "%-42s %10s %10s %8s %11s\n", "", "p50", "p99", "samples", "achieved/s")
	rates := []float64{floor.aRate, floor.bInfo.achieved, floor.cRate}
	for i, r := range rows {
		rate := ""
		if i < len(rates) {
			rate = fmt.Sprintf("%.0f", rates[i])
		}
		_, _ = fmt.Fprintf(w, "%-42s %10s %10s %8d %11s\n", r.name, ms(r.p50), ms(r.p99), r.n, rate)
	}
	_, _ = fmt.Fprintf(w, "Assent's rate is of deciding votes alone, on requests submitted before the run (not timed), as in the sweep\n")
	_, _ = fmt.Fprintf(w, "(b) used %d transactional producers; produce+commit alone (no wait for a producer, no read): p50 %s, p99 %s\n",
		floor.bInfo.producers, ms(pct(floor.bInfo.txn, 50)), ms(pct(floor.bInfo.txn, 99)))
	a, b, s := rows[0], rows[1], rows[3]
	p50ok, p99ok, l50, l99 := latencyGoals(s.p50, s.p99, a.p50, a.p99, b.p50, b.p99)
	caveat := floorCaveat(cfg.rate, floor.aRate, floor.bInfo.achieved, pct(floor.bInfo.txn, 50), rows[2].p50)
	_, _ = fmt.Fprintf(w, "goal: Assent p50 %s <= 2 x (b p50 + a p50) = %s: %s%s\n", ms(s.p50), ms(l50), metOrNot(p50ok), caveat)
	_, _ = fmt.Fprintf(w, "goal: Assent p99 %s <= 3 x (b p99 + a p99) = %s: %s%s\n", ms(s.p99), ms(l99), metOrNot(p99ok), caveat)
}

// floorCaveat says why a verdict against floors (a) and (b) means little,
// or "" if it stands: a floor that did not keep up with the offered rate,
// or floor (b) saturated, its one-record transaction alone (produce and
// commit, p50 txn50) slower than floor (c)'s whole copy (consume, produce,
// commit, read: p50 c50), which does more Kafka work a record: its
// samples are then the brokers' queue for so many transactions a second,
// not a transaction's cost.
func floorCaveat(offered int, aRate, bRate float64, txn50, c50 time.Duration) string {
	switch {
	case !keptUp(aRate, offered) || !keptUp(bRate, offered):
		return " (floor a or b did not keep up with the offered rate: its samples are mostly queueing, so this verdict means little)"
	case txn50 > c50:
		return fmt.Sprintf(" (floor b saturated the brokers: its one-record transaction alone, p50 %s, took longer than floor c's whole copy, p50 %s, so this verdict means little)", ms(txn50), ms(c50))
	}
	return ""
}

// printSweep prints the capacity sweep of floor (c) and Assent side by
// side, each side's knee and capacity, and the capacity goal.
func printSweep(w io.Writer, cfg config, floor, assent []stepResult) {
	_, _ = fmt.Fprintf(w, "\ncapacity, open loop: arrivals on a fixed schedule, never waiting for completions;\n"+
		"%s a step; at most %d in flight per side (an arrival past that is shed); latency from\n"+
		"the scheduled arrival to the outcome seen (Assent: the vote's answer; floor (c): the copy\n"+
		"read); shed, failed and unfinished %s after the step count over the bound. The sweep\n"+
		"stops after the first step past the knee.\n", cfg.sweepStep, cfg.sweepMaxOutstanding, sweepDrain)
	_, _ = fmt.Fprintf(w, "%9s | %-44s | %-44s\n", "", "floor (c): txn copy", "Assent: decisions")
	_, _ = fmt.Fprintf(w, "%9s | %10s %10s %10s %10s | %10s %10s %10s %10s\n", "offered/s",
		"achieved/s", "p50", "p99", "lost", "achieved/s", "p50", "p99", "lost")
	cell := func(steps []stepResult, i int) string {
		if i >= len(steps) {
			return fmt.Sprintf("%-44s", "not offered (past the knee)")
		}
		s := steps[i]
		if s.note != "" {
			return fmt.Sprintf("%-44.44s", s.note)
		}
		return fmt.Sprintf("%10.0f %10s %10s %10d", s.achieved(), latency(s.pct(50)), latency(s.pct(99)), s.shed+s.failed+s.incomplete)
	}
	for i, rate := range cfg.sweepRates {
		_, _ = fmt.Fprintf(w, "%9d | %s | %s\n", rate, cell(floor, i), cell(assent, i))
	}
	_, _ = fmt.Fprintf(w, "(lost: shed + failed + unfinished)\n")
	kneeOf := func(steps []stepResult) string {
		if k := knee(steps, kneeBound); k >= 0 {
			return fmt.Sprintf("%d/s", steps[k].offered)
		}
		return "none within the rates offered"
	}
	capOf := func(steps []stepResult) (float64, string) {
		c, at, lower := capacity(steps, kneeBound)
		switch {
		case at == 0:
			return 0, "none (p99 over 1 s at the first step)"
		case lower:
			return c, fmt.Sprintf(">= %.0f/s (at %d/s offered; no knee, a lower bound)", c, at)
		}
		return c, fmt.Sprintf("%.0f/s (at %d/s offered)", c, at)
	}
	fc, fs := capOf(floor)
	ac, as := capOf(assent)
	_, _ = fmt.Fprintf(w, "knee (first offered rate where p99 passes %s): floor (c) %s; Assent %s\n", kneeBound, kneeOf(floor), kneeOf(assent))
	_, _ = fmt.Fprintf(w, "capacity (most achieved/s with p99 <= %s): floor (c) %s; Assent %s\n", kneeBound, fs, as)
	ratio := 0.0
	if fc > 0 {
		ratio = ac / fc
	}
	caveat := ""
	if _, _, lower := capacity(floor, kneeBound); lower && fc > 0 {
		caveat = " (floor (c)'s capacity is only a lower bound: offer higher rates to find its knee)"
	} else if fc == 0 {
		caveat = " (floor (c) had no step with p99 within the bound: not judged; offer lower rates)"
	}
	_, _ = fmt.Fprintf(w, "goal: Assent capacity >= %.0f%% of floor (c)'s: %.2f: %s%s\n", capacityGoal*100, ratio, metOrNot(capacityMet(ac, fc)), caveat)
}

func metOrNot(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

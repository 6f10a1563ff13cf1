package chaos

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/assent-dev/assent/test/systest"
)

// Gap is the longest time without a decision during one fault's window
// (from its start to the end of the quiet period after it).
type Gap struct {
	Fault  string `json:"fault"`
	Target string `json:"target"`
	// Global is the longest time without any event in the window (from
	// its start to the first event, between two events, from the last
	// event to its end: the whole window if nothing was decided);
	// PartitionGap the longest between two events of a single partition
	// (a stall of the partitions a dead decider held), counted from its
	// last event before the window, and only up to its first event in it.
	Global        time.Duration `json:"global"`
	PartitionGap  time.Duration `json:"partition_gap"`
	PartitionName int32         `json:"partition"`
	Events        int           `json:"events"`
}

// gaps measures every fault's window, and the warm-up as a baseline.
func gaps(log []systest.Record, faults []Fault, warmup [2]time.Time) ([]Gap, Gap) {
	type ev struct {
		t time.Time
		p int32
	}
	var evs []ev
	for _, r := range log {
		if r.Err == nil && r.Envelope.Subject != "" {
			evs = append(evs, ev{r.Envelope.Time, r.Partition})
		}
	}
	sort.Slice(evs, func(i, j int) bool { return evs[i].t.Before(evs[j].t) })
	measure := func(name, target string, from, to time.Time) Gap {
		g := Gap{Fault: name, Target: target}
		last := map[int32]time.Time{}
		var prev time.Time
		for _, e := range evs {
			if e.t.After(to) {
				break
			}
			if e.t.Before(from) {
				last[e.p] = e.t
				continue
			}
			g.Events++
			start := prev
			if start.IsZero() {
				start = from
			}
			g.Global = max(g.Global, e.t.Sub(start))
			prev = e.t
			if l, ok := last[e.p]; ok && e.t.Sub(l) > g.PartitionGap {
				g.PartitionGap, g.PartitionName = e.t.Sub(l), e.p
			}
			last[e.p] = e.t
		}
		if prev.IsZero() {
			g.Global = to.Sub(from) // not one decision in the window
		} else {
			g.Global = max(g.Global, to.Sub(prev))
		}
		return g
	}
	var out []Gap
	for _, f := range faults {
		out = append(out, measure(f.Name, f.Target, f.Start, f.End))
	}
	return out, measure("baseline (warm-up, no fault)", "", warmup[0], warmup[1])
}

// Outcomes counts operations by kind and outcome.
func Outcomes(ops []Op) (map[string]map[Outcome]int, map[Outcome]int) {
	by := map[string]map[Outcome]int{}
	total := map[Outcome]int{}
	for _, op := range ops {
		k := string(op.Kind)
		if op.Via == "slack" {
			k = "vote (slack)"
		}
		if by[k] == nil {
			by[k] = map[Outcome]int{}
		}
		by[k][op.Outcome]++
		total[op.Outcome]++
	}
	return by, total
}

// WriteReport writes the human-readable report of a run.
func (r *Run) WriteReport(w io.Writer) {
	// A report for a terminal or a file; Save checks the file's Close.
	printf := func(format string, a ...any) { _, _ = fmt.Fprintf(w, format, a...) }
	v := r.Verdict
	printf("Assent fault-injection run %s\n", r.Config.Prefix)
	printf("  started %s, ended %s (%s); workload %s; faults %s; quiet %s between faults\n",
		r.Started.UTC().Format(time.RFC3339), r.Ended.UTC().Format(time.RFC3339), r.Ended.Sub(r.Started).Round(time.Second),
		durationOr(r.Config.Duration, "one pass over the faults"), strings.Join(r.Config.Faults, ","), r.Config.Quiet)
	if r.Config.DeciderTags != "" {
		printf("  DELIBERATELY BROKEN decider build: -tags %s\n", r.Config.DeciderTags)
	}
	by, total := Outcomes(r.Ops)
	printf("\nOperations: %d (ok %d, refused %d, accepted-without-outcome %d, unknown %d)\n",
		len(r.Ops), total[OK], total[Refused], total[Accepted], total[Unknown])
	for _, k := range slices.Sorted(mapsKeys(by)) {
		o := by[k]
		printf("  %-14s ok %6d  refused %6d  accepted %6d  unknown %5d\n", k, o[OK], o[Refused], o[Accepted], o[Unknown])
	}
	codes := map[string]int{}
	for _, op := range r.Ops {
		if op.Outcome == Refused && op.Kind != KindNegative {
			codes[op.Code]++
		}
	}
	printf("  refusals by code: %s\n", counts(codes))
	neg := map[string]int{}
	for _, op := range r.Ops {
		if op.Kind == KindNegative {
			neg[op.Detail]++
		}
	}
	printf("  security negatives sent: %s\n", counts(neg))

	printf("\nLog: %d events, %d requests, terminal %v; every acknowledged command decided within %s of the end\n",
		v.Base.Events, v.Base.Requests, v.Base.Terminal, r.Settle.Round(time.Millisecond))
	printf("Linearizability: %d request histories checked with porcupine, %d timed out\n", v.LinChecked, v.LinTimedOut)

	printf("\nFaults injected: %d\n", len(r.Faults))
	printf("  %-17s %-8s %-10s %-12s %-14s %s\n", "fault", "at", "held", "global gap", "partition gap", "target")
	b := r.Baseline
	printf("  %-17s %-8s %-10s %-12s %-14s %s\n", "(baseline)", "", "",
		b.Global.Round(time.Millisecond), fmt.Sprintf("%s p%d", b.PartitionGap.Round(time.Millisecond), b.PartitionName), "warm-up, no fault")
	for i, f := range r.Faults {
		g := r.Gaps[i]
		target := f.Target
		if f.Err != "" {
			target += " ERROR: " + f.Err
		}
		printf("  %-17s %-8s %-10s %-12s %-14s %s\n", f.Name, "+"+f.Start.Sub(r.Started).Round(time.Second).String(),
			f.Healed.Sub(f.Start).Round(100*time.Millisecond), g.Global.Round(time.Millisecond),
			fmt.Sprintf("%s p%d", g.PartitionGap.Round(time.Millisecond), g.PartitionName), target)
		if f.Note != "" {
			printf("  %-17s   %s\n", "", f.Note)
		}
	}
	if slices.Contains(r.Config.Faults, FaultInsider) {
		kinds := map[string]int{}
		for _, f := range r.Forgeries {
			kinds[f.Kind]++
		}
		printf("\nInsider (Kafka admin credentials): %d forgeries injected (%s); served %d; the log holds %d records no valid seal covers\n",
			len(r.Forgeries), counts(kinds), v.Served, v.Unauthenticated)
		for _, f := range r.Forgeries {
			printf("  %s\n", f)
		}
		for _, c := range r.Counters {
			line := fmt.Sprintf("%g -> %g", c.Before, c.After)
			if c.Err != "" {
				line = "ERROR: " + c.Err
			}
			printf("  %s assent_consistency_violations_total{kind=\"unauthenticated\"} around the fault at %s: %s\n",
				c.Replica, c.At.UTC().Format("15:04:05"), line)
		}
	}
	printf("\nFailover per fault type (longest gap between decisions, worst occurrence):\n")
	worst := map[string]Gap{}
	for _, g := range r.Gaps {
		if w := worst[g.Fault]; g.PartitionGap > w.PartitionGap || w.Fault == "" {
			worst[g.Fault] = g
		}
	}
	for _, name := range AllFaults {
		if g, ok := worst[name]; ok {
			printf("  %-17s all partitions %-10s one partition %s\n", name, g.Global.Round(time.Millisecond), g.PartitionGap.Round(time.Millisecond))
		}
	}
	printf("\nService processes that exited on their own (restarted 1s later, as a supervisor would): %d\n", len(r.Exits))
	for _, e := range r.Exits {
		printf("  %s +%s %s (%s): %s\n", e.Process, e.At.Sub(r.Started).Round(time.Second), e.At.UTC().Format("15:04:05"), e.Status, strings.TrimSpace(e.LastLog))
	}
	for _, n := range r.Notes {
		printf("Note: %s\n", n)
	}
	printf("\nAnomalies: %d\n", len(v.Anomalies))
	inv := map[string]int{}
	for _, a := range v.Anomalies {
		inv[a.Invariant]++
	}
	if len(inv) > 0 {
		printf("  by invariant: %s\n", counts(inv))
	}
	for _, a := range v.Anomalies {
		printf("  %s\n", a)
	}
	printf("\nSummary: faults injected %d, forgeries injected %d, forgeries served %d, anomalies %d\n",
		len(r.Faults), len(r.Forgeries), v.Served, len(v.Anomalies))
}

func durationOr(d time.Duration, s string) string {
	if d == 0 {
		return s
	}
	return d.String()
}

func counts(m map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(mapsKeys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

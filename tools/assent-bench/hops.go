package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/assent-dev/assent/test/otlptest"
)

// The per-hop breakdown (issue 14, item 2): the api and the deciders the
// bench starts export their spans over OTLP/HTTP to a receiver the bench
// runs (test/otlptest); each vote of the latency run carries a sampled
// traceparent of its own, and nothing else is sampled
// (parentbased_traceidratio at 0), so the spans are those of the measured
// votes. All processes run on this machine: their clocks compare.

// tracingEnv is the OTEL_ environment of the services the bench starts.
func tracingEnv(url string) []string {
	return []string{
		"OTEL_EXPORTER_OTLP_ENDPOINT=" + url,
		"OTEL_BSP_SCHEDULE_DELAY=200",
		"OTEL_TRACES_SAMPLER=parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG=0",
	}
}

// newTraceparent returns a sampled W3C traceparent and its trace id.
func newTraceparent() (header http.Header, traceID string) {
	var b [24]byte
	_, _ = rand.Read(b[:])
	traceID = hex.EncodeToString(b[:16])
	h := http.Header{}
	h.Set("Traceparent", "00-"+traceID+"-"+hex.EncodeToString(b[16:])+"-01")
	return h, traceID
}

// hopRow is one line of the table: a hop's p50 and p99.
type hopRow struct {
	name     string
	p50, p99 time.Duration
}

// hopTable computes, over the timelines of the given traces, p50 and p99
// of each hop (the gap between consecutive hop times) and of the whole
// (received to responded); n is the traces that had every hop.
func hopTable(tls map[string]otlptest.Timeline, traces []string) (rows []hopRow, n int) {
	gaps := make([][]time.Duration, otlptest.Hops)
	for _, id := range traces {
		tl, ok := tls[id]
		if !ok {
			continue
		}
		n++
		for i := 1; i < otlptest.Hops; i++ {
			gaps[i] = append(gaps[i], tl.At[i].Sub(tl.At[i-1]))
		}
		gaps[0] = append(gaps[0], tl.At[otlptest.Responded].Sub(tl.At[otlptest.Received]))
	}
	for i := 1; i < otlptest.Hops; i++ {
		rows = append(rows, hopRow{otlptest.HopNames[i-1] + " -> " + otlptest.HopNames[i], pct(gaps[i], 50), pct(gaps[i], 99)})
	}
	rows = append(rows, hopRow{"api: received -> responded", pct(gaps[0], 50), pct(gaps[0], 99)})
	return rows, n
}

// awaitTimelines waits, up to 15s, until the receiver holds the whole
// timeline of every trace (the exporters send every 200ms), and returns
// what it has then.
func awaitTimelines(ctx context.Context, r *otlptest.Receiver, traces []string) map[string]otlptest.Timeline {
	deadline := time.Now().Add(15 * time.Second)
	for {
		tls := otlptest.Timelines(r.Spans())
		missing := 0
		for _, id := range traces {
			if _, ok := tls[id]; !ok {
				missing++
			}
		}
		if missing == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return tls
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// printHops prints the per-hop table beside the end-to-end figures.
func printHops(w io.Writer, rows []hopRow, n, votes int, e2e []time.Duration, r *otlptest.Receiver) {
	reqs, bad, dropped := r.Stats()
	_, _ = fmt.Fprintf(w, "\nper-hop breakdown of the latency run's votes, from their OpenTelemetry traces (%d of %d votes traced end to end;\n%d OTLP exports received, %d refused, %d spans dropped):\n", n, votes, reqs, bad, dropped)
	_, _ = fmt.Fprintf(w, "%-36s %10s %10s\n", "hop", "p50", "p99")
	for _, row := range rows {
		_, _ = fmt.Fprintf(w, "%-36s %10s %10s\n", row.name, ms(row.p50), ms(row.p99))
	}
	_, _ = fmt.Fprintf(w, "%-36s %10s %10s\n", "end to end: vote POST -> parked GET", ms(pct(e2e, 50)), ms(pct(e2e, 99)))
	_, _ = fmt.Fprintf(w, `each hop is the gap between consecutive hop times of one vote (p50 and p99 taken per hop, so
they do not add up): received = api.receive starts; sent = command.produce starts (the
signed command goes to the producer); fetched = decider.fetch ends (the poll returned it); decided = decider.decide ends; committed =
decider.commit ends; applied = projection.apply ends on the api replica that took the vote; woken
= api.wake; responded = api.respond (docs/architecture.md, "Tracing"). The end to end is the
bench's own clock, to the other replica's parked GET.
`)
}

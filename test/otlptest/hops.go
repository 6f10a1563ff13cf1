package otlptest

import (
	"time"

	"github.com/assent-dev/assent/libs/tracing"
)

// The hops of a write through Assent, in order (docs/architecture.md,
// "Tracing"): the index of each in Timeline.At.
const (
	Received = iota // api.receive starts
	// Sent is when command.produce starts: the api hands the signed
	// command to its producer. (The span ends at Kafka's acknowledgement,
	// which is not on the decision's path: the decider may fetch the
	// record before the acknowledgement is back.)
	Sent
	Fetched   // decider.fetch ends: the decider's poll returned it
	Decided   // decider.decide ends
	Committed // decider.commit ends: the transaction committed
	Applied   // projection.apply ends, on the api replica that received the write
	Woken     // the api.wake event: the write's wait saw its outcome
	Responded // the api.respond event: the answer started
	Hops
)

// HopNames names the hops, by index.
var HopNames = [Hops]string{"received", "sent", "fetched", "decided", "committed", "applied", "woken", "responded"}

// Timeline is the time of every hop of one write's trace.
type Timeline struct {
	TraceID string
	At      [Hops]time.Time
}

// Timelines joins spans by trace id and returns, for each trace that
// holds every hop of a write, its timeline, by trace id. The spans must
// link as Assent records them: command.produce a child of api.receive,
// decider.fetch of command.produce, decider.decide and decider.commit of
// decider.fetch, and projection.apply of decider.commit, recorded by the
// same api instance as api.receive. Where the decider tried more than once
// (an aborted transaction), the committed attempt counts; where the events
// were applied in more than one batch, the last batch before the wake.
func Timelines(spans []Span) map[string]Timeline {
	byTrace := map[string][]Span{}
	for _, s := range spans {
		byTrace[s.TraceID] = append(byTrace[s.TraceID], s)
	}
	out := map[string]Timeline{}
	for id, ss := range byTrace {
		if tl, ok := timeline(ss); ok {
			tl.TraceID = id
			out[id] = tl
		}
	}
	return out
}

func children(ss []Span, parent Span, name string) []Span {
	var out []Span
	for _, s := range ss {
		if s.Name == name && s.ParentID == parent.SpanID {
			out = append(out, s)
		}
	}
	return out
}

func timeline(ss []Span) (Timeline, bool) {
	var tl Timeline
	for _, r := range ss {
		if r.Name != tracing.SpanReceive {
			continue
		}
		woken, ok1 := r.Event(tracing.EventWake)
		responded, ok2 := r.Event(tracing.EventRespond)
		if !ok1 || !ok2 {
			continue
		}
		for _, p := range children(ss, r, tracing.SpanProduce) {
			for _, f := range children(ss, p, tracing.SpanFetch) {
				ds, cs := children(ss, f, tracing.SpanDecide), children(ss, f, tracing.SpanCommit)
				if len(ds) != 1 || len(cs) != 1 || cs[0].StatusError {
					continue // not the attempt that committed
				}
				// The last batch of this replica before the wake; else
				// (clocks of spans and events disagree) its first.
				var before, first time.Time
				for _, a := range children(ss, cs[0], tracing.SpanApply) {
					if a.Instance != r.Instance {
						continue // another replica's projection
					}
					if !a.End.After(woken) && a.End.After(before) {
						before = a.End
					}
					if first.IsZero() || a.End.Before(first) {
						first = a.End
					}
				}
				applied := before
				if applied.IsZero() {
					applied = first
				}
				if applied.IsZero() {
					continue
				}
				tl.At = [Hops]time.Time{r.Start, p.Start, f.End, ds[0].End, cs[0].End, applied, woken, responded}
				return tl, true
			}
		}
	}
	return tl, false
}

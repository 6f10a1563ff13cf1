package otlptest_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/tracing"
	"github.com/assent-dev/assent/test/otlptest"
)

// synthetic builds the spans of one traced vote: t0 plus ms offsets.
func synthetic(trace string, t0 time.Time) []otlptest.Span {
	at := func(ms float64) time.Time { return t0.Add(time.Duration(ms * float64(time.Millisecond))) }
	return []otlptest.Span{
		{TraceID: trace, SpanID: "r", ParentID: "client", Name: tracing.SpanReceive, Instance: "api-1", Start: at(0), End: at(20),
			Events: []otlptest.Event{{Name: tracing.EventWake, Time: at(15)}, {Name: tracing.EventRespond, Time: at(16)}}},
		{TraceID: trace, SpanID: "p", ParentID: "r", Name: tracing.SpanProduce, Instance: "api-1", Start: at(0.5), End: at(3)},
		// A first attempt whose transaction aborted, then the one that committed.
		{TraceID: trace, SpanID: "f0", ParentID: "p", Name: tracing.SpanFetch, Instance: "decider-1", Start: at(2), End: at(4)},
		{TraceID: trace, SpanID: "d0", ParentID: "f0", Name: tracing.SpanDecide, Instance: "decider-1", Start: at(4), End: at(4.5)},
		{TraceID: trace, SpanID: "c0", ParentID: "f0", Name: tracing.SpanCommit, Instance: "decider-1", Start: at(4.5), End: at(5), StatusError: true},
		{TraceID: trace, SpanID: "f", ParentID: "p", Name: tracing.SpanFetch, Instance: "decider-2", Start: at(2), End: at(6)},
		{TraceID: trace, SpanID: "d", ParentID: "f", Name: tracing.SpanDecide, Instance: "decider-2", Start: at(6), End: at(7)},
		{TraceID: trace, SpanID: "c", ParentID: "f", Name: tracing.SpanCommit, Instance: "decider-2", Start: at(7), End: at(10)},
		// The other api replica applied it earlier: not this write's hop.
		{TraceID: trace, SpanID: "a2", ParentID: "c", Name: tracing.SpanApply, Instance: "api-2", Start: at(10), End: at(11)},
		// Two batches on the replica that waits: the last before the wake.
		{TraceID: trace, SpanID: "a1", ParentID: "c", Name: tracing.SpanApply, Instance: "api-1", Start: at(10), End: at(12)},
		{TraceID: trace, SpanID: "a3", ParentID: "c", Name: tracing.SpanApply, Instance: "api-1", Start: at(12), End: at(14)},
	}
}

func TestTimelines(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	spans := synthetic("t1", t0)
	// An incomplete trace (no commit) and a lone span are left out.
	broken := synthetic("t2", t0)
	broken = append(broken[:7], broken[8:]...)
	spans = append(spans, broken...)
	spans = append(spans, otlptest.Span{TraceID: "t3", SpanID: "x", Name: tracing.SpanReceive})

	tls := otlptest.Timelines(spans)
	require.Len(t, tls, 1)
	tl := tls["t1"]
	ms := func(x float64) time.Time { return t0.Add(time.Duration(x * float64(time.Millisecond))) }
	require.Equal(t, [otlptest.Hops]time.Time{ms(0), ms(0.5), ms(6), ms(7), ms(10), ms(14), ms(15), ms(16)}, tl.At)
}

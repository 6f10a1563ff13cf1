package otlptest_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/assent-dev/assent/test/otlptest"
)

// The receiver decodes what the real OTLP/HTTP exporter sends, gzip or
// not: names, ids, parents, times, events and resource attributes.
func TestReceiverDecodesTheSDKsExport(t *testing.T) {
	for _, gz := range []bool{false, true} {
		r, err := otlptest.Start()
		require.NoError(t, err)
		t.Cleanup(func() { _ = r.Close() })
		opts := []otlptracehttp.Option{otlptracehttp.WithEndpointURL(r.URL + "/v1/traces")}
		if gz {
			opts = append(opts, otlptracehttp.WithCompression(otlptracehttp.GzipCompression))
		}
		exp, err := otlptracehttp.New(t.Context(), opts...)
		require.NoError(t, err)
		tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithResource(resource.NewSchemaless(
			attribute.String("service.name", "svc"), attribute.String("service.instance.id", "svc-1"))))
		t0 := time.Unix(1_800_000_000, 123_456_789)
		ctx, parent := tp.Tracer("t").Start(t.Context(), "parent", trace.WithTimestamp(t0))
		_, child := tp.Tracer("t").Start(ctx, "child", trace.WithTimestamp(t0.Add(time.Millisecond)))
		child.AddEvent("ev", trace.WithTimestamp(t0.Add(2*time.Millisecond)))
		child.End(trace.WithTimestamp(t0.Add(3 * time.Millisecond)))
		parent.End(trace.WithTimestamp(t0.Add(4 * time.Millisecond)))
		require.NoError(t, tp.Shutdown(t.Context()))

		spans := r.Spans()
		require.Len(t, spans, 2)
		byName := map[string]otlptest.Span{}
		for _, s := range spans {
			byName[s.Name] = s
		}
		p, c := byName["parent"], byName["child"]
		require.Equal(t, parent.SpanContext().TraceID().String(), p.TraceID)
		require.Equal(t, p.TraceID, c.TraceID)
		require.Equal(t, p.SpanID, c.ParentID)
		require.Empty(t, p.ParentID)
		require.True(t, c.Start.Equal(t0.Add(time.Millisecond)), "start %s", c.Start)
		require.True(t, c.End.Equal(t0.Add(3*time.Millisecond)))
		ev, ok := c.Event("ev")
		require.True(t, ok)
		require.True(t, ev.Equal(t0.Add(2*time.Millisecond)))
		require.Equal(t, "svc", c.Service)
		require.Equal(t, "svc-1", c.Instance)
		_, bad, _ := r.Stats()
		require.Zero(t, bad)
	}
}

func TestReceiverRefusesGarbage(t *testing.T) {
	r, err := otlptest.Start()
	require.NoError(t, err)
	defer func() { _ = r.Close() }()
	resp, err := http.Post(r.URL+"/v1/traces", "application/x-protobuf", strings.NewReader("\xff\xff\xff not protobuf"))
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	resp, err = http.Post(r.URL+"/v1/traces", "application/json", strings.NewReader("{}"))
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	_, bad, _ := r.Stats()
	require.Equal(t, 2, bad)
	require.Empty(t, r.Spans())
}

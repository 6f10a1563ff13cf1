package tracing_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/assent-dev/assent/libs/tracing"
	"github.com/assent-dev/assent/libs/wire"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// With no OTEL_ environment, nothing is exported: no exporter, a no-op
// provider, and a nil tracer, which the components take as off.
func TestNoEnvironmentNoExporter(t *testing.T) {
	s, err := tracing.FromEnv(env(nil))
	require.NoError(t, err)
	require.False(t, s.Enabled())
	p, err := tracing.Setup(t.Context(), s, "api", "api-1", nil)
	require.NoError(t, err)
	require.False(t, p.Enabled())
	require.Nil(t, p.Tracer())
	_, isNoop := p.TracerProvider.(noop.TracerProvider)
	require.True(t, isNoop, "the provider is %T, not the no-op one", p.TracerProvider)
	require.NoError(t, p.Shutdown(t.Context()))
}

func TestFromEnv(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string
		err  string
	}{
		{"base endpoint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, "http://127.0.0.1:4318/v1/traces", ""},
		{"base endpoint with a path", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "https://otel.example/prefix/"}, "https://otel.example/prefix/v1/traces", ""},
		{"traces endpoint as is", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:1", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://b:2/x"}, "http://b:2/x", ""},
		{"sdk disabled", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:1", "OTEL_SDK_DISABLED": "true"}, "", ""},
		{"exporter none", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:1", "OTEL_TRACES_EXPORTER": "none"}, "", ""},
		{"exporter zipkin", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:1", "OTEL_TRACES_EXPORTER": "zipkin"}, "", "only otlp"},
		{"grpc", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:1", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "", "only http/protobuf"},
		{"not a URL", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "127.0.0.1:4318"}, "", "not an http(s) URL"},
		{"user info is refused, not echoed", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://user:s3cret@a:1"}, "", "no user info"}, //nolint:gosec // G101: a made-up credential, to prove it is not echoed
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := tracing.FromEnv(env(tc.env))
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				require.NotContains(t, err.Error(), "s3cret")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, s.Endpoint)
		})
	}
}

func TestSetupEnabled(t *testing.T) {
	s, err := tracing.FromEnv(env(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_SERVICE_NAME": "x"}))
	require.NoError(t, err)
	p, err := tracing.Setup(t.Context(), s, "api", "api-1", nil)
	require.NoError(t, err)
	require.True(t, p.Enabled())
	require.NotNil(t, p.Tracer())
	_, isSDK := p.TracerProvider.(*sdktrace.TracerProvider)
	require.True(t, isSDK)
	// Nothing listens on port 1: the flush fails within its bound.
	_ = p.Shutdown(t.Context())
}

func recorder(t *testing.T) trace.Tracer {
	t.Helper()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(tracetest.NewSpanRecorder()))
	return tp.Tracer("test")
}

// The carrier round trip: what RecordHeaders puts on a kgo.Record,
// FromRecord reads back as the same (remote) span context, and the
// record's value is not touched.
func TestRecordCarrier(t *testing.T) {
	ctx, span := recorder(t).Start(context.Background(), "x")
	defer span.End()
	ts, err := trace.ParseTraceState("vendor=v1")
	require.NoError(t, err)
	ctx = trace.ContextWithSpanContext(ctx, span.SpanContext().WithTraceState(ts))
	value := []byte(`{"hash-chained":"bytes"}`)
	rec := &kgo.Record{Value: value, Headers: []kgo.RecordHeader{{Key: wire.HeaderContentType, Value: []byte(wire.ContentType)}}}
	rec.Headers = append(rec.Headers, tracing.RecordHeaders(ctx)...)
	require.Len(t, rec.Headers, 3)
	require.Equal(t, tracing.HeaderTraceparent, rec.Headers[1].Key)
	require.Equal(t, "00-"+span.SpanContext().TraceID().String()+"-"+span.SpanContext().SpanID().String()+"-01", string(rec.Headers[1].Value))
	require.Equal(t, tracing.HeaderTracestate, rec.Headers[2].Key)
	require.Equal(t, `{"hash-chained":"bytes"}`, string(rec.Value))

	got := trace.SpanContextFromContext(tracing.FromRecord(context.Background(), rec))
	require.True(t, got.IsRemote())
	require.Equal(t, span.SpanContext().TraceID(), got.TraceID())
	require.Equal(t, span.SpanContext().SpanID(), got.SpanID())
	require.True(t, got.IsSampled())
	require.Equal(t, "vendor=v1", got.TraceState().String())

	w := make([]wire.Header, len(rec.Headers))
	for i, h := range rec.Headers {
		w[i] = wire.Header{Key: h.Key, Value: h.Value}
	}
	require.True(t, tracing.HasHeader(w))
	require.Equal(t, got, trace.SpanContextFromContext(tracing.FromWire(context.Background(), w)))

	require.Empty(t, tracing.RecordHeaders(context.Background()), "no span, no header")
}

// A header from outside is untrusted: malformed, oversized or repeated,
// it is ignored as if absent, and it never panics.
func TestMalformedHeadersAreIgnored(t *testing.T) {
	valid := "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	for _, tc := range []struct {
		name    string
		headers []kgo.RecordHeader
	}{
		{"garbage", []kgo.RecordHeader{{Key: "traceparent", Value: []byte("not a traceparent")}}},
		{"upper case hex", []kgo.RecordHeader{{Key: "traceparent", Value: []byte(strings.ToUpper(valid))}}},
		{"zero trace id", []kgo.RecordHeader{{Key: "traceparent", Value: []byte("00-00000000000000000000000000000000-b7ad6b7169203331-01")}}},
		{"zero span id", []kgo.RecordHeader{{Key: "traceparent", Value: []byte("00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01")}}},
		{"version ff", []kgo.RecordHeader{{Key: "traceparent", Value: []byte("ff" + valid[2:])}}},
		{"version 00 with extra fields", []kgo.RecordHeader{{Key: "traceparent", Value: []byte(valid + "-00")}}},
		{"oversized", []kgo.RecordHeader{{Key: "traceparent", Value: []byte("01" + valid[2:] + "-" + strings.Repeat("a", 200))}}},
		{"huge", []kgo.RecordHeader{{Key: "traceparent", Value: make([]byte, 1<<20)}}},
		{"twice", []kgo.RecordHeader{{Key: "traceparent", Value: []byte(valid)}, {Key: "traceparent", Value: []byte(valid)}}},
		{"empty", []kgo.RecordHeader{{Key: "traceparent"}}},
		{"binary", []kgo.RecordHeader{{Key: "traceparent", Value: []byte{0, 0xff, '-', 0x80}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := tracing.FromRecord(context.Background(), &kgo.Record{Headers: tc.headers})
			require.False(t, trace.SpanContextFromContext(ctx).IsValid())
		})
	}
	// A valid traceparent with a bad or oversized tracestate keeps the
	// traceparent and drops the state.
	for _, state := range []string{strings.Repeat("a=b,", 200) + "a=b", "=,=", "UPPER=x"} {
		ctx := tracing.FromRecord(context.Background(), &kgo.Record{Headers: []kgo.RecordHeader{
			{Key: "traceparent", Value: []byte(valid)}, {Key: "tracestate", Value: []byte(state)}}})
		sc := trace.SpanContextFromContext(ctx)
		require.True(t, sc.IsValid())
		require.Empty(t, sc.TraceState().String())
	}
	// A later version may add fields, within the bound.
	sc := trace.SpanContextFromContext(tracing.FromRecord(context.Background(), &kgo.Record{Headers: []kgo.RecordHeader{
		{Key: "traceparent", Value: []byte("01" + valid[2:] + "-future")}}}))
	require.True(t, sc.IsValid())
}

func TestHTTPCarrier(t *testing.T) {
	h := http.Header{}
	h.Set("Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	sc := trace.SpanContextFromContext(tracing.FromHTTP(context.Background(), h))
	require.True(t, sc.IsValid())
	require.Equal(t, "0af7651916cd43dd8448eb211c80319c", sc.TraceID().String())
	h.Add("Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	require.False(t, trace.SpanContextFromContext(tracing.FromHTTP(context.Background(), h)).IsValid(), "two traceparents are ambiguous")
}

// A collector that refuses the spans: every failed export is counted in
// ExportErrors (assent_tracing_export_errors_total, alert
// AssentTracingExportFailing), besides the warning in the log.
func TestFailedExportsAreCounted(t *testing.T) {
	refused := make(chan struct{}, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case refused <- struct{}{}:
		default:
		}
		http.Error(w, "no", http.StatusBadRequest) // not retried by the exporter
	}))
	t.Cleanup(srv.Close)
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "20") // ms: the batch goes out at once
	s, err := tracing.FromEnv(env(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": srv.URL}))
	require.NoError(t, err)
	p, err := tracing.Setup(t.Context(), s, "api", "api-1", nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	before := tracing.ExportErrors()
	_, span := p.Tracer().Start(t.Context(), "x")
	span.End()
	select {
	case <-refused:
	case <-time.After(10 * time.Second):
		t.Fatal("no export reached the collector")
	}
	require.Eventually(t, func() bool { return tracing.ExportErrors() > before }, 5*time.Second, 10*time.Millisecond,
		"a refused export is not counted")

	reg := prometheus.NewRegistry()
	tracing.RegisterMetrics(reg)
	n, err := testutil.GatherAndCount(reg, "assent_tracing_export_errors_total")
	require.NoError(t, err)
	require.Equal(t, 1, n)
}

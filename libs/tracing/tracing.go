package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// The spans and span events of a decision's hops, in order. A hop's time
// is the start of api.receive (received) and of command.produce (sent),
// the end of the other spans, and the time of the events
// (docs/architecture.md, "Tracing").
const (
	// SpanReceive is the api's server span of one HTTP request, from its
	// arrival to the end of its answer; EventWake and EventRespond are
	// events on it.
	SpanReceive = "api.receive"
	// SpanProduce is the produce of a command, until Kafka acknowledged
	// it (acks=all). Its context is the command record's traceparent. The
	// acknowledgement is off the decision's path: the decider may fetch
	// the record before it is back.
	SpanProduce = "command.produce"
	// SpanFetch starts at the command record's timestamp and ends when the
	// decider's poll returned it.
	SpanFetch = "decider.fetch"
	// SpanDecide is the decider's deciding of the transaction's commands
	// (catch-up, Decide, the hash chain, the seals), after the poll.
	SpanDecide = "decider.decide"
	// SpanCommit is the produce of the transaction's records and its
	// commit, until Kafka reported it committed. Its context is the
	// traceparent of the event records it wrote.
	SpanCommit = "decider.commit"
	// SpanApply is a projection batch that applied an event record
	// carrying a traceparent: from the end of the poll to the commit of the
	// Pebble batch, before the waiters are woken.
	SpanApply = "projection.apply"
	// EventWake is when the api's wait for a write's outcome (or a long
	// poll) saw what it waited for.
	EventWake = "api.wake"
	// EventRespond is when the api began writing the answer.
	EventRespond = "api.respond"
)

// Instrumentation is the name of Assent's tracer.
const Instrumentation = "github.com/assent-dev/assent"

// EnvHelp is the part of a service's --help that names the environment
// FromEnv and the SDK read.
const EnvHelp = `Tracing (OpenTelemetry, off unless an endpoint is set; docs/architecture.md,
"Tracing"):
  OTEL_EXPORTER_OTLP_ENDPOINT  OTLP/HTTP collector base URL; /v1/traces is
                           appended
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT  the traces URL, used as is (wins)
  OTEL_EXPORTER_OTLP_PROTOCOL  http/protobuf, the only one (or unset)
  OTEL_EXPORTER_OTLP_TRACES_PROTOCOL  the same, for traces
  OTEL_SERVICE_NAME        service.name of the spans (default assent-api,
                           assent-decider: assent- and the binary's name)
  OTEL_SDK_DISABLED        true turns tracing off
  OTEL_TRACES_EXPORTER     otlp (default) or none (off)
  The SDK reads the rest: OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG,
  OTEL_BSP_*, OTEL_EXPORTER_OTLP_HEADERS, OTEL_EXPORTER_OTLP_TIMEOUT.
`

// Settings are the tracing settings read from the standard OpenTelemetry
// environment.
type Settings struct {
	// Endpoint is the OTLP/HTTP traces URL; empty means tracing is off.
	Endpoint string
	// ServiceName is OTEL_SERVICE_NAME, if set.
	ServiceName string
}

// Enabled reports whether the settings turn tracing on.
func (s Settings) Enabled() bool { return s.Endpoint != "" }

// FromEnv reads the settings: OTEL_SDK_DISABLED=true or
// OTEL_TRACES_EXPORTER=none turn tracing off; otherwise
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (used as it is) or
// OTEL_EXPORTER_OTLP_ENDPOINT (with /v1/traces appended) turns it on.
// The rest of the OTEL_ environment (OTEL_EXPORTER_OTLP_HEADERS,
// OTEL_TRACES_SAMPLER, OTEL_BSP_*) is read by the OpenTelemetry SDK.
func FromEnv(getenv func(string) string) (Settings, error) {
	s := Settings{ServiceName: strings.TrimSpace(getenv("OTEL_SERVICE_NAME"))}
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return s, nil
	}
	if exp := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")); exp != "" && exp != "otlp" {
		if exp == "none" {
			return s, nil
		}
		return s, fmt.Errorf("tracing: OTEL_TRACES_EXPORTER=%q: only otlp (over HTTP) and none are supported", exp)
	}
	if p := strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")); p == "" {
		if p = strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_PROTOCOL")); p != "" && p != "http/protobuf" {
			return s, fmt.Errorf("tracing: OTEL_EXPORTER_OTLP_PROTOCOL=%q: only http/protobuf is supported", p)
		}
	} else if p != "http/protobuf" {
		return s, fmt.Errorf("tracing: OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=%q: only http/protobuf is supported", p)
	}
	name, raw := "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
	signal := false
	if raw == "" {
		name, raw, signal = "OTEL_EXPORTER_OTLP_ENDPOINT", strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_ENDPOINT")), true
	}
	if raw == "" {
		return s, nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		// The value is not echoed: a URL may carry a credential.
		return s, fmt.Errorf("tracing: %s is not an http(s) URL with a host and no user info", name)
	}
	if signal {
		u.Path = strings.TrimSuffix(u.Path, "/") + "/v1/traces"
	}
	s.Endpoint = u.String()
	return s, nil
}

// Provider is a service's tracer provider: the SDK's when tracing is on,
// else a no-op one.
type Provider struct {
	trace.TracerProvider
	sdk *sdktrace.TracerProvider
}

// Enabled reports whether spans are recorded and exported.
func (p *Provider) Enabled() bool { return p.sdk != nil }

// Tracer returns Assent's tracer, or nil when tracing is off: the
// components treat a nil tracer as off and skip even the header parsing.
func (p *Provider) Tracer() trace.Tracer {
	if p.sdk == nil {
		return nil
	}
	return p.TracerProvider.Tracer(Instrumentation)
}

// ShutdownTimeout bounds the flush of the spans still queued at shutdown.
const ShutdownTimeout = 5 * time.Second

// Shutdown flushes the queued spans, within ShutdownTimeout, and stops
// the exporter. A no-op provider has nothing to do.
func (p *Provider) Shutdown(ctx context.Context) error {
	if p.sdk == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownTimeout)
	defer cancel()
	if err := p.sdk.Shutdown(ctx); err != nil {
		return fmt.Errorf("tracing: shutdown: %w", err)
	}
	return nil
}

// errorLog is where the SDK's errors go (its error handler is global to
// the process): the last service logger Setup was given.
var errorLog atomic.Pointer[slog.Logger]

// exportErrors counts the errors the SDK reported: failed exports, most
// of them (a collector down, refusing, or too slow), and spans dropped
// from a full queue.
var exportErrors atomic.Int64

// ExportErrors is how many errors the OpenTelemetry SDK has reported in
// this process (assent_tracing_export_errors_total).
func ExportErrors() int64 { return exportErrors.Load() }

// RegisterMetrics registers assent_tracing_export_errors_total, which
// alert AssentTracingExportFailing watches (docs/runbook.md).
func RegisterMetrics(reg prometheus.Registerer) {
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "assent_tracing_export_errors_total",
		Help: "Errors the OpenTelemetry SDK reported: spans not exported to the OTLP endpoint (collector down, refusing or slow) or dropped. Always 0 while tracing is off.",
	}, func() float64 { return float64(exportErrors.Load()) }))
}

func init() {
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		exportErrors.Add(1)
		if l := errorLog.Load(); l != nil {
			l.Warn("tracing: the OpenTelemetry SDK reports an error (spans may be dropped)", "err", err)
		}
	}))
}

// Setup returns the service's provider: a no-op one unless s is enabled;
// otherwise an OTLP/HTTP exporter to s.Endpoint behind a batch span
// processor (bounded queue, OTEL_BSP_* from the environment), with the
// resource attributes service.name (s.ServiceName, else service) and
// service.instance.id (instance). Export errors go to log; the exporter's
// headers (OTEL_EXPORTER_OTLP_HEADERS, which may carry a credential) are
// never logged.
func Setup(ctx context.Context, s Settings, service, instance string, log *slog.Logger) (*Provider, error) {
	if !s.Enabled() {
		return &Provider{TracerProvider: noop.NewTracerProvider()}, nil
	}
	if log != nil {
		errorLog.Store(log)
	}
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(s.Endpoint))
	if err != nil {
		return nil, fmt.Errorf("tracing: the OTLP exporter: %w", err)
	}
	name := s.ServiceName
	if name == "" {
		name = service
	}
	if name == "" {
		return nil, errors.New("tracing: no service name")
	}
	res := resource.NewSchemaless(attribute.String("service.name", name), attribute.String("service.instance.id", instance))
	// No sampler option: the SDK's default reads OTEL_TRACES_SAMPLER
	// (parentbased_always_on when unset).
	sdk := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	if log != nil {
		u, _ := url.Parse(s.Endpoint)
		log.Info("tracing on: exporting spans over OTLP/HTTP", "endpoint_host", u.Host)
	}
	return &Provider{TracerProvider: sdk, sdk: sdk}, nil
}

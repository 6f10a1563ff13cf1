// Package tracing is Assent's OpenTelemetry tracing: the per-hop
// breakdown of a decision (docs/architecture.md, "Tracing").
//
// # Off unless configured
//
// Setup builds a tracer provider only when the standard OTLP environment
// names an endpoint (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else
// OTEL_EXPORTER_OTLP_ENDPOINT). Otherwise it returns a no-op provider:
// no exporter, no goroutine, and every span call is a no-op. Components
// take a trace.Tracer and treat nil as off, so that a service without
// tracing does not even parse trace headers.
//
// # Where the context travels
//
// The W3C traceparent (and tracestate) travels in HTTP headers and in
// Kafka record headers, never in the record values: the values are the
// hash-chained, signed CloudEvents (docs/architecture.md, "The hash chain",
// "Authenticated commands"), and neither a command's signature nor an
// event's hash covers or depends on a header. A header comes from outside
// and is untrusted: Extract reads it only if it appears once, is within
// its bound, and parses strictly as W3C trace context; anything else is
// ignored, as if there were no header. It never changes what is decided.
//
// # The hops
//
// The span and event names are stable (the benchmark joins on them); see
// the constants below and docs/architecture.md, "Tracing".
package tracing

package tracing

import (
	"context"
	"net/http"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/assent-dev/assent/libs/wire"
)

// The W3C trace context headers, as Kafka record headers and HTTP headers.
const (
	HeaderTraceparent = "traceparent"
	HeaderTracestate  = "tracestate"
)

// The bounds of a header read. A version-00 traceparent is 55 bytes; a
// later version may append fields, which are ignored, up to this bound.
// W3C bounds a tracestate to 32 members of at most 256 bytes each, and
// asks a reader to propagate at least 512 bytes of it.
const (
	MaxTraceparent = 128
	MaxTracestate  = 512
)

var propagator = propagation.TraceContext{}

// extract reads a span context from values (every value of a header, by
// its lower-case key): a traceparent that appears once and within its
// bound, and parses strictly; and a tracestate on the same terms, or none.
// Anything else leaves ctx as it is.
func extract(ctx context.Context, values func(key string) []string) context.Context {
	tp := values(HeaderTraceparent)
	if len(tp) != 1 || len(tp[0]) > MaxTraceparent {
		return ctx
	}
	mc := propagation.MapCarrier{HeaderTraceparent: tp[0]}
	if ts := values(HeaderTracestate); len(ts) == 1 && len(ts[0]) <= MaxTracestate {
		mc[HeaderTracestate] = ts[0]
	}
	return propagator.Extract(ctx, mc)
}

// inject returns the trace context headers of ctx's span, in order; none
// if it has no valid span context.
func inject(ctx context.Context) [][2]string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return nil
	}
	mc := propagation.MapCarrier{}
	propagator.Inject(ctx, mc)
	var out [][2]string
	for _, k := range []string{HeaderTraceparent, HeaderTracestate} {
		if v, ok := mc[k]; ok && v != "" {
			out = append(out, [2]string{k, v})
		}
	}
	return out
}

// RecordHeaders returns the Kafka record headers that carry the span
// context of ctx: traceparent, and tracestate if any. None without one.
func RecordHeaders(ctx context.Context) []kgo.RecordHeader {
	hs := inject(ctx)
	if len(hs) == 0 {
		return nil
	}
	out := make([]kgo.RecordHeader, len(hs))
	for i, h := range hs {
		out[i] = kgo.RecordHeader{Key: h[0], Value: []byte(h[1])}
	}
	return out
}

// FromRecord returns ctx with the remote span context a Kafka record's
// headers carry, or ctx itself if they carry none that is valid (see
// extract).
func FromRecord(ctx context.Context, r *kgo.Record) context.Context {
	return extract(ctx, func(key string) []string {
		var vs []string
		for _, h := range r.Headers {
			if h.Key == key {
				vs = append(vs, string(h.Value))
			}
		}
		return vs
	})
}

// FromWire is FromRecord for a record as package wire has it.
func FromWire(ctx context.Context, hs []wire.Header) context.Context {
	return extract(ctx, func(key string) []string {
		var vs []string
		for _, h := range hs {
			if h.Key == key {
				vs = append(vs, string(h.Value))
			}
		}
		return vs
	})
}

// HasHeader reports, cheaply, whether hs may carry a trace context, so
// that a reader parses only the records that do.
func HasHeader(hs []wire.Header) bool {
	for _, h := range hs {
		if h.Key == HeaderTraceparent {
			return true
		}
	}
	return false
}

// FromHTTP returns ctx with the remote span context of an HTTP request's
// headers, on the same terms as FromRecord.
func FromHTTP(ctx context.Context, h http.Header) context.Context {
	return extract(ctx, func(key string) []string { return h.Values(key) })
}

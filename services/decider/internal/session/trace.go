package session

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/assent-dev/assent/libs/tracing"
)

// maxTracedCommands bounds the commands of one transaction that get spans
// (tracing is sampled; a larger poll traces its first ones).
const maxTracedCommands = 256

// txnTrace is the tracing of one transaction: for each traced command,
// its fetch span (ended), then its decide span, then its commit span,
// which stays open until the transaction ends. Its zero value (tracing
// off, or no traced command) does nothing.
type txnTrace struct {
	tracer  trace.Tracer
	fetched []context.Context // the fetch span of each traced command
	rids    []string          // its request id
	commits []trace.Span
	// headers are the trace context headers of each request's event
	// records: its last traced command's commit span.
	headers map[string][]kgo.RecordHeader
}

// traceFetched records the fetch spans of the records that carry a trace
// context: from the record's timestamp (when its producer made it) to
// fetched (when the poll returned it). A header that does not parse is
// ignored (tracing.FromRecord): it never changes what is decided.
func (l *Loop) traceFetched(ctx context.Context, records []*kgo.Record, fetched time.Time) *txnTrace {
	t := &txnTrace{tracer: l.cfg.Tracer}
	if t.tracer == nil {
		return t
	}
	for _, rec := range records {
		if len(t.fetched) == maxTracedCommands {
			break
		}
		if !hasTraceparent(rec) {
			continue
		}
		rctx := tracing.FromRecord(context.WithoutCancel(ctx), rec)
		if !trace.SpanContextFromContext(rctx).IsValid() {
			continue
		}
		start := rec.Timestamp
		if start.IsZero() || start.After(fetched) {
			start = fetched
		}
		fctx, span := t.tracer.Start(rctx, tracing.SpanFetch, trace.WithSpanKind(trace.SpanKindConsumer), trace.WithTimestamp(start),
			trace.WithAttributes(attribute.String("messaging.destination.name", rec.Topic), attribute.Int("messaging.destination.partition.id", int(rec.Partition)),
				attribute.Int64("messaging.kafka.offset", rec.Offset), attribute.String("assent.request_id", string(rec.Key))))
		span.End(trace.WithTimestamp(fetched))
		t.fetched = append(t.fetched, fctx)
		t.rids = append(t.rids, string(rec.Key))
	}
	return t
}

func hasTraceparent(rec *kgo.Record) bool {
	for _, h := range rec.Headers {
		if h.Key == tracing.HeaderTraceparent {
			return true
		}
	}
	return false
}

// decided records each traced command's decide span (began to now) and
// starts its commit span, whose context the event records carry.
func (t *txnTrace) decided(began, now time.Time) {
	if len(t.fetched) == 0 {
		return
	}
	t.headers = make(map[string][]kgo.RecordHeader, len(t.fetched))
	for i, fctx := range t.fetched {
		_, d := t.tracer.Start(fctx, tracing.SpanDecide, trace.WithTimestamp(began))
		d.End(trace.WithTimestamp(now))
		cctx, c := t.tracer.Start(fctx, tracing.SpanCommit, trace.WithSpanKind(trace.SpanKindProducer), trace.WithTimestamp(now))
		t.commits = append(t.commits, c)
		t.headers[t.rids[i]] = tracing.RecordHeaders(cctx)
	}
}

// ended ends the commit spans with the transaction's outcome.
func (t *txnTrace) ended(committed bool, err error) {
	for _, c := range t.commits {
		c.SetAttributes(attribute.Bool("assent.committed", committed))
		switch {
		case err != nil:
			c.SetStatus(codes.Error, "the transaction did not end")
		case !committed:
			c.SetStatus(codes.Error, "the transaction aborted")
		}
		c.End()
	}
}

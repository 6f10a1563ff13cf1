package command

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/codec"
	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/tracing"
	"github.com/assent-dev/assent/libs/wire"
)

// ErrOutcomeUnknown wraps the error of a send that failed after the
// command was handed to the sender. Such a send may still have written the
// record: Kafka may have appended it and lost the acknowledgement on its
// way back (a connection cut, a leader change, the caller's context ending
// while the produce was in flight). A writer that gets it must not say
// "nothing happened": only a retry of the same command id (which the
// decider dedupes, I2 in docs/architecture.md), or the command's outcome
// in the log, settles it.
var ErrOutcomeUnknown = errors.New("command: the send failed; the command may or may not be in the log")

// Sender makes a command durable: it returns nil only once Kafka has
// acknowledged the record with acks=all (I1). An error does not mean the
// record was not written (see ErrOutcomeUnknown).
type Sender interface {
	Send(ctx context.Context, env wire.Envelope) error
}

// Kafka is the Sender of every service: it signs each command with the
// service's key and produces it to the commands topic with the eventlog
// client's guarantees (acks=all, idempotent, the murmur2 partitioner keyed
// by request id).
type Kafka struct {
	Client *kgo.Client
	Topic  string
	// Signer is the service's command key (see wire.SignCommand); the
	// decider refuses, as unauthenticated, a command it did not sign.
	// Required: Send refuses to produce an unsigned command.
	Signer *wire.Signer
	// Observe, if set, receives each produce's duration and error.
	Observe func(took time.Duration, err error)
	// Tracer, if set, records each produce as a tracing.SpanProduce span,
	// a child of ctx's span, and puts that span's W3C trace context in the
	// record's headers (never in its value, which the signature covers;
	// docs/architecture.md, "Tracing"). Nil: no span, no header.
	Tracer trace.Tracer
}

// Send signs env, produces it and waits for Kafka's acknowledgement.
func (k Kafka) Send(ctx context.Context, env wire.Envelope) error {
	env, err := wire.SignCommand(k.Signer, env)
	if err != nil {
		return err
	}
	var headers []kgo.RecordHeader
	var span trace.Span
	if k.Tracer != nil {
		ctx, span = k.Tracer.Start(ctx, tracing.SpanProduce, trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(attribute.String("messaging.destination.name", k.Topic), attribute.String("assent.request_id", env.Subject),
				attribute.String("assent.command_id", env.ID), attribute.String("assent.type", env.Type)))
		headers = tracing.RecordHeaders(ctx)
	}
	began := time.Now()
	err = eventlog.Produce(ctx, k.Client, k.Topic, env, headers...)
	if k.Observe != nil {
		k.Observe(time.Since(began), err)
	}
	if span != nil {
		if err != nil {
			span.SetStatus(codes.Error, "produce failed")
		}
		span.End()
	}
	return err
}

// Ping reports whether the brokers answer, within ctx.
func (k Kafka) Ping(ctx context.Context) error {
	if err := k.Client.Ping(ctx); err != nil {
		return fmt.Errorf("kafka is unreachable: %w", err)
	}
	return nil
}

// Writer writes the commands of one source.
type Writer struct {
	Source string
	Sender Sender
	Now    func() time.Time // default time.Now
}

// New builds a command stamped with the writer's clock.
func (w Writer) New(id, rid, actor string, body approval.CommandBody) approval.Command {
	now := time.Now
	if w.Now != nil {
		now = w.Now
	}
	return approval.Command{ID: id, RequestID: rid, Actor: actor, Time: now().UTC(), Body: body}
}

// Send wraps the command in its envelope and sends it. Run Preflight
// first, where a refusal should be told before anything else. A failed
// send wraps ErrOutcomeUnknown and the sender's error; a command that
// cannot be encoded is never sent, and its error does not wrap
// ErrOutcomeUnknown.
func (w Writer) Send(ctx context.Context, c approval.Command) error {
	env, err := codec.CommandEnvelope(c, w.Source)
	if err != nil {
		return fmt.Errorf("command: %w", err)
	}
	if err := w.Sender.Send(ctx, env); err != nil {
		if errors.Is(err, wire.ErrNoCommandKey) {
			return fmt.Errorf("command: %w", err) // nothing was sent
		}
		return fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
	}
	return nil
}

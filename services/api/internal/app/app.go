package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/command"
	"github.com/assent-dev/assent/libs/projection/requests"
	"github.com/assent-dev/assent/libs/tracing"
)

// Source is the CloudEvents source of every command the api writes.
const Source = command.SourceAPI

// The errors App returns besides *approval.Refusal, which carries a reason
// code and is the caller's to fix, and *KeyReusedError.
var (
	// ErrOutcomeUnknown wraps a send that Kafka did not acknowledge (it
	// also wraps command.ErrOutcomeUnknown and the cause). The command may
	// be in the log anyway, so the write's outcome is unknown; the Result
	// returned with it names the request and the command, which a retry
	// must repeat: with the same Idempotency-Key it is the same command,
	// which the decider decides at most once (I2).
	ErrOutcomeUnknown = errors.New("app: Kafka did not acknowledge the command; it may or may not be in the log")
	// ErrNotReady means the projection has not caught up with the log yet,
	// so neither reads nor write outcomes can be trusted.
	ErrNotReady = errors.New("app: the projection is catching up with the event log")
)

// KeyReusedError refuses a write whose Idempotency-Key names a command
// that was accepted with another body: the key was reused for another
// intention. It is the client's bug, and no command is written for it.
type KeyReusedError struct {
	Detail string
}

func (e *KeyReusedError) Error() string { return "app: Idempotency-Key reused: " + e.Detail }

// Sender makes a command durable (command.Kafka in production).
type Sender = command.Sender

// Projection is what App needs of the projection runner.
type Projection interface {
	Ready() bool
	// Watch returns a channel closed after the next batch that applies an
	// event about subject; stop releases it.
	Watch(subject string) (woken <-chan struct{}, stop func())
}

// Store is what App reads from the request projection.
type Store interface {
	Get(rid string) (approval.State, bool, error)
	History(rid string) ([]requests.Stored, error)
	List(f requests.Filter) (requests.Page, error)
}

// Config is App's dependencies and settings.
type Config struct {
	Sender     Sender
	Projection Projection
	Store      Store
	WriteWait  time.Duration    // how long a write waits for its outcome
	Now        func() time.Time // default time.Now
	// Done, when closed, ends every wait at once (shutdown): writes report
	// a timeout (their commands are durable) and long polls answer with
	// what they have.
	Done <-chan struct{}
	// ObserveSend and ObserveWait, if set, receive timings for metrics.
	// outcome is "accepted", "refused" or "timeout".
	ObserveSend func(d time.Duration, err error)
	ObserveWait func(commandType, outcome string, d time.Duration)
}

// App runs the api's use cases.
type App struct {
	cfg Config
}

// New returns an App.
func New(cfg Config) *App {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.WriteWait <= 0 {
		cfg.WriteWait = 5 * time.Second
	}
	return &App{cfg: cfg}
}

// Result is the outcome of a write.
type Result struct {
	RequestID string
	CommandID string
	// State is the request as the projection shows it once the outcome
	// appeared. It is zero when TimedOut.
	State approval.State
	// TimedOut is set when the outcome did not appear within the write
	// wait. The command is durable and will be decided.
	TimedOut bool
	// Written is set when the command is in the log: Kafka acknowledged it
	// now, or its outcome was already recorded (an Idempotency-Key retry).
	// It is false for an identical resubmit answered from the projection,
	// and for a write refused before it was sent.
	Written bool
}

// write answers from the projection if it can, else sends the command and
// waits for its outcome.
func (a *App) write(ctx context.Context, c approval.Command, done command.Settled) (Result, error) {
	res := Result{RequestID: c.RequestID, CommandID: c.ID}
	typ := c.Body.CommandType()
	st, _, err := a.cfg.Store.Get(c.RequestID)
	if err != nil {
		return res, err
	}
	if ok, refusal := done(st); ok {
		_, res.Written = st.Outcomes[c.ID]
		res.State = st
		return res, refusal
	}

	began := time.Now()
	err = command.Writer{Source: Source, Sender: a.cfg.Sender}.Send(ctx, c)
	if a.cfg.ObserveSend != nil && (err == nil || errors.Is(err, command.ErrOutcomeUnknown)) {
		a.cfg.ObserveSend(time.Since(began), err)
	}
	if errors.Is(err, command.ErrOutcomeUnknown) {
		return res, fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
	}
	if err != nil {
		return res, err // never sent: a bug
	}
	res.Written = true

	began = time.Now()
	timer := time.NewTimer(a.cfg.WriteWait)
	defer timer.Stop()
	st, timedOut, refusal, err := command.Await(ctx, projectionView{a.cfg.Projection, a.cfg.Store}, c.RequestID, timer.C, a.cfg.Done, done)
	if err != nil {
		return res, err
	}
	if !timedOut {
		// The hop after the projection's apply (docs/architecture.md,
		// "Tracing"); a no-op without a span.
		trace.SpanFromContext(ctx).AddEvent(tracing.EventWake)
	}
	outcome := "accepted"
	switch {
	case timedOut:
		outcome = "timeout"
	case refusal != nil:
		outcome = "refused"
	}
	if a.cfg.ObserveWait != nil {
		a.cfg.ObserveWait(typ, outcome, time.Since(began))
	}
	res.State, res.TimedOut = st, timedOut
	return res, refusal
}

// ready fails when the projection cannot be trusted yet.
func (a *App) ready() error {
	if !a.cfg.Projection.Ready() {
		return ErrNotReady
	}
	return nil
}

// refuse builds a refusal made by the api itself, before any command.
func refuse(code approval.ReasonCode, format string, args ...any) *approval.Refusal {
	return &approval.Refusal{Code: code, Detail: fmt.Sprintf(format, args...)}
}

// projectionView is the projection and the store as command.Await reads
// them.
type projectionView struct {
	Projection
	Store
}

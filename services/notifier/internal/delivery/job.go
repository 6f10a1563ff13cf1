package delivery

import (
	"context"
	"time"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/services/notifier/internal/queue"
)

// Job is one attempt at one delivery.
type Job struct {
	queue.Entry
	Event []byte         // the event's record value, as stored in the log
	State approval.State // the request as the projection has it now
	// Attempt counts from 1 within this replica.
	Attempt int
}

// Verdict is what an attempt's outcome means for the delivery.
type Verdict int

// The verdicts.
const (
	Delivered Verdict = iota // the receiver accepted it
	Retry                    // a transient failure: try again later
	Permanent                // the receiver refused it for good: dead letter
)

// Result is the outcome of one attempt.
type Result struct {
	Verdict Verdict
	// Status is the receiver's HTTP status or SMTP code, 0 if none came.
	Status int
	// RetryAfter is the wait the receiver asked for (Retry-After), if any.
	RetryAfter time.Duration
	// Reason says what happened, bounded and safe to log and record: it
	// never holds a secret.
	Reason string
	// TimedOut is set when the attempt ran out of time: the receiver may
	// have the event, so the retry may be a duplicate (with the same id).
	TimedOut bool
	// RateLimited is set for a 429: the receiver is alive but busy, which
	// slows the target instead of tripping its circuit breaker.
	RateLimited bool
}

// Sender makes one attempt at a job.
type Sender interface {
	Send(ctx context.Context, j Job) Result
}

package assent

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Code is a reason code: why Assent refused a command. The codes are a
// stable API, the same in problem details, in command.rejected events and
// in Slack replies; branch on them, never on Detail.
type Code string

// The reason codes of docs/architecture.md and schemas/openapi.yaml, with their HTTP status.
const (
	CodeUnauthenticated Code = "unauthenticated" // 401: the token is missing or unknown
	CodeForbidden       Code = "forbidden"       // 403: the caller may not do this
	CodeInvalid         Code = "invalid"         // 422 (400 if unparseable): the request breaks the contract
	CodeNoPolicy        Code = "no_policy"       // 422: no policy matches the action
	CodeNotFound        Code = "not_found"       // 404: no such request
	CodeNotEligible     Code = "not_eligible"    // 403: the voter is not an approver under the snapshot
	CodeSelfApproval    Code = "self_approval"   // 403: the voter is the requester
	CodeDuplicateVote   Code = "duplicate_vote"  // 409: the voter has voted already
	CodeAlreadyDecided  Code = "already_decided" // 409: the request is no longer pending
	CodeConflict        Code = "conflict"        // 409: the request id exists with other content
	CodeExpired         Code = "expired"         // 409: its time ran out first
)

// The codes only the HTTP API answers; no command.rejected event carries
// them.
const (
	// CodeIdempotencyKeyReused (422): the Idempotency-Key names a vote or
	// cancel that was accepted with another body. A bug in the caller:
	// use a new key for a new intention.
	CodeIdempotencyKeyReused Code = "idempotency_key_reused"
	// CodeOutcomeUnknown (503): Kafka did not acknowledge the write's
	// command, which may or may not be in the log. Not a refusal: the
	// client retries it with the same request id and Idempotency-Key,
	// which name the same command, decided at most once; if it gives up,
	// the error is an *OutcomeUnknownError that says what to repeat.
	CodeOutcomeUnknown Code = "outcome_unknown"
	// CodeWritesUnavailable (503): the replica cannot reach Kafka now, so
	// it sent nothing. The client retries it (on another replica, if it
	// has several); giving up on it is not an unknown outcome.
	CodeWritesUnavailable Code = "writes_unavailable"
	// CodeRateLimited (429): the caller is over one of its limits on the
	// replica (its write rate, or the long polls it may hold); nothing was
	// sent. The client retries it after Retry-After.
	CodeRateLimited Code = "rate_limited"
)

// statusOf is the HTTP status openapi.yaml gives a code.
func statusOf(c Code) int {
	switch c {
	case CodeUnauthenticated:
		return http.StatusUnauthorized
	case CodeForbidden, CodeNotEligible, CodeSelfApproval:
		return http.StatusForbidden
	case CodeNotFound:
		return http.StatusNotFound
	case CodeDuplicateVote, CodeAlreadyDecided, CodeConflict, CodeExpired:
		return http.StatusConflict
	case CodeInvalid, CodeNoPolicy, CodeIdempotencyKeyReused:
		return http.StatusUnprocessableEntity
	case CodeOutcomeUnknown, CodeWritesUnavailable:
		return http.StatusServiceUnavailable
	case CodeRateLimited:
		return http.StatusTooManyRequests
	default:
		return http.StatusUnprocessableEntity
	}
}

// Problem is an RFC 9457 problem detail, as every error response of the
// API carries it. It is an error: use errors.As to get it, or IsCode and
// CodeOf to branch on its Code.
//
// A Problem with a Code is a refusal: retrying the same call gets the same
// answer; except CodeOutcomeUnknown (503), which the client retries. A
// Problem without a Code (a 5xx) is a failure to record or answer, which
// the client has already retried as far as it was allowed.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	Code     Code   `json:"code,omitempty"`
	// RequestID and CommandID name the write of a CodeOutcomeUnknown
	// problem: the request (for a submit, the id it was sent with) and
	// the command that may be in the log.
	RequestID string `json:"request_id,omitempty"`
	CommandID string `json:"command_id,omitempty"`

	// RetryAfter is the response's Retry-After, if it had one.
	RetryAfter time.Duration `json:"-"`
}

func (p *Problem) Error() string {
	msg := p.Detail
	if msg == "" {
		msg = p.Title
	}
	if p.Code != "" {
		return fmt.Sprintf("assent: %d %s: %s", p.Status, p.Code, msg)
	}
	return fmt.Sprintf("assent: %d: %s", p.Status, msg)
}

// problemTypeBase prefixes a refusal's problem type; the code is the
// fragment, as the api writes it.
const problemTypeBase = "https://github.com/assent-dev/assent/blob/main/schemas/README.md#"

// NewRefusal returns the Problem for a refusal that did not come over
// HTTP, such as a command.rejected event read from Kafka, with the status
// the HTTP API would have given it, so that the same error handling works
// for both transports.
func NewRefusal(code Code, detail string) *Problem {
	return &Problem{
		Type:   problemTypeBase + string(code),
		Title:  string(code),
		Status: statusOf(code),
		Detail: detail,
		Code:   code,
	}
}

// CodeOf returns the reason code of the *Problem in err's chain, or "" if
// there is none (a network error, a 5xx, a context error).
func CodeOf(err error) Code {
	var p *Problem
	if errors.As(err, &p) {
		return p.Code
	}
	return ""
}

// IsCode reports whether err is, or wraps, a *Problem with the code:
//
//	if assent.IsCode(err, assent.CodeNoPolicy) { ... }
func IsCode(err error, code Code) bool {
	return err != nil && CodeOf(err) == code
}

// OutcomeUnknownError is the error of a write (Submit, Vote, Cancel, and
// RequestApproval's submit) that the client gave up on, its attempts or
// its context spent, after an attempt that may have taken effect: one
// answered 503 (CodeOutcomeUnknown: Kafka did not acknowledge the command),
// 502 or 504, or a connection lost after the request was sent. The write
// may or may not have happened. Repeat it with the same RequestID and
// IdempotencyKey (SubmitRequest, VoteRequest or CancelRequest fields):
// that names the same command, which Assent decides at most once, and the
// answer is its outcome. A new call without them could be a second
// request.
//
// It wraps the last failure, so IsCode, errors.As(err, &*Problem) and
// errors.Is(err, context.DeadlineExceeded) still see it.
type OutcomeUnknownError struct {
	// RequestID is the request the write is about: a vote's or cancel's,
	// or the id the submit was sent with (the client's UUIDv7 if the
	// caller set none).
	RequestID string
	// IdempotencyKey is the key every attempt carried.
	IdempotencyKey string
	// CommandID is the command that may be in the log, when a server
	// named it (CodeOutcomeUnknown); look for it in Client.Events.
	CommandID string
	// Err is the last failure.
	Err error
}

func (e *OutcomeUnknownError) Error() string {
	return fmt.Sprintf("assent: the outcome is unknown (the write may or may not have happened); repeat it with request id %s and Idempotency-Key %q: %v",
		e.RequestID, e.IdempotencyKey, e.Err)
}

func (e *OutcomeUnknownError) Unwrap() error { return e.Err }

// ErrPending is wrapped by the error of RequestApproval and of the Kafka
// transport's waits when the context ended while the request was still
// pending. The request is neither approved nor refused: the caller must not
// proceed. The error also wraps the context's error.
var ErrPending = errors.New("assent: the request is still pending")

// pendingError reports a wait that ended before the decision.
func pendingError(id string, cause error) error {
	return fmt.Errorf("%w: request %s: %w", ErrPending, id, cause)
}

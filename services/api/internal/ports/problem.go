package ports

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/services/api/internal/app"
)

// ProblemContentType is the media type of every error response.
const ProblemContentType = "application/problem+json"

// problemTypeBase is the prefix of a refusal's problem type; the reason
// code is the fragment.
const problemTypeBase = "https://github.com/assent-dev/assent/blob/main/schemas/README.md#"

// Problem is an RFC 9457 problem detail. It is also an error, so that a
// handler can return one.
type Problem struct {
	Type     string              `json:"type"`
	Title    string              `json:"title"`
	Status   int                 `json:"status"`
	Detail   string              `json:"detail,omitempty"`
	Instance string              `json:"instance,omitempty"`
	Code     approval.ReasonCode `json:"code,omitempty"`
	// RequestID and CommandID name the write of an outcome_unknown
	// problem: what a retry repeats, and where to look the outcome up.
	RequestID string `json:"request_id,omitempty"`
	CommandID string `json:"command_id,omitempty"`

	header http.Header // extra response headers
}

// The codes only the HTTP API answers. They are not approval.ReasonCodes:
// no command.rejected event carries them, since the decider never sees
// these writes as refused.
const (
	// CodeOutcomeUnknown (503): Kafka did not acknowledge the command, which
	// may or may not be in the log; retry with the same Idempotency-Key or
	// request_id.
	CodeOutcomeUnknown approval.ReasonCode = "outcome_unknown"
	// CodeIdempotencyKeyReused (422): the Idempotency-Key names a command
	// of another body.
	CodeIdempotencyKeyReused approval.ReasonCode = "idempotency_key_reused"
	// CodeWritesUnavailable (503): the replica cannot reach Kafka now, so
	// the write was answered at once and nothing was sent; reads go on.
	CodeWritesUnavailable approval.ReasonCode = "writes_unavailable"
)

func (p *Problem) Error() string { return fmt.Sprintf("%d %s: %s", p.Status, p.Code, p.Detail) }

// titles are the fixed titles of the refusal problem types.
var titles = map[approval.ReasonCode]string{
	approval.ReasonUnauthenticated: "Unauthenticated",
	approval.ReasonForbidden:       "Forbidden",
	approval.ReasonInvalid:         "Invalid request",
	approval.ReasonNoPolicy:        "No policy matches",
	approval.ReasonNotFound:        "No such request",
	approval.ReasonNotEligible:     "Not an eligible approver",
	approval.ReasonSelfApproval:    "Requesters cannot approve their own requests",
	approval.ReasonDuplicateVote:   "Already voted",
	approval.ReasonAlreadyDecided:  "Already decided",
	approval.ReasonConflict:        "The request id is taken",
	approval.ReasonExpired:         "Expired",
	CodeOutcomeUnknown:             "Outcome unknown",
	CodeIdempotencyKeyReused:       "Idempotency-Key reused",
	CodeWritesUnavailable:          "Writes unavailable",
}

// StatusOf is the HTTP status of a reason code.
func StatusOf(code approval.ReasonCode) int {
	switch code {
	case approval.ReasonUnauthenticated:
		return http.StatusUnauthorized
	case approval.ReasonForbidden, approval.ReasonNotEligible, approval.ReasonSelfApproval:
		return http.StatusForbidden
	case approval.ReasonNotFound:
		return http.StatusNotFound
	case approval.ReasonConflict, approval.ReasonDuplicateVote, approval.ReasonAlreadyDecided, approval.ReasonExpired:
		return http.StatusConflict
	case approval.ReasonInvalid, approval.ReasonNoPolicy:
		return http.StatusUnprocessableEntity
	case CodeOutcomeUnknown, CodeWritesUnavailable:
		return http.StatusServiceUnavailable
	case CodeIdempotencyKeyReused:
		return http.StatusUnprocessableEntity
	default:
		return http.StatusUnprocessableEntity
	}
}

// refusal is the problem of a refused command.
func refusal(code approval.ReasonCode, detail string) *Problem {
	title, ok := titles[code]
	if !ok {
		title = string(code)
	}
	return &Problem{Type: problemTypeBase + string(code), Title: title, Status: StatusOf(code), Detail: detail, Code: code}
}

// malformed is a 400: the request could not be parsed.
func malformed(format string, args ...any) *Problem {
	p := refusal(approval.ReasonInvalid, fmt.Sprintf(format, args...))
	p.Status = http.StatusBadRequest
	return p
}

// httpProblem is a problem of the HTTP layer itself, not of a command.
func httpProblem(status int, code approval.ReasonCode, detail string) *Problem {
	return &Problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: detail, Code: code}
}

func unavailable(detail string) *Problem {
	p := httpProblem(http.StatusServiceUnavailable, "", detail)
	p.header = http.Header{"Retry-After": {"1"}}
	return p
}

// outcomeUnknown is the answer to a write whose send Kafka did not
// acknowledge. It cannot say "nothing happened": the command may be in the
// log. It names the request and the command, and the Location to read the
// outcome at; a retry with the same Idempotency-Key (or, for a submit, the
// same request_id and body) is decided at most once.
func outcomeUnknown(rid, cid string) *Problem {
	p := refusal(CodeOutcomeUnknown, "Kafka did not acknowledge the command, so it may or may not be in the log. "+
		"Retry the same request with the same Idempotency-Key (a submit: the same request_id and body): "+
		"it names the same command, which is decided at most once. "+
		"Without a key, a retried vote or cancel is a new command; look for command_id in the request's events first.")
	p.RequestID, p.CommandID = rid, cid
	p.header = http.Header{"Retry-After": {"1"}}
	if rid != "" {
		p.header.Set(echo.HeaderLocation, location(rid))
	}
	return p
}

// writesUnavailableRetry is the Retry-After of a write refused while
// Kafka is away: about the time the replica takes to notice it is back.
const writesUnavailableRetry = "2"

// writesUnavailable is the answer to a write while the replica cannot
// reach Kafka (why): nothing was sent, so a retry, here or on another
// replica, is safe.
func writesUnavailable(why error) *Problem {
	p := refusal(CodeWritesUnavailable, fmt.Sprintf("this replica cannot reach Kafka now (%v), so nothing was sent; "+
		"retry after Retry-After seconds, here or on another replica. Reads go on.", why))
	p.header = http.Header{"Retry-After": {writesUnavailableRetry}}
	return p
}

func unauthenticated(detail, bearerError string) *Problem {
	p := refusal(approval.ReasonUnauthenticated, detail)
	challenge := `Bearer realm="assent"`
	if bearerError != "" {
		challenge += `, error="` + bearerError + `"`
	}
	p.header = http.Header{"Www-Authenticate": {challenge}}
	return p
}

// toProblem maps any error a handler returns to the problem to answer,
// and reports whether the error is a bug.
func toProblem(err error) (p *Problem, bug bool) {
	var (
		r  *approval.Refusal
		kr *app.KeyReusedError
		he *echo.HTTPError
	)
	switch {
	case errors.As(err, &p):
		cp := *p
		return &cp, false
	case errors.As(err, &r):
		return refusal(r.Code, r.Detail), false
	case errors.As(err, &kr):
		return refusal(CodeIdempotencyKeyReused, kr.Detail), false
	case errors.Is(err, app.ErrOutcomeUnknown):
		return outcomeUnknown("", ""), false
	case errors.Is(err, app.ErrNotReady):
		return unavailable("the projection is catching up with the event log; retry later"), false
	case errors.Is(err, app.ErrBadCursor):
		return malformed("cursor: not a cursor this list issued for the same filters"), false
	case errors.As(err, &he):
		return echoProblem(he), false
	default:
		return httpProblem(http.StatusInternalServerError, "", "an internal error occurred; it has been logged"), true
	}
}

// echoProblem maps echo's own errors: unknown routes, wrong methods.
func echoProblem(he *echo.HTTPError) *Problem {
	detail := http.StatusText(he.Code)
	if m, ok := he.Message.(string); ok && m != "" {
		detail = m
	}
	switch {
	case he.Code == http.StatusNotFound:
		return httpProblem(he.Code, approval.ReasonNotFound, "no such route; see schemas/openapi.yaml for HTTP API v1")
	case he.Code == http.StatusMethodNotAllowed:
		return httpProblem(he.Code, approval.ReasonInvalid, "this route does not accept the method; the Allow header lists those it does")
	case he.Code >= 500:
		return httpProblem(he.Code, "", detail)
	default:
		return httpProblem(he.Code, approval.ReasonInvalid, detail)
	}
}

// errorHandler is echo's HTTPErrorHandler: every error becomes a problem.
func errorHandler(log *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		p, bug := toProblem(err)
		if bug {
			log.Error("internal error", "method", c.Request().Method, "path", c.Request().URL.Path, "err", err)
		} else if p.Status >= 500 {
			log.Warn("unavailable", "method", c.Request().Method, "path", c.Request().URL.Path, "err", err)
		}
		p.Instance = c.Request().URL.EscapedPath()
		writeProblem(c, p)
	}
}

func writeProblem(c echo.Context, p *Problem) {
	h := c.Response().Header()
	for k, vs := range p.header {
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(p.Status)
		return
	}
	_ = writeJSON(c, p.Status, ProblemContentType, p)
}

// writeJSON writes v without HTML escaping, so that text reads the same in
// the response as in the log, and raw event bytes pass through unchanged.
func writeJSON(c echo.Context, status int, contentType string, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("ports: encode response: %w", err)
	}
	return c.Blob(status, contentType, buf.Bytes())
}

package ports

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/services/api/internal/app"
)

// HeaderIdempotencyKey names a write so that a retry of it reports the
// first outcome instead of being decided again.
const HeaderIdempotencyKey = "Idempotency-Key"

// HeaderCommandID names the command a write put in the log (the commandid
// of the command record and of the events it caused), so that a client can
// find it in the audit trail. It is absent when no command was
// written: an identical resubmit, or a write refused before it was sent.
const HeaderCommandID = "Assent-Command-Id"

func idempotencyKey(c echo.Context) (string, error) {
	vs := c.Request().Header.Values(HeaderIdempotencyKey)
	switch {
	case len(vs) == 0:
		return "", nil
	case len(vs) > 1:
		return "", malformed("%s is given %d times", HeaderIdempotencyKey, len(vs))
	case !app.ValidIdempotencyKey(vs[0]):
		return "", malformed("%s must be 1 to %d printable ASCII characters", HeaderIdempotencyKey, app.MaxIdempotencyKeyLen)
	}
	return vs[0], nil
}

// answer writes the outcome of a write: the view with status ok, or 202
// when the outcome did not appear in time, or the problem.
func answer(c echo.Context, ok int, res app.Result, err error) error {
	var reused *app.KeyReusedError
	if res.Written && !errors.As(err, &reused) {
		// A reused key's command is another write's, not this one's.
		c.Response().Header().Set(HeaderCommandID, res.CommandID)
	}
	if errors.Is(err, app.ErrOutcomeUnknown) {
		p := outcomeUnknown(res.RequestID, res.CommandID)
		return fmt.Errorf("%w: %w", p, err) // the problem answers; the cause is logged
	}
	if err != nil {
		return err
	}
	if res.TimedOut || ok == http.StatusCreated {
		c.Response().Header().Set(echo.HeaderLocation, location(res.RequestID))
	}
	if res.TimedOut {
		return writeJSON(c, http.StatusAccepted, echo.MIMEApplicationJSON,
			accepted{Status: "accepted", RequestID: res.RequestID, CommandID: res.CommandID})
	}
	return writeJSON(c, ok, echo.MIMEApplicationJSON, viewOf(res.State))
}

type submitBody struct {
	RequestID string          `json:"request_id"`
	Action    approval.Action `json:"action"`
	Reason    string          `json:"reason"`
	Requester string          `json:"requester"`
	TTL       *string         `json:"ttl"`
}

// submit is POST /v1/requests.
func (s *server) submit(c echo.Context) error {
	key, err := idempotencyKey(c)
	if err != nil {
		return err
	}
	var b submitBody
	if err := decodeBody(c, s.cfg.MaxBody, &b, false); err != nil {
		return err
	}
	in := app.SubmitInput{
		RequestID: b.RequestID, Action: b.Action, Reason: b.Reason,
		Requester: b.Requester, IdempotencyKey: key,
	}
	if b.TTL != nil {
		d, err := time.ParseDuration(*b.TTL)
		if err != nil {
			return refusal(approval.ReasonInvalid, "ttl must be a Go duration such as \"15m\" or \"1h30m\", got "+quote(*b.TTL))
		}
		in.TTL = approval.Duration(d)
	}
	res, err := s.cfg.App.Submit(c.Request().Context(), principal(c), in)
	return answer(c, http.StatusCreated, res, err)
}

type voteBody struct {
	Decision approval.VoteDecision `json:"decision"`
	Comment  string                `json:"comment"`
	Voter    string                `json:"voter"`
}

// vote is POST /v1/requests/{id}/votes.
func (s *server) vote(c echo.Context) error {
	key, err := idempotencyKey(c)
	if err != nil {
		return err
	}
	var b voteBody
	if err := decodeBody(c, s.cfg.MaxBody, &b, false); err != nil {
		return err
	}
	res, err := s.cfg.App.Vote(c.Request().Context(), principal(c), app.VoteInput{
		RequestID: pathParam(c, "id"), Decision: b.Decision, Comment: b.Comment,
		Voter: b.Voter, IdempotencyKey: key,
	})
	return answer(c, http.StatusOK, res, err)
}

type cancelBody struct {
	Reason string `json:"reason"`
}

// cancel is POST /v1/requests/{id}/cancel. The body is optional.
func (s *server) cancel(c echo.Context) error {
	key, err := idempotencyKey(c)
	if err != nil {
		return err
	}
	var b cancelBody
	if err := decodeBody(c, s.cfg.MaxBody, &b, true); err != nil {
		return err
	}
	res, err := s.cfg.App.Cancel(c.Request().Context(), principal(c), app.CancelInput{
		RequestID: pathParam(c, "id"), Reason: b.Reason, IdempotencyKey: key,
	})
	return answer(c, http.StatusOK, res, err)
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

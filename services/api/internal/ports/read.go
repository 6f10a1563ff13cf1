package ports

import (
	"bytes"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/daemon"
	"github.com/assent-dev/assent/services/api/internal/app"
)

// get is GET /v1/requests/{id}, with an optional ?wait= long poll.
func (s *server) get(c echo.Context) error {
	var wait time.Duration
	if raw := c.QueryParam("wait"); raw != "" {
		d, err := time.ParseDuration(raw)
		if err != nil || d < 0 {
			return malformed("wait must be a Go duration such as 30s, at most %s, got %s", app.MaxWait, quote(raw))
		}
		wait = d
	}
	id := pathParam(c, "id")
	if wait > 0 {
		release, refusal := s.limits.poll(principal(c).ID)
		if refusal != nil {
			// A request that is already decided needs no wait: answer it.
			if st, err := s.cfg.App.Get(c.Request().Context(), id, 0); err == nil && st.Status.Terminal() {
				return writeJSON(c, http.StatusOK, echo.MIMEApplicationJSON, viewOf(st))
			}
			s.limits.refusedPoll(principal(c).ID, refusal)
			return refusal
		}
		defer release()
		// The answer may come after the server's write timeout.
		_ = daemon.ExtendWrite(c.Response(), min(wait, app.MaxWait)+longPollSlack) // not supported by httptest's recorder
	}
	st, err := s.cfg.App.Get(c.Request().Context(), id, wait)
	if err != nil {
		return err
	}
	return writeJSON(c, http.StatusOK, echo.MIMEApplicationJSON, viewOf(st))
}

// longPollSlack is the time a long poll's answer gets, beyond its wait, to
// be written.
const longPollSlack = 10 * time.Second

type listBody struct {
	Items      []requestView `json:"items"`
	NextCursor string        `json:"next_cursor,omitempty"`
}

// list is GET /v1/requests.
func (s *server) list(c echo.Context) error {
	q := c.QueryParams()
	for name, vs := range q {
		if len(vs) > 1 {
			return malformed("%s is given %d times", name, len(vs))
		}
	}
	var f app.ListInput
	if v := q.Get("status"); v != "" {
		st := approval.Status(v)
		if st == approval.StatusPending || st.Terminal() {
			f.Status = st
		} else {
			return malformed("status must be pending, approved, rejected, expired or cancelled, got %s", quote(v))
		}
	}
	for _, p := range []struct {
		name string
		dst  *string
	}{{"requester", &f.Requester}, {"approver", &f.Approver}} {
		if v := q.Get(p.name); v != "" {
			norm, err := approval.NormalizePrincipal(v)
			if err != nil {
				return malformed("%s must be a principal such as user:alice@example.com, got %s", p.name, quote(v))
			}
			*p.dst = norm
		}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > app.MaxListLimit {
			return malformed("limit must be a whole number from 1 to %d, got %s", app.MaxListLimit, quote(v))
		}
		f.Limit = n
	}
	if v := q.Get("cursor"); v != "" {
		if len(v) > 4096 { // well above the longest key a list can issue
			return malformed("cursor: not a cursor this list issued for the same filters")
		}
		f.Cursor = v
	}
	page, err := s.cfg.App.List(c.Request().Context(), f)
	if err != nil {
		return err
	}
	out := listBody{Items: make([]requestView, 0, len(page.Items)), NextCursor: page.Next}
	for _, st := range page.Items {
		out.Items = append(out.Items, viewOf(st))
	}
	return writeJSON(c, http.StatusOK, echo.MIMEApplicationJSON, out)
}

// history is GET /v1/requests/{id}/events. Each event is the record value
// byte for byte, so that a client can hash it and check the chain.
func (s *server) history(c echo.Context) error {
	events, err := s.cfg.App.History(c.Request().Context(), pathParam(c, "id"))
	if err != nil {
		return err
	}
	var b bytes.Buffer
	b.WriteString(`{"items":[`)
	for i, e := range events {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"partition":`)
		b.WriteString(strconv.FormatInt(int64(e.Partition), 10))
		b.WriteString(`,"offset":`)
		b.WriteString(strconv.FormatInt(e.Offset, 10))
		b.WriteString(`,"event":`)
		b.Write(e.Value)
		b.WriteByte('}')
	}
	b.WriteString("]}\n")
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, b.Bytes())
}

package web

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/command"
	"github.com/assent-dev/assent/libs/wire"
)

// view joins the request runner's Watch and the store's Get, for
// command.Await.
type view struct {
	Watcher
	Store
}

// validNonce accepts what session.RandomToken makes: 43 base64url
// characters.
func validNonce(n string) bool {
	if len(n) != 43 {
		return false
	}
	for i := range len(n) {
		c := n[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

// commandID names a console command after the form it came from: the
// nonce is new with every rendered form, so a double click or a browser's
// resubmission of one form is one command (the decider replays its
// outcome), while a second vote from a fresh page is a second command.
func commandID(kind, actor, rid, decision, nonce string) string {
	if !validNonce(nonce) {
		return wire.NewID(time.Now())
	}
	return wire.DerivedID("assent/console "+kind+" v1", actor, rid, decision, nonce)
}

// refusalStatus is the HTTP status of a refusal, as the api answers it.
func refusalStatus(code approval.ReasonCode) int {
	switch code {
	case approval.ReasonNotFound:
		return http.StatusNotFound
	case approval.ReasonForbidden, approval.ReasonNotEligible, approval.ReasonSelfApproval, approval.ReasonUnauthenticated:
		return http.StatusForbidden
	case approval.ReasonConflict, approval.ReasonDuplicateVote, approval.ReasonAlreadyDecided, approval.ReasonExpired:
		return http.StatusConflict
	case approval.ReasonInvalid, approval.ReasonNoPolicy:
		return http.StatusUnprocessableEntity
	}
	return http.StatusUnprocessableEntity
}

// write sends c through the one command path (command.Writer, the same
// commands as the api) and waits for its outcome in the projection.
// It returns the outcome label and the refusal, if any.
func (s *Server) write(ctx context.Context, c approval.Command, settled command.Settled) (string, error) {
	kind := "vote"
	if _, ok := c.Body.(approval.Cancel); ok {
		kind = "cancel"
	}
	count := func(outcome string) { s.cfg.Metrics.Commands.WithLabelValues(kind, outcome).Inc() }
	st, _, err := s.cfg.Store.Get(c.RequestID)
	if err != nil {
		return "", err
	}
	if done, refusal := settled(st); done {
		// The same form was sent before: its outcome is already known.
		if refusal != nil {
			count("refused")
			return "refused", refusal
		}
		count("accepted")
		return "accepted", nil
	}
	if err := (command.Writer{Source: Source, Sender: s.cfg.Sender}).Send(ctx, c); err != nil {
		s.cfg.Metrics.SendErrors.Inc()
		count("unavailable")
		s.cfg.Logger.Error("command not durable", "command", kind, "request", c.RequestID, "err", err)
		return "unavailable", err
	}
	timer := time.NewTimer(s.cfg.WriteWait)
	defer timer.Stop()
	_, timedOut, refusal, err := command.Await(ctx, view{s.cfg.Projection, s.cfg.Store}, c.RequestID, timer.C, s.cfg.Done, settled)
	switch {
	case err != nil:
		return "", err
	case timedOut:
		count("timeout")
		return "timeout", nil
	case refusal != nil:
		count("refused")
		return "refused", refusal
	}
	count("accepted")
	return "accepted", nil
}

func (s *Server) vote(w http.ResponseWriter, r *http.Request, v *viewer) {
	if !s.ready(w, r) {
		return
	}
	rid := r.PathValue("id")
	if !validRequestID(rid) {
		s.fail(w, r, http.StatusNotFound, "No such request", "There is no request with this id, or you may not see it.")
		return
	}
	d, err := s.requestData(v, rid)
	if errors.Is(err, errNotFound) {
		s.fail(w, r, http.StatusNotFound, "No such request", "There is no request with this id, or you may not see it.")
		return
	}
	if err != nil {
		s.internal(w, r, err)
		return
	}
	f := r.PostForm
	decision := approval.VoteDecision(f.Get("decision"))
	comment := strings.TrimSpace(f.Get("comment"))
	d.Comment = comment
	formError := func(status int, msg string) {
		d.VoteError = msg
		s.showRequest(w, r, v, status, d)
	}
	switch {
	case decision != approval.Approve && decision != approval.Reject:
		formError(http.StatusUnprocessableEntity, "Choose Approve or Reject.")
		return
	case decision == approval.Reject && comment == "":
		formError(http.StatusUnprocessableEntity, "A rejection needs a comment: say why, so that the requester knows what to change.")
		return
	case !utf8.ValidString(comment) || len(comment) > approval.MaxReasonLen:
		formError(http.StatusUnprocessableEntity, "The comment is at most 2000 characters of text.")
		return
	}
	c := command.Writer{Source: Source}.New(commandID("vote", v.Principal, rid, string(decision), f.Get("nonce")), rid, v.Principal,
		approval.Vote{Decision: decision, Comment: comment})
	if err := command.Preflight(c); err != nil {
		formError(http.StatusUnprocessableEntity, err.Error())
		return
	}
	outcome, err := s.write(r.Context(), c, command.Decided(c.ID))
	var refusal *approval.Refusal
	switch {
	case errors.As(err, &refusal):
		formError(refusalStatus(refusal.Code), "Your vote was refused: "+refusal.Detail)
		return
	case outcome == "unavailable":
		w.Header().Set("Retry-After", "5")
		formError(http.StatusServiceUnavailable, "Your vote could not be stored, so nothing was recorded. Try again in a few seconds.")
		return
	case err != nil:
		s.internal(w, r, err)
		return
	}
	done := string(decision)
	if outcome == "timeout" {
		done = "recorded"
	}
	to := "/requests/" + url.PathEscape(rid)
	if f.Get("from") == "inbox" {
		to = "/inbox"
	}
	http.Redirect(w, r, to+"?done="+done, http.StatusSeeOther) //nolint:gosec // G710: a path on this site: /inbox or /requests/<escaped id>, and a fixed word
}

func (s *Server) cancel(w http.ResponseWriter, r *http.Request, v *viewer) {
	if !s.ready(w, r) {
		return
	}
	rid := r.PathValue("id")
	if !validRequestID(rid) {
		s.fail(w, r, http.StatusNotFound, "No such request", "There is no request with this id, or you may not see it.")
		return
	}
	d, err := s.requestData(v, rid)
	if errors.Is(err, errNotFound) {
		s.fail(w, r, http.StatusNotFound, "No such request", "There is no request with this id, or you may not see it.")
		return
	}
	if err != nil {
		s.internal(w, r, err)
		return
	}
	reason := strings.TrimSpace(r.PostForm.Get("reason"))
	formError := func(status int, msg string) {
		d.CancelError = msg
		s.showRequest(w, r, v, status, d)
	}
	if !utf8.ValidString(reason) || len(reason) > approval.MaxReasonLen {
		formError(http.StatusUnprocessableEntity, "The reason is at most 2000 characters of text.")
		return
	}
	c := command.Writer{Source: Source}.New(commandID("cancel", v.Principal, rid, "", r.PostForm.Get("nonce")), rid, v.Principal,
		approval.Cancel{Reason: reason})
	if err := command.Preflight(c); err != nil {
		formError(http.StatusUnprocessableEntity, err.Error())
		return
	}
	outcome, err := s.write(r.Context(), c, command.Outcome(c.ID))
	var refusal *approval.Refusal
	switch {
	case errors.As(err, &refusal):
		formError(refusalStatus(refusal.Code), "The cancel was refused: "+refusal.Detail)
		return
	case outcome == "unavailable":
		w.Header().Set("Retry-After", "5")
		formError(http.StatusServiceUnavailable, "The cancel could not be stored, so nothing was recorded. Try again in a few seconds.")
		return
	case err != nil:
		s.internal(w, r, err)
		return
	}
	done := "cancel"
	if outcome == "timeout" {
		done = "cancelled"
	}
	http.Redirect(w, r, "/requests/"+url.PathEscape(rid)+"?done="+done, http.StatusSeeOther)
}

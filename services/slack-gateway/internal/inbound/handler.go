// Package inbound is the gateway's Slack-facing edge: POST
// /slack/interactivity. It verifies every request, turns Approve clicks
// and Reject modal submissions into vote commands, and acknowledges Slack
// only once Kafka has acknowledged the command.
//
// # The acknowledgement
//
// Slack shows an error unless it gets a 2xx within 3 seconds. The handler
// gives itself AckTimeout (2.5s by default) from the moment the request
// arrived: mapping the user to a principal (users.info, cached) and
// producing the command with acks=all must both fit. If they do not, it
// answers 503, Slack shows the user an error, and a second click produces
// the same command id, so it cannot count twice. A 200 is never sent for a
// click whose command is not in Kafka.
//
// # Command ids
//
// A vote's command id is derived from the request, the Slack workspace and
// user, and the decision. A double click, a click on a second replica, a
// replayed request that slipped past the replay cache, a modal submitted
// twice: each is the same command, and the decider records it once.
//
// # Replies
//
// After the acknowledgement, the handler waits (in the background) for the
// command's outcome in the gateway's projection and tells the clicker with
// an ephemeral message: recorded, already decided, not an approver, or
// self-approval.
package inbound

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/slack-go/slack"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/command"
	"github.com/assent-dev/assent/services/slack-gateway/internal/card"
	"github.com/assent-dev/assent/services/slack-gateway/internal/slackapi"
)

// Source is the CloudEvents source of the gateway's commands.
const Source = command.SourceSlackGateway

// Sender makes a command durable (command.Kafka in production).
type Sender = command.Sender

// Slack is what the handler calls on Slack's Web API.
type Slack interface {
	Principal(ctx context.Context, userID string) (string, error)
	Ephemeral(ctx context.Context, channel, user string, opts ...slack.MsgOption) error
	OpenView(ctx context.Context, triggerID string, view slack.ModalViewRequest) error
}

// Requests is what the handler reads from the gateway's projection.
type Requests interface {
	Get(rid string) (approval.State, bool, error)
	// Await waits until the command's outcome is projected, or ctx ends.
	Await(ctx context.Context, rid, commandID string) (approval.State, error)
}

// Config is the handler's dependencies.
type Config struct {
	Verifier *Verifier
	Sender   Sender
	Slack    Slack
	Requests Requests
	Logger   *slog.Logger
	Now      func() time.Time
	// AckTimeout bounds the work before the answer (default 2.5s).
	AckTimeout time.Duration
	// ReplyTimeout bounds the wait for an outcome to reply with (default 15s).
	ReplyTimeout time.Duration
	MaxBody      int64 // default 1 MiB
	// Observe, if set, receives each request's outcome ("accepted",
	// "unauthorized", "invalid", "unavailable", "ignored") and the time to
	// the answer.
	Observe func(outcome string, d time.Duration)
}

// Handler serves /slack/interactivity.
type Handler struct {
	cfg     Config
	replies sync.WaitGroup
	done    chan struct{}
	once    sync.Once
}

// New returns a Handler.
func New(cfg Config) *Handler {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = 2500 * time.Millisecond
	}
	if cfg.ReplyTimeout <= 0 {
		cfg.ReplyTimeout = 15 * time.Second
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 1 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Handler{cfg: cfg, done: make(chan struct{})}
}

// Register adds the route to e.
func (h *Handler) Register(e *echo.Echo) { e.POST("/slack/interactivity", h.Serve) }

// Close stops waiting for outcomes and waits for the replies in flight.
func (h *Handler) Close() {
	h.once.Do(func() { close(h.done) })
	h.replies.Wait()
}

// problem answers with RFC 9457 problem+json; Slack shows the user a
// generic error for any non-2xx.
func problem(c echo.Context, status int, code, detail string) error {
	c.Response().Header().Set(echo.HeaderContentType, "application/problem+json")
	c.Response().WriteHeader(status)
	return json.NewEncoder(c.Response()).Encode(map[string]any{
		"type": "https://assent.dev/problems/" + code, "title": http.StatusText(status),
		"status": status, "detail": detail, "code": code,
	})
}

// Serve handles one interactivity request.
func (h *Handler) Serve(c echo.Context) error {
	began := h.cfg.Now()
	ctx, cancel := context.WithTimeout(c.Request().Context(), h.cfg.AckTimeout)
	defer cancel()
	outcome, err := h.serve(ctx, c)
	if h.cfg.Observe != nil {
		h.cfg.Observe(outcome, h.cfg.Now().Sub(began))
	}
	return err
}

func (h *Handler) serve(ctx context.Context, c echo.Context) (string, error) {
	body, err := io.ReadAll(io.LimitReader(c.Request().Body, h.cfg.MaxBody+1))
	if err != nil {
		return "invalid", problem(c, http.StatusBadRequest, "invalid", "could not read the body")
	}
	if int64(len(body)) > h.cfg.MaxBody {
		return "invalid", problem(c, http.StatusRequestEntityTooLarge, "invalid", "the body is larger than the limit")
	}
	if err := h.cfg.Verifier.Verify(c.Request().Header, body); err != nil {
		h.cfg.Logger.Warn("refused an unverified Slack request", "err", err, "remote", c.RealIP())
		if errors.Is(err, ErrReplayCacheFull) {
			return "unavailable", problem(c, http.StatusServiceUnavailable, "unavailable", err.Error())
		}
		return "unauthorized", problem(c, http.StatusUnauthorized, "unauthenticated", err.Error())
	}
	form, err := url.ParseQuery(string(body))
	if err != nil || form.Get("payload") == "" {
		return "invalid", problem(c, http.StatusBadRequest, "invalid", "the body must be a form with a payload field")
	}
	var cb slack.InteractionCallback
	if err := json.Unmarshal([]byte(form.Get("payload")), &cb); err != nil {
		return "invalid", problem(c, http.StatusBadRequest, "invalid", "the payload is not interaction JSON: "+err.Error())
	}
	switch cb.Type {
	case slack.InteractionTypeBlockActions:
		return h.blockActions(ctx, c, &cb)
	case slack.InteractionTypeViewSubmission:
		if cb.View.CallbackID == card.CallbackReject {
			return h.rejectSubmission(ctx, c, &cb)
		}
	case slack.InteractionTypeDialogCancellation, slack.InteractionTypeDialogSubmission,
		slack.InteractionTypeDialogSuggestion, slack.InteractionTypeInteractionMessage,
		slack.InteractionTypeMessageAction, slack.InteractionTypeBlockSuggestion,
		slack.InteractionTypeViewClosed, slack.InteractionTypeShortcut,
		slack.InteractionTypeWorkflowStepEdit:
		// Nothing the cards or the reject modal ask for.
	default:
		// A type newer than this slack-go.
	}
	return "ignored", c.NoContent(http.StatusOK)
}

func (h *Handler) blockActions(ctx context.Context, c echo.Context, cb *slack.InteractionCallback) (string, error) {
	for _, a := range cb.ActionCallback.BlockActions {
		if a == nil || (a.ActionID != card.ActionApprove && a.ActionID != card.ActionReject) {
			continue
		}
		rid := a.Value
		if !validID(rid) || cb.User.ID == "" {
			return "invalid", problem(c, http.StatusBadRequest, "invalid", "the button carries no request id, or the payload no user")
		}
		if a.ActionID == card.ActionReject {
			st, _, _ := h.cfg.Requests.Get(rid) // the modal reads better with it; it is not needed
			view := card.RejectModal(st, card.RejectMetadata{RequestID: rid, Channel: cb.Channel.ID})
			if err := h.cfg.Slack.OpenView(ctx, cb.TriggerID, view); err != nil {
				h.cfg.Logger.Warn("could not open the reject modal", "request", rid, "err", err)
				return "unavailable", problem(c, http.StatusServiceUnavailable, "unavailable", "could not open the reject dialog; try again")
			}
			return "accepted", c.NoContent(http.StatusOK)
		}
		return h.vote(ctx, c, cb, rid, approval.Approve, "", cb.Channel.ID)
	}
	return "ignored", c.NoContent(http.StatusOK)
}

func (h *Handler) rejectSubmission(ctx context.Context, c echo.Context, cb *slack.InteractionCallback) (string, error) {
	var md card.RejectMetadata
	if err := json.Unmarshal([]byte(cb.View.PrivateMetadata), &md); err != nil || !validID(md.RequestID) || cb.User.ID == "" {
		return "invalid", problem(c, http.StatusBadRequest, "invalid", "the modal's private_metadata does not name a request")
	}
	reason := strings.TrimSpace(cb.View.State.Values[card.ReasonBlock][card.ReasonAction].Value)
	if reason == "" {
		return "invalid", c.JSON(http.StatusOK, map[string]any{
			"response_action": "errors", "errors": map[string]string{card.ReasonBlock: "Say why you reject this request."},
		})
	}
	return h.vote(ctx, c, cb, md.RequestID, approval.Reject, reason, md.Channel)
}

// vote produces the vote command and answers once Kafka has it.
func (h *Handler) vote(ctx context.Context, c echo.Context, cb *slack.InteractionCallback, rid string, d approval.VoteDecision, comment, channel string) (string, error) {
	principal, err := h.cfg.Slack.Principal(ctx, cb.User.ID)
	if errors.Is(err, slackapi.ErrNoEmail) {
		h.reply(channel, cb.User.ID, func(context.Context) string {
			return "Assent cannot tell who you are: your Slack profile has no email address it may read. Ask your Slack admin, or vote through the API."
		})
		return "invalid", c.NoContent(http.StatusOK)
	}
	if err != nil {
		h.cfg.Logger.Warn("could not look up the Slack user", "user", cb.User.ID, "err", err)
		return "unavailable", problem(c, http.StatusServiceUnavailable, "unavailable", "could not look up your Slack user; try again")
	}
	w := command.Writer{Source: Source, Sender: h.cfg.Sender, Now: h.cfg.Now}
	cmd := w.New(command.SlackVoteID(rid, cb.Team.ID, cb.User.ID, d), rid, principal, approval.Vote{Decision: d, Comment: comment})
	if err := command.Preflight(cmd); err != nil {
		return "invalid", problem(c, http.StatusBadRequest, "invalid", err.Error())
	}
	if err := w.Send(ctx, cmd); err != nil {
		h.cfg.Logger.Warn("could not store a vote in Kafka; Slack will show an error and the user can click again",
			"request", rid, "command", cmd.ID, "err", err)
		return "unavailable", problem(c, http.StatusServiceUnavailable, "unavailable", "could not record your vote; try again")
	}
	h.cfg.Logger.Info("vote stored", "request", rid, "command", cmd.ID, "voter", principal, "decision", d)
	h.replyOutcome(channel, cb.User.ID, rid, cmd.ID, d)
	return "accepted", c.NoContent(http.StatusOK)
}

func validID(s string) bool {
	return s != "" && len(s) <= approval.MaxFieldLen && !strings.ContainsAny(s, "\x00\n\r")
}

// replyOutcome waits for the command's outcome and tells the clicker.
func (h *Handler) replyOutcome(channel, user, rid, commandID string, d approval.VoteDecision) {
	h.reply(channel, user, func(ctx context.Context) string {
		st, err := h.cfg.Requests.Await(ctx, rid, commandID)
		if err != nil {
			return "Your vote is recorded; the decision is still being made."
		}
		return card.Reply(st, commandID, d)
	})
}

// reply composes an ephemeral message, waiting at most ReplyTimeout (less
// on shutdown), and sends it in the background.
func (h *Handler) reply(channel, user string, compose func(ctx context.Context) string) {
	if channel == "" {
		return
	}
	h.replies.Add(1)
	go func() {
		defer h.replies.Done()
		wait, cancel := context.WithTimeout(context.Background(), h.cfg.ReplyTimeout)
		go func() {
			select {
			case <-h.done:
				cancel()
			case <-wait.Done():
			}
		}()
		text := compose(wait)
		cancel()
		send, done := context.WithTimeout(context.Background(), 5*time.Second)
		defer done()
		if err := h.cfg.Slack.Ephemeral(send, channel, user, slack.MsgOptionText(text, false)); err != nil {
			h.cfg.Logger.Warn("could not reply to the clicker", "user", user, "err", err)
		}
	}()
}

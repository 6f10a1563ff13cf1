package inbound_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/slack-go/slack"
	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/codec"
	"github.com/assent-dev/assent/libs/command"
	"github.com/assent-dev/assent/libs/slackport"
	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/services/slack-gateway/internal/card"
	"github.com/assent-dev/assent/services/slack-gateway/internal/inbound"
	"github.com/assent-dev/assent/services/slack-gateway/internal/slackapi"
)

const secret = "8f742231b10e8888abcd99yyyzzz85a5"

var now = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

// sent records the commands the handler made durable.
type sent struct {
	mu   sync.Mutex
	envs []wire.Envelope
	err  error
}

func (s *sent) Send(_ context.Context, env wire.Envelope) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	s.envs = append(s.envs, env)
	return nil
}

func (s *sent) commands(t testing.TB) []approval.Command {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []approval.Command
	for _, env := range s.envs {
		c, err := codec.DomainCommand(env)
		require.NoError(t, err)
		out = append(out, c)
	}
	return out
}

// fakeSlack answers users.info from a map and records replies and views.
type fakeSlack struct {
	mu         sync.Mutex
	principals map[string]string
	ephemerals []string
	views      []slack.ModalViewRequest
}

func (f *fakeSlack) Principal(_ context.Context, user string) (string, error) {
	p, ok := f.principals[user]
	if !ok {
		return "", slackapi.ErrNoEmail
	}
	return p, nil
}

func (f *fakeSlack) Ephemeral(_ context.Context, _, _ string, opts ...slack.MsgOption) error {
	_, vals, _ := slack.UnsafeApplyMsgOptions("", "C", "", opts...)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ephemerals = append(f.ephemerals, vals.Get("text"))
	return nil
}

func (f *fakeSlack) OpenView(_ context.Context, _ string, v slack.ModalViewRequest) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.views = append(f.views, v)
	return nil
}

// decided answers Await at once, as if the decider had accepted the vote.
type decided struct{}

func (decided) Get(string) (approval.State, bool, error) { return approval.State{}, false, nil }
func (decided) Await(_ context.Context, rid, cmd string) (approval.State, error) {
	return approval.State{RequestID: rid, Status: approval.StatusPending, Outcomes: map[string]approval.Outcome{cmd: {}}}, nil
}

type rig struct {
	h     *inbound.Handler
	e     *echo.Echo
	sent  *sent
	slack *fakeSlack
}

func newRig(t *testing.T) *rig {
	r := &rig{sent: &sent{}, slack: &fakeSlack{principals: map[string]string{"U0ALICE": "user:alice@example.com"}}}
	r.h = inbound.New(inbound.Config{
		Verifier: inbound.NewVerifier(secret, func() time.Time { return now }, 0),
		Sender:   r.sent, Slack: r.slack, Requests: decided{}, Now: func() time.Time { return now },
		MaxBody: 64 << 10,
	})
	t.Cleanup(r.h.Close)
	r.e = echo.New()
	r.h.Register(r.e)
	return r
}

func (r *rig) post(body []byte, h http.Header) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/slack/interactivity", strings.NewReader(string(body)))
	for k, v := range h {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	r.e.ServeHTTP(rec, req)
	return rec
}

func approveClick(user string) slackport.Click {
	return slackport.Click{Team: "T1", User: user, Channel: "C0DEPLOYS", TriggerID: "t1", ActionID: card.ActionApprove, RequestID: "req-1"}
}

func TestApproveClickProducesOneVoteAndReplies(t *testing.T) {
	r := newRig(t)
	body := approveClick("U0ALICE").Body()
	rec := r.post(body, slackport.Sign(secret, now, body))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	// A double click is a second signed request with the same content.
	rec = r.post(body, slackport.Sign(secret, now.Add(time.Second), body))
	require.Equal(t, http.StatusOK, rec.Code)

	cmds := r.sent.commands(t)
	require.Len(t, cmds, 2)
	require.Equal(t, cmds[0].ID, cmds[1].ID, "a double click is the same command")
	require.Equal(t, "req-1", cmds[0].RequestID)
	require.Equal(t, "user:alice@example.com", cmds[0].Actor)
	require.Equal(t, approval.Vote{Decision: approval.Approve}, cmds[0].Body)
	require.Equal(t, command.SlackVoteID("req-1", "T1", "U0ALICE", approval.Approve), cmds[0].ID)
	r.h.Close()
	require.Len(t, r.slack.ephemerals, 2)
	require.Contains(t, r.slack.ephemerals[0], "Recorded: your approval")
}

func TestUnverifiedRequestsAreRefusedAndProduceNothing(t *testing.T) {
	r := newRig(t)
	body := approveClick("U0ALICE").Body()
	good := slackport.Sign(secret, now, body)
	forged := slackport.Sign("not-the-secret", now, body)
	stale := slackport.Sign(secret, now.Add(-6*time.Minute), body)
	future := slackport.Sign(secret, now.Add(6*time.Minute), body)
	tampered := []byte(strings.Replace(string(body), "req-1", "req-2", 1))
	for name, tc := range map[string]struct {
		body []byte
		h    http.Header
	}{
		"no headers": {body, http.Header{}},
		"forged":     {body, forged},
		"stale":      {body, stale},
		"future":     {body, future},
		"tampered":   {tampered, good},
		"bad hex":    {body, http.Header{"X-Slack-Signature": {"v0=zz"}, "X-Slack-Request-Timestamp": good["X-Slack-Request-Timestamp"]}},
		"v1":         {body, http.Header{"X-Slack-Signature": {strings.Replace(good.Get("X-Slack-Signature"), "v0=", "v1=", 1)}, "X-Slack-Request-Timestamp": good["X-Slack-Request-Timestamp"]}},
	} {
		rec := r.post(tc.body, tc.h)
		require.Equal(t, http.StatusUnauthorized, rec.Code, name)
		require.Equal(t, "application/problem+json", rec.Header().Get("Content-Type"), name)
	}
	require.Empty(t, r.sent.commands(t))

	// The genuine request passes once; the same bytes again are a replay.
	require.Equal(t, http.StatusOK, r.post(body, good).Code)
	rec := r.post(body, good)
	require.Equal(t, http.StatusUnauthorized, rec.Code)
	require.Contains(t, rec.Body.String(), "already received")
	require.Len(t, r.sent.commands(t), 1)
}

func TestKafkaDownAnswers503AndNeverOK(t *testing.T) {
	r := newRig(t)
	r.sent.err = errors.New("kafka: no brokers")
	body := approveClick("U0ALICE").Body()
	rec := r.post(body, slackport.Sign(secret, now, body))
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	require.Empty(t, r.sent.commands(t))
}

func TestUserWithoutEmailGetsAnExplanationNotAVote(t *testing.T) {
	r := newRig(t)
	body := approveClick("U0NOBODY").Body()
	rec := r.post(body, slackport.Sign(secret, now, body))
	require.Equal(t, http.StatusOK, rec.Code)
	require.Empty(t, r.sent.commands(t))
	r.h.Close()
	require.Len(t, r.slack.ephemerals, 1)
	require.Contains(t, r.slack.ephemerals[0], "no email address")
}

func TestRejectOpensAModalAndItsSubmissionVotes(t *testing.T) {
	r := newRig(t)
	click := approveClick("U0ALICE")
	click.ActionID = card.ActionReject
	body := click.Body()
	require.Equal(t, http.StatusOK, r.post(body, slackport.Sign(secret, now, body)).Code)
	require.Empty(t, r.sent.commands(t), "a reject click only asks for the reason")
	require.Len(t, r.slack.views, 1)
	require.Equal(t, card.CallbackReject, r.slack.views[0].CallbackID)

	// An empty reason keeps the modal open with an error.
	sub := slackport.Submission{Team: "T1", User: "U0ALICE", Metadata: card.RejectMetadata{RequestID: "req-1", Channel: "C0DEPLOYS"}, Reason: "  "}
	body = sub.Body()
	rec := r.post(body, slackport.Sign(secret, now, body))
	require.Equal(t, http.StatusOK, rec.Code)
	require.Contains(t, rec.Body.String(), `"response_action":"errors"`)
	require.Empty(t, r.sent.commands(t))

	sub.Reason = "the change freeze starts today"
	body = sub.Body()
	rec = r.post(body, slackport.Sign(secret, now, body))
	require.Equal(t, http.StatusOK, rec.Code)
	require.Empty(t, rec.Body.String(), "an empty 200 closes the modal")
	cmds := r.sent.commands(t)
	require.Len(t, cmds, 1)
	require.Equal(t, approval.Vote{Decision: approval.Reject, Comment: "the change freeze starts today"}, cmds[0].Body)
	require.Equal(t, command.SlackVoteID("req-1", "T1", "U0ALICE", approval.Reject), cmds[0].ID)
}

func TestMalformedAndOversizedBodies(t *testing.T) {
	r := newRig(t)
	for name, body := range map[string][]byte{
		"not a form":       []byte("%zz"),
		"no payload":       []byte("a=b"),
		"payload not json": []byte("payload=%7Bnope"),
		"no request id":    slackport.Click{Team: "T1", User: "U0ALICE", ActionID: card.ActionApprove}.Body(),
	} {
		rec := r.post(body, slackport.Sign(secret, now, body))
		require.Equal(t, http.StatusBadRequest, rec.Code, name)
	}
	big := []byte("payload=" + strings.Repeat("x", 65<<10))
	require.Equal(t, http.StatusRequestEntityTooLarge, r.post(big, slackport.Sign(secret, now, big)).Code)
	require.Empty(t, r.sent.commands(t))
}

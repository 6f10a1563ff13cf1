package command_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/command"
	"github.com/assent-dev/assent/libs/wire"
)

// TestIDsAreStable pins every derivation: command ids are written in the
// log and recomputed by clients on retry, so a change here would make a
// retry after an upgrade a second command.
func TestIDsAreStable(t *testing.T) {
	t.Parallel()
	require.Equal(t, "7d546234-8f26-8096-bb12-6f912dcf996a", command.APIRequestID("service:billing", "key-1"))
	require.Equal(t, "35675c40-808f-8fa3-939e-cbad4d60d7be",
		command.APICommandID("service:billing", "user:alice@example.com", approval.TypeVote, "r-1", "key-1"))
	require.Equal(t, "f6a41d08-718e-8448-a4ab-7d21ce71bbff", command.SlackVoteID("r-1", "T0", "U0ALICE", approval.Approve))
	require.Equal(t, "52d31d38-afe0-8449-89df-2261344abc1e", command.NotificationID(command.SourceSlackGateway, "r-1", "C0", "1.2"))
	require.Equal(t, "sdk-vote-54404fab113cd425351f8fe8cbd5d90c", command.SDKCommandID("vote", "service:billing", "r-1", "approve", "", ""))
	require.Equal(t, "expire:r-1", command.ExpireID("r-1"))
	require.NotEqual(t, command.SDKCommandID("vote", "a", "bc"), command.SDKCommandID("vote", "ab", "c"), "parts are separated")
	require.NotEqual(t, command.SlackVoteID("r-1", "T0", "U0ALICE", approval.Approve), command.SlackVoteID("r-1", "T0", "U0ALICE", approval.Reject))
}

func TestPreflight(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ok := approval.Command{ID: "c1", RequestID: "r-1", Actor: "user:alice@example.com", Time: at, Body: approval.Vote{Decision: approval.Approve}}
	require.NoError(t, command.Preflight(ok), "a well-formed vote passes: not_found is the decider's to say")

	bad := ok
	bad.Body = approval.Vote{Decision: "maybe"}
	var r *approval.Refusal
	require.ErrorAs(t, command.Preflight(bad), &r)
	require.Equal(t, approval.ReasonInvalid, r.Code)

	anon := ok
	anon.Actor = ""
	require.ErrorAs(t, command.Preflight(anon), &r)
	require.Equal(t, approval.ReasonUnauthenticated, r.Code)

	sub := approval.Command{ID: "c2", RequestID: "r-2", Actor: "service:billing", Time: at,
		Body: approval.Submit{Action: approval.Action{Type: "deploy", Resource: "svc", Environment: "prod"}, Reason: "why"}}
	require.NoError(t, command.Preflight(sub))
}

// sender records what it was asked to send, or fails.
type sender struct {
	mu   sync.Mutex
	sent []wire.Envelope
	err  error
}

func (s *sender) Send(_ context.Context, env wire.Envelope) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	s.sent = append(s.sent, env)
	return nil
}

func TestWriterSendsTheEnvelope(t *testing.T) {
	t.Parallel()
	s := &sender{}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	w := command.Writer{Source: command.SourceAPI, Sender: s, Now: func() time.Time { return at }}
	c := w.New("c1", "r-1", "user:alice@example.com", approval.Vote{Decision: approval.Approve})
	require.Equal(t, at, c.Time)
	require.NoError(t, w.Send(t.Context(), c))
	require.Len(t, s.sent, 1)
	require.Equal(t, approval.TypeVote, s.sent[0].Type)
	require.Equal(t, "c1", s.sent[0].CommandID)
	require.Equal(t, "r-1", s.sent[0].Subject)
	require.Equal(t, command.SourceAPI, s.sent[0].Source)

	s.err = errors.New("broker away")
	require.ErrorIs(t, w.Send(t.Context(), c), s.err)
}

// TestWriterSendFailureIsOutcomeUnknown: a send that fails may still have
// been written (an acknowledgement lost on its way back), so the writer
// says the outcome is unknown; a command that could not even be encoded
// was never sent, and says so.
func TestWriterSendFailureIsOutcomeUnknown(t *testing.T) {
	t.Parallel()
	lost := errors.New("i/o timeout")
	w := command.Writer{Source: command.SourceAPI, Sender: &sender{err: lost}}
	c := w.New("c1", "r-1", "user:alice@example.com", approval.Vote{Decision: approval.Approve})
	err := w.Send(t.Context(), c)
	require.ErrorIs(t, err, command.ErrOutcomeUnknown)
	require.ErrorIs(t, err, lost, "the cause stays in the chain")

	s := &sender{}
	w.Sender = s
	bad := w.New("c2", "r-1", "service:billing", approval.Submit{
		Action: approval.Action{Type: "deploy", Resource: "svc", Environment: "prod", Details: []byte("{not json")}, Reason: "why"})
	err = w.Send(t.Context(), bad)
	require.Error(t, err)
	require.NotErrorIs(t, err, command.ErrOutcomeUnknown, "nothing was sent")
	require.Empty(t, s.sent)
}

// view is a projection that a test moves by hand.
type view struct {
	mu      sync.Mutex
	st      approval.State
	watches []chan struct{}
}

func (v *view) Get(string) (approval.State, bool, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.st, v.st.Status != approval.StatusNone, nil
}

func (v *view) Watch(string) (<-chan struct{}, func()) {
	v.mu.Lock()
	defer v.mu.Unlock()
	ch := make(chan struct{})
	v.watches = append(v.watches, ch)
	return ch, func() {}
}

func (v *view) apply(st approval.State) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.st = st
	for _, ch := range v.watches {
		close(ch)
	}
	v.watches = nil
}

func TestAwaitWakesOnTheOutcome(t *testing.T) {
	t.Parallel()
	v := &view{}
	done := make(chan struct{})
	var got approval.State
	var timedOut bool
	var refusal error
	go func() {
		defer close(done)
		got, timedOut, refusal, _ = command.Await(t.Context(), v, "r-1", nil, nil, command.Outcome("c1"))
	}()
	v.apply(approval.State{Status: approval.StatusPending, Outcomes: map[string]approval.Outcome{"c0": {}}})
	v.apply(approval.State{Status: approval.StatusPending, Outcomes: map[string]approval.Outcome{
		"c0": {}, "c1": {Code: approval.ReasonNotEligible, Detail: "no"}}})
	<-done
	require.False(t, timedOut)
	var r *approval.Refusal
	require.ErrorAs(t, refusal, &r)
	require.Equal(t, approval.ReasonNotEligible, r.Code)
	require.Len(t, got.Outcomes, 2)
}

func TestAwaitEndsAtTheDeadline(t *testing.T) {
	t.Parallel()
	v := &view{}
	deadline := make(chan time.Time)
	close(deadline)
	_, timedOut, refusal, err := command.Await(t.Context(), v, "r-1", deadline, nil, command.Outcome("c1"))
	require.NoError(t, err)
	require.NoError(t, refusal)
	require.True(t, timedOut)
}

func TestDecidedWaitsForTheDecisionOfADecisiveVote(t *testing.T) {
	t.Parallel()
	pending := approval.State{Status: approval.StatusPending, Policy: approval.PolicySnapshot{MinApprovals: 1},
		Votes: []approval.VoteView{{Voter: "user:a@example.com", Decision: approval.Approve}}, Outcomes: map[string]approval.Outcome{"c1": {}}}
	done, err := command.Decided("c1")(pending)
	require.NoError(t, err)
	require.False(t, done, "the vote reaches the quorum: the approval must follow")
	approved := pending
	approved.Status = approval.StatusApproved
	done, err = command.Decided("c1")(approved)
	require.NoError(t, err)
	require.True(t, done)
}

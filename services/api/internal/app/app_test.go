package app_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/services/api/internal/app"
	"github.com/assent-dev/assent/services/api/internal/auth"
	"github.com/assent-dev/assent/test/apifake"
)

var bot = auth.Principal{ID: "service:deploy-bot", Kind: "service"}

func submitInput(rid string) app.SubmitInput {
	return app.SubmitInput{
		RequestID: rid, Reason: "r",
		Action: approval.Action{Type: "deploy", Resource: "services/web", Environment: "production"},
	}
}

// TestShutdownEndsWaits: when Done closes, a write waiting for its outcome
// reports a timeout at once (its command is durable) and a long poll
// answers with what it has.
func TestShutdownEndsWaits(t *testing.T) {
	t.Parallel()
	log := apifake.New(t)
	done := make(chan struct{})
	a := app.New(app.Config{Sender: log, Projection: log, Store: log.Store, WriteWait: time.Hour, Done: done})
	_, err := a.Submit(t.Context(), bot, submitInput("r-1"))
	require.NoError(t, err)

	log.Hold.Store(true)
	close(done)
	began := time.Now()
	res, err := a.Vote(t.Context(), auth.Principal{ID: "user:bob@example.com", Kind: "user"},
		app.VoteInput{RequestID: "r-1", Decision: approval.Approve})
	require.NoError(t, err)
	require.True(t, res.TimedOut)
	require.True(t, res.Written)
	st, err := a.Get(t.Context(), "r-1", time.Minute)
	require.NoError(t, err)
	require.Equal(t, approval.StatusPending, st.Status)
	require.Less(t, time.Since(began), 10*time.Second)
}

// TestDecisionBetweenReadAndWaitIsSeen: the outcome lands after the
// writer's first read; the watch registered before that read wakes it.
func TestDecisionBetweenReadAndWaitIsSeen(t *testing.T) {
	t.Parallel()
	log := apifake.New(t)
	log.Delay = 20 * time.Millisecond
	a := app.New(app.Config{Sender: log, Projection: log, Store: log.Store, WriteWait: time.Minute})
	for i := range 20 {
		res, err := a.Submit(t.Context(), bot, submitInput("r-race-"+string(rune('a'+i))))
		require.NoError(t, err)
		require.False(t, res.TimedOut)
		require.Equal(t, approval.StatusPending, res.State.Status)
	}
}

func TestValidRequestID(t *testing.T) {
	t.Parallel()
	for id, ok := range map[string]bool{
		"01a1fd8c-6a8e-7209-ae83-0d3e3096123f": true, "a%41:b+c": true, "ünï": true,
		"": false, "a b": false, "a/b": false, "a\x00b": false, "a\x7fb": false, "\xff": false,
		string(make([]byte, 129)): false,
	} {
		require.Equal(t, ok, app.ValidRequestID(id), "%q", id)
	}
}

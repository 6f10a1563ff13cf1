package slackapi_test

import (
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/services/slack-gateway/internal/slackapi"
	"github.com/assent-dev/assent/test/slackfake"
)

var users = []slackfake.User{{ID: "U0ALICE", Name: "alice", Email: "Alice@Example.com"}, {ID: "U0BOT", Name: "bot"}}

type calls struct {
	mu sync.Mutex
	by map[string]int // method/status
}

func (c *calls) observe(method, status string, _ time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.by[method+"/"+status]++
}

func (c *calls) get(k string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.by[k]
}

func newClient(t *testing.T, fake *slackfake.Server) (*slackapi.Client, *calls) {
	c := &calls{by: map[string]int{}}
	return slackapi.New(slackapi.Config{Token: slackfake.Token, APIURL: fake.URL(), RateScale: 100, Observe: c.observe}), c
}

func TestRetryAfterIsHonoured(t *testing.T) {
	fake := slackfake.New(t, users, map[string]string{"C0DEPLOYS": "deploys"})
	cl, obs := newClient(t, fake)
	ts, _, err := cl.PostOnce(t.Context(), "C0DEPLOYS", "r1", "card", time.Now(), false, slack.MsgOptionText("hi", false))
	require.NoError(t, err)

	fake.RateLimit("chat.update", 2, 1)
	began := time.Now()
	require.NoError(t, cl.Update(t.Context(), "C0DEPLOYS", ts, slack.MsgOptionText("updated", false)))
	require.GreaterOrEqual(t, time.Since(began), 2*time.Second, "two 429s with Retry-After: 1 each")
	require.Equal(t, 2, obs.get("chat.update/rate_limited"))
	require.Equal(t, 1, obs.get("chat.update/ok"))
	require.Equal(t, 3, fake.Calls("chat.update"))
	require.Equal(t, "updated", fake.Messages("C0DEPLOYS")[0].Text)
}

func TestPostAfterAnUnknownOutcomeNeverDuplicates(t *testing.T) {
	fake := slackfake.New(t, users, map[string]string{"C0DEPLOYS": "deploys"})
	cl, _ := newClient(t, fake)
	md := slack.SlackMetadata{EventType: "assent_request", EventPayload: map[string]any{"request_id": "r1", "kind": "card"}}
	fake.FailAfterPost(1) // posted, then a 500
	ts, found, err := cl.PostOnce(t.Context(), "C0DEPLOYS", "r1", "card", time.Now(), false,
		slack.MsgOptionText("card", false), slack.MsgOptionMetadata(md))
	require.NoError(t, err)
	require.True(t, found, "the message was found in the history instead of posted again")
	require.Len(t, fake.Messages("C0DEPLOYS"), 1)
	require.Equal(t, fake.Messages("C0DEPLOYS")[0].TS, ts)
	require.Equal(t, 1, fake.Calls("chat.postMessage"))

	// Careful mode looks first, and posts nothing when the card exists.
	ts2, found, err := cl.PostOnce(t.Context(), "C0DEPLOYS", "r1", "card", time.Now(), true, slack.MsgOptionText("card", false))
	require.NoError(t, err)
	require.True(t, found)
	require.Equal(t, ts, ts2)
	require.Len(t, fake.Messages("C0DEPLOYS"), 1)
}

func TestAKnownFailureIsNotRetried(t *testing.T) {
	fake := slackfake.New(t, users, nil)
	cl, _ := newClient(t, fake)
	_, _, err := cl.PostOnce(t.Context(), "C0NOWHERE", "r1", "card", time.Now(), false, slack.MsgOptionText("x", false))
	require.ErrorContains(t, err, "channel_not_found")
	require.False(t, slackapi.Unknown(err))
	require.Equal(t, 1, fake.Calls("chat.postMessage"))
}

func TestUsersAndChannelsAreResolvedAndCached(t *testing.T) {
	fake := slackfake.New(t, users, map[string]string{"C0DEPLOYS": "deploys"})
	cl, _ := newClient(t, fake)
	for range 3 {
		p, err := cl.Principal(t.Context(), "U0ALICE")
		require.NoError(t, err)
		require.Equal(t, "user:alice@example.com", p, "emails are lower-cased like every principal")
	}
	require.Equal(t, 1, fake.Calls("users.info"))
	_, err := cl.Principal(t.Context(), "U0BOT")
	require.ErrorIs(t, err, slackapi.ErrNoEmail)

	id, err := cl.UserID(t.Context(), "user:alice@example.com")
	require.NoError(t, err)
	require.Equal(t, "U0ALICE", id)
	_, err = cl.UserID(t.Context(), "service:billing")
	require.ErrorIs(t, err, slackapi.ErrNotAUser)

	ch, err := cl.Channel(t.Context(), "#deploys")
	require.NoError(t, err)
	require.Equal(t, "C0DEPLOYS", ch)
	_, err = cl.Channel(t.Context(), "#deploys")
	require.NoError(t, err)
	require.Equal(t, 1, fake.Calls("conversations.list"))
	_, err = cl.Channel(t.Context(), "#nope")
	require.ErrorIs(t, err, slackapi.ErrChannelNotFound)

	dm, err := cl.DM(t.Context(), "U0ALICE")
	require.NoError(t, err)
	require.Equal(t, fake.DM("U0ALICE"), dm)
}

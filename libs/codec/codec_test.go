package codec_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/codec"
	"github.com/assent-dev/assent/libs/wire"
)

func TestDomainEventRoundTrip(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 21, 10, 0, 0, 123000000, time.UTC)
	e := approval.Event{RequestID: "req-1", CommandID: "cmd-1", Actor: "user:alice@example.com", Time: at, Sequence: 3,
		Body: approval.VoteRecorded{Voter: "user:alice@example.com", Decision: approval.Approve, Comment: "ok"}}
	env, err := codec.EventEnvelope(e, "assent/decider", wire.GenesisHash)
	require.NoError(t, err)
	raw, err := wire.Marshal(env)
	require.NoError(t, err)
	back, err := wire.Unmarshal(raw)
	require.NoError(t, err)
	require.Equal(t, "3", back.Sequence)
	require.Equal(t, wire.GenesisHash, back.PrevHash)
	got, err := codec.DomainEvent(back)
	require.NoError(t, err)
	require.Equal(t, e, got)
}

func TestDomainCommandRoundTripAndRefusal(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	c := approval.Command{ID: wire.NewID(at), RequestID: "req-1", Actor: "user:bob@example.com", Time: at,
		Body: approval.Vote{Decision: approval.Reject, Comment: "freeze"}}
	env, err := codec.CommandEnvelope(c, "assent/api")
	require.NoError(t, err)
	got, err := codec.DomainCommand(env)
	require.NoError(t, err)
	require.Equal(t, c, got)

	env.Data = json.RawMessage(`{"decision":"approve","extra":1}`)
	got, err = codec.DomainCommand(env)
	var r *approval.Refusal
	require.True(t, errors.As(err, &r))
	require.Equal(t, approval.ReasonInvalid, r.Code)
	require.Nil(t, got.Body)
	require.Equal(t, c.ID, got.ID)
}

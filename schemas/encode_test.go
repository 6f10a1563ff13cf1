package schemas_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/codec"
	"github.com/assent-dev/assent/libs/command"
	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/schemas"
	"github.com/assent-dev/assent/test/systest"
)

// TestEveryGoTypeEncodesToAValidCloudEvent encodes every command and event
// body the domain defines, through the same eventlog functions the services
// use, and validates the record value against its schema.
func TestEveryGoTypeEncodesToAValidCloudEvent(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	submit := approval.Submit{
		Action: approval.Action{Type: "deploy", Resource: "services/billing/api", Environment: "production",
			Details: json.RawMessage(`{"version":"1.4.2"}`), Digest: "sha256:" + string(make64('a'))},
		Reason: "release 1.4.2", Requester: "service:billing", TTL: approval.Duration(30 * time.Minute),
	}
	commands := map[string]approval.CommandBody{
		approval.TypeSubmit:             submit,
		approval.TypeVote:               approval.Vote{Decision: approval.Approve, Comment: "ok"},
		approval.TypeCancel:             approval.Cancel{Reason: "not needed"},
		approval.TypeRecordNotification: approval.RecordNotification{Kind: approval.NotifyCard, Channel: "C1", TS: "1.2"},
		approval.TypeExpire:             approval.Expire{},
	}
	require.ElementsMatch(t, approval.CommandTypes(), mapKeys(commands), "a command type without a case here")
	for typ, body := range commands {
		actor, id, source := "user:alice@example.com", wire.NewID(at), "assent/api"
		switch typ {
		case approval.TypeRecordNotification:
			actor = "service:slack-gateway"
		case approval.TypeExpire:
			actor, id, source = approval.SystemDecider, command.ExpireID("req-1"), command.SourceDecider
		}
		c := approval.Command{ID: id, RequestID: "req-1", Actor: actor, Time: at, Body: body}
		env, err := codec.CommandEnvelope(c, source)
		require.NoError(t, err)
		// Signed as the decider signs its timers' commands and the api
		// every other (authkeyid and authsig are required on commands).
		signer := systest.DemoCommandSigner(t, systest.ServiceAPI)
		if typ == approval.TypeExpire {
			signer = systest.DemoSigner(t)
		}
		env, err = wire.SignCommand(signer, env)
		require.NoError(t, err)
		raw, err := wire.Marshal(env)
		require.NoError(t, err)
		require.NoError(t, schemas.Validate(raw), "%s: %s", typ, raw)
	}

	// Events as Decide makes them, so the snapshot is a real one.
	pols := approval.Policies{Rules: []approval.Policy{{Name: "prod-deploy", Approvers: []string{"user:alice@example.com", "user:bob@example.com"},
		MinApprovals: 1, RejectThreshold: 1, TTL: approval.Duration(time.Hour),
		Notify: []approval.NotifyTarget{{Kind: "slack_channel", Target: "#deploys"}}}}}
	sub := approval.Decide(approval.State{}, approval.Command{ID: "c1", RequestID: "req-1", Actor: "service:billing", Body: submit}, pols, at)
	require.Nil(t, sub.Refusal)
	events := map[string]approval.EventBody{
		approval.TypeRequestSubmitted:     sub.Events[0].Body,
		approval.TypeVoteRecorded:         approval.VoteRecorded{Voter: "user:alice@example.com", Decision: approval.Reject, Comment: "no"},
		approval.TypeRequestApproved:      approval.RequestApproved{Approvers: []string{"user:alice@example.com"}},
		approval.TypeRequestRejected:      approval.RequestRejected{Rejecters: []string{"user:bob@example.com"}, Comment: "no"},
		approval.TypeRequestExpired:       approval.RequestExpired{ExpiresAt: at},
		approval.TypeRequestCancelled:     approval.RequestCancelled{By: "service:billing", Reason: "done"},
		approval.TypeCommandRejected:      approval.CommandRejected{CommandID: "c9", CommandType: approval.TypeVote, Code: approval.ReasonSelfApproval, Detail: "no"},
		approval.TypeNotificationRecorded: approval.NotificationRecorded{Kind: approval.NotifyDM, Channel: "D1", TS: "1.3", Recipient: "user:bob@example.com"},
	}
	require.ElementsMatch(t, approval.EventTypes(), mapKeys(events), "an event type without a case here")
	for typ, body := range events {
		e := approval.Event{RequestID: "req-1", CommandID: "c1", Actor: "user:alice@example.com", Time: at, Sequence: 2, Body: body}
		env, err := codec.EventEnvelope(e, "assent/decider", wire.GenesisHash)
		require.NoError(t, err)
		raw, err := wire.Marshal(env)
		require.NoError(t, err)
		require.NoError(t, schemas.Validate(raw), "%s: %s", typ, raw)
	}
}

func make64(c byte) []byte {
	b := make([]byte, 64)
	for i := range b {
		b[i] = c
	}
	return b
}

func mapKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

package requests_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/codec"
	"github.com/assent-dev/assent/libs/projection/requests"
)

// requireEncodesAsJSON requires AppendState to write s as json.Marshal
// does, byte for byte, or to say it cannot when json.Marshal fails.
func requireEncodesAsJSON(t testing.TB, s approval.State) {
	t.Helper()
	want, err := json.Marshal(s)
	got, ok := requests.AppendState([]byte("prefix"), &s)
	if err != nil {
		require.False(t, ok, "json.Marshal fails (%v) where AppendState wrote %s", err, got)
		return
	}
	require.True(t, ok, "AppendState refused what json.Marshal writes: %s", want)
	require.Equal(t, "prefix"+string(want), string(got))
}

// Every state a generated log folds to, at every event, is written as
// json.Marshal writes it.
func TestAppendStateIsJSONMarshal(t *testing.T) {
	t.Parallel()
	states := map[string]approval.State{}
	n := 0
	for _, part := range generatedEvents(t, 2, 400) {
		for _, e := range part {
			if e.Envelope.Subject == "" {
				continue
			}
			ev, err := codec.DomainEvent(e.Envelope)
			require.NoError(t, err)
			s := approval.Evolve(states[ev.RequestID], ev)
			states[ev.RequestID] = s
			requireEncodesAsJSON(t, s)
			n++
		}
	}
	require.Greater(t, n, 1000)

	// What a generated log does not hold.
	at := time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC)
	odd := approval.State{
		RequestID: "r<1>&\"\\\u2028", Status: approval.StatusPending, Reason: "caf\xe9 \x01", Requester: "ü",
		Action:    approval.Action{Type: "deploy", Details: json.RawMessage(` {"a" : "<b>"} `), Digest: "sha256:x"},
		Policy:    approval.PolicySnapshot{Approvers: []string{}, TTL: approval.Duration(time.Hour), ExpiresAt: at.In(time.FixedZone("x", 3600)), Notify: []approval.NotifyTarget{{Kind: "email", Target: "a@b", Events: []string{"e"}}}},
		CreatedAt: at, DecidedBy: []string{}, Votes: []approval.VoteView{}, Notes: []approval.NotificationRecorded{{Kind: "email", At: at}},
		Outcomes: map[string]approval.Outcome{"b": {}, "a": {Code: approval.ReasonInvalid}, "c": {Detail: "d"}, "d": {Code: approval.ReasonInvalid, Detail: "x"}},
		Refused:  []string{}, Refusals: -3, Sequence: 1 << 40,
	}
	requireEncodesAsJSON(t, odd)
	requireEncodesAsJSON(t, approval.State{})
	odd.CreatedAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	requireEncodesAsJSON(t, odd) // json.Marshal fails: so does AppendState
	odd.CreatedAt = time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("far", 25*3600))
	requireEncodesAsJSON(t, odd)
}

// FuzzAppendState: any strings, numbers and times are written as
// json.Marshal writes them.
func FuzzAppendState(f *testing.F) {
	f.Add("r-1", "user:a@b", "<&>", int64(0), int64(0), 0, "x")
	f.Add("\xff\u2029", "\"", "\\", int64(-62135596800), int64(253402300800), 3600, "")
	f.Fuzz(func(t *testing.T, id, voter, text string, unix, unix2 int64, offset int, code string) {
		zone := time.FixedZone("z", offset%(48*3600))
		s := approval.State{
			RequestID: id, Status: approval.Status(text), Reason: text, Requester: voter, ContentHash: id,
			Action:    approval.Action{Type: text, Resource: id, Environment: voter, Digest: text},
			Policy:    approval.PolicySnapshot{Name: text, Hash: id, Approvers: []string{voter, text}, MinApprovals: offset, ExpiresAt: time.Unix(unix, 0).UTC()},
			CreatedAt: time.Unix(unix2, int64(offset)).In(zone), DecidedAt: time.Unix(unix, 0).UTC(),
			DecidedBy: []string{id}, Votes: []approval.VoteView{{Voter: voter, Decision: approval.VoteDecision(text), Comment: text, At: time.Unix(unix2, 0).UTC()}},
			Outcomes: map[string]approval.Outcome{id: {Code: approval.ReasonCode(code), Detail: text}, voter: {}},
			Refused:  []string{text}, Refusals: offset, Sequence: int(unix % 1000),
		}
		requireEncodesAsJSON(t, s)
	})
}

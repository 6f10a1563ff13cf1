package card_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/slack-go/slack"
	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/services/slack-gateway/internal/card"
)

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func pending() approval.State {
	return approval.State{
		RequestID: "0193a6d2-0000-7000-8000-000000000001",
		Status:    approval.StatusPending,
		Action:    approval.Action{Type: "deploy", Resource: "services/payments", Environment: "production"},
		Reason:    "release 42",
		Requester: "user:dave@example.com",
		CreatedAt: t0,
		Policy: approval.PolicySnapshot{Name: "prod-deploy", MinApprovals: 2, ExpiresAt: t0.Add(time.Hour),
			Approvers: []string{"user:alice@example.com", "user:bob@example.com"}},
	}
}

// marshal is json.Marshal without HTML escaping, so that the test reads
// what Slack reads.
func marshal(t *testing.T, v any) string {
	t.Helper()
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	require.NoError(t, enc.Encode(v))
	return b.String()
}

// texts collects every text object of a message, as Slack would see it.
func texts(t *testing.T, blocks []slack.Block) []map[string]any {
	t.Helper()
	b, err := json.Marshal(blocks)
	require.NoError(t, err)
	var out []map[string]any
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if _, ok := x["text"].(string); ok && (x["type"] == "mrkdwn" || x["type"] == "plain_text") {
				out = append(out, x)
			}
			for _, c := range x {
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	var v any
	require.NoError(t, json.Unmarshal(b, &v))
	walk(v)
	return out
}

func TestCardPendingHasButtonsAndTally(t *testing.T) {
	st := pending()
	st.Votes = []approval.VoteView{{Voter: "user:alice@example.com", Decision: approval.Approve, At: t0}}
	m := card.Card(st)
	s := marshal(t, m.Blocks)
	require.Contains(t, s, `"action_id":"assent.approve"`)
	require.Contains(t, s, `"action_id":"assent.reject"`)
	require.Contains(t, s, `"value":"`+st.RequestID+`"`)
	require.Contains(t, s, `"confirm"`, "both buttons ask for confirmation")
	require.Contains(t, s, "1 of 2 approvals: alice@example.com")
	require.Contains(t, s, "release 42")
	require.Equal(t, "assent_request", m.Metadata.EventType)
	require.Equal(t, st.RequestID, m.Metadata.EventPayload["request_id"])
	require.Equal(t, card.KindCard, m.Metadata.EventPayload["kind"])
}

func TestCardDecidedShowsOutcomeInsteadOfButtons(t *testing.T) {
	for _, tc := range []struct {
		status approval.Status
		want   string
	}{
		{approval.StatusApproved, "*Approved* by alice@example.com, bob@example.com"},
		{approval.StatusRejected, "*Rejected* by alice@example.com"},
		{approval.StatusExpired, "*Expired*"},
		{approval.StatusCancelled, "*Cancelled* by dave@example.com"},
	} {
		t.Run(string(tc.status), func(t *testing.T) {
			st := pending()
			st.Status, st.DecidedAt = tc.status, t0.Add(time.Minute)
			switch tc.status {
			case approval.StatusApproved:
				st.DecidedBy = []string{"user:alice@example.com", "user:bob@example.com"}
			case approval.StatusRejected:
				st.DecidedBy = []string{"user:alice@example.com"}
				st.Votes = []approval.VoteView{{Voter: "user:alice@example.com", Decision: approval.Reject, Comment: "not <today>", At: t0}}
			case approval.StatusCancelled:
				st.DecidedBy = []string{"user:dave@example.com"}
			case approval.StatusExpired:
				// Expired by the timer: no one decided.
			case approval.StatusNone, approval.StatusPending:
				t.Fatalf("%s is not a decided status", tc.status)
			}
			s := marshal(t, card.Card(st).Blocks)
			require.NotContains(t, s, "assent.approve")
			require.Contains(t, s, tc.want)
			if tc.status == approval.StatusRejected {
				require.Contains(t, s, "not &lt;today&gt;", "the reject comment is shown, escaped")
			}
			require.Contains(t, s, "<!date^1795341660^", "the decision time is rendered in the reader's zone")
		})
	}
}

func TestCardEscapesUserText(t *testing.T) {
	st := pending()
	st.Reason = "<!channel> see <https://evil.example|this> & more"
	st.Action.Resource = "<@U0ADMIN>"
	st.Action.Details = json.RawMessage(`{"sql":"SELECT 1; -- ` + "```" + ` <!here>"}`)
	blocks := card.Card(st).Blocks
	s := marshal(t, blocks)
	for _, tx := range texts(t, blocks) {
		if tx["type"] != "mrkdwn" {
			continue // plain_text is never parsed for mentions or links
		}
		for _, bad := range []string{"<!channel>", "<https://evil", "<@U0ADMIN>", "<!here>"} {
			require.NotContains(t, tx["text"], bad)
		}
	}
	require.Contains(t, s, "&lt;!channel&gt; see &lt;https://evil.example|this&gt; &amp; more")
	require.Equal(t, 2, strings.Count(s, "```"), "details cannot close their code block early")
}

func TestCardStaysWithinSlackLimits(t *testing.T) {
	st := pending()
	st.Reason = strings.Repeat("ü<", 5000)
	st.Action.Resource = strings.Repeat("r", 256)
	st.Action.Type = strings.Repeat("t", 256)
	st.Action.Details = json.RawMessage(`{"sql":"` + strings.Repeat("x", 20000) + `"}`)
	for i := range 40 {
		st.Votes = append(st.Votes, approval.VoteView{Voter: "user:" + strings.Repeat("v", 200) + string(rune('a'+i%26)) + "@example.com", Decision: approval.Approve})
	}
	m := card.Card(st)
	require.LessOrEqual(t, len(m.Blocks), 50)
	require.LessOrEqual(t, utf8.RuneCountInString(m.Text), 4000)
	for _, tx := range texts(t, m.Blocks) {
		limit := 3000
		require.LessOrEqual(t, utf8.RuneCountInString(tx["text"].(string)), limit, "a text object is over Slack's limit")
	}
	hb, _ := json.Marshal(m.Blocks[0])
	var h struct {
		Text struct{ Text string } `json:"text"`
	}
	require.NoError(t, json.Unmarshal(hb, &h))
	require.LessOrEqual(t, utf8.RuneCountInString(h.Text.Text), 150)
}

func TestReplyNamesTheOutcome(t *testing.T) {
	st := pending()
	st.Outcomes = map[string]approval.Outcome{
		"ok": {}, "late": {Code: approval.ReasonAlreadyDecided}, "who": {Code: approval.ReasonNotEligible},
		"self": {Code: approval.ReasonSelfApproval},
	}
	require.Contains(t, card.Reply(st, "ok", approval.Approve), "Recorded: your approval")
	require.Contains(t, card.Reply(st, "who", approval.Approve), "not an approver for this request")
	require.Contains(t, card.Reply(st, "self", approval.Approve), "cannot approve your own request")
	st.Status, st.DecidedBy = approval.StatusApproved, []string{"user:alice@example.com"}
	require.Contains(t, card.Reply(st, "late", approval.Approve), "already decided: approved by alice@example.com")
	require.Contains(t, card.Reply(st, "unknown", approval.Approve), "still being made")
}

func TestRejectModalCarriesEverythingInPrivateMetadata(t *testing.T) {
	v := card.RejectModal(pending(), card.RejectMetadata{RequestID: "r1", Channel: "C0DEPLOYS"})
	require.Equal(t, card.CallbackReject, v.CallbackID)
	var md card.RejectMetadata
	require.NoError(t, json.Unmarshal([]byte(v.PrivateMetadata), &md))
	require.Equal(t, card.RejectMetadata{RequestID: "r1", Channel: "C0DEPLOYS"}, md)
	require.LessOrEqual(t, utf8.RuneCountInString(v.Title.Text), 24)
	require.True(t, slack.ValidateUniqueBlockID(v))
}

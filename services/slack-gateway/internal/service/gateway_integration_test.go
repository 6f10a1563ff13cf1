package service_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/codec"
	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/slackport"
	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/services/slack-gateway/internal/card"
	"github.com/assent-dev/assent/test/kafkatest"
	"github.com/assent-dev/assent/test/slackfake"
	"github.com/assent-dev/assent/test/systest"
)

const secret = "integration-signing-secret"

var people = []slackfake.User{
	{ID: "U0ALICE", Name: "alice", Email: "alice@example.com"},
	{ID: "U0BOB", Name: "bob", Email: "bob@example.com"},
	{ID: "U0CAROL", Name: "carol", Email: "carol@example.com"},
	{ID: "U0DAVE", Name: "dave", Email: "dave@example.com"}, // the requester
	{ID: "U0EVE", Name: "eve", Email: "eve@example.com"},    // not an approver
}

var approvers = []string{"U0ALICE", "U0BOB", "U0CAROL"}

// rig is a real Kafka, a real decider, two gateway processes and the fake
// Slack they both talk to.
type rig struct {
	kafka   eventlog.Config
	topics  eventlog.TopicSpec
	slack   *slackfake.Server
	gw      []*systest.Proc
	decider *systest.Proc
}

func newRig(t *testing.T) *rig {
	topics := kafkatest.NewTopics(t, 12)
	brokers := kafkatest.Brokers(t)
	bin := systest.Build(t, "decider", "slack-gateway")
	gwBin := bin + "/slack-gateway"
	r := &rig{kafka: kafkatest.Config(t, ""), topics: topics,
		slack: slackfake.New(t, people, map[string]string{"C0DEPLOYS": "deploys", "C0OTHER": "other"})}
	common := []string{
		"ASSENT_KAFKA_BROKERS=" + strings.Join(brokers, ","),
		"ASSENT_COMMANDS_TOPIC=" + topics.Commands,
		"ASSENT_EVENTS_TOPIC=" + topics.Events,
		"ASSENT_PARTITIONS=12",
	}
	r.decider = systest.NewProc(t, bin+"/decider", "decider", append(slices.Clone(common),
		"ASSENT_DECIDER_GROUP=dec-"+topics.Commands,
		// Transactional ids are cluster-wide: a name shared with another
		// test's decider would fence one of them.
		"ASSENT_INSTANCE_ID=decider-"+topics.Commands,
		"ASSENT_POLICY_FILE="+filepath.Join(systest.RepoRoot(), "services/slack-gateway/internal/service/testdata/policy.yaml"))...)
	for _, name := range []string{"g1", "g2"} {
		r.gw = append(r.gw, systest.NewProc(t, gwBin, name, append(slices.Clone(common),
			"ASSENT_SLACK_GROUP=gw-"+topics.Events,
			"ASSENT_SLACK_BOT_TOKEN="+slackfake.Token,
			"ASSENT_SLACK_SIGNING_SECRET="+secret,
			"ASSENT_SLACK_API_URL="+r.slack.TaggedURL(name),
			"ASSENT_SLACK_RATE_SCALE=50",
		)...))
	}
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	for _, p := range append([]*systest.Proc{r.decider}, r.gw...) {
		p.Start()
	}
	for _, p := range append([]*systest.Proc{r.decider}, r.gw...) {
		require.NoError(t, p.WaitReady(ctx))
	}
	return r
}

// submit puts a request from dave in the commands topic, as any backend
// service could.
func (r *rig) submit(t *testing.T, rid string) {
	t.Helper()
	cl, err := eventlog.NewClient(r.kafka)
	require.NoError(t, err)
	defer cl.Close()
	env, err := codec.CommandEnvelope(approval.Command{
		ID: wire.NewID(time.Now()), RequestID: rid, Actor: "user:dave@example.com", Time: time.Now().UTC(),
		Body: approval.Submit{Action: approval.Action{Type: "deploy", Resource: "services/payments", Environment: "production"},
			Reason: "release <42> & friends"},
	}, "assent/test")
	require.NoError(t, err)
	env = systest.SignCommand(t, systest.ServiceAPI, env) // the api's key may name anyone
	rec, err := eventlog.NewRecord(r.topics.Commands, env)
	require.NoError(t, err)
	require.NoError(t, cl.ProduceSync(t.Context(), rec).FirstErr())
}

// post sends a body to a gateway with the given headers.
func (r *rig) post(t *testing.T, gw int, body []byte, h http.Header) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, r.gw[gw].URL()+"/slack/interactivity", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header = h
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }() // read-only
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// click signs a click as Slack does and sends it to a gateway.
func (r *rig) click(t *testing.T, gw int, user, action, rid string) int {
	t.Helper()
	body := slackport.Click{Team: "T0TEST", User: user, Channel: "C0DEPLOYS", TriggerID: "trig-" + user, ActionID: action, RequestID: rid}.Body()
	code, _ := r.post(t, gw, body, slackport.Sign(secret, time.Now(), body))
	return code
}

// state folds the request from the log.
func (r *rig) state(t *testing.T, rid string) approval.State {
	t.Helper()
	log, err := systest.ReadLog(t.Context(), r.kafka, r.topics.Events)
	require.NoError(t, err)
	var evs []approval.Event
	for _, rec := range log {
		if rec.Envelope.Subject == rid {
			evs = append(evs, rec.Event)
		}
	}
	return approval.Fold(evs)
}

// votes counts the vote commands in the commands topic for a request.
func (r *rig) votes(t *testing.T, rid string) int {
	t.Helper()
	log, err := systest.ReadLog(t.Context(), r.kafka, r.topics.Commands)
	require.NoError(t, err)
	n := 0
	for _, rec := range log {
		if rec.Envelope.Subject == rid && rec.Envelope.Type == approval.TypeVote {
			n++
		}
	}
	return n
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (r *rig) cardText(rid string) string {
	cards := r.slack.Cards("C0DEPLOYS", rid)
	if len(cards) != 1 {
		return fmt.Sprintf("%d cards", len(cards))
	}
	return cards[0].Text
}

// blocks returns the channel card's blocks as Slack reads them (slack-go
// escapes <, > and & as \u003c and so on in JSON).
func (r *rig) blocks(rid string) string {
	cards := r.slack.Cards("C0DEPLOYS", rid)
	if len(cards) != 1 {
		return ""
	}
	var v any
	if json.Unmarshal(cards[0].Blocks, &v) != nil {
		return ""
	}
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return b.String()
}

// ephemeralFor returns the replies a user got.
func (r *rig) ephemeralFor(user string) []string {
	var out []string
	for _, m := range r.slack.Ephemerals() {
		if m.User == user {
			out = append(out, m.Text)
		}
	}
	return out
}

// countCards counts, per channel, the messages about a request: the
// channel card, each approver's DM card and the requester's outcome DM.
func (r *rig) countCards(rid string) map[string]int {
	out := map[string]int{"C0DEPLOYS": len(r.slack.Cards("C0DEPLOYS", rid))}
	for _, u := range append(slices.Clone(approvers), "U0DAVE") {
		if dm := r.slack.DM(u); dm != "" {
			out[dm] = len(r.slack.Cards(dm, rid))
		}
	}
	return out
}

func metric(t *testing.T, p *systest.Proc, name string) float64 {
	t.Helper()
	resp, err := http.Get(p.URL() + "/metrics")
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }() // read-only
	b, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` ([0-9.e+]+)$`).FindSubmatch(b)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

// TestIntegrationSlackGateway runs the gateway as two processes against a
// real Kafka cluster and decider, and a fake Slack, and drives it the way
// approvers do: by clicking.
func TestIntegrationSlackGateway(t *testing.T) {
	r := newRig(t)

	t.Run("an approval completes through clicks alone", func(t *testing.T) {
		rid := wire.NewID(time.Now())
		r.submit(t, rid)
		eventually(t, "the card is posted and DMs sent", func() bool {
			c := r.countCards(rid)
			return c["C0DEPLOYS"] == 1 && c[r.slack.DM("U0ALICE")] == 1 && c[r.slack.DM("U0BOB")] == 1 && c[r.slack.DM("U0CAROL")] == 1
		})
		require.Contains(t, r.cardText(rid), "Approval needed: deploy services/payments in production")
		require.Contains(t, r.blocks(rid), "release &lt;42&gt; &amp; friends")
		require.Empty(t, r.slack.DM("U0DAVE"), "the requester gets no card: they cannot vote")

		// Dave cannot approve his own request; Eve is not an approver.
		require.Equal(t, http.StatusOK, r.click(t, 0, "U0DAVE", card.ActionApprove, rid))
		require.Equal(t, http.StatusOK, r.click(t, 1, "U0EVE", card.ActionApprove, rid))
		eventually(t, "dave and eve are told why", func() bool {
			return len(r.ephemeralFor("U0DAVE")) == 1 && len(r.ephemeralFor("U0EVE")) == 1
		})
		require.Contains(t, r.ephemeralFor("U0DAVE")[0], "cannot approve your own request")
		require.Contains(t, r.ephemeralFor("U0EVE")[0], "not an approver for this request")

		// Alice double-clicks, on both replicas.
		require.Equal(t, http.StatusOK, r.click(t, 0, "U0ALICE", card.ActionApprove, rid))
		require.Equal(t, http.StatusOK, r.click(t, 1, "U0ALICE", card.ActionApprove, rid))
		eventually(t, "the card shows alice's vote", func() bool { return strings.Contains(r.cardText(rid), "1 of 2 approvals: alice@example.com") })
		require.Len(t, r.state(t, rid).Votes, 1, "a double click is one vote")

		require.Equal(t, http.StatusOK, r.click(t, 1, "U0BOB", card.ActionApprove, rid))
		eventually(t, "the card shows the outcome", func() bool { return strings.HasPrefix(r.cardText(rid), "Approved: deploy") })
		st := r.state(t, rid)
		require.Equal(t, approval.StatusApproved, st.Status)
		require.ElementsMatch(t, []string{"user:alice@example.com", "user:bob@example.com"}, st.DecidedBy)
		require.NotContains(t, r.blocks(rid), card.ActionApprove, "the buttons are gone")
		eventually(t, "the requester is told", func() bool {
			dm := r.slack.DM("U0DAVE")
			return dm != "" && len(r.slack.Cards(dm, rid)) == 1
		})
		require.Contains(t, r.slack.Cards(r.slack.DM("U0DAVE"), rid)[0].Text, "approved")

		// A click after the decision.
		require.Equal(t, http.StatusOK, r.click(t, 0, "U0CAROL", card.ActionApprove, rid))
		eventually(t, "carol is told it is decided", func() bool { return len(r.ephemeralFor("U0CAROL")) == 1 })
		require.Contains(t, r.ephemeralFor("U0CAROL")[0], "already decided: approved by alice@example.com, bob@example.com")
		for ch, n := range r.countCards(rid) {
			require.Equal(t, 1, n, "messages about the request in %s", ch)
		}
	})

	t.Run("forged, stale and replayed requests are refused and produce nothing", func(t *testing.T) {
		rid := wire.NewID(time.Now())
		r.submit(t, rid)
		body := slackport.Click{Team: "T0TEST", User: "U0ALICE", Channel: "C0DEPLOYS", TriggerID: "t", ActionID: card.ActionApprove, RequestID: rid}.Body()
		for name, h := range map[string]http.Header{
			"forged": slackport.Sign("wrong-secret", time.Now(), body),
			"stale":  slackport.Sign(secret, time.Now().Add(-6*time.Minute), body),
		} {
			code, resp := r.post(t, 0, body, h)
			require.Equal(t, http.StatusUnauthorized, code, name)
			require.Contains(t, resp, `"code":"unauthenticated"`)
		}
		good := slackport.Sign(secret, time.Now(), body)
		code, _ := r.post(t, 0, body, good)
		require.Equal(t, http.StatusOK, code)
		code, resp := r.post(t, 0, body, good) // the same request again
		require.Equal(t, http.StatusUnauthorized, code)
		require.Contains(t, resp, "already received")
		require.Equal(t, 1, r.votes(t, rid), "only the genuine click reached Kafka")
		require.Equal(t, 3.0, metric(t, r.gw[0], `assent_slack_clicks_total{outcome="unauthorized"}`), "forged, stale and replayed are counted")
	})

	t.Run("a reject with a reason, through the modal, on another replica", func(t *testing.T) {
		rid := wire.NewID(time.Now())
		r.submit(t, rid)
		eventually(t, "the card is posted", func() bool { return len(r.slack.Cards("C0DEPLOYS", rid)) == 1 })
		before := len(r.slack.Views())
		require.Equal(t, http.StatusOK, r.click(t, 0, "U0CAROL", card.ActionReject, rid))
		views := r.slack.Views()
		require.Len(t, views, before+1)
		v := views[len(views)-1].View
		require.Equal(t, card.CallbackReject, v.CallbackID)
		require.Equal(t, 0, r.votes(t, rid), "the click only opens the modal")

		var md card.RejectMetadata
		require.NoError(t, json.Unmarshal([]byte(v.PrivateMetadata), &md))
		sub := slackport.Submission{Team: "T0TEST", User: "U0CAROL", Metadata: md, Reason: "freeze <until> Monday"}.Body()
		code, _ := r.post(t, 1, sub, slackport.Sign(secret, time.Now(), sub))
		require.Equal(t, http.StatusOK, code)
		eventually(t, "the card shows the rejection", func() bool { return strings.HasPrefix(r.cardText(rid), "Rejected: deploy") })
		st := r.state(t, rid)
		require.Equal(t, approval.StatusRejected, st.Status)
		require.Equal(t, "freeze <until> Monday", st.Votes[0].Comment)
		require.Contains(t, r.blocks(rid), "freeze &lt;until&gt; Monday")
	})

	t.Run("after a 429 storm every card is still correct", func(t *testing.T) {
		var rids []string
		for range 3 {
			rid := wire.NewID(time.Now())
			rids = append(rids, rid)
			r.submit(t, rid)
		}
		limitedBefore := metric(t, r.gw[0], `assent_slack_api_requests_total{method="chat.update",status="rate_limited"}`) +
			metric(t, r.gw[1], `assent_slack_api_requests_total{method="chat.update",status="rate_limited"}`)
		r.slack.RateLimit("chat.update", 6, 1)
		for _, rid := range rids {
			eventually(t, "the cards are posted", func() bool { return len(r.slack.Cards("C0DEPLOYS", rid)) == 1 })
			require.Equal(t, http.StatusOK, r.click(t, 0, "U0ALICE", card.ActionApprove, rid))
			require.Equal(t, http.StatusOK, r.click(t, 1, "U0CAROL", card.ActionApprove, rid))
		}
		for _, rid := range rids {
			eventually(t, "the card shows the outcome after the storm", func() bool {
				return strings.HasPrefix(r.cardText(rid), "Approved: deploy") && strings.Contains(r.blocks(rid), "2 of 2 approvals: alice@example.com, carol@example.com")
			})
			eventually(t, "the requester is told", func() bool {
				dm := r.slack.DM("U0DAVE")
				return dm != "" && len(r.slack.Cards(dm, rid)) >= 1
			})
			for ch, n := range r.countCards(rid) {
				require.Equal(t, 1, n, "messages about %s in %s", rid, ch)
			}
		}
		limited := metric(t, r.gw[0], `assent_slack_api_requests_total{method="chat.update",status="rate_limited"}`) +
			metric(t, r.gw[1], `assent_slack_api_requests_total{method="chat.update",status="rate_limited"}`)
		require.Equal(t, 6.0, limited-limitedBefore, "every 429 was seen and counted")
	})

	t.Run("kill -9 a replica between the post and the record", func(t *testing.T) {
		rid := wire.NewID(time.Now())
		r.slack.HoldPosts(1)
		r.submit(t, rid)
		eventually(t, "a replica posted the card and waits for Slack's answer", func() bool { return len(r.slack.HeldPosts()) == 1 })
		held := r.slack.HeldPosts()[0]
		victim := slices.IndexFunc(r.gw, func(p *systest.Proc) bool { return p.Name == held.Tag })
		require.GreaterOrEqual(t, victim, 0)
		r.gw[victim].Kill()
		r.slack.Release()
		// The held post is whichever the replica sent first: the channel's
		// card or a DM card.
		require.Len(t, r.slack.Cards(held.Channel, rid), 1, "the message is in Slack but not in the log")
		require.Empty(t, r.state(t, rid).Notes)

		r.gw[victim].Start()
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		defer cancel()
		require.NoError(t, r.gw[victim].WaitReady(ctx))
		eventually(t, "the card is found and recorded, and the DMs sent", func() bool {
			st := r.state(t, rid)
			return len(st.Notes) == 4 // the channel and three DMs
		})
		require.Equal(t, http.StatusOK, r.click(t, victim, "U0ALICE", card.ActionApprove, rid))
		require.Equal(t, http.StatusOK, r.click(t, 1-victim, "U0BOB", card.ActionApprove, rid))
		eventually(t, "the card shows the outcome", func() bool { return strings.HasPrefix(r.cardText(rid), "Approved: deploy") })
		eventually(t, "the requester is told", func() bool {
			dm := r.slack.DM("U0DAVE")
			return dm != "" && len(r.slack.Cards(dm, rid)) == 1
		})
		found := metric(t, r.gw[0], `assent_slack_cards_total{op="found"}`) + metric(t, r.gw[1], `assent_slack_cards_total{op="found"}`)
		require.GreaterOrEqual(t, found, 1.0, "the replica that took over found the unrecorded card instead of posting another")
		cards, dups := 0, 0
		for ch, n := range r.countCards(rid) {
			cards += n
			dups += n - 1
			require.Equal(t, 1, n, "messages about the request in %s", ch)
		}
		t.Logf("after kill -9 of %s between post and record: %d messages about the request (channel card, 3 DM cards, outcome DM), %d duplicates", held.Tag, cards, dups)
	})
}

package systest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/test/kafkatest"
)

// TestIntegrationHighAvailability runs two deciders and two api replicas
// as processes, puts 1,000 requests with votes through them, kills -9 one
// decider and one api replica midway and restarts them, then reads the
// whole log and checks that every acknowledged command was decided exactly
// once, that no request has two terminal events, that sequences are
// gapless, that the chain links, and that each api replica's projection
// equals a fresh fold of the log. It reports the failover time.
func TestIntegrationHighAvailability(t *testing.T) {
	topics := kafkatest.NewTopics(t, 12)
	brokers := kafkatest.Brokers(t)
	bin := Build(t, "api", "decider")
	root := RepoRoot()
	common := []string{
		"ASSENT_KAFKA_BROKERS=" + joinComma(brokers),
		"ASSENT_COMMANDS_TOPIC=" + topics.Commands,
		"ASSENT_EVENTS_TOPIC=" + topics.Events,
		"ASSENT_PARTITIONS=12",
	}
	decEnv := append(slices.Clone(common),
		"ASSENT_DECIDER_GROUP=ha-"+topics.Commands,
		"ASSENT_POLICY_FILE="+filepath.Join(root, "infra/policies/example.yaml"))
	apiEnv := append(slices.Clone(common), "ASSENT_TOKENS_FILE="+filepath.Join(root, "infra/tokens/demo-tokens.yaml"))
	dec := []*Proc{NewProc(t, bin+"/decider", "decider-1", decEnv...), NewProc(t, bin+"/decider", "decider-2", decEnv...)}
	api := []*Proc{NewProc(t, bin+"/api", "api-1", apiEnv...), NewProc(t, bin+"/api", "api-2", apiEnv...)}
	for _, p := range append(slices.Clone(dec), api...) {
		p.Start()
	}
	ready, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	for _, p := range append(slices.Clone(dec), api...) {
		require.NoError(t, ready.Err())
		require.NoError(t, p.WaitReady(ready))
	}

	const total, workers = 1000, 8
	urls := []string{api[0].URL(), api[1].URL()}
	billing := &Client{URLs: urls, Token: "demo-billing"}
	voters := map[string]*Client{
		"user:alice@example.com": {URLs: urls, Token: "demo-alice"},
		"user:bob@example.com":   {URLs: urls, Token: "demo-bob"},
	}
	type outcome struct {
		submitted, voted bool
		voter            string
		decision         string
	}
	results := make([]outcome, total)
	var done atomic.Int64
	var killAt atomic.Value
	var unknown atomic.Int64

	g, gctx := errgroup.WithContext(t.Context())
	for w := range workers {
		g.Go(func() error {
			for i := w; i < total; i += workers {
				rid := fmt.Sprintf("ha-%04d", i)
				resp, err := billing.Do(gctx, i, "POST", "/v1/requests", map[string]any{
					"request_id": rid, "reason": "release",
					"action": map[string]any{"type": "deploy", "resource": "services/billing/api", "environment": "production"},
				}, 20)
				if err != nil {
					unknown.Add(1)
					continue
				}
				if resp.Status != 201 && resp.Status != 202 {
					return fmt.Errorf("submit %s: %d %s", rid, resp.Status, resp.Raw)
				}
				results[i].submitted = true
				voter, decision := "user:alice@example.com", "approve"
				if i%5 == 0 {
					voter, decision = "user:bob@example.com", "reject"
				}
				resp, err = voters[voter].Do(gctx, i+1, "POST", "/v1/requests/"+rid+"/votes", map[string]any{"decision": decision}, 20)
				if err != nil {
					unknown.Add(1)
					continue
				}
				switch {
				case resp.Status == 200 || resp.Status == 202:
				case resp.Status == 409 && (resp.Body["code"] == "duplicate_vote" || resp.Body["code"] == "already_decided"):
					// A retry after a lost answer: the first attempt counted.
				case resp.Status == 404 && results[i].submitted:
					// The vote reached a replica before the submit was decided; retry below.
					resp, err = voters[voter].Do(gctx, i, "POST", "/v1/requests/"+rid+"/votes", map[string]any{"decision": decision}, 20)
					if err != nil {
						return fmt.Errorf("vote %s after 404: %w", rid, err)
					}
					if resp.Status >= 300 && resp.Body["code"] != "duplicate_vote" {
						return fmt.Errorf("vote %s after 404: %d %s", rid, resp.Status, resp.Raw)
					}
				default:
					return fmt.Errorf("vote %s: %d %s", rid, resp.Status, resp.Raw)
				}
				results[i].voted, results[i].voter, results[i].decision = true, voter, decision
				if done.Add(1) == total*3/10 {
					killAt.Store(time.Now())
					dec[0].Kill()
					api[0].Kill()
					t.Logf("killed -9 %s and %s after %d requests", dec[0].Name, api[0].Name, total*3/10)
					go func() {
						time.Sleep(3 * time.Second)
						dec[0].Start()
						api[0].Start()
					}()
				}
			}
			return nil
		})
	}
	require.NoError(t, g.Wait())
	require.Zero(t, unknown.Load(), "every operation got an answer from some replica")

	// The log, read back whole.
	kcfg := kafkatest.Config(t, "")
	var res Result
	var log []Record
	require.Eventually(t, func() bool {
		var err error
		log, err = ReadLog(t.Context(), kcfg, topics.Events)
		require.NoError(t, err)
		res = Check(log, nil)
		for i, r := range results {
			st := res.States[fmt.Sprintf("ha-%04d", i)]
			if r.voted && !st.Status.Terminal() {
				return false
			}
		}
		return true
	}, 60*time.Second, 500*time.Millisecond, "every acknowledged vote decided: %s", res.Summary())
	require.Empty(t, res.Anomalies, res.Summary())
	for i, r := range results {
		rid := fmt.Sprintf("ha-%04d", i)
		st := res.States[rid]
		require.True(t, r.submitted && r.voted, "%s: every request went through", rid)
		require.NotEqual(t, approval.StatusNone, st.Status, "%s: acknowledged submit is in the log (I1)", rid)
		require.True(t, st.HasVoted(r.voter), "%s: acknowledged vote by %s is in the log (I1)", rid, r.voter)
		want := approval.StatusApproved
		if r.decision == "reject" {
			want = approval.StatusRejected
		}
		require.Equal(t, want, st.Status, rid)
	}
	t.Logf("checker: %s", res.Summary())

	// I5: each api replica's projection equals a fresh fold of the log.
	for _, p := range api {
		c := &Client{URLs: []string{p.URL()}, Token: "demo-billing"}
		for rid, st := range res.States {
			require.Eventually(t, func() bool {
				resp, err := c.Do(t.Context(), 0, "GET", "/v1/requests/"+rid, nil, 3)
				require.NoError(t, err)
				return resp.Status == 200 && matches(t, resp.Body, st)
			}, 30*time.Second, 50*time.Millisecond, "%s on %s equals the fold", rid, p.Name)
		}
	}

	// Failover: from the kill to the first event the survivor decided for
	// a partition the killed decider owned.
	kill := killAt.Load().(time.Time)
	owned := lastAssignment(t, dec[0].Log, kill)
	require.NotEmpty(t, owned, "the killed decider owned partitions")
	var first time.Time
	for _, r := range log {
		if slices.Contains(owned, r.Partition) && r.Envelope.Time.After(kill) && (first.IsZero() || r.Envelope.Time.Before(first)) {
			first = r.Envelope.Time
		}
	}
	require.False(t, first.IsZero(), "the killed decider's partitions were decided again")
	t.Logf("FAILOVER: %s from kill -9 of %s to the first decision in its partitions %v", first.Sub(kill).Round(time.Millisecond), dec[0].Name, owned)
}

func matches(t *testing.T, view map[string]any, st approval.State) bool {
	t.Helper()
	votes, _ := view["votes"].([]any)
	if view["status"] != string(st.Status) || jsonInt(view["sequence"]) != st.Sequence || len(votes) != len(st.Votes) ||
		view["requester"] != st.Requester || view["reason"] != st.Reason {
		return false
	}
	for i, v := range votes {
		vm, _ := v.(map[string]any)
		if vm["voter"] != st.Votes[i].Voter || vm["decision"] != string(st.Votes[i].Decision) {
			return false
		}
	}
	decidedBy, _ := view["decided_by"].([]any)
	if len(decidedBy) != len(st.DecidedBy) {
		return false
	}
	for i, by := range decidedBy {
		if by != st.DecidedBy[i] {
			return false
		}
	}
	policy, _ := view["policy"].(map[string]any)
	return policy["hash"] == st.Policy.Hash
}

func jsonInt(v any) int {
	f, _ := v.(float64)
	return int(f)
}

// lastAssignment reads a decider's JSON log for the partitions it was last
// assigned before t.
func lastAssignment(t *testing.T, path string, before time.Time) []int32 {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer func() { _ = f.Close() }() // read-only
	owned := map[int32]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var line struct {
			Time       time.Time `json:"time"`
			Msg        string    `json:"msg"`
			Partitions []int32   `json:"partitions"`
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil || line.Time.After(before) {
			continue
		}
		switch line.Msg {
		case "partitions assigned":
			for _, p := range line.Partitions {
				owned[p] = true
			}
		case "partitions revoked":
			for _, p := range line.Partitions {
				delete(owned, p)
			}
		}
	}
	var out []int32
	for p := range owned {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

func joinComma(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += ","
		}
		out += x
	}
	return out
}

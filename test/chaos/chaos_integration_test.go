package chaos

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/test/kafkatest"
	"github.com/assent-dev/assent/test/systest"
)

// TestIntegrationChaos is the bounded version of scripts/chaos: its own
// Kafka cluster in network namespaces (three brokers, three controllers), two deciders, two api
// replicas and two gateways, a workload of every kind of operation, and
// each fault type once with short quiet periods, the insider's forgeries
// among them. It fails on any anomaly, and if a forgery was ever served.
func TestIntegrationChaos(t *testing.T) {
	dir := t.TempDir()
	r, err := Execute(t.Context(), Config{
		Root: systest.RepoRoot(), Dir: dir, Faults: AllFaults, Quiet: 4 * time.Second,
		Clients: 8, Think: 25 * time.Millisecond, Logf: t.Logf,
	})
	require.NoError(t, err)
	var report bytes.Buffer
	r.WriteReport(&report)
	t.Log("\n" + report.String())

	require.Empty(t, r.Verdict.Anomalies, "the checker found anomalies (report above)")
	// Every fault type was injected, and each one worked.
	var injected []string
	for _, f := range r.Faults {
		require.Empty(t, f.Err, "fault %s on %s", f.Name, f.Target)
		injected = append(injected, f.Name)
	}
	require.Equal(t, AllFaults, injected)
	// The run exercised what it claims to: every kind of operation, with
	// refusals and answers, security negatives, and the log agrees.
	by, total := Outcomes(r.Ops)
	require.Greater(t, len(r.Ops), 100, "operations")
	for _, kind := range []string{"submit", "vote", "vote (slack)", "cancel", "read", "negative"} {
		require.NotEmpty(t, by[kind], "operations of kind %s", kind)
	}
	require.Positive(t, total[OK])
	require.Positive(t, total[Refused])
	codes := map[string]bool{}
	for _, op := range r.Ops {
		codes[op.Code] = true
	}
	for _, code := range []string{"not_eligible", "self_approval", "duplicate_vote", "already_decided", "forbidden", "conflict", "unauthenticated"} {
		require.True(t, codes[code], "some operation was refused as %s", code)
	}
	negatives := map[string]bool{}
	for _, op := range r.Ops {
		if op.Kind == KindNegative {
			negatives[op.Detail] = true
		}
	}
	require.Len(t, negatives, negativeKinds+1, "every kind of security negative was sent, and a replayed click: %v", negatives)
	require.Positive(t, r.Verdict.Base.Terminal["approved"])
	require.Positive(t, r.Verdict.Base.Terminal["rejected"])
	require.Positive(t, r.Verdict.Base.Terminal["cancelled"])
	require.Positive(t, r.Verdict.Base.Terminal["expired"])
	require.Equal(t, len(r.Faults), len(r.Gaps))
	require.Greater(t, r.Verdict.LinChecked, 50, "request histories checked for linearizability")
	// The insider forged a decision of every kind, on pending requests;
	// the log holds them, refused, and nothing else unauthenticated
	// (checkForgeries), and no client or replica was shown one.
	kinds := map[string]bool{}
	forgedRecords := 0
	for _, f := range r.Forgeries {
		kinds[f.Kind] = true
		forgedRecords += len(f.Offsets)
	}
	require.Len(t, kinds, len(ForgeryKinds), "every kind of forgery was injected: %v", r.Forgeries)
	require.Equal(t, forgedRecords, r.Verdict.Unauthenticated, "the records no seal covers are exactly the insider's")
	require.Zero(t, r.Verdict.Served, "forgeries served")
	require.Len(t, r.Counters, 2, "both api replicas' violation counters were read around the insider fault")
	for _, c := range r.Counters {
		require.Greater(t, c.After, c.Before, "%s counted the forgeries as unauthenticated", c.Replica)
	}
	// The paused owner's requests expired, and nothing else: the votes
	// sent after their deadlines, while it was stopped, were refused.
	expiring := 0
	for rid, st := range r.Verdict.Base.States {
		if strings.Contains(rid, "-expiry-") {
			expiring++
			require.Equal(t, approval.StatusExpired, st.Status, "request %s, on the paused owner's partitions", rid)
		}
	}
	require.Positive(t, expiring, "pause-at-expiry submitted requests")
	// The flood was refused by the deciders beyond what a state remembers,
	// and by the api's rate limit; the flooded request was then approved
	// (the fault's own check).
	flood := map[string]int{}
	for _, op := range r.Ops {
		if op.Hostile {
			flood[op.Code]++
		}
	}
	require.Greater(t, flood["not_eligible"], approval.MaxRefusedOutcomes, "flood refusals by the decider: %v", flood)
	require.Positive(t, flood["rate_limited"], "flood votes refused by the rate limit: %v", flood)
}

// TestIntegrationChaosCatchesBrokenDedupe shows that the checker works: a
// decider built without command-id dedupe (libs/approval, build tag
// assent_broken_dedupe) decides the votes that clients send to both api
// replicas at once twice, and the checker must report it (I2). It runs on
// the shared cluster, without faults: the workload alone is enough.
func TestIntegrationChaosCatchesBrokenDedupe(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	r, err := Execute(t.Context(), Config{
		Root: systest.RepoRoot(), Dir: t.TempDir(), Duration: 25 * time.Second, Quiet: 2 * time.Second,
		Clients: 8, Think: 20 * time.Millisecond, DeciderTags: "assent_broken_dedupe", Brokers: brokers, Logf: t.Logf,
	})
	require.NoError(t, err)
	var report bytes.Buffer
	r.WriteReport(&report)
	t.Log("\n" + report.String())
	var invs []string
	for _, a := range r.Verdict.Anomalies {
		invs = append(invs, a.Invariant)
	}
	require.Contains(t, invs, "I2", "the broken build's duplicate decisions are reported")
	i := slices.IndexFunc(r.Verdict.Anomalies, func(a Anomaly) bool { return a.Invariant == "I2" })
	a := r.Verdict.Anomalies[i]
	require.NotEmpty(t, a.Request, "the anomaly names the request")
	require.GreaterOrEqual(t, a.Partition, int32(0), "and the partition")
	require.Len(t, a.Offsets, 2, "and the offsets of both decisions")
}

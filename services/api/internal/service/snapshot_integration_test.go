package service_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/projection"
	"github.com/assent-dev/assent/test/kafkatest"
	"github.com/assent-dev/assent/test/systest"
)

// metricOf reads one sample of replica i's metrics.
func (c *cluster) metricOf(t *testing.T, i int, sample string) string {
	t.Helper()
	for line := range strings.Lines(string(c.call(t, i, http.MethodGet, "/metrics", "", "").body)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), sample+" "); ok {
			return v
		}
	}
	return ""
}

// TestIntegrationBootstrapFromPeer: an api replica started without a
// store and with ASSENT_BOOTSTRAP_FROM naming a peer's snapshot address
// starts from the peer's store: it is ready having applied only what the
// log gained since the snapshot, answers as the peer does, and says so in
// its metrics. One sent the wrong token is refused the snapshot, says why,
// and rebuilds from the log.
func TestIntegrationBootstrapFromPeer(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	topics := kafkatest.NewTopics(t, 12)
	c := &cluster{t: t, topics: topics, kafka: kafkatest.Config(t, "api-snapshot")}
	startDeciders(t, topics, brokers)
	token := filepath.Join(t.TempDir(), "snapshot.token")
	require.NoError(t, os.WriteFile(token, []byte("a-test-snapshot-token-0123456789\n"), 0o600))
	snapAddr := systest.FreeAddr(t)
	c.apis = append(c.apis, startAPI(t, topics, brokers, "api-peer",
		"ASSENT_SNAPSHOT_ADDR="+snapAddr, "ASSENT_SNAPSHOT_TOKEN_FILE="+token, "ASSENT_SNAPSHOT_INTERVAL=500ms"))
	ctx := t.Context()
	require.NoError(t, waitReady(ctx, c.apis[0]))

	var rids []string
	for i := range 6 {
		rid := uniq("snap")
		c.submit(t, 0, deployBot, deployBody(rid, "release "+string(rune('a'+i))))
		rids = append(rids, rid)
	}
	c.vote(t, 0, alice, rids[0], "approve", http.StatusOK)
	c.expect(t, 0, http.MethodPost, "/v1/requests/"+rids[1]+"/cancel", deployBot, `{"reason":"not today"}`, http.StatusOK)
	applied := c.metricOf(t, 0, "assent_projection_records_total")

	// Wait for a snapshot that holds all of it.
	hc := &http.Client{Timeout: 10 * time.Second}
	eventually(t, 30*time.Second, func() bool {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+snapAddr+"/snapshot/manifest.json", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer a-test-snapshot-token-0123456789")
		resp, err := hc.Do(req)
		if err != nil {
			return false
		}
		defer func() { _ = resp.Body.Close() }()
		var m projection.Manifest
		if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&m) != nil {
			return false
		}
		lso := committedEnds(t, topics.Events)
		for p, mark := range m.Partitions {
			if mark.Next < lso[p] {
				return false
			}
		}
		return true
	}, "a snapshot holding the requests")

	c.apis = append(c.apis, startAPI(t, topics, brokers, "api-new",
		"ASSENT_BOOTSTRAP_FROM=http://"+snapAddr+"/snapshot", "ASSENT_SNAPSHOT_TOKEN_FILE="+token))
	require.NoError(t, waitReady(ctx, c.apis[1]))
	require.Equal(t, "1", c.metricOf(t, 1, "assent_projection_bootstrapped"))
	for _, reason := range []string{"unavailable", "malformed", "identity", "head", "offsets", "timeout"} {
		require.Equal(t, "0", c.metricOf(t, 1, `assent_projection_snapshot_refused{reason="`+reason+`"}`))
	}
	fresh, err := strconv.Atoi(c.metricOf(t, 1, "assent_projection_records_total"))
	require.NoError(t, err)
	peer, err := strconv.Atoi(applied)
	require.NoError(t, err)
	require.Less(t, fresh, peer, "the new replica applied only what came after the snapshot")
	for _, rid := range rids {
		status := statusOf(t, c, rid)
		require.Equal(t, c.get(t, 0, rid, status), c.get(t, 1, rid, status), "request %s", rid)
	}
	// It goes on from there: a new request is decided and seen by both.
	rid := uniq("after")
	c.submit(t, 1, deployBot, deployBody(rid, "after the snapshot"))
	c.vote(t, 1, alice, rid, "approve", http.StatusOK)
	require.Equal(t, c.get(t, 1, rid, "approved"), c.get(t, 0, rid, "approved"))

	c.apis = append(c.apis, startAPI(t, topics, brokers, "api-refused",
		"ASSENT_BOOTSTRAP_FROM=http://"+snapAddr+"/snapshot", "ASSENT_SNAPSHOT_TOKEN_FILE="+writeToken(t, "not-the-snapshot-token-at-all")))
	require.NoError(t, waitReady(ctx, c.apis[2]))
	require.Equal(t, "0", c.metricOf(t, 2, "assent_projection_bootstrapped"))
	require.Equal(t, "1", c.metricOf(t, 2, `assent_projection_snapshot_refused{reason="unavailable"}`))
	require.Equal(t, c.get(t, 0, rids[0], "approved"), c.get(t, 2, rids[0], "approved"), "rebuilt from the log instead")
}

func writeToken(t *testing.T, token string) string {
	path := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(path, []byte(token), 0o600))
	return path
}

// statusOf reads a request's status on replica 0, as it is now.
func statusOf(t *testing.T, c *cluster, rid string) string {
	v := c.expect(t, 0, http.MethodGet, "/v1/requests/"+rid, zed, "", http.StatusOK)
	return v["status"].(string)
}

// committedEnds is every partition's last stable offset.
func committedEnds(t *testing.T, topic string) []int64 {
	lso, err := kafkatest.NewAdmin(t).ListCommittedOffsets(t.Context(), topic)
	require.NoError(t, err)
	out := make([]int64, 12)
	for p := range out {
		o, ok := lso.Lookup(topic, int32(p))
		require.True(t, ok)
		out[p] = o.Offset
	}
	return out
}

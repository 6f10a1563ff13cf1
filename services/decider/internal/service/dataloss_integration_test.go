package service_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/test/kafkatest"
	"github.com/assent-dev/assent/test/systest"
)

// TestIntegrationLostCommandsStopThePartition, on the real cluster: the
// commands of partition 0 that were acknowledged while no decider ran are
// deleted before one comes back (the commands topic keeps 7 days). The
// decider that comes back must not decide what follows them as if nothing
// were missing (issue 13, item 4): it decides nothing more of partition 0,
// says so in assent_decider_stopped_partitions and /readyz, and goes on
// deciding partition 1.
func TestIntegrationLostCommandsStopThePartition(t *testing.T) {
	topics := kafkatest.NewTopics(t, 2)
	group := "test-decider-" + topics.Commands
	cl := kafkatest.NewClient(t)
	adm := kafkatest.NewAdmin(t)
	kcfg := kafkatest.Config(t, "dataloss")
	ridIn := func(prefix string, p int32) string {
		for i := 0; ; i++ {
			if rid := fmt.Sprintf("%s-%d", prefix, i); wire.Partition([]byte(rid), 2) == p {
				return rid
			}
		}
	}
	submit := func(rid string) string {
		c := approval.Command{ID: wire.NewID(time.Now()), RequestID: rid, Actor: "service:billing", Time: time.Now().UTC(), Body: approval.Submit{
			Action: approval.Action{Type: "deploy", Resource: "services/billing/api", Environment: "production"},
			Reason: "release", TTL: approval.Duration(time.Hour)}}
		require.NoError(t, cl.ProduceSync(t.Context(), command(t, topics.Commands, c)).FirstErr())
		return c.ID
	}
	decided := func(id string) bool {
		log, err := systest.ReadLog(t.Context(), kcfg, topics.Events)
		require.NoError(t, err)
		for _, r := range log {
			if r.Envelope.CommandID == id {
				return true
			}
		}
		return false
	}
	logStart := func(topic string, p int32) int64 {
		starts, err := adm.ListStartOffsets(t.Context(), topic)
		require.NoError(t, err)
		o, _ := starts.Lookup(topic, p)
		return o.Offset
	}
	end := func(topic string, p int32) int64 {
		ends, err := adm.ListEndOffsets(t.Context(), topic)
		require.NoError(t, err)
		o, _ := ends.Lookup(topic, p)
		return o.Offset
	}

	stopA := startDecider(t, topics, group, "decider-a")
	first := submit(ridIn("first", 0))
	require.Eventually(t, func() bool { return decided(first) }, 60*time.Second, 200*time.Millisecond, "the first command is decided")
	stopA()

	lost := []string{submit(ridIn("lost-a", 0)), submit(ridIn("lost-b", 0))}
	var o kadm.Offsets
	o.Add(kadm.Offset{Topic: topics.Commands, Partition: 0, At: end(topics.Commands, 0)})
	resp, err := adm.DeleteRecords(t.Context(), o)
	require.NoError(t, err)
	require.NoError(t, resp.Error())
	require.Equal(t, int64(3), logStart(topics.Commands, 0), "the two commands never decided are deleted")
	survivor := submit(ridIn("survivor", 0))
	other := submit(ridIn("other", 1))

	addr := systest.FreeAddr(t)
	startDeciderAt(t, topics, group, "decider-b", addr)
	require.Eventually(t, func() bool { return decided(other) }, 60*time.Second, 200*time.Millisecond, "partition 1 is decided")
	require.Eventually(t, func() bool {
		return strings.Contains(get(t, "http://"+addr+"/metrics"), "\nassent_decider_stopped_partitions 1\n")
	}, 30*time.Second, 200*time.Millisecond, "assent_decider_stopped_partitions reads 1")
	ready := get(t, "http://"+addr+"/readyz")
	require.Contains(t, ready, "503 Service Unavailable", "/readyz: not ready")
	require.Contains(t, ready, "deciding nothing of commands partitions [0]", "/readyz says why it is not ready")
	time.Sleep(2 * time.Second) // the replica keeps running: what it does with partition 0 meanwhile is the point
	for _, id := range append(lost, survivor) {
		require.False(t, decided(id), "%s was decided past commands that were lost", id)
	}
	offs, err := adm.FetchOffsets(t.Context(), group)
	require.NoError(t, err)
	committed, _ := offs.Lookup(topics.Commands, 0)
	require.Equal(t, int64(1), committed.At, "nothing is committed past the loss")
}

// get returns the status line and body of a GET, or "" if it fails.
func get(t *testing.T, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return ""
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.Status + "\n" + string(body)
}

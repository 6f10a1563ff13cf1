package service_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/codec"
	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/schemas"
	"github.com/assent-dev/assent/services/decider/internal/service"
	"github.com/assent-dev/assent/test/kafkatest"
	"github.com/assent-dev/assent/test/systest"
)

func policyFile(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "../../../../infra/policies/example.yaml")
}

// infraFile is a file under infra/ (the demo checkpoint key and its
// published public key).
func infraFile(name string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "../../../../infra", name)
}

type syncBuf = systest.SyncBuffer

// startDecider runs one replica in-process until the returned stop is called.
func startDecider(t *testing.T, topics eventlog.TopicSpec, group, name string) (stop func()) {
	t.Helper()
	return startDeciderAt(t, topics, group, name, "127.0.0.1:0")
}

// startDeciderAt is startDecider serving its probes and metrics on addr.
func startDeciderAt(t *testing.T, topics eventlog.TopicSpec, group, name, addr string) (stop func()) {
	t.Helper()
	cfg, err := service.LoadConfig(func(k string) string {
		return map[string]string{
			"ASSENT_KAFKA_USER": os.Getenv("ASSENT_KAFKA_USER"), "ASSENT_KAFKA_PASSWORD_FILE": os.Getenv("ASSENT_KAFKA_PASSWORD_FILE"),
			"ASSENT_KAFKA_BROKERS":  os.Getenv("ASSENT_KAFKA_BROKERS"),
			"ASSENT_INSTANCE_ID":    name + "-" + topics.Commands, // transactional ids are cluster-wide
			"ASSENT_DATA_DIR":       filepath.Join(t.TempDir(), name),
			"ASSENT_HTTP_ADDR":      addr,
			"ASSENT_POLICY_FILE":    policyFile(t),
			"ASSENT_PARTITIONS":     fmt.Sprint(topics.Partitions),
			"ASSENT_COMMANDS_TOPIC": topics.Commands,
			"ASSENT_EVENTS_TOPIC":   topics.Events,
			"ASSENT_DECIDER_GROUP":  group,

			"ASSENT_SIGNING_KEY_FILE":  infraFile("keys/demo-decider.key.pem"),
			"ASSENT_SIGNING_KEY_ID":    "demo-2026-01",
			"ASSENT_SEAL_KEYS_FILE":    infraFile("keys/decider-keys.json"),
			"ASSENT_SERVICE_KEYS_FILE": infraFile("keys/service-keys.json"),
		}[k]
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	done := make(chan error, 1)
	logs := &syncBuf{}
	go func() { done <- service.Run(ctx, cfg, logs) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				require.NoError(t, err)
			case <-time.After(30 * time.Second):
				t.Errorf("decider %s did not stop in 30s", name)
			}
			if t.Failed() {
				t.Logf("%s logs:\n%s", name, logs.String())
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func command(t *testing.T, topic string, c approval.Command) *kgo.Record {
	t.Helper()
	env, err := codec.CommandEnvelope(c, "assent/test")
	require.NoError(t, err)
	env = systest.SignCommand(t, systest.ServiceAPI, env) // the api's key may name anyone
	rec, err := eventlog.NewRecord(topic, env)
	require.NoError(t, err)
	return rec
}

// TestIntegrationDecidersOverKafka drives two decider replicas with
// commands produced straight to Kafka, stops one midway, and checks the
// whole log with the systest checker.
func TestIntegrationDecidersOverKafka(t *testing.T) {
	topics := kafkatest.NewTopics(t, 6)
	group := "test-decider-" + topics.Commands
	stopA := startDecider(t, topics, group, "decider-a")
	startDecider(t, topics, group, "decider-b")
	cl := kafkatest.NewClient(t)

	const n = 60
	now := time.Now().UTC()
	var acked []systest.Acked
	produce := func(c approval.Command) {
		c.Time = now
		require.NoError(t, cl.ProduceSync(t.Context(), command(t, topics.Commands, c)).FirstErr())
		acked = append(acked, systest.Acked{RequestID: c.RequestID, CommandID: c.ID})
	}
	for i := range n {
		rid := fmt.Sprintf("req-%d", i)
		produce(approval.Command{ID: wire.NewID(time.Now()), RequestID: rid, Actor: "service:billing", Body: approval.Submit{
			Action: approval.Action{Type: "deploy", Resource: "services/billing/api", Environment: "production"},
			Reason: "release", TTL: approval.Duration(time.Hour)}})
	}
	for i := range n {
		rid := fmt.Sprintf("req-%d", i)
		if i == n/2 {
			stopA() // a graceful stop hands its partitions over
		}
		switch i % 4 {
		case 0:
			produce(approval.Command{ID: wire.NewID(time.Now()), RequestID: rid, Actor: "user:alice@example.com", Body: approval.Vote{Decision: approval.Approve}})
		case 1:
			produce(approval.Command{ID: wire.NewID(time.Now()), RequestID: rid, Actor: "user:bob@example.com", Body: approval.Vote{Decision: approval.Reject, Comment: "no"}})
		case 2:
			produce(approval.Command{ID: wire.NewID(time.Now()), RequestID: rid, Actor: "service:billing", Body: approval.Cancel{}})
		default:
			produce(approval.Command{ID: wire.NewID(time.Now()), RequestID: rid, Actor: "user:mallory@example.com", Body: approval.Vote{Decision: approval.Approve}})
		}
	}
	// A retried command (same id) must not be decided twice.
	dup := approval.Command{ID: "dup-1", RequestID: "req-3", Actor: "user:alice@example.com", Body: approval.Vote{Decision: approval.Approve}}
	produce(dup)
	produce(dup)

	kcfg := kafkatest.Config(t, "")
	var res systest.Result
	require.Eventually(t, func() bool {
		log, err := systest.ReadLog(t.Context(), kcfg, topics.Events)
		require.NoError(t, err)
		res = systest.Check(log, acked)
		return len(res.Anomalies) == 0
	}, 90*time.Second, 500*time.Millisecond, "checker: %s", res.Summary())
	// Every transaction ends its run in each partition with a seal: once
	// the deciders are idle, every partition with events ends with a seal,
	// and every record is covered by a seal that verifies with the
	// published public key.
	ring, err := wire.LoadKeyRing(infraFile("keys/decider-keys.json"))
	require.NoError(t, err)
	var log []systest.Record
	require.Eventually(t, func() bool {
		log, err = systest.ReadLog(t.Context(), kcfg, topics.Events)
		require.NoError(t, err)
		last := map[int32]systest.Record{}
		for _, r := range log {
			last[r.Partition] = r
		}
		for _, r := range last {
			if r.Envelope.Type != wire.TypeSeal {
				return false
			}
		}
		return len(last) > 0
	}, 30*time.Second, 200*time.Millisecond, "every partition's last record is a seal")
	seals, anomalies := systest.CheckSeals(log, topics.Events, ring)
	require.Empty(t, anomalies)
	require.Positive(t, seals)
	require.Empty(t, systest.Check(log, acked).Anomalies, "seals are links of the chain")
	for _, r := range log {
		require.NoError(t, schemas.Validate(r.Value), "event at %d@%d", r.Partition, r.Offset)
	}
	require.Equal(t, n, res.Requests)
	require.Equal(t, n/4+1, res.Terminal[approval.StatusApproved], "req-3 is approved by the duplicated vote: %s", res.Summary())
	require.Equal(t, n/4, res.Terminal[approval.StatusRejected], res.Summary())
	require.Equal(t, n/4, res.Terminal[approval.StatusCancelled], res.Summary())
	st := res.States["req-3"]
	require.Equal(t, approval.StatusApproved, st.Status)
	require.Len(t, st.Votes, 1, "mallory's vote does not count, and the duplicate adds nothing")
	require.Equal(t, approval.ReasonNotEligible, st.Outcomes[acked[n+3].CommandID].Code)
}

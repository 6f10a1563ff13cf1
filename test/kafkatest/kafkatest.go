// Package kafkatest connects integration tests to the real Kafka cluster
// named by ASSENT_KAFKA_BROKERS (scripts/kafka up starts one) and gives each
// test its own topics.
//
// It is the only place in the repository that may skip a test for want of
// Kafka, and it does so only outside CI: under CI=true a missing or
// unreachable cluster fails the test, so an integration test never passes
// by skipping.
package kafkatest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/assent-dev/assent/test/tb"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/logadmin"
)

// probe is the outcome of the one reachability check per test binary.
var probe = sync.OnceValues(func() ([]string, string) {
	raw := os.Getenv(eventlog.EnvBrokers)
	if strings.TrimSpace(raw) == "" {
		return nil, eventlog.EnvBrokers + " is not set"
	}
	brokers, err := eventlog.ParseBrokers(raw)
	if err != nil {
		return nil, eventlog.EnvBrokers + ": " + err.Error()
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DialTimeout(5*time.Second))
	if err != nil {
		return nil, err.Error()
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cl.Ping(ctx); err != nil {
		return nil, "Kafka at " + raw + " is unreachable: " + err.Error()
	}
	return brokers, ""
})

// Brokers returns the brokers of the test cluster. If there is none, it
// fails the test under CI=true and skips it otherwise.
func Brokers(t tb.TB) []string {
	t.Helper()
	brokers, problem := probe()
	if problem == "" {
		return brokers
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("kafkatest: %s; integration tests need the real cluster under CI (scripts/kafka up)", problem)
	}
	t.Skipf("kafkatest: %s; set %s or run scripts/test", problem, eventlog.EnvBrokers)
	return nil
}

// NewClient returns an eventlog client for the test cluster, closed when
// the test ends.
func NewClient(t tb.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := eventlog.NewClient(eventlog.Config{Brokers: Brokers(t), ClientID: "kafkatest"}, opts...)
	if err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// NewAdmin returns an admin client for the test cluster, closed when the
// test ends.
func NewAdmin(t tb.TB) *kadm.Client {
	t.Helper()
	return kadm.NewClient(NewClient(t))
}

// TopicSpec returns a spec with names unique to this test run and
// replication factor 3, min ISR 2, without creating anything. Whatever
// topics with these names exist when the test ends are deleted.
func TopicSpec(t tb.TB, partitions int32) eventlog.TopicSpec {
	t.Helper()
	adm := NewAdmin(t)
	var random [4]byte
	_, _ = rand.Read(random[:])
	base := "test." + sanitize(t.Name()) + "." + hex.EncodeToString(random[:])
	spec := eventlog.TopicSpec{
		Commands:          base + ".commands",
		Events:            base + ".events",
		Partitions:        partitions,
		ReplicationFactor: 3,
		MinInsyncReplicas: 2,
	}
	t.Cleanup(func() {
		// t.Context() is already canceled when cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := adm.DeleteTopics(ctx, spec.Commands, spec.Events); err != nil {
			t.Logf("kafkatest: delete topics %s, %s: %v", spec.Commands, spec.Events, err)
		}
	})
	return spec
}

// NewTopics returns a TopicSpec whose topics are provisioned and ready:
// every partition has a leader and a full ISR.
func NewTopics(t tb.TB, partitions int32) eventlog.TopicSpec {
	t.Helper()
	spec := TopicSpec(t, partitions)
	adm := NewAdmin(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if _, err := logadmin.Provision(ctx, adm, spec); err != nil {
		t.Fatalf("kafkatest: provision: %v", err)
	}
	if err := logadmin.PollReady(ctx, adm, 0, []string{spec.Commands, spec.Events}, nil); err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
	return spec
}

// sanitize turns a test name into letters, digits and '-', short enough to
// leave room for the rest of the name (the limit is 249). It avoids '_'
// because Kafka refuses a topic whose name differs from an existing one
// only in '.' versus '_'.
func sanitize(name string) string {
	b := []byte(name)
	for i, c := range b {
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '-' {
			b[i] = '-'
		}
	}
	if len(b) > 120 {
		b = b[:120]
	}
	return string(b)
}

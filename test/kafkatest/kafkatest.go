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
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/assent-dev/assent/test/tb"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/logadmin"
)

// probe is the outcome of the one reachability check per test binary. The
// cluster and the credentials (the cluster's admin: tests create and
// delete topics) come from the environment, as `eval "$(scripts/kafka
// up)"` sets it: ASSENT_KAFKA_BROKERS, ASSENT_KAFKA_USER and
// ASSENT_KAFKA_PASSWORD_FILE. Processes a test starts inherit them.
var probe = sync.OnceValues(func() (eventlog.Config, string) {
	raw := os.Getenv(eventlog.EnvBrokers)
	if strings.TrimSpace(raw) == "" {
		return eventlog.Config{}, eventlog.EnvBrokers + " is not set"
	}
	cfg, err := eventlog.ConfigFromEnv(os.Getenv)
	if err != nil {
		return eventlog.Config{}, err.Error()
	}
	cfg.DialTimeout = 5 * time.Second
	cl, err := eventlog.NewClient(cfg)
	if err != nil {
		return eventlog.Config{}, err.Error()
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cl.Ping(ctx); err != nil {
		return eventlog.Config{}, "Kafka at " + raw + " is unreachable: " + err.Error()
	}
	cfg.DialTimeout = 0
	return cfg, ""
})

// Config returns the test cluster's client configuration, authenticated
// as the environment says, with the client id given. If there is no
// cluster, it fails the test under CI=true and skips it otherwise.
func Config(t tb.TB, clientID string) eventlog.Config {
	t.Helper()
	cfg, problem := probe()
	if problem == "" {
		cfg.ClientID = clientID
		return cfg
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("kafkatest: %s; integration tests need the real cluster under CI (scripts/kafka up)", problem)
	}
	t.Skipf("kafkatest: %s; set %s or run scripts/test", problem, eventlog.EnvBrokers)
	return eventlog.Config{}
}

// Kcat returns what kcat needs to read the test cluster: the address of a
// broker's mutual-TLS listener and a kcat configuration file with the
// admin's client certificate (scripts/kafka up prints both, as
// ASSENT_KAFKA_TLS_BROKERS and ASSENT_KAFKA_KCAT_DIR). Without them it
// fails under CI=true and skips otherwise.
func Kcat(t tb.TB) (broker, config string) {
	t.Helper()
	Config(t, "")
	tls, dir := os.Getenv("ASSENT_KAFKA_TLS_BROKERS"), os.Getenv("ASSENT_KAFKA_KCAT_DIR")
	if tls == "" || dir == "" {
		problem := "ASSENT_KAFKA_TLS_BROKERS and ASSENT_KAFKA_KCAT_DIR are not set (eval \"$(scripts/kafka up)\" sets them)"
		if os.Getenv("CI") == "true" {
			t.Fatalf("kafkatest: %s", problem)
		}
		t.Skipf("kafkatest: %s", problem)
	}
	broker, _, _ = strings.Cut(tls, ",")
	return broker, filepath.Join(dir, "admin.conf")
}

// Auth returns the options that authenticate a client built with kgo
// directly (not through eventlog) to the test cluster.
func Auth(t tb.TB) []kgo.Opt {
	t.Helper()
	cfg := Config(t, "")
	opts := []kgo.Opt{kgo.SeedBrokers(cfg.Brokers...)}
	if cfg.SCRAM != nil {
		opts = append(opts, cfg.SCRAM.Opt())
	}
	return opts
}

// Brokers returns the brokers of the test cluster, as Config does.
func Brokers(t tb.TB) []string {
	t.Helper()
	return Config(t, "").Brokers
}

// NewClient returns an eventlog client for the test cluster, closed when
// the test ends.
func NewClient(t tb.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := eventlog.NewClient(Config(t, "kafkatest"), opts...)
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

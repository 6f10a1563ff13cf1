package service_test

import (
	"crypto/ed25519"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/test/kafkatest"
	"github.com/assent-dev/assent/test/loggen"
	"github.com/assent-dev/assent/test/systest"
)

// TestIntegrationKcatJqRecipe runs the README's recipe, with Debian's kcat
// and jq, on a generated log: every link of a partition checks out, and a
// copy with one record rewritten fails at that record.
func TestIntegrationKcatJqRecipe(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"kcat", "jq", "sha256sum", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not on PATH: install it (apt-get install -y kcat jq); the audit recipe depends on it", tool)
		}
	}
	_, key, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	signer, err := wire.NewSigner("k", key)
	require.NoError(t, err)
	log, err := loggen.Build(loggen.Options{Topic: "assent.events.v1", Partitions: 1, Requests: 6, Signer: signer, SealEvery: 5,
		Start: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC), Step: time.Second})
	require.NoError(t, err)
	kcfg := kafkatest.Config(t, "")
	script := filepath.Join(systest.RepoRoot(), "services/auditor/recipes/check-link.sh")
	// kcat reads the cluster through its mutual-TLS listener (Debian's
	// librdkafka cannot do SCRAM against Kafka 4), with the configuration
	// scripts/kafka up writes, as the README tells an auditor to.
	broker, kcatConfig := kafkatest.Kcat(t)
	run := func(topic string, off int) (string, error) {
		cmd := exec.CommandContext(t.Context(), script, broker, topic, "0", fmt.Sprint(off))
		cmd.Env = append(os.Environ(), "KCAT_CONFIG="+kcatConfig)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	topic := kafkatest.NewTopics(t, 1).Events
	offsets, err := loggen.Write(t.Context(), kcfg, topic, log)
	require.NoError(t, err)
	for i := range len(log[0]) - 1 { // the commit markers between runs take offsets of their own
		out, err := run(topic, int(offsets[0][i]))
		require.NoError(t, err, out)
		require.Contains(t, out, "link OK")
	}

	const k = 4
	env, err := wire.Unmarshal(log[0][k].Value)
	require.NoError(t, err)
	env.Actor = "user:forger@example.com"
	log[0][k].Value, err = wire.Marshal(env)
	require.NoError(t, err)
	tampered := kafkatest.NewTopics(t, 1).Events
	offsets, err = loggen.Write(t.Context(), kcfg, tampered, log)
	require.NoError(t, err)
	out, err := run(tampered, int(offsets[0][k]))
	require.Error(t, err, out)
	require.True(t, strings.Contains(out, fmt.Sprintf("BROKEN LINK between offsets %d and %d", offsets[0][k], offsets[0][k+1])), out)
	out, err = run(tampered, int(offsets[0][k-1]))
	require.NoError(t, err, "the link into the rewritten record still holds: %s", out)
}

package service_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/services/auditor/internal/service"
	"github.com/assent-dev/assent/test/kafkatest"
	"github.com/assent-dev/assent/test/loggen"
	"github.com/assent-dev/assent/test/systest"
)

// TestIntegrationVerifyCommand runs `auditor verify` as an auditor would:
// with the published keys file and a state file, twice (the second run
// finds nothing new), then on a copy of the log with one byte changed,
// where it must fail with ErrTampered (exit 2) naming the record.
func TestIntegrationVerifyCommand(t *testing.T) {
	t.Parallel()
	const parts = 3
	root := systest.RepoRoot()
	signer, err := wire.LoadSigner("demo-2026-01", filepath.Join(root, "infra/keys/demo-decider.key.pem"))
	require.NoError(t, err)
	keys := filepath.Join(root, "infra/keys/decider-keys.json")
	original := kafkatest.NewTopics(t, parts).Events
	log, err := loggen.Build(loggen.Options{Topic: original, Partitions: parts, Requests: 300, Signer: signer,
		SealEvery: 50, Start: time.Now().UTC(), Step: time.Millisecond})
	require.NoError(t, err)
	cfg := kafkatest.Config(t, "")
	_, err = loggen.Write(t.Context(), cfg, original, log)
	require.NoError(t, err)

	state := filepath.Join(t.TempDir(), "audit-state.json")
	verifyCmd := func(topic string, extra ...string) (string, error) {
		var out bytes.Buffer
		args := append([]string{"verify", "--quiet", "--keys", keys}, extra...)
		err := service.Main(t.Context(), args, env(topic), &out, os.Stderr)
		return out.String(), err
	}
	out, err := verifyCmd(original, "--from-offsets", state)
	require.NoError(t, err, out)
	require.Contains(t, out, "verified; state saved to "+state)
	require.FileExists(t, state)
	out, err = verifyCmd(original, "--from-offsets", state)
	require.NoError(t, err, out)
	require.Contains(t, out, "(0 new)", "the second run verifies only what is new")

	// A copy with one byte of partition 1, offset 10 changed.
	copyTopic := kafkatest.NewTopics(t, parts).Events
	v := log[1][10].Value
	i := bytes.Index(v, []byte(`"reason"`))
	if i < 0 {
		i = bytes.Index(v, []byte(`"decision"`))
	}
	require.Positive(t, i, "the record has a field to alter")
	log[1][10].Value = append(append(bytes.Clone(v[:i+2]), 'X'), v[i+3:]...)
	_, err = loggen.Write(t.Context(), cfg, copyTopic, log)
	require.NoError(t, err)
	out, err = verifyCmd(copyTopic, "--signed-topic", original)
	require.ErrorIs(t, err, service.ErrTampered)
	require.Contains(t, out, "BREAK")
	first := out[strings.Index(out, "BREAK"):]
	require.Contains(t, first, "partition 1")
	require.Contains(t, first, "offset 10")
}

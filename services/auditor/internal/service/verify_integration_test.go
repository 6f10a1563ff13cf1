package service_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/assent-dev/assent/libs/approval"
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

// TestIntegrationVerifyBinaryReportsIllegal writes, on the real cluster,
// requests decided by the domain and one whose requester approved her own
// request, every record sealed with the demo decider key in transactions
// as the deciders write, and runs the built auditor binary: it must exit
// 2 and name the forged vote's partition, offset and event, of kind
// illegal; without the forgery the same log verifies (exit 0).
func TestIntegrationVerifyBinaryReportsIllegal(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(systest.Build(t, "auditor"), "auditor")
	cfg := kafkatest.Config(t, "verify-illegal")
	var self illegalCase
	for _, tc := range illegalCases() {
		if tc.name == "approved by the requester's vote" {
			self = tc
		}
	}
	require.NotNil(t, self.build)
	forged := self.build(t)
	legal := legalHistories(t)

	run := func(hs []*history) (string, string, int, []*kgo.Record, []int64) {
		t.Helper()
		topic := kafkatest.NewTopics(t, 1).Events
		events := interleave(hs)
		recs, err := loggen.Seal(loggen.Options{Topic: topic, Partitions: 1, Signer: systest.DemoSigner(t), SealEvery: 4}, 0, events)
		require.NoError(t, err)
		offsets, err := loggen.Write(t.Context(), cfg, topic, [][]*kgo.Record{recs})
		require.NoError(t, err)
		cmd := exec.CommandContext(t.Context(), bin, "verify", "--quiet", "--keys", systest.DemoKeysFile())
		cmd.Env = append(os.Environ(), "ASSENT_KAFKA_BROKERS="+strings.Join(cfg.Brokers, ","), "ASSENT_EVENTS_TOPIC="+topic)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err = cmd.Run()
		code := 0
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			code = exit.ExitCode()
		} else {
			require.NoError(t, err)
		}
		return stdout.String(), stderr.String(), code, recs, offsets[0]
	}

	out, errOut, code, _, _ := run(legal)
	require.Equal(t, 0, code, "%s\n%s", out, errOut)
	require.Contains(t, out, "verified")

	out, errOut, code, recs, offsets := run(append(legal, forged))
	require.Equal(t, 2, code, "%s\n%s", out, errOut)
	require.Contains(t, errOut, "auditor: the log does not verify")
	// The forged vote: the requester's vote.recorded.
	want := -1
	for i, r := range recs {
		env, err := wire.Unmarshal(r.Value)
		require.NoError(t, err)
		if env.Subject == forged.rid && env.Type == approval.TypeVoteRecorded && env.Actor == requester {
			want = i
			require.Contains(t, out, fmt.Sprintf("BREAK partition 0 offset %d event %s: illegal: request %s: vote.recorded", offsets[i], env.ID, forged.rid))
		}
	}
	require.GreaterOrEqual(t, want, 0)
	require.Contains(t, out, "self_approval")
	require.Equal(t, 1, strings.Count(out, "BREAK "), out)
}

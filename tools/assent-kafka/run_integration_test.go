package main

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/test/kafkatest"
)

// TestIntegrationCLI runs what scripts/kafka runs, then provisions test
// topics twice and describes them.
func TestIntegrationCLI(t *testing.T) {
	t.Parallel()
	brokers := strings.Join(kafkatest.Brokers(t), ",")
	spec := kafkatest.TopicSpec(t, 3)
	flags := []string{"--partitions", "3", "--commands-topic", spec.Commands, "--events-topic", spec.Events}

	out, _, err := runCLI(t, brokers, "wait", "--nodes", "3", "--timeout", "60s")
	require.NoError(t, err)
	require.Contains(t, out, "ready: 3/3 brokers")

	out, _, err = runCLI(t, brokers, append([]string{"provision"}, flags...)...)
	require.NoError(t, err)
	require.Contains(t, out, spec.Commands+": created (3 partitions, replication factor 3")
	require.Contains(t, out, spec.Events+": created (3 partitions, replication factor 3")

	out, _, err = runCLI(t, brokers, append([]string{"provision"}, flags...)...)
	require.NoError(t, err)
	require.Contains(t, out, spec.Commands+": verified")
	require.Contains(t, out, spec.Events+": verified")

	// Provision returned once a broker knew both topics; the broker that
	// describe asks may learn of them a moment later.
	require.Eventually(t, func() bool {
		out, _, err = runCLI(t, brokers, "describe", spec.Commands, spec.Events)
		return err == nil && strings.Count(out, " ok\n") == 6
	}, 10*time.Second, 100*time.Millisecond, "describe: %s", out)
	require.Regexp(t, `(?m)^`+regexp.QuoteMeta(spec.Events)+`\s+2\s+[123]\s+1,2,3\s+1,2,3\s+ok$`, out)
}

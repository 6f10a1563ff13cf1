package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
)

// runCLI runs the command line against brokers and returns stdout, stderr
// and the error.
func runCLI(t *testing.T, brokers string, args ...string) (string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	getenv := func(k string) string {
		switch k {
		case "ASSENT_KAFKA_BROKERS":
			return brokers
		case "ASSENT_KAFKA_USER", "ASSENT_KAFKA_PASSWORD_FILE":
			if brokers != os.Getenv("ASSENT_KAFKA_BROKERS") {
				return "" // a kfake cluster: no authentication
			}
			return os.Getenv(k) // the test cluster's admin
		}
		return ""
	}
	err := run(t.Context(), args, getenv, &stdout, &stderr)
	return stdout.String(), stderr.String(), err
}

func fake(t *testing.T) string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(3))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return strings.Join(c.ListenAddrs(), ",")
}

func TestHelp(t *testing.T) {
	t.Parallel()
	out, _, err := runCLI(t, "", "--help")
	require.NoError(t, err)
	for _, c := range commands {
		require.Contains(t, out, "  "+c.name+" ")
	}
	for _, c := range commands {
		out, _, err := runCLI(t, "", c.name, "--help")
		require.NoError(t, err, c.name)
		require.Contains(t, out, "Usage: assent-kafka "+c.name, c.name)
		require.Contains(t, out, "-brokers", c.name)
	}
	out, _, err = runCLI(t, "", "provision", "-h")
	require.NoError(t, err)
	require.Contains(t, out, "-replication-factor")
	require.Contains(t, out, `-brokers string`)
	require.Contains(t, out, `127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094`)
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	_, stderr, err := runCLI(t, "", "frobnicate")
	require.ErrorIs(t, err, errUsage)
	require.Contains(t, stderr, `unknown command "frobnicate"`)

	_, _, err = runCLI(t, "")
	require.ErrorIs(t, err, errUsage)

	_, stderr, err = runCLI(t, "", "wait", "--nodes", "x")
	require.ErrorIs(t, err, errUsage)
	require.Contains(t, stderr, `invalid value "x" for flag -nodes`)

	_, _, err = runCLI(t, "", "provision", "extra")
	require.ErrorIs(t, err, errUsage)

	_, _, err = runCLI(t, "", "provision", "--min-isr", "5")
	require.ErrorContains(t, err, "min.insync.replicas = 5")
}

func TestProvisionCheckDescribeWait(t *testing.T) {
	t.Parallel()
	brokers := fake(t)
	flags := []string{"--partitions", "3", "--commands-topic", "c", "--events-topic", "e"}

	out, _, err := runCLI(t, brokers, "check")
	require.Error(t, err)
	require.Contains(t, out, "mismatch: assent.commands.v1: does not exist")

	out, _, err = runCLI(t, brokers, append([]string{"provision"}, flags...)...)
	require.NoError(t, err)
	require.Contains(t, out, "c: created (3 partitions, replication factor 3")
	require.Contains(t, out, "e: created (3 partitions, replication factor 3")

	out, _, err = runCLI(t, brokers, append([]string{"provision"}, flags...)...)
	require.NoError(t, err)
	require.Contains(t, out, "c: verified")
	require.Contains(t, out, "e: verified")

	out, _, err = runCLI(t, brokers, append([]string{"check"}, flags...)...)
	require.NoError(t, err)
	require.Contains(t, out, "c, e: match the spec")

	out, _, err = runCLI(t, brokers, "provision", "--partitions", "6", "--commands-topic", "c", "--events-topic", "e")
	require.ErrorContains(t, err, "difference(s) from the spec")
	require.Contains(t, out, "mismatch: c: partitions = 3, want 6\n  fix: ")

	out, _, err = runCLI(t, brokers, "describe", "c")
	require.NoError(t, err)
	require.Contains(t, out, "TOPIC")
	require.Regexp(t, `(?m)^c\s+2\s+\d\s+\d,\d,\d\s+\d,\d,\d\s+ok$`, out)

	out, _, err = runCLI(t, brokers, "wait", "--nodes", "3", "--timeout", "10s")
	require.NoError(t, err)
	require.Contains(t, out, "ready: 3/3 brokers, all 6 partitions have a leader and a full ISR")

	out, _, err = runCLI(t, brokers, "wait", "--nodes", "4", "--timeout", "300ms")
	require.ErrorContains(t, err, "cluster not ready")
	require.Contains(t, out, "waiting: 3/4 brokers, 0 partitions without full ISR")
}

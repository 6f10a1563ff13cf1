package config_test

import (
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/services/api/internal/config"
)

func TestLoadDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load(envOf(map[string]string{"ASSENT_KAFKA_BROKERS": "127.0.0.1:19092, 127.0.0.1:19093", "ASSENT_INSTANCE_ID": "api-1",
		"ASSENT_SEAL_KEYS_FILE": keysFile, "ASSENT_COMMAND_KEY_FILE": "../../../../infra/keys/demo-api.key.pem", "ASSENT_COMMAND_KEY_ID": "demo-api-2026-01"}))
	require.NoError(t, err)
	require.Equal(t, "demo-api-2026-01", cfg.CommandKey.KeyID(), "the command key")
	require.Equal(t, 1, cfg.Keys.Len(), "the published decider keys")
	require.Equal(t, []string{"127.0.0.1:19092", "127.0.0.1:19093"}, cfg.Kafka.Brokers)
	require.Equal(t, "api-1", cfg.Kafka.ClientID)
	require.Equal(t, "127.0.0.1:8080", cfg.HTTPAddr)
	require.Equal(t, ".run/api-1", cfg.DataDir)
	require.Equal(t, "infra/tokens/demo-tokens.yaml", cfg.TokensFile)
	require.EqualValues(t, 12, cfg.Topics.Partitions)
	require.Equal(t, "assent.commands.v1", cfg.Topics.Commands)
	require.Equal(t, "assent.events.v1", cfg.Topics.Events)
	require.Equal(t, 5*time.Second, cfg.WriteWait)
	require.EqualValues(t, 64<<10, cfg.MaxBody)
	require.Equal(t, "info", cfg.LogLevel)
}

func TestLoadReportsEveryProblem(t *testing.T) {
	t.Parallel()
	_, err := config.Load(envOf(map[string]string{
		"ASSENT_PARTITIONS": "0", "ASSENT_WRITE_WAIT": "soon", "ASSENT_MAX_BODY": "12",
	}))
	require.Error(t, err)
	for _, want := range []string{"ASSENT_KAFKA_BROKERS", "ASSENT_PARTITIONS", "ASSENT_WRITE_WAIT", "ASSENT_MAX_BODY", "ASSENT_COMMAND_KEY_FILE and ASSENT_COMMAND_KEY_ID are required", "auditor keygen"} {
		require.ErrorContains(t, err, want)
	}
	_, err = config.Load(envOf(map[string]string{"ASSENT_KAFKA_BROKERS": "k:9092", "ASSENT_WRITE_WAIT": "0s"}))
	require.ErrorContains(t, err, "ASSENT_WRITE_WAIT must be positive")
}

// TestUsageNamesEveryVariable keeps --help honest: every variable Load
// reads is documented.
func TestUsageNamesEveryVariable(t *testing.T) {
	t.Parallel()
	read := map[string]bool{}
	_, _ = config.Load(func(k string) string { read[k] = true; return "" })
	require.NotEmpty(t, read)
	for k := range read {
		require.Regexp(t, regexp.MustCompile(`(?m)^  `+k+` `), config.Usage, "Usage does not document %s", k)
	}
}

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// keysFile is the repository's published decider keys, seen from here.
const keysFile = "../../../../infra/keys/decider-keys.json"

func TestLoadRefusesMissingKeys(t *testing.T) {
	t.Parallel()
	_, err := config.Load(envOf(map[string]string{"ASSENT_KAFKA_BROKERS": "k:9092", "ASSENT_SEAL_KEYS_FILE": "/nonexistent/keys.json"}))
	require.ErrorContains(t, err, "ASSENT_SEAL_KEYS_FILE")
	require.ErrorContains(t, err, "every reader applies only what they sign")
}

// TestLoadLimits: the limits on writes and long polls have defaults that
// bound every replica, can be changed, and are checked.
func TestLoadLimits(t *testing.T) {
	t.Parallel()
	base := map[string]string{"ASSENT_KAFKA_BROKERS": "k:9092", "ASSENT_SEAL_KEYS_FILE": keysFile,
		"ASSENT_COMMAND_KEY_FILE": "../../../../infra/keys/demo-api.key.pem", "ASSENT_COMMAND_KEY_ID": "demo-api-2026-01"}
	with := func(kv ...string) func(string) string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return envOf(m)
	}
	cfg, err := config.Load(with())
	require.NoError(t, err)
	require.Equal(t, 200, cfg.WriteRate)
	require.Equal(t, 400, cfg.WriteBurst)
	require.Equal(t, 4096, cfg.MaxLongPolls)
	require.Equal(t, 1024, cfg.MaxLongPollsPerPrincipal)

	cfg, err = config.Load(with("ASSENT_WRITE_RATE", "10", "ASSENT_MAX_LONG_POLLS", "100", "ASSENT_MAX_LONG_POLLS_PER_PRINCIPAL", "10"))
	require.NoError(t, err)
	require.Equal(t, 10, cfg.WriteRate)
	require.Equal(t, 20, cfg.WriteBurst, "the burst follows the rate unless set")
	require.Equal(t, 100, cfg.MaxLongPolls)
	require.Equal(t, 10, cfg.MaxLongPollsPerPrincipal)

	cfg, err = config.Load(with("ASSENT_WRITE_RATE", "0", "ASSENT_WRITE_BURST", "7"))
	require.NoError(t, err)
	require.Equal(t, 0, cfg.WriteRate, "0 turns the write limit off (benchmarks)")

	_, err = config.Load(with("ASSENT_WRITE_RATE", "-1", "ASSENT_WRITE_BURST", "0", "ASSENT_MAX_LONG_POLLS", "0"))
	for _, want := range []string{"ASSENT_WRITE_RATE", "ASSENT_WRITE_BURST", "ASSENT_MAX_LONG_POLLS"} {
		require.ErrorContains(t, err, want)
	}
	_, err = config.Load(with("ASSENT_MAX_LONG_POLLS", "10", "ASSENT_MAX_LONG_POLLS_PER_PRINCIPAL", "20"))
	require.ErrorContains(t, err, "ASSENT_MAX_LONG_POLLS_PER_PRINCIPAL (20) must not exceed ASSENT_MAX_LONG_POLLS (10)")
}

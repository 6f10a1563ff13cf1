package service_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/services/slack-gateway/internal/service"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestLoadReportsEveryProblemAtOnce(t *testing.T) {
	_, err := service.Load(env(map[string]string{"ASSENT_SLACK_RATE_SCALE": "fast", "ASSENT_SLACK_ACK_TIMEOUT": "5s"}))
	require.Error(t, err)
	for _, want := range []string{"ASSENT_KAFKA_BROKERS", "ASSENT_COMMAND_KEY_FILE", "ASSENT_SLACK_BOT_TOKEN", "ASSENT_SLACK_SIGNING_SECRET", "ASSENT_SLACK_RATE_SCALE", "at most 3s"} {
		require.Contains(t, err.Error(), want)
	}
}

func TestLoadDefaults(t *testing.T) {
	cfg, err := service.Load(env(map[string]string{
		"ASSENT_KAFKA_BROKERS": "127.0.0.1:19092", "ASSENT_SLACK_BOT_TOKEN": "xoxb-1", "ASSENT_SLACK_SIGNING_SECRET": "s",
		"ASSENT_SEAL_KEYS_FILE":   "../../../../infra/keys/decider-keys.json",
		"ASSENT_COMMAND_KEY_FILE": "../../../../infra/keys/demo-slack-gateway.key.pem", "ASSENT_COMMAND_KEY_ID": "demo-slack-gateway-2026-01",
	}))
	require.NoError(t, err)
	require.Equal(t, 1, cfg.Keys.Len(), "the published decider keys")
	require.Equal(t, "127.0.0.1:8380", cfg.HTTPAddr)
	require.Equal(t, "https://slack.com/api/", cfg.SlackAPIURL)
	require.Equal(t, "assent-slack-gateway", cfg.Group)
	require.Equal(t, 1.0, cfg.RateScale)
	require.True(t, strings.HasPrefix(cfg.Instance, "slack-gateway-"))
}

func TestHelp(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, service.Main(t.Context(), []string{"--help"}, env(nil), &out))
	require.Contains(t, out.String(), "ASSENT_SLACK_SIGNING_SECRET")
	require.Error(t, service.Main(t.Context(), []string{"sign-click"}, env(nil), &out), "sign-click is fake-slack's, not the gateway's")
	require.Error(t, service.Main(t.Context(), []string{"bogus"}, env(nil), &out))
}

package service_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/services/decider/internal/service"
)

// TestLoadConfigReadsTheServiceKeys: the decider verifies commands with the
// published service keys, and refuses to start without a file that parses.
func TestLoadConfigReadsTheServiceKeys(t *testing.T) {
	t.Parallel()
	env := minimalEnv()
	getenv := func(k string) string { return env[k] }

	env["ASSENT_SERVICE_KEYS_FILE"] = infraFile("keys/service-keys.json")
	cfg, err := service.LoadConfig(getenv)
	require.NoError(t, err)
	require.Equal(t, 5, cfg.ServiceKeys.Len(), "the demo keys of the api, the gateway, the console, the notifier and billing")

	env["ASSENT_SERVICE_KEYS_FILE"] = "/nonexistent/service-keys.json"
	_, err = service.LoadConfig(getenv)
	require.ErrorContains(t, err, "ASSENT_SERVICE_KEYS_FILE")

	env["ASSENT_SERVICE_KEYS_FILE"] = infraFile("keys/decider-keys.json") // the wrong file
	_, err = service.LoadConfig(getenv)
	require.ErrorContains(t, err, `want "assent-service-keys-v1"`)
}

// TestLoadConfigSessionTimeout: the decider's group session is Kafka's
// floor unless ASSENT_SESSION_TIMEOUT sets another (the deployments set
// 1.5s: docs/architecture.md, "Failover").
func TestLoadConfigSessionTimeout(t *testing.T) {
	t.Parallel()
	env := minimalEnv()
	env["ASSENT_SERVICE_KEYS_FILE"] = infraFile("keys/service-keys.json")
	getenv := func(k string) string { return env[k] }
	cfg, err := service.LoadConfig(getenv)
	require.NoError(t, err)
	require.Equal(t, service.DefaultSessionTimeout, cfg.SessionTTL)
	require.Equal(t, 6*time.Second, cfg.SessionTTL, "Kafka's group.min.session.timeout.ms: any cluster accepts it")
	env["ASSENT_SESSION_TIMEOUT"] = "1500ms"
	cfg, err = service.LoadConfig(getenv)
	require.NoError(t, err)
	require.Equal(t, 1500*time.Millisecond, cfg.SessionTTL)
}

// minimalEnv is what a decider needs to start but its service keys.
func minimalEnv() map[string]string {
	return map[string]string{
		"ASSENT_KAFKA_BROKERS":    "127.0.0.1:1",
		"ASSENT_SIGNING_KEY_FILE": infraFile("keys/demo-decider.key.pem"),
		"ASSENT_SIGNING_KEY_ID":   "demo-2026-01",
		"ASSENT_SEAL_KEYS_FILE":   infraFile("keys/decider-keys.json"),
	}
}

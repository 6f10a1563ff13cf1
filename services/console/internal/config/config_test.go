package config_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/services/console/internal/config"
)

func TestLoadReportsEveryProblemAndNoSecret(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	// A malformed key line: the error names the line, never its content.
	require.NoError(t, os.WriteFile(keys, []byte("# keys\nsupersecretvalue-not-hex\n"), 0o600))
	env := map[string]string{
		"ASSENT_KAFKA_BROKERS":            "127.0.0.1:19092",
		"ASSENT_OIDC_ISSUER":              "http://idp.example.com",
		"ASSENT_CONSOLE_SESSION_KEY_FILE": keys,
		"ASSENT_OIDC_SCOPES":              "openid profile",
		"ASSENT_CONSOLE_PUBLIC_URL":       "https://console.example.com/sub",
	}
	_, err := config.Load(func(k string) string { return env[k] })
	require.Error(t, err)
	msg := err.Error()
	for _, want := range []string{
		"ASSENT_OIDC_CLIENT_ID is not set",
		"ASSENT_OIDC_CLIENT_SECRET_FILE is not set",
		"ASSENT_OIDC_ISSUER=\"http://idp.example.com\" must be an https URL",
		"ASSENT_OIDC_SCOPES must include openid and email",
		"line 2: a key is 64 hex digits",
		"serve the console at the root of its host",
		"ASSENT_COMMAND_KEY_FILE and ASSENT_COMMAND_KEY_ID are required",
	} {
		require.Contains(t, msg, want)
	}
	require.NotContains(t, msg, "supersecretvalue")
}

func TestLoadReadsSecretsFromFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	require.NoError(t, os.WriteFile(secret, []byte("s3cret\n"), 0o600))
	keys := filepath.Join(dir, "keys")
	require.NoError(t, os.WriteFile(keys, []byte(strings.Repeat("ab", 32)+"\n"+strings.Repeat("CD", 32)+"\n"), 0o600))
	env := map[string]string{
		"ASSENT_KAFKA_BROKERS":            "127.0.0.1:19092",
		"ASSENT_OIDC_ISSUER":              "http://127.0.0.1:8590/oidc",
		"ASSENT_OIDC_CLIENT_ID":           "assent-console",
		"ASSENT_OIDC_CLIENT_SECRET_FILE":  secret,
		"ASSENT_CONSOLE_SESSION_KEY_FILE": keys,
		"ASSENT_CONSOLE_AUDITOR_GROUPS":   "auditors, compliance",
		"ASSENT_POLICY_FILE":              "../../../../infra/policies/example.yaml",
		"ASSENT_SEAL_KEYS_FILE":           "../../../../infra/keys/decider-keys.json",
		"ASSENT_COMMAND_KEY_FILE":         "../../../../infra/keys/demo-console.key.pem",
		"ASSENT_COMMAND_KEY_ID":           "demo-console-2026-01",
	}
	cfg, err := config.Load(func(k string) string { return env[k] })
	require.NoError(t, err)
	require.Equal(t, "s3cret", cfg.OIDCClientSecret)
	require.Len(t, cfg.SessionKeys, 2)
	require.Equal(t, []string{"auditors", "compliance"}, cfg.AuditorGroups)
	require.Equal(t, "http", cfg.PublicURL.Scheme)
	require.True(t, cfg.Policies.IsAdmin("user:judy@example.com"), "admins come from the policy file")
	require.Equal(t, []string{"openid", "email", "profile", "groups"}, cfg.OIDCScopes)
}

func TestUsageListsEverySetting(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile("config.go")
	require.NoError(t, err)
	code := strings.SplitN(string(src), "// Load reads", 2)[1]
	for _, m := range regexp.MustCompile(`"(ASSENT_[A-Z_]+)"`).FindAllStringSubmatch(code, -1) {
		name := m[1]
		require.Contains(t, config.Usage, name, "--help lists %s", name)
	}
	for _, name := range []string{"ASSENT_KAFKA_BROKERS", "ASSENT_PARTITIONS", "ASSENT_EVENTS_TOPIC", "ASSENT_COMMANDS_TOPIC", "ASSENT_INSTANCE_ID"} {
		require.Contains(t, config.Usage, name)
	}
}

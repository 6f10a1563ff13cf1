package service_test

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/services/notifier/internal/service"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestLoadDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := service.Load(env(map[string]string{"ASSENT_KAFKA_BROKERS": "127.0.0.1:19092", "ASSENT_SEAL_KEYS_FILE": "../../../../infra/keys/decider-keys.json",
		"ASSENT_COMMAND_KEY_FILE": "../../../../infra/keys/demo-notifier.key.pem", "ASSENT_COMMAND_KEY_ID": "demo-notifier-2026-01"}))
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:8580", cfg.HTTPAddr)
	require.Equal(t, "assent-notifier", cfg.Group)
	require.Equal(t, 24*time.Hour, cfg.Horizon)
	require.Equal(t, 10*time.Second, cfg.HTTPTimeout)
	require.Equal(t, 587, cfg.SMTP.Port)
	require.Empty(t, cfg.AllowNets, "no private network is allowed by default")
	require.True(t, strings.HasPrefix(cfg.Instance, "notifier-"))
}

func TestLoadReportsEveryProblemAtOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	require.NoError(t, os.WriteFile(pw, []byte("hunter2-SMTP-PASSWORD\n"), 0o600))
	sec := filepath.Join(dir, "secrets.yaml")
	require.NoError(t, os.WriteFile(sec, []byte("https://h.example.com/x: whsec_bm90LWEta2V5LVNFQ1JFVFZBTFVF\n"), 0o600))
	_, err := service.Load(env(map[string]string{
		"ASSENT_NOTIFIER_ALLOW_NETS": "127.0.0.0/8,nope", "ASSENT_NOTIFIER_TARGET_RATE": "fast",
		"ASSENT_NOTIFIER_SMTP_HOST": "smtp.example.com", "ASSENT_NOTIFIER_SMTP_FROM": "Assent <a@example.com>",
		"ASSENT_NOTIFIER_SMTP_PASSWORD_FILE": pw, "ASSENT_NOTIFIER_SECRETS_FILE": sec, "ASSENT_NOTIFIER_SINCE": "yesterday",
	}))
	require.Error(t, err)
	for _, want := range []string{"ASSENT_KAFKA_BROKERS", "ASSENT_COMMAND_KEY_FILE", "ASSENT_NOTIFIER_ALLOW_NETS", "ASSENT_NOTIFIER_TARGET_RATE", "ASSENT_NOTIFIER_SMTP_FROM",
		"ASSENT_NOTIFIER_SMTP_USERNAME", "ASSENT_NOTIFIER_SECRETS_FILE", "ASSENT_NOTIFIER_SINCE"} {
		require.Contains(t, err.Error(), want)
	}
	require.NotContains(t, err.Error(), "hunter2")
	require.NotContains(t, err.Error(), "bm90LWEta2V5", "a bad secret is not repeated")
}

// Every setting the loader reads is in --help.
func TestHelpListsEverySetting(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	require.NoError(t, service.Main(t.Context(), []string{"--help"}, env(nil), &out))
	src, err := os.ReadFile("config.go")
	require.NoError(t, err)
	names := regexp.MustCompile(`"(ASSENT_NOTIFIER_[A-Z_]+|ASSENT_[A-Z_]+)"`).FindAllStringSubmatch(string(src), -1)
	require.NotEmpty(t, names)
	for _, n := range names {
		require.Contains(t, out.String(), n[1])
	}
	require.Error(t, service.Main(t.Context(), []string{"bogus"}, env(nil), &out))
}

// FuzzLoad feeds the loader hostile values: it never panics, and a
// configuration error never repeats the SMTP password or a webhook secret.
func FuzzLoad(f *testing.F) {
	f.Add("127.0.0.0/8", "50", "24h", "smtp.example.com", "a@example.com", "https://c.example.com/{id}", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	f.Add("::1/128,10.0.0.0/8", "0.5", "1s", "", "x", "javascript:1", "whsec_!!!")
	f.Add("", "-1", "-5m", "h", "<a@b>", "", "https://x: [")
	f.Fuzz(func(t *testing.T, nets, rateV, horizon, host, from, console, secretLine string) {
		dir := t.TempDir()
		pw := filepath.Join(dir, "pw")
		if err := os.WriteFile(pw, []byte("PASSWORD-NEVER-SHOWN"), 0o600); err != nil {
			t.Fatal(err)
		}
		sec := filepath.Join(dir, "s.yaml")
		if err := os.WriteFile(sec, []byte("https://h.example.com/: "+secretLine+"SECRET-TAIL\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := service.Load(env(map[string]string{
			"ASSENT_KAFKA_BROKERS": "127.0.0.1:19092", "ASSENT_NOTIFIER_ALLOW_NETS": nets, "ASSENT_NOTIFIER_TARGET_RATE": rateV,
			"ASSENT_NOTIFIER_HORIZON": horizon, "ASSENT_NOTIFIER_SMTP_HOST": host, "ASSENT_NOTIFIER_SMTP_FROM": from,
			"ASSENT_NOTIFIER_SMTP_USERNAME": "u", "ASSENT_NOTIFIER_SMTP_PASSWORD_FILE": pw,
			"ASSENT_NOTIFIER_CONSOLE_URL": console, "ASSENT_NOTIFIER_SECRETS_FILE": sec,
		}))
		if err != nil {
			if strings.Contains(err.Error(), "PASSWORD-NEVER-SHOWN") || strings.Contains(err.Error(), "SECRET-TAIL") {
				t.Fatalf("a secret in the error: %v", err)
			}
			return
		}
		if cfg.Horizon < time.Second || cfg.Rate <= 0 {
			t.Fatalf("accepted a horizon %s or rate %v", cfg.Horizon, cfg.Rate)
		}
	})
}

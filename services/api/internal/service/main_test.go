package service_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/services/api/internal/service"
)

func TestHelp(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	require.NoError(t, service.Main(t.Context(), []string{"--help"}, noEnv, nil, &out))
	require.Contains(t, out.String(), "ASSENT_TOKENS_FILE")
	require.Contains(t, out.String(), "hash-token")
}

func TestHashToken(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	require.NoError(t, service.Main(t.Context(), []string{"hash-token", "hello"}, noEnv, nil, &out))
	require.Equal(t, "sha256: 2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824\n", out.String())
	out.Reset()
	require.NoError(t, service.Main(t.Context(), []string{"hash-token", "-"}, noEnv, strings.NewReader("hello\n"), &out))
	require.Equal(t, "sha256: 2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824\n", out.String())
	require.Error(t, service.Main(t.Context(), []string{"hash-token"}, noEnv, nil, &out))
	require.Error(t, service.Main(t.Context(), []string{"hash-token", "-"}, noEnv, strings.NewReader(""), &out))
}

func TestBadConfigurationIsAnErrorNotAPanic(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	err := service.Main(t.Context(), nil, noEnv, nil, &out)
	require.ErrorContains(t, err, "ASSENT_KAFKA_BROKERS")
	require.ErrorContains(t, err, "api --help lists every setting")
	require.ErrorContains(t, service.Main(t.Context(), []string{"serve"}, noEnv, nil, &out), `unknown argument "serve"`)
	// A missing tokens file is reported before Kafka is touched.
	err = service.Main(t.Context(), nil, func(k string) string {
		return map[string]string{"ASSENT_KAFKA_BROKERS": "127.0.0.1:1", "ASSENT_TOKENS_FILE": "/nonexistent/tokens.yaml",
			"ASSENT_SEAL_KEYS_FILE": "../../../../infra/keys/decider-keys.json", "ASSENT_COMMAND_KEY_FILE": "../../../../infra/keys/demo-api.key.pem", "ASSENT_COMMAND_KEY_ID": "demo-api-2026-01"}[k]
	}, nil, &out)
	require.ErrorContains(t, err, "tokens file")
}

func noEnv(string) string { return "" }

package daemon_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/daemon"
)

func TestEnvReportsEveryProblem(t *testing.T) {
	t.Parallel()
	vals := map[string]string{"A": "5s", "B": "nope", "C": "7", "D": "900", "E": " x "}
	env := daemon.NewEnv(func(k string) string { return vals[k] })
	require.Equal(t, 5*time.Second, env.Duration("A", time.Second))
	require.Equal(t, time.Second, env.Duration("B", time.Second))
	require.Equal(t, 7, env.Int("C", 1, 1, 10))
	require.Equal(t, 1, env.Int("D", 1, 1, 10))
	require.Equal(t, "x", env.String("E", "def"))
	require.Equal(t, "def", env.String("MISSING", "def"))
	require.Empty(t, env.Required("MISSING", "set it to something"))
	err := env.Err()
	require.Error(t, err)
	for _, want := range []string{`B="nope" is not a duration`, `D="900" must be a whole number from 1 to 10`, "MISSING is not set; set it to something"} {
		require.Contains(t, err.Error(), want)
	}
	require.NoError(t, daemon.NewEnv(func(string) string { return "" }).Err())
}

// TestEnvJoinsOtherProblems: problems from other loaders and the caller's
// own checks are in the same report, a problem per indented line, and each
// stays visible to errors.Is.
func TestEnvJoinsOtherProblems(t *testing.T) {
	t.Parallel()
	env := daemon.NewEnv(func(k string) string { return map[string]string{"W": "0s"}[k] })
	loader := errors.New("ASSENT_KAFKA_BROKERS is not set")
	env.Add(nil, errors.Join(loader, errors.New("ASSENT_PARTITIONS=\"0\" must be from 1 to 1000")))
	if env.Duration("W", time.Second) <= 0 {
		env.Problem("%s must be positive", "W")
	}
	err := env.Err()
	require.EqualError(t, err, "configuration:\n"+
		"  ASSENT_KAFKA_BROKERS is not set\n"+
		"  ASSENT_PARTITIONS=\"0\" must be from 1 to 1000\n"+
		"  W must be positive")
	require.ErrorIs(t, err, loader)
	var ce *daemon.ConfigError
	require.ErrorAs(t, err, &ce)
	require.Len(t, ce.Problems, 2)
}

func TestProbesAndGracefulShutdown(t *testing.T) {
	t.Parallel()
	ready := errors.New("projection catching up")
	mux := http.NewServeMux()
	daemon.Probes{Registry: daemon.NewRegistry(), Ready: func() error { return ready }}.Register(mux)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- daemon.ServeListener(ctx, ln, mux, time.Second) }()
	base := "http://" + ln.Addr().String()

	get := func(path string) (int, string) {
		resp, err := http.Get(base + path)
		require.NoError(t, err)
		defer func() { _ = resp.Body.Close() }() // read-only
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, _ := get("/healthz")
	require.Equal(t, 200, code)
	code, body := get("/readyz")
	require.Equal(t, 503, code)
	require.Contains(t, body, "projection catching up")
	code, body = get("/metrics")
	require.Equal(t, 200, code)
	require.True(t, strings.Contains(body, "go_goroutines"), "the Go collector is registered")

	cancel()
	require.NoError(t, <-done)
	_, err = http.Get(base + "/healthz")
	require.Error(t, err, "the server is closed after shutdown")
}

func TestServeRefusesATakenPort(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer func() { _ = ln.Close() }()
	err = daemon.Serve(t.Context(), ln.Addr().String(), http.NewServeMux(), time.Second)
	require.ErrorContains(t, err, "set another address")
}

func TestInstanceDefaultsToServiceHostAndPort(t *testing.T) {
	t.Parallel()
	env := daemon.NewEnv(func(string) string { return "" })
	require.True(t, strings.HasPrefix(env.Instance("api", "127.0.0.1:8080"), "api-"))
	require.True(t, strings.HasSuffix(env.Instance("api", "127.0.0.1:8080"), "-8080"))
	named := daemon.NewEnv(func(k string) string { return map[string]string{"ASSENT_INSTANCE_ID": "api-7"}[k] })
	require.Equal(t, "api-7", named.Instance("api", "127.0.0.1:8080"))
}

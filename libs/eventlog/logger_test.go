package eventlog_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/test/systest"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// TestKafkaLogLevel: ASSENT_KAFKA_LOG_LEVEL puts franz-go's own log, at the
// level asked for, into the service's log.
func TestKafkaLogLevel(t *testing.T) {
	t.Parallel()
	cfg, err := eventlog.ConfigFromEnv(env(map[string]string{eventlog.EnvBrokers: "k:1"}))
	require.NoError(t, err)
	require.Equal(t, kgo.LogLevelNone, cfg.LogLevel, "off by default")
	cfg, err = eventlog.ConfigFromEnv(env(map[string]string{eventlog.EnvBrokers: "k:1", eventlog.EnvKafkaLogLevel: "Info"}))
	require.NoError(t, err)
	require.Equal(t, kgo.LogLevelInfo, cfg.LogLevel)
	_, err = eventlog.ConfigFromEnv(env(map[string]string{eventlog.EnvBrokers: "k:1", eventlog.EnvKafkaLogLevel: "loud"}))
	require.ErrorContains(t, err, "ASSENT_KAFKA_LOG_LEVEL")

	var buf systest.SyncBuffer
	cfg = eventlog.Config{Brokers: []string{"127.0.0.1:1"}, LogLevel: kgo.LogLevelInfo, Logger: slog.New(slog.NewJSONHandler(&buf, nil))}
	cl, err := eventlog.NewClient(cfg)
	require.NoError(t, err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	require.Error(t, cl.Ping(ctx), "nothing listens on port 1")
	require.Contains(t, buf.String(), `"kafka":"WARN"`, "franz-go's warning about the broker it cannot reach")
	require.Contains(t, buf.String(), "127.0.0.1:1")

	cfg.LogLevel = kgo.LogLevelNone
	var quiet systest.SyncBuffer
	cfg.Logger = slog.New(slog.NewJSONHandler(&quiet, nil))
	cl2, err := eventlog.NewClient(cfg)
	require.NoError(t, err)
	defer cl2.Close()
	ctx2, cancel2 := context.WithTimeout(t.Context(), time.Second)
	defer cancel2()
	require.Error(t, cl2.Ping(ctx2))
	require.Empty(t, quiet.String(), "no franz-go log unless asked for")
}

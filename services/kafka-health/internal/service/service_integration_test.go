package service_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/services/kafka-health/internal/service"
	"github.com/assent-dev/assent/test/kafkatest"
)

// TestIntegrationExporter serves the exporter on a free port against the
// real cluster, reads /readyz and /metrics, and stops it with the context.
func TestIntegrationExporter(t *testing.T) {
	t.Parallel()
	brokers := strings.Join(kafkatest.Brokers(t), ",")
	spec := kafkatest.NewTopics(t, 3)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		env := map[string]string{"ASSENT_KAFKA_USER": os.Getenv("ASSENT_KAFKA_USER"), "ASSENT_KAFKA_PASSWORD_FILE": os.Getenv("ASSENT_KAFKA_PASSWORD_FILE"),
			"ASSENT_KAFKA_BROKERS": brokers, "ASSENT_HTTP_ADDR": addr, "ASSENT_HEALTH_PERIOD": "200ms",
			"ASSENT_HEALTH_TOPICS": spec.Commands + "," + spec.Events}
		done <- service.Main(ctx, nil, func(k string) string { return env[k] }, io.Discard)
	}()

	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer func() { _ = resp.Body.Close() }() // read-only
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	var body string
	require.Eventually(t, func() bool {
		code, _ := get("/readyz")
		return code == http.StatusOK
	}, 30*time.Second, 50*time.Millisecond)
	_, body = get("/metrics")
	require.Contains(t, body, "assent_kafka_brokers 3\n")
	require.Contains(t, body, fmt.Sprintf("assent_kafka_partitions{topic=%q} 3\n", spec.Events))
	require.Contains(t, body, fmt.Sprintf("assent_kafka_under_replicated_partitions{topic=%q} 0\n", spec.Commands))
	require.Contains(t, body, fmt.Sprintf("assent_kafka_offline_partitions{topic=%q} 0\n", spec.Events))
	require.NotContains(t, body, `topic="__consumer_offsets"`, "--topics restricts the report")

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("the exporter did not stop within 10s of its context ending")
	}
}

func TestExporterRefusesATinyPeriod(t *testing.T) {
	t.Parallel()
	env := map[string]string{"ASSENT_KAFKA_BROKERS": "127.0.0.1:1", "ASSENT_HEALTH_PERIOD": "1ms"}
	err := service.Main(t.Context(), nil, func(k string) string { return env[k] }, io.Discard)
	require.ErrorContains(t, err, "ASSENT_HEALTH_PERIOD=1ms is too short")
	require.ErrorContains(t, err, "kafka-health --help")
}

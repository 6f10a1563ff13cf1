package eventlog

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestConfigFromEnv(t *testing.T) {
	t.Parallel()
	_, err := ConfigFromEnv(env(nil))
	require.EqualError(t, err, "eventlog: ASSENT_KAFKA_BROKERS is not set; start a cluster with scripts/kafka up")

	_, err = ConfigFromEnv(env(map[string]string{EnvBrokers: "a:1,,b:2"}))
	require.ErrorContains(t, err, "empty broker")

	cfg, err := ConfigFromEnv(env(map[string]string{EnvBrokers: " 127.0.0.1:19092 , 127.0.0.1:19093"}))
	require.NoError(t, err)
	require.Equal(t, Config{Brokers: []string{"127.0.0.1:19092", "127.0.0.1:19093"}}, cfg)

	cfg, err = ConfigFromEnv(env(map[string]string{EnvBrokers: "k:1", EnvLinger: "5ms"}))
	require.NoError(t, err)
	require.Equal(t, 5*time.Millisecond, cfg.Linger)

	cfg, err = ConfigFromEnv(env(map[string]string{EnvBrokers: "k:1", EnvLinger: "0"}))
	require.NoError(t, err)
	require.Negative(t, cfg.Linger, "0 in the environment means no linger")

	_, err = ConfigFromEnv(env(map[string]string{EnvBrokers: "k:1", EnvLinger: "soon"}))
	require.ErrorContains(t, err, "ASSENT_KAFKA_LINGER")
}

func TestNewClientSettings(t *testing.T) {
	t.Parallel()
	cl, err := NewClient(Config{Brokers: []string{"127.0.0.1:1"}})
	require.NoError(t, err)
	defer cl.Close()
	require.NoError(t, CheckClient(cl))
	require.Equal(t, DefaultLinger, cl.OptValue(kgo.ProducerLinger))
	require.Equal(t, DefaultDialTimeout, cl.OptValue(kgo.DialTimeout))
	require.Equal(t, DefaultRecordDeliveryTimeout, cl.OptValue(kgo.RecordDeliveryTimeout))
	require.Equal(t, kgo.AllISRAcks(), cl.OptValue(kgo.RequiredAcks))
	require.Equal(t, false, cl.OptValue(kgo.DisableIdempotentWrite))
	require.Equal(t, "assent", cl.OptValue(kgo.ClientID))
	require.Equal(t, []string{"127.0.0.1:1"}, cl.OptValue(kgo.SeedBrokers))
	// How fast a client lets go of a lost broker (docs/architecture.md,
	// "Failover").
	require.Equal(t, DefaultMetadataMinAge, cl.OptValue(kgo.MetadataMinAge))
	require.Equal(t, DefaultMetadataMaxAge, cl.OptValue(kgo.MetadataMaxAge))
	require.Equal(t, DefaultProduceRequestTimeout, cl.OptValue(kgo.ProduceRequestTimeout))
	require.Equal(t, DefaultRequestTimeoutOverhead, cl.OptValue(kgo.RequestTimeoutOverhead))
	require.NotNil(t, cl.OptValue(kgo.Dialer), "the dialer that refuses fenced brokers (fenced.go)")

	nolinger, err := NewClient(Config{Brokers: []string{"127.0.0.1:1"}, Linger: -1, ClientID: "x"})
	require.NoError(t, err)
	defer nolinger.Close()
	require.Equal(t, time.Duration(0), nolinger.OptValue(kgo.ProducerLinger))
}

func TestNewClientGuaranteesCannotBeWeakened(t *testing.T) {
	t.Parallel()
	cl, err := NewClient(Config{Brokers: []string{"127.0.0.1:1"}},
		kgo.RequiredAcks(kgo.LeaderAck()),
		kgo.FetchIsolationLevel(kgo.ReadUncommitted()),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()),
		kgo.ProducerLinger(50*time.Millisecond), // tunables may be overridden
	)
	require.NoError(t, err)
	defer cl.Close()
	require.NoError(t, CheckClient(cl))
	require.Equal(t, 50*time.Millisecond, cl.OptValue(kgo.ProducerLinger))

	_, err = NewClient(Config{Brokers: []string{"127.0.0.1:1"}}, kgo.DisableIdempotentWrite())
	require.ErrorContains(t, err, "eventlog: unsafe Kafka client: idempotent writes are disabled")

	_, err = NewClient(Config{})
	require.ErrorContains(t, err, "no Kafka brokers")
}

func TestCheckClientRefusesPlainClient(t *testing.T) {
	t.Parallel()
	cl, err := kgo.NewClient(kgo.SeedBrokers("127.0.0.1:1"))
	require.NoError(t, err)
	defer cl.Close()
	err = CheckClient(cl)
	require.ErrorContains(t, err, "isolation level is not read_committed")
	require.ErrorContains(t, err, "the partitioner is not eventlog.Partitioner")
}

// TestRetryBackoffIsKafkas: 100ms doubling to at most 1s, with 20% jitter
// either way (Kafka's retry.backoff.ms and retry.backoff.max.ms), not
// franz-go's 250ms to 5s.
func TestRetryBackoffIsKafkas(t *testing.T) {
	t.Parallel()
	for range 100 {
		require.InDelta(t, float64(100*time.Millisecond), float64(retryBackoff(1)), float64(20*time.Millisecond))
		require.InDelta(t, float64(200*time.Millisecond), float64(retryBackoff(2)), float64(40*time.Millisecond))
		require.InDelta(t, float64(time.Second), float64(retryBackoff(5)), float64(200*time.Millisecond))
		require.InDelta(t, float64(time.Second), float64(retryBackoff(1000)), float64(200*time.Millisecond))
	}
}

// TestRetryBackoffStopsAtItsLimit: a lower limit caps every retry, the
// first included.
func TestRetryBackoffStopsAtItsLimit(t *testing.T) {
	t.Parallel()
	quick, tiny := RetryBackoff(250*time.Millisecond), RetryBackoff(50*time.Millisecond)
	for range 100 {
		require.InDelta(t, float64(100*time.Millisecond), float64(quick(1)), float64(20*time.Millisecond))
		require.InDelta(t, float64(200*time.Millisecond), float64(quick(2)), float64(40*time.Millisecond))
		require.InDelta(t, float64(250*time.Millisecond), float64(quick(3)), float64(50*time.Millisecond))
		require.InDelta(t, float64(250*time.Millisecond), float64(quick(1000)), float64(50*time.Millisecond))
		require.InDelta(t, float64(50*time.Millisecond), float64(tiny(1)), float64(10*time.Millisecond))
		require.InDelta(t, float64(50*time.Millisecond), float64(tiny(8)), float64(10*time.Millisecond))
	}
}

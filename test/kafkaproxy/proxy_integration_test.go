package kafkaproxy_test

import (
	"context"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/assent-dev/assent/test/kafkaproxy"
	"github.com/assent-dev/assent/test/kafkatest"
)

// TestIntegrationProxy: a client through the proxy reaches the real
// cluster, connects only to the proxy's listeners (the advertised
// addresses are rewritten), and loses Kafka on Cut and Stall, and gets it
// back on Restore.
func TestIntegrationProxy(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	topics := kafkatest.NewTopics(t, 3)
	p := kafkaproxy.New(t, brokers)
	var (
		mu     sync.Mutex
		dialed []string
	)
	// The cluster authenticates (SASL/SCRAM): the handshake goes through
	// the proxy untouched. The seeds come after Auth's, which they replace.
	opts := append(kafkatest.Auth(t), kgo.SeedBrokers(p.Seeds()...), kgo.RequestTimeoutOverhead(2*time.Second),
		kgo.Dialer(func(ctx context.Context, network, host string) (net.Conn, error) {
			mu.Lock()
			dialed = append(dialed, host)
			mu.Unlock()
			var d net.Dialer
			return d.DialContext(ctx, network, host)
		}))
	cl, err := kgo.NewClient(opts...)
	require.NoError(t, err)
	defer cl.Close()

	ping := func(d time.Duration) error {
		ctx, cancel := context.WithTimeout(t.Context(), d)
		defer cancel()
		return cl.Ping(ctx)
	}
	produce := func(d time.Duration) error {
		ctx, cancel := context.WithTimeout(t.Context(), d)
		defer cancel()
		return cl.ProduceSync(ctx, &kgo.Record{Topic: topics.Commands, Value: []byte("x")}).FirstErr()
	}
	require.NoError(t, ping(10*time.Second))
	require.NoError(t, produce(30*time.Second))
	mu.Lock()
	seen := slices.Clone(dialed)
	mu.Unlock()
	require.NotEmpty(t, seen)
	for _, host := range seen {
		require.False(t, slices.Contains(brokers, host), "the client dialed a broker directly: %s (all: %v)", host, seen)
	}

	p.Cut()
	began := time.Now()
	require.Error(t, ping(5*time.Second))
	require.Less(t, time.Since(began), 4*time.Second, "refused dials fail at once")
	p.Restore()
	require.Eventually(t, func() bool { return ping(2*time.Second) == nil }, 30*time.Second, 100*time.Millisecond)
	require.NoError(t, produce(30*time.Second))

	p.Stall()
	began = time.Now()
	require.Error(t, ping(time.Second))
	require.GreaterOrEqual(t, time.Since(began), 900*time.Millisecond, "a stalled Kafka does not answer")
	p.Restore()
	require.Eventually(t, func() bool { return ping(2*time.Second) == nil }, 30*time.Second, 100*time.Millisecond)
	require.NoError(t, produce(30*time.Second))
}

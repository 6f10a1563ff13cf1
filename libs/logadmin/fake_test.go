package logadmin_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/assent-dev/assent/libs/eventlog"
)

// fakeCluster starts an in-process kfake cluster of n brokers and returns
// its config and an admin client, all closed when the test ends.
func fakeCluster(t *testing.T, n int, opts ...kfake.Opt) (eventlog.Config, *kadm.Client) {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(n)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	cfg := eventlog.Config{Brokers: c.ListenAddrs(), ClientID: "fake-test"}
	return cfg, kadm.NewClient(newClient(t, cfg))
}

func newClient(t *testing.T, cfg eventlog.Config, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := eventlog.NewClient(cfg, opts...)
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	return cl
}

package projection_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/projection"
	"github.com/assent-dev/assent/libs/wire"
)

// TestOpenRequiresConfig: a runner without its essentials is refused with
// an error, not a panic later.
func TestOpenRequiresConfig(t *testing.T) {
	t.Parallel()
	h := newRecorder(t)
	full := projection.Config{Dir: t.TempDir(), Topic: "events", Partitions: 3, Handler: h}
	for name, mutate := range map[string]func(*projection.Config){
		"no dir":        func(c *projection.Config) { c.Dir = "" },
		"no topic":      func(c *projection.Config) { c.Topic = "" },
		"no partitions": func(c *projection.Config) { c.Partitions = 0 },
		"no handler":    func(c *projection.Config) { c.Handler = nil },
	} {
		cfg := full
		mutate(&cfg)
		_, err := projection.Open(cfg)
		require.ErrorContains(t, err, "projection: ", name)
	}

	r, err := projection.Open(full)
	require.NoError(t, err)
	require.False(t, r.Ready())
	for p := range int32(3) {
		require.Zero(t, r.Next(p))
		require.Equal(t, wire.GenesisHash, r.Head(p))
	}
	require.NoError(t, r.Close())
}

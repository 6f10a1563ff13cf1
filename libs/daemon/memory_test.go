package daemon

import (
	"math"
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestLimitMemory: the default applies unless GOMEMLIMIT is set, which
// stands.
func TestLimitMemory(t *testing.T) {
	was := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(was) })
	debug.SetMemoryLimit(math.MaxInt64)

	env := map[string]string{"GOMEMLIMIT": "off"}
	require.Equal(t, int64(math.MaxInt64), LimitMemory(func(k string) string { return env[k] }, DefaultMemoryLimit))
	require.Equal(t, int64(math.MaxInt64), debug.SetMemoryLimit(-1), "GOMEMLIMIT stands")

	env = map[string]string{}
	require.Equal(t, int64(DefaultMemoryLimit), LimitMemory(func(k string) string { return env[k] }, DefaultMemoryLimit))
	require.Equal(t, int64(DefaultMemoryLimit), debug.SetMemoryLimit(-1))
}

package projection

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestAbsentNeverDeniesAKeyAdded: the filter never calls a key absent
// that was added, across its layers, and calls most others absent.
func TestAbsentNeverDeniesAKeyAdded(t *testing.T) {
	t.Parallel()
	a := newAbsent()
	const n = 300_000 // several layers
	for i := range n {
		a.add(fmt.Appendf(nil, "r/req-%08d", i))
	}
	require.Greater(t, len(a.layers), 2)
	for i := range n {
		require.False(t, a.certainlyAbsent(fmt.Appendf(nil, "r/req-%08d", i)), "key %d was added", i)
	}
	absent := 0
	for i := n; i < 2*n; i++ {
		if a.certainlyAbsent(fmt.Appendf(nil, "r/req-%08d", i)) {
			absent++
		}
	}
	t.Logf("%d of %d keys never added are known absent", absent, n)
	require.Greater(t, absent, n*9/10, "a filter that knows nothing saves nothing")
}

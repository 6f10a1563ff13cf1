package systest

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestFreePortNeverRepeats: the ports FreePort hands out in one process
// are all different. The kernel may give a closed probe's port to the
// next probe, and two processes of one run given the same port fight for
// it: one never binds, and its clients talk to the other (a chaos run saw
// the Slack gateway's traffic answered by an api replica).
func TestFreePortNeverRepeats(t *testing.T) {
	t.Parallel()
	seen := map[int]bool{}
	for range 1000 {
		p := FreePort(t)
		require.False(t, seen[p], "port %d handed out twice", p)
		seen[p] = true
	}
}

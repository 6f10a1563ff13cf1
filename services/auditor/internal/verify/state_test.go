package verify

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLoadStateRefusesAStateWithoutTheReplay(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "state.json")
	require.NoError(t, os.WriteFile(path, []byte(`{"format":"assent-audit-state-v1","topic":"t","verified_at":"2026-01-01T00:00:00Z","partitions":{}}`), 0o600))
	_, err := LoadState(path)
	require.ErrorContains(t, err, "verify once from the start")
}

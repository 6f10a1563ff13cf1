package projection

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestMoveIntoFillsAnExistingDirectory: a bootstrapped store replaces a
// missing data directory by a rename, and fills an empty one (a volume's
// mount point cannot be replaced), leaving nothing in the staging one.
func TestMoveIntoFillsAnExistingDirectory(t *testing.T) {
	t.Parallel()
	for name, exists := range map[string]bool{"missing": false, "empty": true} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			stage, dir := filepath.Join(root, "store.bootstrap"), filepath.Join(root, "store")
			require.NoError(t, os.Mkdir(stage, 0o750))
			for _, f := range []string{"000005.sst", "MANIFEST-000001", "CURRENT", "marker.manifest.000001.MANIFEST-000001"} {
				require.NoError(t, os.WriteFile(filepath.Join(stage, f), []byte(f), 0o600))
			}
			if exists {
				require.NoError(t, os.Mkdir(dir, 0o750))
			}
			require.NoError(t, moveInto(stage, dir))
			_, err := os.Stat(stage)
			require.True(t, os.IsNotExist(err), "the staging directory is gone")
			entries, err := os.ReadDir(dir)
			require.NoError(t, err)
			require.Len(t, entries, 4)
			raw, err := os.ReadFile(filepath.Join(dir, "CURRENT"))
			require.NoError(t, err)
			require.Equal(t, "CURRENT", string(raw))
		})
	}
}

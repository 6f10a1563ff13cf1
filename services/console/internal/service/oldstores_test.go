package service

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/stretchr/testify/require"
)

// TestTheOldStoresAreRemoved: a console upgraded from the two-store layout
// removes its old requests/ and audit/ stores (real Pebble stores), and
// leaves alone a directory of that name that is not a Pebble store, and
// anything else in the data directory.
func TestTheOldStoresAreRemoved(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	db, err := pebble.Open(filepath.Join(data, "requests"), &pebble.Options{})
	require.NoError(t, err)
	require.NoError(t, db.Set([]byte("r/a"), []byte("{}"), pebble.Sync))
	require.NoError(t, db.Close())
	require.NoError(t, os.MkdirAll(filepath.Join(data, "audit"), 0o750))
	require.NoError(t, os.WriteFile(filepath.Join(data, "audit", "notes.txt"), []byte("mine"), 0o600))
	require.NoError(t, os.MkdirAll(filepath.Join(data, storeDir), 0o750))

	removeSplitStores(data, slog.New(slog.NewTextHandler(io.Discard, nil)))

	_, err = os.Stat(filepath.Join(data, "requests"))
	require.ErrorIs(t, err, os.ErrNotExist, "the old requests store is removed")
	raw, err := os.ReadFile(filepath.Join(data, "audit", "notes.txt"))
	require.NoError(t, err, "a directory that is not a Pebble store is left alone")
	require.Equal(t, "mine", string(raw))
	_, err = os.Stat(filepath.Join(data, storeDir))
	require.NoError(t, err)
}

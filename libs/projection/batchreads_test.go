package projection_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/projection"
)

func getString(t *testing.T, r *projection.BatchReader, key string) (string, bool) {
	t.Helper()
	v, closer, err := r.Get([]byte(key))
	if errors.Is(err, pebble.ErrNotFound) {
		return "", false
	}
	require.NoError(t, err)
	s := string(v)
	require.NoError(t, closer.Close())
	return s, true
}

// TestBatchReaderReadsWhatABatchWouldRead: through a BatchReader, a
// handler reads what an indexed batch would give it, across batches,
// readers of one batch, overwrites and a rebuild's empty store (where it
// answers most misses from its own filter).
func TestBatchReaderReadsWhatABatchWouldRead(t *testing.T) {
	t.Parallel()
	for _, fresh := range []bool{true, false} {
		t.Run(fmt.Sprintf("fresh=%v", fresh), func(t *testing.T) {
			t.Parallel()
			db, err := pebble.Open(t.TempDir(), &pebble.Options{})
			require.NoError(t, err)
			defer func() { require.NoError(t, db.Close()) }()
			if !fresh {
				require.NoError(t, db.Set([]byte("s/old"), []byte("stored"), pebble.NoSync))
			}
			var reads projection.BatchReads
			model := map[string]string{}
			if !fresh {
				model["s/old"] = "stored"
			}
			for batch := range 5 {
				b := db.NewIndexedBatch()
				for reader := range 3 {
					r := reads.Reader(b, db, "s/")
					for i := range 200 {
						key := fmt.Sprintf("s/%d", (batch*131+reader*17+i)%400)
						got, found := getString(t, r, key)
						want, wantFound := model[key]
						require.Equal(t, wantFound, found, "%s in batch %d", key, batch)
						require.Equal(t, want, got, "%s in batch %d", key, batch)
						if i%3 != 0 {
							v := fmt.Sprintf("%d.%d.%d", batch, reader, i)
							require.NoError(t, r.Set([]byte(key), []byte(v)))
							model[key] = v
						}
					}
					got, found := getString(t, r, "s/old")
					require.Equal(t, !fresh, found)
					if !fresh {
						require.Equal(t, model["s/old"], got)
					}
					r.Close()
				}
				require.Positive(t, reads.Held())
				require.NoError(t, b.Commit(pebble.NoSync))
				require.NoError(t, b.Close())
				reads.Committed()
				require.Zero(t, reads.Held())
			}
			// A write that bypassed the reader is seen once the reads are
			// told to forget what they knew was absent.
			reads.Forget()
			require.NoError(t, db.Set([]byte("s/bypass"), []byte("direct"), pebble.NoSync))
			b := db.NewIndexedBatch()
			r := reads.Reader(b, db, "s/")
			got, found := getString(t, r, "s/bypass")
			require.True(t, found)
			require.Equal(t, "direct", got)
			r.Close()
			require.NoError(t, b.Close())
		})
	}
}

func TestPrefixEnd(t *testing.T) {
	t.Parallel()
	require.Equal(t, []byte("s0"), projection.PrefixEnd([]byte("s/")))
	require.Equal(t, []byte("t"), projection.PrefixEnd([]byte("s\xff\xff")))
	require.Nil(t, projection.PrefixEnd([]byte("\xff\xff")))
}

package projection_test

import (
	"fmt"
	"runtime"
	"testing"
	"weak"

	"github.com/cockroachdb/pebble/v2"
	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/projection"
	"github.com/assent-dev/assent/test/loggen"
	"github.com/assent-dev/assent/test/systest"
)

// bulky writes each event's value under two keys, as the request store
// writes an event's value and the state it folds into, and notes the data
// buffer of every batch it writes into.
type bulky struct {
	buffers []weak.Pointer[byte]
	largest int
}

func (h *bulky) Apply(b *pebble.Batch, e *projection.Event) error {
	for _, k := range []string{"a", "b"} {
		if err := b.Set(fmt.Appendf(nil, "%s/%d/%020d", k, e.Partition, e.Offset), e.Value, nil); err != nil {
			return err
		}
	}
	// Pebble keeps a batch's buffer of at most 1 MiB for its next batch;
	// a larger one is the batch's alone.
	if repr := b.Repr(); cap(repr) > 1<<20 {
		w := weak.Make(&repr[0])
		if n := len(h.buffers); n == 0 || h.buffers[n-1] != w {
			h.buffers = append(h.buffers, w)
		}
		h.largest = max(h.largest, len(repr))
	}
	return nil
}

// TestCaughtUpKeepsNoBatchData: once the runner has caught up, nothing
// keeps the data of the catch-up's batches, those Pebble took as
// memtables of their own (a batch of half a memtable or more) among them:
// Pebble's queue of memtables kept the flushed ones reachable until it
// next grew (docs/benchmarks.md, "Memory"), about 20 MB a store after
// batches of 10,000 events.
func TestCaughtUpKeepsNoBatchData(t *testing.T) {
	t.Parallel()
	const parts = 12
	log := sealedLog(t, "events", parts, 20_000)
	ends := make([]int64, parts)
	for p := range log {
		ends[p] = int64(len(log[p]))
	}
	h := &bulky{}
	r, err := projection.Open(projection.Config{Dir: t.TempDir(), Topic: "events", Partitions: parts, Handler: h, Keys: systest.DemoKeys(t)})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, r.Close()) })
	r.CatchUpTo(ends)
	require.NoError(t, r.ApplyPolls(loggen.Polls(log, projection.DefaultBatchRecords)))
	require.True(t, r.Ready())
	require.Greater(t, h.largest, 8<<20, "a batch Pebble takes as a memtable of its own (half of a 16 MiB memtable or more)")
	require.NotEmpty(t, h.buffers)
	runtime.GC()
	runtime.GC()
	held := 0
	for i, w := range h.buffers {
		if w.Value() != nil {
			held++
			t.Logf("held: buffer %d of %d", i+1, len(h.buffers))
		}
	}
	require.Zero(t, held, "data buffers of the catch-up's %d large batches still reachable once caught up", len(h.buffers))
}

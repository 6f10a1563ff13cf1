package auditindex_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/auditindex"
	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/projection"
	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/test/loggen"
	"github.com/assent-dev/assent/test/systest"
)

// events is a generated log as the runner hands it to the index, every
// partition in turn, with a broken chain link now and then.
func events(t *testing.T) []projection.Event {
	t.Helper()
	built, err := loggen.Build(loggen.Options{Topic: "events", Partitions: 3, Requests: 300, Signer: systest.DemoSigner(t),
		SealEvery: 20, Start: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Step: time.Second})
	require.NoError(t, err)
	var out []projection.Event
	for p, recs := range built {
		head := ""
		for off, rec := range recs {
			rec.Partition, rec.Offset = int32(p), int64(off)
			env, err := wire.DecodeRecord(eventlog.WireRecord(rec))
			require.NoError(t, err)
			prev := head
			if off%97 == 50 {
				prev = "sha256:broken"
			}
			head = wire.Hash(rec.Value)
			out = append(out, projection.Event{Partition: int32(p), Offset: int64(off), Value: rec.Value, Hash: head, PrevHead: prev, Envelope: env})
		}
	}
	return out
}

// TestApplyBatchEqualsApply: indexing a log in batches of any size leaves
// the store byte for byte as indexing it event by event, and counts the
// same breaks.
func TestApplyBatchEqualsApply(t *testing.T) {
	t.Parallel()
	log := events(t)
	open := func() (*pebble.DB, *auditindex.Index) {
		db, err := pebble.Open(t.TempDir(), &pebble.Options{})
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, db.Close()) })
		x := &auditindex.Index{}
		x.Attach(db)
		return db, x
	}
	one, oneIndex := open()
	many, manyIndex := open()
	rnd := rand.New(rand.NewPCG(1, 2)) //nolint:gosec // G404: the same batch sizes every run, not a secret
	for at := 0; at < len(log); {
		n := min(len(log)-at, 1+rnd.IntN(60))
		run := log[at : at+n]
		at += n
		b := one.NewIndexedBatch()
		for i := range run {
			require.NoError(t, oneIndex.Apply(b, &run[i]))
		}
		require.NoError(t, b.Commit(pebble.NoSync))
		b = many.NewIndexedBatch()
		require.NoError(t, manyIndex.ApplyBatch(b, run))
		require.NoError(t, b.Commit(pebble.NoSync))
	}
	require.Positive(t, oneIndex.Breaks.Load(), "the log has broken links")
	require.Equal(t, oneIndex.Breaks.Load(), manyIndex.Breaks.Load())
	want := systest.PebbleDump(t, one)
	require.Greater(t, len(want), len(log))
	require.Equal(t, want, systest.PebbleDump(t, many))
}

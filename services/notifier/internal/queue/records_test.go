package queue_test

import (
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/projection"
	"github.com/assent-dev/assent/services/notifier/internal/queue"
)

// TestTheRunnerKeepsTheRecordsOfTheRequests: the notifier's store holds a
// requests store as a field, whose history (and Event, a delivery's event)
// is served from the records the runner keeps, and the runner keeps them
// only for a handler that is a projection.RecordKeeper
// (TestKeptRecordsAreTheLog, in libs/projection). Without KeepsRecords on
// the notifier's store itself, every history read "no record".
func TestTheRunnerKeepsTheRecordsOfTheRequests(t *testing.T) {
	t.Parallel()
	var h projection.Handler = queue.New()
	keeper, ok := h.(projection.RecordKeeper)
	require.True(t, ok, "the notifier's store is not a projection.RecordKeeper")
	require.True(t, keeper.KeepsRecords())
}

// TestEventIsTheRecordAtItsPlace: a delivery's event is read by its
// partition and offset from the records the runner keeps, byte for byte,
// and only if that record is the delivery's event: an entry naming
// another event, or a place with no record, is refused.
func TestEventIsTheRecordAtItsPlace(t *testing.T) {
	t.Parallel()
	const parts = 3
	log := notifierLog(t, parts, 60)
	db, err := pebble.Open(t.TempDir(), &pebble.Options{Logger: quiet{t}})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	s := queue.New()
	s.Attach(db)
	values := map[[2]int64][]byte{}
	for p := range log {
		b := db.NewIndexedBatch()
		require.NoError(t, s.ApplyBatch(b, log[p]))
		require.NoError(t, projection.KeepRecords(b, log[p])) // as the runner does
		require.NoError(t, b.Commit(pebble.NoSync))
		s.Committed()
		for _, e := range log[p] {
			values[[2]int64{int64(e.Partition), e.Offset}] = e.Value
		}
	}
	checked := 0
	for p := range int32(parts) {
		pending, err := s.Pending(p)
		require.NoError(t, err)
		for _, e := range pending {
			raw, err := s.Event(e)
			require.NoError(t, err)
			require.Equal(t, values[[2]int64{int64(e.Partition), e.Offset}], raw)
			checked++

			other := e
			other.EventID = "another-event"
			_, err = s.Event(other)
			require.ErrorContains(t, err, "is not event another-event")
			other = e
			other.Offset = 1 << 40
			_, err = s.Event(other)
			require.ErrorContains(t, err, "is not in the store")
		}
	}
	require.Positive(t, checked, "the log leaves deliveries pending")
}

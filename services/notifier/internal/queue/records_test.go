package queue_test

import (
	"testing"

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

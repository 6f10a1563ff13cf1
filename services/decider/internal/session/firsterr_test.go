package session

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
)

// The promises of one transaction's records fail with errors of different
// types when a broker is cut off (a Kafka error for one, a context or
// client error for another). The first is kept, and the others must not
// crash the decider: an atomic.Value panics when a value of another
// concrete type is swapped in, which the fault suite caught (test/chaos,
// partition-broker: "sync/atomic: compare and swap of inconsistently
// typed value into Value" in the produce promise).
func TestFirstErrKeepsTheFirstOfErrorsOfAnyType(t *testing.T) {
	t.Parallel()
	var f firstErr
	require.NoError(t, f.get())
	first := kerr.NotLeaderForPartition
	f.set(first)
	require.NotPanics(t, func() {
		f.set(context.DeadlineExceeded)
		f.set(errors.New("decider: record landed in partition 3, not 4"))
		f.set(fmt.Errorf("wrapped: %w", first))
	})
	require.ErrorIs(t, f.get(), first)
}

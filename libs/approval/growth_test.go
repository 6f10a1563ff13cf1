package approval_test

import (
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/approval"
)

// flooder is a principal who sends vote after vote it may not make: every
// one is refused, and every refusal is an event (issue 13, item 8).
const flooder = "user:mallory@example.com"

// window is how many refusals a state keeps.
const window = 256

func refusal(seq, i int) approval.Event {
	id := "flood-" + strconv.Itoa(i)
	return approval.Event{RequestID: rid, CommandID: id, Actor: flooder, Time: t0.Add(time.Minute), Sequence: seq,
		Body: approval.CommandRejected{CommandID: id, CommandType: approval.TypeVote, Code: approval.ReasonNotEligible,
			Detail: flooder + ` is not an eligible approver under policy "prod-deploy"`}}
}

// flooded is a submitted request with n refusals after it.
func flooded(n int) approval.State {
	s := approval.Evolve(approval.State{}, submitted())
	for i := range n {
		s = approval.Evolve(s, refusal(s.Sequence+1, i))
	}
	return s
}

// bytesPerEvent reports the bytes Evolve allocates per event while it
// applies more refusals to a request that already has n. Bytes allocated
// are counted by the runtime, so the figure does not depend on the
// machine's speed; the events are built before counting starts.
func bytesPerEvent(n int) float64 {
	const more = 512
	s := flooded(n)
	events := make([]approval.Event, more)
	for i := range events {
		events[i] = refusal(s.Sequence+1+i, n+i)
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for _, e := range events {
		s = approval.Evolve(s, e)
	}
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(s)
	return float64(after.TotalAlloc-before.TotalAlloc) / more
}

// TestEvolveCostPerEventIsFlat: applying one more event costs the same
// whether the request has 1,000 refusals behind it or 20,000. Not
// parallel: it reads the process's allocation counters.
func TestEvolveCostPerEventIsFlat(t *testing.T) {
	small, large := bytesPerEvent(1_000), bytesPerEvent(20_000)
	t.Logf("bytes allocated per event: %.0f after 1,000 refusals, %.0f after 20,000", small, large)
	require.Less(t, large, 2*small+512, "the cost of one event grows with the request's history")
	require.Less(t, small, 4096.0, "one event costs a few small allocations, not a copy of the state")
}

// TestAFloodOfRefusalsLeavesTheStateBounded: 100,000 refused votes on
// one request leave a state that keeps at most the window of refusals.
// The bound is checked as the flood goes, so a state that grows fails at
// once instead of after 100,000 quadratic steps.
func TestAFloodOfRefusalsLeavesTheStateBounded(t *testing.T) {
	t.Parallel()
	s := approval.Evolve(approval.State{}, submitted())
	for i := range 100_000 {
		s = approval.Evolve(s, refusal(s.Sequence+1, i))
		if len(s.Outcomes) > window+1 {
			t.Fatalf("after %d refusals the state holds %d outcomes; at most %d refusals and the submit may stay", i+1, len(s.Outcomes), window)
		}
	}
	require.Equal(t, 100_001, s.Sequence)
	require.Equal(t, approval.StatusPending, s.Status, "a flood of refusals changes nothing else")
}

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
const window = approval.MaxRefusedOutcomes

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
// whether the request has 1,000 refusals behind it or 20,000. Evolve
// never mutates its input (the decider rolls back to it), so a refusal
// copies the state's outcomes: at most the window of refusals and the
// accepted commands, about 37 KB with Go 1.26's maps, whereas a state
// that kept every refusal would copy some 2.5 MB for the 20,000th. Not
// parallel: it reads the process's allocation counters.
func TestEvolveCostPerEventIsFlat(t *testing.T) {
	small, large := bytesPerEvent(1_000), bytesPerEvent(20_000)
	t.Logf("bytes allocated per event: %.0f after 1,000 refusals, %.0f after 20,000", small, large)
	require.Less(t, large, 2*small+512, "the cost of one event grows with the request's history")
	require.Less(t, small, float64(window*256), "one event copies at most the window of refusals, not the request's history")
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
	require.Len(t, s.Refused, window)
	require.Equal(t, 100_000, s.Refusals, "every refusal is counted")
	require.True(t, s.Forgot())
	require.Equal(t, "flood-"+strconv.Itoa(100_000-window), s.Refused[0], "the oldest kept")
	require.Equal(t, "flood-99999", s.Refused[window-1], "the newest")
	require.Contains(t, s.Outcomes, "c-submit", "an accepted command is never forgotten")
	require.NotContains(t, s.Outcomes, "flood-0")
}

// TestARetryWithinTheWindowGetsItsOutcome: a refused command retried while
// its refusal is among the request's latest MaxRefusedOutcomes is
// answered from the state with the refusal it got, and adds nothing.
// Once newer refusals have pushed it out, the state alone no longer knows
// it: Decide would decide it again, which is why the decider asks Recall
// first, with its projection's record of every refusal.
func TestARetryWithinTheWindowGetsItsOutcome(t *testing.T) {
	t.Parallel()
	s := approval.Evolve(approval.State{}, submitted())
	retry := cmd("c-mine", dave, approval.Vote{Decision: approval.Approve}) // the requester: self_approval
	d := approval.Decide(s, retry, testPolicies(), t0)
	require.Equal(t, approval.ReasonSelfApproval, d.Refusal.Code)
	for _, e := range d.Events {
		s = approval.Evolve(s, e)
	}
	mine := *d.Refusal
	for i := range window - 1 {
		s = approval.Evolve(s, refusal(s.Sequence+1, i))
	}
	require.False(t, s.Forgot())
	d = approval.Decide(s, retry, testPolicies(), t0)
	require.True(t, d.Replayed, "the last of the window is still known")
	require.Empty(t, d.Events)
	require.Equal(t, mine, *d.Refusal)
	noOlder := func(string) (approval.Outcome, bool, error) {
		t.Fatal("Recall asked the log although the state knows")
		return approval.Outcome{}, false, nil
	}
	o, ok, err := approval.Recall(s, retry.ID, noOlder)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, mine, *o.Refusal())

	s = approval.Evolve(s, refusal(s.Sequence+1, window))
	require.True(t, s.Forgot())
	require.NotContains(t, s.Outcomes, retry.ID, "pushed out by the newest refusal")
	d = approval.Decide(s, retry, testPolicies(), t0)
	require.False(t, d.Replayed, "the state alone decides a forgotten command again")
	var asked []string
	o, ok, err = approval.Recall(s, retry.ID, func(id string) (approval.Outcome, bool, error) {
		asked = append(asked, id)
		return approval.Outcome(mine), true, nil
	})
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, []string{retry.ID}, asked, "Recall asks the log only for what the state forgot")
	require.Equal(t, mine, *o.Refusal())
	_, ok, err = approval.Recall(s, "", noOlder)
	require.NoError(t, err)
	require.False(t, ok, "no id, nothing to recall")
}

// TestRefusalsOfOneCommandIDCountOnce: a refusal of a command id the
// state still holds as refused (which Decide never writes, but the log
// may hold) replaces it where it stands; the refusal that follows an
// expiry written under the same command id is that command's one
// refusal.
func TestRefusalsOfOneCommandIDCountOnce(t *testing.T) {
	t.Parallel()
	s := approval.Evolve(approval.State{}, submitted())
	s = approval.Evolve(s, refusal(2, 1))
	s = approval.Evolve(s, refusal(3, 2))
	again := refusal(4, 1)
	again.Body = approval.CommandRejected{CommandID: "flood-1", Code: approval.ReasonInvalid, Detail: "again"}
	s = approval.Evolve(s, again)
	require.Equal(t, []string{"flood-1", "flood-2"}, s.Refused)
	require.Equal(t, 2, s.Refusals)
	require.Equal(t, approval.ReasonInvalid, s.Outcomes["flood-1"].Code, "the later refusal stands")

	late := cmd("c-late", bob, approval.Vote{Decision: approval.Approve})
	d := approval.Decide(s, late, testPolicies(), t0.Add(2*time.Hour))
	require.Len(t, d.Events, 2, "the expiry, then the refusal, both under c-late")
	for _, e := range d.Events {
		s = approval.Evolve(s, e)
	}
	require.Equal(t, approval.ReasonExpired, s.Outcomes["c-late"].Code)
	require.Equal(t, []string{"flood-1", "flood-2", "c-late"}, s.Refused)
	require.Equal(t, 3, s.Refusals)
}

// BenchmarkEvolveRefusal: one more refusal on a request with 10 or 10,000
// behind it (issue 13, item 8):
//
//	go test -run '^$' -bench EvolveRefusal -benchmem ./libs/approval/
func BenchmarkEvolveRefusal(b *testing.B) {
	for _, n := range []int{10, 10_000} {
		b.Run("history="+strconv.Itoa(n), func(b *testing.B) {
			s := flooded(n)
			e := refusal(s.Sequence+1, n)
			b.ReportAllocs()
			for b.Loop() {
				_ = approval.Evolve(s, e)
			}
		})
	}
}

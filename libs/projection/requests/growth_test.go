package requests_test

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/codec"
	"github.com/assent-dev/assent/libs/projection"
	"github.com/assent-dev/assent/libs/wire"
)

// flooder votes on requests it may not vote on: every vote is refused,
// and every refusal is an event the projection applies (issue 13, item 8).
const flooder = "user:mallory@example.com"

// window is how many refusals a request's state keeps.
const window = 256

// pollSize is how many records a decider decides in one transaction, and
// so about how many events of one request a projection batch can hold.
const pollSize = 2_000

// applyCounted applies one event the way the runner does and returns how
// many bytes it added to the batch: what the store writes for it. The
// figure is exact, whatever the machine.
func (h *harness) applyCounted(b *pebble.Batch, ev approval.Event) int {
	h.t.Helper()
	p := partition(ev.RequestID)
	prev, ok := h.heads[p]
	if !ok {
		prev = wire.GenesisHash
	}
	env, err := codec.EventEnvelope(ev, "assent/decider", prev)
	require.NoError(h.t, err)
	value, err := wire.Marshal(env)
	require.NoError(h.t, err)
	decoded, err := wire.Unmarshal(value)
	require.NoError(h.t, err)
	e := &projection.Event{Partition: p, Offset: h.offsets[p], Value: value, Hash: wire.Hash(value), PrevHead: prev, Envelope: decoded}
	n := b.Len()
	require.NoError(h.t, h.store.Apply(b, e))
	h.offsets[p] += 2
	h.heads[p] = e.Hash
	h.states[ev.RequestID] = approval.Evolve(h.states[ev.RequestID], ev)
	return b.Len() - n
}

// floodEvent is the refusal of the i-th vote the flooder sends to rid.
func floodEvent(rid string, seq, i int) approval.Event {
	id := "flood-" + strconv.Itoa(1_000_000+i) // one length, so every event is the same size
	return approval.Event{RequestID: rid, CommandID: id, Actor: flooder, Time: t0.Add(time.Minute), Sequence: seq,
		Body: approval.CommandRejected{CommandID: id, CommandType: approval.TypeVote, Code: approval.ReasonNotEligible,
			Detail: flooder + ` is not an eligible approver under policy "prod-deploy"`}}
}

// flood applies refusals from..to-1 to rid, a poll's worth per batch,
// and calls check with the bytes each one wrote; check may stop the test.
func (h *harness) flood(rid string, from, to int, check func(i, written int)) {
	h.t.Helper()
	for start := from; start < to; start += pollSize {
		b := h.db.NewIndexedBatch()
		for i := start; i < min(start+pollSize, to); i++ {
			written := h.applyCounted(b, floodEvent(rid, h.states[rid].Sequence+1, i))
			check(i, written)
		}
		require.NoError(h.t, b.Commit(pebble.NoSync))
		require.NoError(h.t, b.Close())
	}
}

// TestStoreBytesPerEventAreFlat: what the store writes for one event does
// not depend on how many events the request had before it. With the
// whole state rewritten per event, the 20,000th refusal would write
// twenty times what the 1,000th does.
func TestStoreBytesPerEventAreFlat(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.submit("flooded", dave, t0, 0)
	var first int
	h.flood("flooded", 0, 20_000, func(i, written int) {
		switch {
		case i == 999:
			first = written
			t.Logf("the 1,000th refusal wrote %d bytes", written)
		case i > 999 && written > first+64:
			t.Fatalf("refusal %d wrote %d bytes, the 1,000th %d: the cost of an event grows with the request", i+1, written, first)
		case i == 19_999:
			t.Logf("the 20,000th refusal wrote %d bytes", written)
		}
	})
}

// TestStoreFloodDoesNotSlowOtherRequests: 100,000 refused votes on one
// request cost the same per event from the first to the last, leave its
// state bounded, and write nothing more for another request's events.
func TestStoreFloodDoesNotSlowOtherRequests(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.submit("flooded", dave, t0, 0)
	h.submit("calm-1", dave, t0, 0)
	h.submit("calm-2", dave, t0, 0)
	vote := func(rid string) int {
		b := h.db.NewIndexedBatch()
		defer func() { _ = b.Close() }()
		written := h.applyCounted(b, approval.Event{RequestID: rid, CommandID: "vote-" + rid, Actor: alice,
			Time: t0.Add(time.Minute), Sequence: h.states[rid].Sequence + 1,
			Body: approval.VoteRecorded{Voter: alice, Decision: approval.Approve}})
		require.NoError(t, b.Commit(pebble.NoSync))
		return written
	}
	calm := vote("calm-1")

	var first int
	h.flood("flooded", 0, 100_000, func(i, written int) {
		switch {
		case i == 0:
			first = written
		case written > first+64:
			t.Fatalf("refusal %d wrote %d bytes, the first %d: the cost of an event grows with the request", i+1, written, first)
		}
	})
	require.Equal(t, calm, vote("calm-2"), "another request's event writes what it wrote before the flood")

	st := h.get("flooded")
	require.Equal(t, 100_001, st.Sequence)
	require.LessOrEqual(t, len(st.Outcomes), window+1, "at most the window of refusals, and the submit")
	raw, err := json.Marshal(st)
	require.NoError(t, err)
	require.Less(t, len(raw), 128<<10, "the state read back is bounded")
	require.Equal(t, h.states["calm-2"], h.get("calm-2"))
	require.Zero(t, h.store.Invalid.Load())
}

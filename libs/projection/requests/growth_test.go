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
	"github.com/assent-dev/assent/libs/projection/requests"
	"github.com/assent-dev/assent/libs/wire"
)

// flooder votes on requests it may not vote on: every vote is refused,
// and every refusal is an event the projection applies (issue 13, item 8).
const flooder = "user:mallory@example.com"

// window is how many refusals a request's state keeps.
const window = approval.MaxRefusedOutcomes

// floodSize is how many refused votes TestStoreCostPerEventIsFlat sends:
// 78 windows, enough to show that no event costs more than the first.
// (approval's TestAFloodOfRefusalsLeavesTheStateBounded sends 100,000; here
// each one is also encoded, chained and written, which -race makes take
// minutes.)
const floodSize = 20_000

// pollSize is how many records a decider decides in one transaction, and
// so about how many events of one request a projection batch can hold.
const pollSize = 500

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

// TestStoreCostPerEventIsFlat: 20,000 refused votes on one request (a
// client that sends vote after vote it may not make) cost the store the
// same per event from the first to the last, leave the request's state
// bounded, and change nothing for another request's events. With the
// whole state rewritten per event, the 1,001st refusal wrote more than
// the 1,000th, and the 20,000th twenty times what the 1,000th did.
func TestStoreCostPerEventIsFlat(t *testing.T) {
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
	h.flood("flooded", 0, floodSize, func(i, written int) {
		switch {
		case i == 0:
			first = written
		case written > first+64:
			t.Fatalf("refusal %d wrote %d bytes, the first %d: the cost of an event grows with the request", i+1, written, first)
		}
		if i+1 == 1_000 || i+1 == 10_000 || i+1 == floodSize {
			t.Logf("refusal %d wrote %d bytes (the first %d)", i+1, written, first)
		}
	})
	require.Equal(t, calm, vote("calm-2"), "another request's event writes what it wrote before the flood")
	require.Equal(t, h.states["calm-2"], h.get("calm-2"))

	st := h.get("flooded")
	require.Equal(t, h.states["flooded"], st, "Get is the fold")
	require.Equal(t, floodSize+1, st.Sequence)
	require.Equal(t, floodSize, st.Refusals)
	require.Len(t, st.Refused, window)
	require.Len(t, st.Outcomes, window+1, "the window of refusals, and the submit")
	raw, err := json.Marshal(st)
	require.NoError(t, err)
	require.Less(t, len(raw), 128<<10, "the state read back is bounded")
	require.Zero(t, h.store.Invalid.Load())

	// Every refusal is still on record, the forgotten ones too.
	for _, i := range []int{0, floodSize - window - 1, floodSize - 1} {
		id := floodEvent("flooded", 0, i).CommandID
		o, found, err := h.store.Refusal("flooded", id)
		require.NoError(t, err)
		require.True(t, found, id)
		require.Equal(t, approval.ReasonNotEligible, o.Code, id)
	}
	for _, missing := range [][2]string{{"flooded", "c-never"}, {"calm-1", floodEvent("", 0, 0).CommandID}, {"flooded", "vote-calm-1"}} {
		_, found, err := h.store.Refusal(missing[0], missing[1])
		require.NoError(t, err)
		require.False(t, found, "%v", missing)
	}
}

// TestStoreGetEqualsFoldAcrossTheWindow: the store keeps refusals apart
// from the state, yet Get equals a fresh fold of the log (I5) when
// refusals leave the window, when an id the window holds is refused again
// (a log may hold that: a command whose data could not be decoded is
// refused each time it comes), when a forgotten id is refused again or
// accepted, and when a refusal follows an accepted event of the same
// command id.
func TestStoreGetEqualsFoldAcrossTheWindow(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.submit("req", dave, t0, 0)
	next := func() int { return h.states["req"].Sequence + 1 }
	refuse := func(id string, code approval.ReasonCode) approval.Event {
		return approval.Event{RequestID: "req", CommandID: id, Actor: flooder, Time: t0, Sequence: next(),
			Body: approval.CommandRejected{CommandID: id, CommandType: approval.TypeVote, Code: code, Detail: string(code) + " " + id}}
	}
	for i := range window + 10 {
		h.apply(refuse("r-"+strconv.Itoa(i), approval.ReasonNotEligible))
	}
	h.checkFold()
	require.NotContains(t, h.get("req").Outcomes, "r-9")
	require.Contains(t, h.get("req").Outcomes, "r-10")

	h.apply(refuse("r-10", approval.ReasonInvalid)) // held: replaced where it stands
	h.checkFold()
	require.Equal(t, approval.ReasonInvalid, h.get("req").Outcomes["r-10"].Code)
	require.Equal(t, "r-10", h.get("req").Refused[0])

	h.apply(refuse("r-3", approval.ReasonForbidden)) // forgotten: a new refusal
	h.checkFold()
	require.Equal(t, approval.ReasonForbidden, h.get("req").Outcomes["r-3"].Code)
	o, found, err := h.store.Refusal("req", "r-3")
	require.NoError(t, err)
	require.True(t, found)
	require.Equal(t, approval.ReasonForbidden, o.Code, "the latest refusal of the id")

	h.apply(approval.Event{RequestID: "req", CommandID: "r-5", Actor: alice, Time: t0, Sequence: next(),
		Body: approval.VoteRecorded{Voter: alice, Decision: approval.Approve}}) // forgotten, then accepted
	h.apply(approval.Event{RequestID: "req", CommandID: "r-20", Actor: bob, Time: t0, Sequence: next(),
		Body: approval.VoteRecorded{Voter: bob, Decision: approval.Reject}}) // held: stays refused
	h.checkFold()
	require.Nil(t, h.get("req").Outcomes["r-5"].Refusal())
	require.Equal(t, approval.ReasonNotEligible, h.get("req").Outcomes["r-20"].Code)

	// A late vote: the expiry that time caused and the refusal, both
	// under the vote's command id, in one batch.
	h.submit("late", erin, t0, 10*time.Minute)
	d := h.do("late", bob, approval.Vote{Decision: approval.Approve}, t0.Add(time.Hour))
	require.Len(t, d.Events, 2)
	h.checkFold()
	require.Equal(t, approval.ReasonExpired, h.get("late").Outcomes[d.Events[0].CommandID].Code)

	for range window {
		h.apply(refuse("s-"+strconv.Itoa(next()), approval.ReasonNotEligible))
	}
	h.checkFold()
	require.NotContains(t, h.get("req").Outcomes, "r-3", "pushed out again")
	require.Zero(t, h.store.Invalid.Load())
}

// BenchmarkStoreApplyRefusal: what the store costs for one more refusal
// on a request with 10 or 10,000 behind it, and what Get costs then:
//
//	go test -run '^$' -bench StoreApplyRefusal -benchmem ./libs/projection/requests/
func BenchmarkStoreApplyRefusal(b *testing.B) {
	for _, n := range []int{10, 10_000} {
		b.Run("history="+strconv.Itoa(n), func(b *testing.B) {
			db, err := pebble.Open(b.TempDir(), &pebble.Options{})
			require.NoError(b, err)
			defer func() { require.NoError(b, db.Close()) }()
			store := &requests.Store{}
			store.Attach(db)
			const rid = "flooded"
			p := partition(rid)
			head, off := wire.GenesisHash, int64(0)
			event := func(ev approval.Event) *projection.Event {
				env, err := codec.EventEnvelope(ev, "assent/decider", head)
				require.NoError(b, err)
				value, err := wire.Marshal(env)
				require.NoError(b, err)
				decoded, err := wire.Unmarshal(value)
				require.NoError(b, err)
				e := &projection.Event{Partition: p, Offset: off, Value: value, Hash: wire.Hash(value), PrevHead: head, Envelope: decoded}
				head, off = e.Hash, off+1
				return e
			}
			apply := func(es ...*projection.Event) {
				batch := db.NewIndexedBatch()
				for _, e := range es {
					require.NoError(b, store.Apply(batch, e))
				}
				require.NoError(b, batch.Commit(pebble.NoSync))
				require.NoError(b, batch.Close())
			}
			submit := approval.Decide(approval.State{}, approval.Command{ID: "c-submit", RequestID: rid, Actor: dave, Time: t0,
				Body: approval.Submit{Action: approval.Action{Type: "deploy", Resource: "payments/api", Environment: "production"}, Reason: "release", Requester: dave}},
				policies(), t0)
			require.Nil(b, submit.Refusal)
			require.Len(b, submit.Events, 1)
			seq := 1
			apply(event(submit.Events[0]))
			for start := 0; start < n; start += pollSize {
				var es []*projection.Event
				for i := start; i < min(start+pollSize, n); i++ {
					seq++
					es = append(es, event(floodEvent(rid, seq, i)))
				}
				apply(es...)
			}
			// Every iteration folds the same next refusal into a batch it
			// then drops, so the history stays n long.
			next := event(floodEvent(rid, seq+1, n))
			b.ReportAllocs()
			for b.Loop() {
				batch := db.NewIndexedBatch()
				require.NoError(b, store.Apply(batch, next))
				require.NoError(b, batch.Close())
			}
			b.StopTimer()
			start := time.Now()
			const gets = 100
			for range gets {
				_, _, err := store.Get(rid)
				require.NoError(b, err)
			}
			b.ReportMetric(float64(time.Since(start).Nanoseconds())/gets, "ns/get")
		})
	}
}

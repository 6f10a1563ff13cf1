package replay

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/test/loggen"
)

var start = time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC)

// replayAll replays the generated requests' events, a request's events in
// order, and returns the requests and what was found.
func replayAll(t *testing.T, rp *Replayer, n int) (map[string]*Request, []Finding) {
	t.Helper()
	reqs := map[string]*Request{}
	var found []Finding
	for i := range n {
		for k, e := range loggen.Events(i, start, time.Second) {
			r := reqs[e.RequestID]
			if r == nil {
				r = &Request{}
				reqs[e.RequestID] = r
			}
			found = append(found, rp.Add(r, Item{Offset: int64(i*100 + k), ID: fmt.Sprint(i, k), Event: e, Value: []byte("v")})...)
		}
	}
	for _, r := range reqs {
		found = append(found, rp.Close(r)...)
	}
	return reqs, found
}

// TestDecidedRequestsKeepOnlyTheirStatus is the memory bound: a request
// that is decided keeps its status and sequence, nothing more; only a
// pending one keeps its state and its events' values.
func TestDecidedRequestsKeepOnlyTheirStatus(t *testing.T) {
	t.Parallel()
	rp := New(Rules{})
	reqs, found := replayAll(t, rp, 600)
	require.Empty(t, found)
	require.Len(t, reqs, 600)
	for rid, r := range reqs {
		require.True(t, r.status.Terminal(), "every generated request ends decided: %s is %q", rid, r.status)
		require.Nil(t, r.live, "%s is decided: no state, no run, no values", rid)
		require.Nil(t, r.Pending())
	}
	require.Zero(t, rp.UncheckedCancels, "a sixth of them are cancelled by their requesters: that needs no admin list")

	// A pending request keeps its state and the values to save.
	var r Request
	events := loggen.Events(0, start, time.Second)[:2] // submitted, then the first vote
	for k, e := range events {
		require.Empty(t, rp.Add(&r, Item{Offset: int64(k), Event: e, Value: fmt.Appendf(nil, "v%d", k)}))
	}
	require.Equal(t, approval.StatusPending, r.status)
	require.Equal(t, [][]byte{[]byte("v0"), []byte("v1")}, r.Pending())
}

// TestResumeGoesOn saves a pending request's events, resumes from them
// and replays the rest: the rules still apply across the cut (the voter
// who already voted is refused, and a forged approval is still found).
func TestResumeGoesOn(t *testing.T) {
	t.Parallel()
	rp := New(Rules{})
	events := loggen.Events(0, start, time.Second) // submitted, vote, vote + approved
	require.Len(t, events, 4)
	var r Request
	for k, e := range events[:2] {
		require.Empty(t, rp.Add(&r, Item{Offset: int64(k), Event: e, Value: []byte("v")}))
	}
	resumed := Resume(events[:2], r.Pending())
	require.Equal(t, 2, resumed.Sequence())

	legal := resumed
	for k, e := range events[2:] {
		require.Empty(t, rp.Add(&legal, Item{Offset: int64(k + 2), Event: e}))
	}
	require.Equal(t, approval.StatusApproved, legal.status)

	// The same voter again, forged as counting: refused duplicate_vote.
	forged := Resume(events[:2], r.Pending())
	again := events[1]
	again.CommandID, again.Sequence = "again", 3
	found := rp.Add(&forged, Item{Offset: 7, ID: "e7", Event: again})
	require.Len(t, found, 1)
	require.Equal(t, int64(7), found[0].Offset)
	require.Contains(t, found[0].Reason, "duplicate_vote")
}

// TestAdminsUnknown: without the admins, a cancel by someone other than
// the requester is counted and taken as an admin's, a refused one as not;
// with them, each is checked.
func TestAdminsUnknown(t *testing.T) {
	t.Parallel()
	ps := loggen.Policies()
	submit := approval.Command{ID: "c1", RequestID: "r1", Actor: "service:ci", Time: start, Body: approval.Submit{
		Action: approval.Action{Type: "deploy", Resource: "x", Environment: "prod"}, Reason: "r"}}
	st := approval.State{}
	var events []approval.Event
	for i, c := range []approval.Command{submit,
		{ID: "c2", RequestID: "r1", Actor: "user:judy@example.com", Time: start.Add(time.Minute), Body: approval.Cancel{}}} {
		if i == 1 {
			ps.Admins = []string{"user:judy@example.com"}
		}
		for _, e := range approval.Decide(st, c, ps, c.Time).Events {
			st = approval.Evolve(st, e)
			events = append(events, e)
		}
	}
	require.Equal(t, approval.StatusCancelled, st.Status)

	play := func(rules Rules) (*Replayer, []Finding) {
		rp := New(rules)
		var r Request
		var found []Finding
		for k, e := range events {
			found = append(found, rp.Add(&r, Item{Offset: int64(k), Event: e})...)
		}
		return rp, append(found, rp.Close(&r)...)
	}
	rp, found := play(Rules{})
	require.Empty(t, found)
	require.Equal(t, int64(1), rp.UncheckedCancels)
	rp, found = play(Rules{Admins: []string{"user:judy@example.com"}, AdminsKnown: true})
	require.Empty(t, found)
	require.Zero(t, rp.UncheckedCancels)
	_, found = play(Rules{Admins: []string{"user:someone-else@example.com"}, AdminsKnown: true})
	require.Len(t, found, 1)
	require.Contains(t, found[0].Reason, "forbidden")
}

// TestUnauthenticatedRefusalsAreLegalAnywhere: the decider refuses a
// command that no published key that may speak for its actor signed
// before the domain sees it (docs/architecture.md, "Authenticated
// commands"), under its record's id and as system:decider, whatever the
// request's state. The replay takes such refusals as legal, of every
// command type, before and after the decision, and still replays the
// rest.
func TestUnauthenticatedRefusalsAreLegalAnywhere(t *testing.T) {
	t.Parallel()
	rp := New(Rules{})
	events := loggen.Events(0, start, time.Second)
	var withForgeries []approval.Event
	seq := 0
	st := approval.State{}
	forge := func(typ string, at time.Time) {
		d := approval.Refuse(st, approval.Command{ID: fmt.Sprintf("kafka:assent.commands.v1/0/%d", seq), RequestID: events[0].RequestID,
			Actor: approval.SystemDecider}, typ, &approval.Refusal{Code: approval.ReasonUnauthenticated, Detail: "not signed"}, at)
		for _, e := range d.Events {
			st = approval.Evolve(st, e)
			withForgeries = append(withForgeries, e)
			seq = e.Sequence
		}
	}
	forge(approval.TypeSubmit, start) // before the request exists
	for i, e := range events {
		e.Sequence = seq + 1
		st = approval.Evolve(st, e)
		withForgeries = append(withForgeries, e)
		seq = e.Sequence
		if i == 0 {
			forge(approval.TypeVote, e.Time)
			forge(approval.TypeExpire, e.Time)
			forge(approval.TypeCancel, e.Time)
		}
	}
	require.True(t, st.Status.Terminal())
	forge(approval.TypeRecordNotification, start.Add(time.Hour)) // after the decision
	forge(approval.TypeVote, start.Add(time.Hour))

	var r Request
	var found []Finding
	for k, e := range withForgeries {
		found = append(found, rp.Add(&r, Item{Offset: int64(k), ID: fmt.Sprint(k), Event: e, Value: []byte("v")})...)
	}
	found = append(found, rp.Close(&r)...)
	require.Empty(t, found)
	require.Equal(t, st.Status, r.status)
	require.Equal(t, seq, r.seq)
}

package approval_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/approval"
)

// withoutHashes is events with the hashes of a request.submitted left
// empty, as DecideOptions.NoHashes leaves them.
func withoutHashes(events []approval.Event) []approval.Event {
	out := make([]approval.Event, len(events))
	for i, e := range events {
		if b, ok := e.Body.(approval.RequestSubmitted); ok {
			b.ContentHash, b.Policy.Hash = "", ""
			e.Body = b
		}
		out[i] = e
	}
	return out
}

// FuzzDecideWithOptionsAndEvolveOwned drives the command sequences of
// FuzzDecide and requires, at every step, that DecideWith with the
// replay's options decides exactly as Decide (the same events but for
// the hashes it leaves out, the same refusal), and that a state kept with
// EvolveOwned stays equal to one kept with Evolve.
func FuzzDecideWithOptionsAndEvolveOwned(f *testing.F) {
	f.Add([]byte{0x00, 1, 0x11, 1, 0x21, 1})
	f.Add([]byte{0x01, 1, 0x13, 1, 0x12, 1, 0x12, 1})
	f.Add([]byte{0x00, 1, 0x51, 0xff, 0x11, 0xff})
	f.Add([]byte{0x00, 1, 0x30, 1, 0x11, 1, 0x91, 1})
	f.Add([]byte{0x00, 1, 0x25, 1, 0x45, 1, 0x01, 1, 0x80, 1})
	f.Add([]byte{0x10, 1, 0x00, 1, 0x80, 1, 0x06, 200})
	actors := []string{dave, alice, bob, carol, root, "user:mallory@example.com", "service:slack-gateway", approval.SystemDecider}
	f.Fuzz(func(t *testing.T, in []byte) {
		pol := testPolicies()
		if len(in) > 0 && in[0]&1 != 0 {
			// Approvers Decide must sort and dedupe, with or without options.
			pol.Rules[0].Approvers = []string{carol, alice, bob, alice}
		}
		now := t0
		var (
			state, owned approval.State
			ids          []string
		)
		opts := approval.DecideOptions{NoHashes: true, SharePolicy: true}
		for i := 0; i+1 < len(in) && i < 400; i += 2 {
			op, tick := in[i], in[i+1]
			now = now.Add(time.Duration(tick) * time.Second)
			actor := actors[int(op>>4)%len(actors)]
			id := fmt.Sprintf("c%d", i)
			if op&0x80 != 0 && len(ids) > 0 {
				id = ids[int(op)%len(ids)]
			}
			c := approval.Command{ID: id, RequestID: rid, Actor: actor, Time: now, Body: body(op)}
			want := approval.Decide(state, c, pol, now)
			got := approval.DecideWith(owned, c, pol, now, opts)
			require.Equal(t, want.Refusal, got.Refusal, "step %d", i)
			require.Equal(t, want.Replayed, got.Replayed, "step %d", i)
			require.Equal(t, withoutHashes(want.Events), withoutHashes(got.Events), "step %d", i)
			for k, e := range got.Events {
				if b, ok := e.Body.(approval.RequestSubmitted); ok {
					require.Empty(t, b.ContentHash, "step %d", i)
					require.Empty(t, b.Policy.Hash, "step %d", i)
					require.NotEmpty(t, want.Events[k].Body.(approval.RequestSubmitted).ContentHash)
				}
			}
			for _, e := range want.Events {
				state = approval.Evolve(state, e)
				owned = approval.EvolveOwned(owned, e)
			}
			ids = append(ids, id)
			require.True(t, equalState(state, owned), "step %d: EvolveOwned differs from Evolve", i)
		}
	})
}

// A resubmit is still decided by its content hash under NoHashes: the
// same content adds nothing, other content is a conflict.
func TestNoHashesStillComparesAResubmit(t *testing.T) {
	t.Parallel()
	opts := approval.DecideOptions{NoHashes: true}
	s := approval.Evolve(approval.State{}, submitted())
	same := approval.DecideWith(s, cmd("c-again", dave, deploy()), testPolicies(), t0, opts)
	require.Nil(t, same.Refusal)
	require.Empty(t, same.Events, "an identical resubmit is a no-op")
	other := deploy()
	other.Reason = "another release"
	d := approval.DecideWith(s, cmd("c-other", dave, other), testPolicies(), t0, opts)
	require.NotNil(t, d.Refusal)
	require.Equal(t, approval.ReasonConflict, d.Refusal.Code)
}

// The snapshot shares the policy's approvers only when asked to, and only
// when they need no sorting.
func TestSharePolicy(t *testing.T) {
	t.Parallel()
	pol := testPolicies()
	snap := func(o approval.DecideOptions) []string {
		d := approval.DecideWith(approval.State{}, cmd("c-submit", dave, deploy()), pol, t0, o)
		require.Len(t, d.Events, 1)
		return d.Events[0].Body.(approval.RequestSubmitted).Policy.Approvers
	}
	same := func(a, b []string) bool { return len(a) > 0 && len(b) > 0 && &a[0] == &b[0] }
	require.False(t, same(snap(approval.DecideOptions{}), pol.Rules[0].Approvers), "a copy by default")
	require.True(t, same(snap(approval.DecideOptions{SharePolicy: true}), pol.Rules[0].Approvers), "shared")
	pol.Rules[0].Approvers = []string{carol, alice, bob}
	got := snap(approval.DecideOptions{SharePolicy: true})
	require.Equal(t, []string{alice, bob, carol}, got, "sorted, so copied")
	require.Equal(t, []string{carol, alice, bob}, pol.Rules[0].Approvers, "the policy is not changed")
}

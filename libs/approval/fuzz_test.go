package approval_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/assent-dev/assent/libs/approval"
)

// FuzzDecide drives random command sequences against one request and checks
// I3 (no flips) and I4 (rules hold at decision time) after every step, plus
// the properties the decider relies on: gapless sequences, replayed command
// ids add nothing, and the incremental state equals a fresh fold.
//
// Each input byte pair is one step: the first byte picks the command, the
// actor and whether to reuse an earlier command id; the second advances the
// clock by up to ~4 minutes, so that expiry (TTL 1h, 15m for some submits)
// is reached in longer runs.
func FuzzDecide(f *testing.F) {
	f.Add([]byte{0x00, 1, 0x11, 1, 0x21, 1})            // submit, two approvals
	f.Add([]byte{0x00, 1, 0x13, 1, 0x12, 1, 0x12, 1})   // self-approval, duplicates
	f.Add([]byte{0x00, 1, 0x51, 0xff, 0x11, 0xff})      // expiry through time
	f.Add([]byte{0x00, 1, 0x30, 1, 0x11, 1, 0x91, 1})   // cancel then vote, replay
	f.Add([]byte{0x00, 1, 0x25, 1, 0x45, 1, 0x01, 1})   // reject, notification, resubmit
	f.Add([]byte{0x10, 1, 0x00, 1, 0x80, 1, 0x06, 200}) // vote before submit, conflict
	actors := []string{dave, alice, bob, carol, root, "user:mallory@example.com", "service:slack-gateway", approval.SystemDecider}
	f.Fuzz(func(t *testing.T, in []byte) {
		pol := testPolicies()
		now := t0
		var (
			state approval.State
			log   []approval.Event
			ids   []string
		)
		for i := 0; i+1 < len(in) && i < 400; i += 2 {
			op, tick := in[i], in[i+1]
			now = now.Add(time.Duration(tick) * time.Second)
			actor := actors[int(op>>4)%len(actors)]
			id := fmt.Sprintf("c%d", i)
			if op&0x80 != 0 && len(ids) > 0 {
				id = ids[int(op)%len(ids)] // a retry of an earlier command
			}
			c := approval.Command{ID: id, RequestID: rid, Actor: actor, Time: now, Body: body(op)}
			_, retried := state.Outcomes[id]
			d := approval.Decide(state, c, pol, now)
			if retried && (!d.Replayed || len(d.Events) > 0) {
				t.Fatalf("step %d: command %s was decided before but produced %d events", i, id, len(d.Events))
			}
			for _, e := range d.Events {
				if e.Sequence != state.Sequence+1 {
					t.Fatalf("step %d: sequence %d after %d", i, e.Sequence, state.Sequence)
				}
				checkI4(t, state, e)
				state = approval.Evolve(state, e)
				log = append(log, e)
			}
			ids = append(ids, id)
			checkI3(t, log)
			if fold := approval.Fold(log); !equalState(fold, state) {
				t.Fatalf("step %d: incremental state differs from a fresh fold", i)
			}
		}
	})
}

func body(op byte) approval.CommandBody {
	switch op & 0x07 {
	case 0:
		return deploy()
	case 1:
		return approval.Vote{Decision: approval.Approve}
	case 2:
		return approval.Vote{Decision: approval.Reject, Comment: "no"}
	case 3:
		return approval.Cancel{Reason: "changed my mind"}
	case 4:
		return approval.Expire{}
	case 5:
		return approval.RecordNotification{Kind: approval.NotifyCard, Channel: "C1", TS: fmt.Sprint(op)}
	case 6:
		s := deploy()
		s.Reason = "a different reason" // a conflicting resubmit
		return s
	default:
		s := deploy()
		s.TTL = approval.Duration(15 * time.Minute)
		return s
	}
}

// checkI3: at most one terminal event, and after it only refusals and
// notification records.
func checkI3(t *testing.T, log []approval.Event) {
	t.Helper()
	terminal := -1
	for i, e := range log {
		switch e.Body.(type) {
		case approval.CommandRejected, approval.NotificationRecorded:
			continue
		}
		if terminal >= 0 {
			t.Fatalf("I3: %s at sequence %d follows the terminal event at sequence %d",
				e.Body.EventType(), e.Sequence, log[terminal].Sequence)
		}
		if approval.Terminal(e.Body) {
			terminal = i
		}
	}
}

// checkI4 checks one new event against the state it is applied to.
func checkI4(t *testing.T, s approval.State, e approval.Event) {
	t.Helper()
	switch b := e.Body.(type) {
	case approval.VoteRecorded:
		switch {
		case s.Status != approval.StatusPending:
			t.Fatalf("I4: vote by %s on a %q request", b.Voter, s.Status)
		case b.Voter == s.Requester:
			t.Fatalf("I4: self-approval by %s", b.Voter)
		case !slices.Contains(s.Policy.Approvers, b.Voter):
			t.Fatalf("I4: ineligible voter %s counted", b.Voter)
		case s.HasVoted(b.Voter):
			t.Fatalf("I4: %s counted twice", b.Voter)
		case !e.Time.Before(s.Policy.ExpiresAt):
			t.Fatalf("I4: vote at %s after expiry at %s", e.Time, s.Policy.ExpiresAt)
		}
	case approval.RequestApproved:
		approvals, _ := s.Tally()
		if approvals < s.Policy.MinApprovals || len(b.Approvers) != approvals {
			t.Fatalf("I4: approved with %d approvals (%v), quorum %d", approvals, b.Approvers, s.Policy.MinApprovals)
		}
	case approval.RequestRejected:
		_, rejections := s.Tally()
		if rejections < s.Policy.RejectThreshold {
			t.Fatalf("I4: rejected with %d rejections, threshold %d", rejections, s.Policy.RejectThreshold)
		}
	case approval.RequestExpired:
		if e.Time.Before(s.Policy.ExpiresAt) {
			t.Fatalf("I4: expired at %s before %s", e.Time, s.Policy.ExpiresAt)
		}
	case approval.RequestCancelled:
		if b.By != s.Requester && b.By != root {
			t.Fatalf("I4: cancelled by %s, neither requester nor admin", b.By)
		}
	case approval.RequestSubmitted, approval.CommandRejected, approval.NotificationRecorded:
	default:
		t.Fatalf("unknown event %T", b)
	}
}

func equalState(a, b approval.State) bool {
	return fmt.Sprintf("%+v", a) == fmt.Sprintf("%+v", b)
}

package service_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/command"
)

// The illegal logs: each is one request whose events a decider never
// writes, sealed with a valid key like a legal log. The events before
// the forgery are the domain's own (approval.Decide); the forged ones are
// written as they stand.

var (
	t0        = time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)
	requester = "user:rita@example.com"
	alice     = "user:alice@example.com"
	bob       = "user:bob@example.com"
	carol     = "user:carol@example.com"
	mallory   = "user:mallory@example.com"
	judy      = "user:judy@example.com" // an admin in illegalPolicyFile
)

// illegalPolicies is the policy every request falls under: the requester
// is among the approvers, so only the self-approval rule keeps her from
// approving her own request.
func illegalPolicies() approval.Policies {
	return approval.Policies{Admins: []string{judy}, Rules: []approval.Policy{{
		Name: "deploys", Approvers: []string{alice, bob, carol, requester}, MinApprovals: 2, RejectThreshold: 2,
		TTL: approval.Duration(time.Hour),
	}}}
}

// illegalPolicyFile writes the same policies as the deciders' YAML file.
func illegalPolicyFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "policies.yaml")
	require.NoError(t, os.WriteFile(path, []byte(`version: 1
admins:
  - judy@example.com
policies:
  - name: deploys
    match:
      action: [deploy]
    approvers:
      users: [alice@example.com, bob@example.com, carol@example.com, rita@example.com]
    min_approvals: 2
    reject_threshold: 2
    ttl: 1h
`), 0o600))
	return path
}

// history builds one request's events.
type history struct {
	t      *testing.T
	rid    string
	st     approval.State
	events []approval.Event
	forged int // index of the first forged event; -1 for none
	n      int
}

func newHistory(t *testing.T, rid string) *history {
	h := &history{t: t, rid: rid, forged: -1}
	h.cmd(requester, t0, approval.Submit{Action: approval.Action{Type: "deploy", Resource: "payments/api", Environment: "production"},
		Reason: "release 42"})
	return h
}

// cmd decides a command with the domain and appends what it emits.
func (h *history) cmd(actor string, at time.Time, body approval.CommandBody) *history {
	h.t.Helper()
	h.n++
	c := approval.Command{ID: fmt.Sprintf("%s-c%d", h.rid, h.n), RequestID: h.rid, Actor: actor, Time: at, Body: body}
	d := approval.Decide(h.st, c, illegalPolicies(), at)
	require.NotEmpty(h.t, d.Events, "the legal part of the history emits events")
	for _, e := range d.Events {
		h.st = approval.Evolve(h.st, e)
		h.events = append(h.events, e)
	}
	return h
}

// forge appends an event as it stands, under the given command id
// ("" for a new one), with the next sequence.
func (h *history) forge(actor, cmdID string, at time.Time, body approval.EventBody) *history {
	if cmdID == "" {
		h.n++
		cmdID = fmt.Sprintf("%s-c%d", h.rid, h.n)
	}
	if h.forged < 0 {
		h.forged = len(h.events)
	}
	e := approval.Event{RequestID: h.rid, CommandID: cmdID, Actor: actor, Time: at, Sequence: len(h.events) + 1, Body: body}
	h.st = approval.Evolve(h.st, e)
	h.events = append(h.events, e)
	return h
}

// lastCmd is the command id of the last event.
func (h *history) lastCmd() string { return h.events[len(h.events)-1].CommandID }

func approve() approval.Vote { return approval.Vote{Decision: approval.Approve} }

// illegalCase is one illegal log: the index of the event verify must
// report, and a phrase its reason must hold.
type illegalCase struct {
	name   string
	build  func(t *testing.T) *history
	at     func(h *history) int // the event reported; default: the first forged one
	reason string
	admins bool // run verify with --policies
}

func illegalCases() []illegalCase {
	m := func(k int) time.Time { return t0.Add(time.Duration(k) * time.Minute) }
	return []illegalCase{
		{name: "approved without a quorum", reason: "Decide emits only [vote.recorded]", build: func(t *testing.T) *history {
			h := newHistory(t, "req-no-quorum").cmd(alice, m(1), approve())
			return h.forge(alice, h.lastCmd(), m(1), approval.RequestApproved{Approvers: []string{alice}})
		}},
		{name: "approved by the requester's vote", reason: "self_approval", build: func(t *testing.T) *history {
			h := newHistory(t, "req-self").cmd(alice, m(1), approve())
			h.forge(requester, "", m(2), approval.VoteRecorded{Voter: requester, Decision: approval.Approve})
			return h.forge(requester, h.lastCmd(), m(2), approval.RequestApproved{Approvers: []string{alice, requester}})
		}},
		{name: "a vote by an ineligible voter", reason: "not_eligible", build: func(t *testing.T) *history {
			return newHistory(t, "req-ineligible").forge(mallory, "", m(1), approval.VoteRecorded{Voter: mallory, Decision: approval.Approve})
		}},
		{name: "a second terminal event", reason: "already_decided", build: func(t *testing.T) *history {
			h := newHistory(t, "req-twice").cmd(alice, m(1), approve()).cmd(bob, m(2), approve())
			return h.forge(requester, "", m(3), approval.RequestCancelled{By: requester})
		}},
		{name: "expired before the deadline", reason: "Decide adds nothing", build: func(t *testing.T) *history {
			return newHistory(t, "req-early").forge(approval.SystemDecider, command.ExpireID("req-early"), m(30),
				approval.RequestExpired{ExpiresAt: t0.Add(time.Hour)})
		}},
		{name: "a vote after the decision", reason: "already_decided", build: func(t *testing.T) *history {
			h := newHistory(t, "req-late").cmd(alice, m(1), approve()).cmd(bob, m(2), approve())
			return h.forge(carol, "", m(3), approval.VoteRecorded{Voter: carol, Decision: approval.Reject})
		}},
		{name: "a second vote by one voter", reason: "duplicate_vote", build: func(t *testing.T) *history {
			h := newHistory(t, "req-dup").cmd(alice, m(1), approval.Vote{Decision: approval.Reject})
			return h.forge(alice, "", m(2), approval.VoteRecorded{Voter: alice, Decision: approval.Reject})
		}},
		{name: "approvers that did not approve", reason: "approvers is [user:alice@example.com user:carol@example.com] in the log", build: func(t *testing.T) *history {
			h := newHistory(t, "req-who").cmd(alice, m(1), approve())
			h.forge(bob, "", m(2), approval.VoteRecorded{Voter: bob, Decision: approval.Approve})
			return h.forge(bob, h.lastCmd(), m(2), approval.RequestApproved{Approvers: []string{alice, carol}})
		}, at: func(h *history) int { return h.forged + 1 }},
		{name: "the decision left out", reason: "Decide also emits [request.approved]", build: func(t *testing.T) *history {
			h := newHistory(t, "req-undecided").cmd(alice, m(1), approve())
			return h.forge(bob, "", m(2), approval.VoteRecorded{Voter: bob, Decision: approval.Approve})
		}},
		{name: "rejected short of the threshold", reason: "Decide emits only [vote.recorded]", build: func(t *testing.T) *history {
			h := newHistory(t, "req-reject").forge(alice, "", m(1), approval.VoteRecorded{Voter: alice, Decision: approval.Reject})
			return h.forge(alice, h.lastCmd(), m(1), approval.RequestRejected{Rejecters: []string{alice}})
		}, at: func(h *history) int { return h.forged + 1 }},
		{name: "a snapshot the requester alone could approve", reason: "no_policy", build: func(t *testing.T) *history {
			h := &history{t: t, rid: "req-snapshot", forged: -1}
			return h.forge(requester, "", t0, approval.RequestSubmitted{
				Action: approval.Action{Type: "deploy", Resource: "payments/api", Environment: "production"},
				Reason: "release 43", Requester: requester, ContentHash: "sha256:00",
				Policy: approval.PolicySnapshot{Name: "deploys", Hash: "sha256:00", Approvers: []string{alice, requester},
					MinApprovals: 2, RejectThreshold: 1, TTL: approval.Duration(time.Hour), ExpiresAt: t0.Add(time.Hour)},
			})
		}},
		{name: "a cancel by someone who is not an admin", reason: "forbidden", admins: true, build: func(t *testing.T) *history {
			return newHistory(t, "req-cancel").forge(mallory, "", m(1), approval.RequestCancelled{By: mallory})
		}},
		{name: "a vote refused that Decide records", reason: "Decide emits vote.recorded there, not command.rejected", build: func(t *testing.T) *history {
			return newHistory(t, "req-refused").forge(alice, "", m(1), approval.CommandRejected{CommandID: "req-refused-c2",
				CommandType: approval.TypeVote, Code: approval.ReasonSelfApproval, Detail: "forged"})
		}},
		{name: "a notification recorded by a person", reason: "forbidden", build: func(t *testing.T) *history {
			return newHistory(t, "req-note").forge(mallory, "", m(1), approval.NotificationRecorded{Kind: approval.NotifyCard, Channel: "C1", TS: "1.2"})
		}},
		{name: "an expiry under a vote's command without its refusal", reason: "must be followed by the command.rejected", build: func(t *testing.T) *history {
			return newHistory(t, "req-expiry").forge(approval.SystemDecider, "", m(61), approval.RequestExpired{ExpiresAt: t0.Add(time.Hour)})
		}},
		{name: "an approval without a vote", reason: "no command starts with it", build: func(t *testing.T) *history {
			h := newHistory(t, "req-novote").cmd(alice, m(1), approve()).cmd(bob, m(2), approval.Vote{Decision: approval.Reject})
			return h.forge(alice, "", m(3), approval.RequestApproved{Approvers: []string{alice}})
		}},
	}
}

// legalHistories are requests that use every rule the replay reproduces,
// all legal: they verify clean, with and without the admins.
func legalHistories(t *testing.T) []*history {
	m := func(k int) time.Time { return t0.Add(time.Duration(k) * time.Minute) }
	notify := approval.RecordNotification{Kind: approval.NotifyCard, Channel: "C1", TS: "1.2"}
	var hs []*history
	// Approved, with refusals on the way and a card after the decision.
	h := newHistory(t, "ok-approved").cmd("service:slack-gateway", m(0), notify)
	h.cmd(requester, m(1), approve())                             // self_approval
	h.cmd(mallory, m(1), approve())                               // not_eligible
	h.cmd(alice, m(2), approval.Vote{Decision: approval.Approve}) // counts
	h.cmd(alice, m(2), approve())                                 // duplicate_vote
	h.cmd(bob, m(3), approval.Vote{Decision: approval.Approve, Comment: "ok"})
	h.cmd(carol, m(4), approve()) // already_decided
	h.cmd("service:slack-gateway", m(5), approval.RecordNotification{Kind: approval.NotifyCard, Channel: "C2", TS: "9.9"})
	hs = append(hs, h)
	// Rejected at the threshold.
	h = newHistory(t, "ok-rejected").cmd(alice, m(1), approval.Vote{Decision: approval.Reject, Comment: "no"})
	hs = append(hs, h.cmd(bob, m(2), approval.Vote{Decision: approval.Reject, Comment: "freeze"}))
	// A vote after the deadline: Decide expires the request, then refuses.
	hs = append(hs, newHistory(t, "ok-late-vote").cmd(alice, m(61), approve()))
	// The decider's expiry, then a delivery recorded after it.
	h = newHistory(t, "ok-expired")
	h.n++
	d := approval.Decide(h.st, approval.Command{ID: command.ExpireID(h.rid), RequestID: h.rid, Actor: approval.SystemDecider, Body: approval.Expire{}},
		illegalPolicies(), m(60))
	require.Len(t, d.Events, 1)
	h.events = append(h.events, d.Events...)
	h.st = approval.Evolve(h.st, d.Events[0])
	h.cmd("service:notifier", m(61), approval.RecordNotification{Kind: approval.NotifyWebhook, Channel: "https://hooks.example.com/x",
		TS: "evt-1", Outcome: approval.Delivered, At: m(61), Attempts: 1})
	hs = append(hs, h)
	// Cancelled by an admin, after a cancel by a stranger was refused.
	h = newHistory(t, "ok-cancelled").cmd(mallory, m(1), approval.Cancel{})
	hs = append(hs, h.cmd(judy, m(2), approval.Cancel{Reason: "left open"}))
	// Cancelled by the requester.
	hs = append(hs, newHistory(t, "ok-withdrawn").cmd(requester, m(1), approval.Cancel{Reason: "superseded"}))
	// A vote on a request nobody submitted, then its submission.
	h = &history{t: t, rid: "ok-early-vote", forged: -1}
	h.cmd(alice, m(0), approve()) // not_found
	hs = append(hs, h.cmd(requester, m(1), approval.Submit{Action: approval.Action{Type: "deploy", Resource: "db", Environment: "staging",
		Details: []byte(`{"b":1,"a":"<x>"}`)}, Reason: "migrate", TTL: approval.Duration(30 * time.Minute)}))
	return hs
}

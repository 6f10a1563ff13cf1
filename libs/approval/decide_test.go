package approval_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/approval"
)

var t0 = time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)

const (
	alice = "user:alice@example.com"
	bob   = "user:bob@example.com"
	carol = "user:carol@example.com"
	dave  = "user:dave@example.com" // requester, not an approver
	root  = "user:root@example.com" // admin
	rid   = "req-1"
)

func testPolicies() approval.Policies {
	return approval.Policies{
		Admins: []string{root},
		Rules: []approval.Policy{
			{
				Name:            "prod-deploy",
				Match:           approval.Match{ActionTypes: []string{"deploy"}, Environments: []string{"production"}, Resource: "payments/**"},
				Approvers:       []string{alice, bob, carol},
				MinApprovals:    2,
				RejectThreshold: 1,
				TTL:             approval.Duration(time.Hour),
				Notify:          []approval.NotifyTarget{{Kind: "slack_channel", Target: "#deploys"}},
			},
			{
				Name:         "self-serve",
				Match:        approval.Match{ActionTypes: []string{"access"}},
				Approvers:    []string{dave},
				MinApprovals: 1,
				TTL:          approval.Duration(time.Hour),
			},
		},
	}
}

func deploy() approval.Submit {
	return approval.Submit{
		Action: approval.Action{Type: "deploy", Resource: "payments/api", Environment: "production",
			Details: json.RawMessage(`{"version":"1.4.2","commit":"abc123"}`)},
		Reason:    "release 1.4.2",
		Requester: dave,
	}
}

// submitted is the event a submit of deploy() by dave at t0 produces.
func submitted() approval.Event {
	d := approval.Decide(approval.State{}, cmd("c-submit", dave, deploy()), testPolicies(), t0)
	if d.Refusal != nil || len(d.Events) != 1 {
		panic("fixture: submit refused")
	}
	return d.Events[0]
}

func cmd(id, actor string, body approval.CommandBody) approval.Command {
	return approval.Command{ID: id, RequestID: rid, Actor: actor, Time: t0, Body: body}
}

func vote(d approval.VoteDecision) approval.CommandBody {
	return approval.Vote{Decision: d}
}

func ev(seq int, cid, actor string, body approval.EventBody) approval.Event {
	return approval.Event{RequestID: rid, CommandID: cid, Actor: actor, Time: t0.Add(time.Minute), Sequence: seq, Body: body}
}

func voted(seq int, voter string, d approval.VoteDecision) approval.Event {
	return ev(seq, "c-vote-"+voter, voter, approval.VoteRecorded{Voter: voter, Decision: d})
}

func TestDecide(t *testing.T) {
	t.Parallel()
	now := t0.Add(time.Minute)
	tests := []struct {
		name    string
		given   []approval.Event
		when    approval.Command
		at      time.Time // default: now
		then    []approval.EventBody
		refusal approval.ReasonCode
	}{
		{
			name:  "first approval is recorded and the request stays pending",
			given: []approval.Event{submitted()},
			when:  cmd("c1", alice, vote(approval.Approve)),
			then:  []approval.EventBody{approval.VoteRecorded{Voter: alice, Decision: approval.Approve}},
		},
		{
			name:  "the quorum approves",
			given: []approval.Event{submitted(), voted(2, alice, approval.Approve)},
			when:  cmd("c1", bob, vote(approval.Approve)),
			then: []approval.EventBody{
				approval.VoteRecorded{Voter: bob, Decision: approval.Approve},
				approval.RequestApproved{Approvers: []string{alice, bob}},
			},
		},
		{
			name:  "one reject reaches the default reject threshold",
			given: []approval.Event{submitted(), voted(2, alice, approval.Approve)},
			when:  cmd("c1", carol, approval.Vote{Decision: approval.Reject, Comment: "not during the freeze"}),
			then: []approval.EventBody{
				approval.VoteRecorded{Voter: carol, Decision: approval.Reject, Comment: "not during the freeze"},
				approval.RequestRejected{Rejecters: []string{carol}, Comment: "not during the freeze"},
			},
		},
		{
			name:    "the requester cannot approve their own request",
			given:   []approval.Event{submitted()},
			when:    cmd("c1", dave, vote(approval.Approve)),
			refusal: approval.ReasonSelfApproval,
		},
		{
			name:    "an approver outside the snapshot does not count",
			given:   []approval.Event{submitted()},
			when:    cmd("c1", "user:mallory@example.com", vote(approval.Approve)),
			refusal: approval.ReasonNotEligible,
		},
		{
			name:    "each approver counts once",
			given:   []approval.Event{submitted(), voted(2, alice, approval.Approve)},
			when:    cmd("c1", alice, vote(approval.Approve)),
			refusal: approval.ReasonDuplicateVote,
		},
		{
			name:    "changing a vote is a duplicate too",
			given:   []approval.Event{submitted(), voted(2, alice, approval.Approve)},
			when:    cmd("c1", alice, vote(approval.Reject)),
			refusal: approval.ReasonDuplicateVote,
		},
		{
			name:    "a vote on an unknown request",
			when:    cmd("c1", alice, vote(approval.Approve)),
			refusal: approval.ReasonNotFound,
		},
		{
			name: "a vote on a decided request",
			given: []approval.Event{submitted(), voted(2, alice, approval.Approve), voted(3, bob, approval.Approve),
				ev(4, "c-vote-bob", bob, approval.RequestApproved{Approvers: []string{alice, bob}})},
			when:    cmd("c1", carol, vote(approval.Reject)),
			refusal: approval.ReasonAlreadyDecided,
		},
		{
			name:    "a vote with an unknown decision is invalid",
			given:   []approval.Event{submitted()},
			when:    cmd("c1", alice, approval.Vote{Decision: "maybe"}),
			refusal: approval.ReasonInvalid,
		},
		{
			name:  "a vote after expires_at expires the request first and is refused",
			given: []approval.Event{submitted()},
			when:  cmd("c1", alice, vote(approval.Approve)),
			at:    t0.Add(time.Hour),
			then: []approval.EventBody{
				approval.RequestExpired{ExpiresAt: t0.Add(time.Hour)},
			},
			refusal: approval.ReasonExpired,
		},
		{
			name:  "the timer expires a pending request",
			given: []approval.Event{submitted()},
			when:  cmd("expire:"+rid, approval.SystemDecider, approval.Expire{}),
			at:    t0.Add(2 * time.Hour),
			then:  []approval.EventBody{approval.RequestExpired{ExpiresAt: t0.Add(time.Hour)}},
		},
		{
			name:  "an early timer does nothing",
			given: []approval.Event{submitted()},
			when:  cmd("expire:"+rid, approval.SystemDecider, approval.Expire{}),
			at:    t0.Add(59 * time.Minute),
		},
		{
			name: "a late timer on a decided request does nothing",
			given: []approval.Event{submitted(),
				ev(2, "c-cancel", dave, approval.RequestCancelled{By: dave})},
			when: cmd("expire:"+rid, approval.SystemDecider, approval.Expire{}),
			at:   t0.Add(2 * time.Hour),
		},
		{
			name:    "nobody else may act as the system",
			given:   []approval.Event{submitted()},
			when:    cmd("c1", approval.SystemDecider, vote(approval.Approve)),
			refusal: approval.ReasonForbidden,
		},
		{
			name:    "the timer needs the system principal",
			given:   []approval.Event{submitted()},
			when:    cmd("c1", alice, approval.Expire{}),
			at:      t0.Add(2 * time.Hour),
			refusal: approval.ReasonForbidden,
		},
		{
			name:  "the requester cancels",
			given: []approval.Event{submitted()},
			when:  cmd("c1", dave, approval.Cancel{Reason: "wrong version"}),
			then:  []approval.EventBody{approval.RequestCancelled{By: dave, Reason: "wrong version"}},
		},
		{
			name:  "an admin cancels",
			given: []approval.Event{submitted()},
			when:  cmd("c1", root, approval.Cancel{}),
			then:  []approval.EventBody{approval.RequestCancelled{By: root}},
		},
		{
			name:    "an approver may not cancel",
			given:   []approval.Event{submitted()},
			when:    cmd("c1", alice, approval.Cancel{}),
			refusal: approval.ReasonForbidden,
		},
		{
			name:    "cancel of an unknown request",
			when:    cmd("c1", dave, approval.Cancel{}),
			refusal: approval.ReasonNotFound,
		},
		{
			name:    "cancel after the decision",
			given:   []approval.Event{submitted(), ev(2, "c-cancel", dave, approval.RequestCancelled{By: dave})},
			when:    cmd("c1", dave, approval.Cancel{}),
			refusal: approval.ReasonAlreadyDecided,
		},
		{
			name:    "cancel after expires_at",
			given:   []approval.Event{submitted()},
			when:    cmd("c1", dave, approval.Cancel{}),
			at:      t0.Add(3 * time.Hour),
			then:    []approval.EventBody{approval.RequestExpired{ExpiresAt: t0.Add(time.Hour)}},
			refusal: approval.ReasonExpired,
		},
		{
			name:  "an identical resubmit is a no-op",
			given: []approval.Event{submitted()},
			when:  cmd("c-other", dave, deploy()),
		},
		{
			name:  "an identical resubmit after the decision is a no-op too",
			given: []approval.Event{submitted(), ev(2, "c-cancel", dave, approval.RequestCancelled{By: dave})},
			when:  cmd("c-other", dave, deploy()),
		},
		{
			name:  "details that differ only in formatting are identical",
			given: []approval.Event{submitted()},
			when: cmd("c-other", dave, func() approval.Submit {
				s := deploy()
				s.Action.Details = json.RawMessage("{ \"commit\": \"abc123\",\n \"version\": \"1.4.2\" }")
				return s
			}()),
		},
		{
			name:  "a resubmit with different content conflicts",
			given: []approval.Event{submitted()},
			when: cmd("c-other", dave, func() approval.Submit {
				s := deploy()
				s.Reason = "release 1.4.3"
				return s
			}()),
			refusal: approval.ReasonConflict,
		},
		{
			name: "a submit no policy matches",
			when: cmd("c1", dave, func() approval.Submit {
				s := deploy()
				s.Action.Environment = "staging"
				return s
			}()),
			refusal: approval.ReasonNoPolicy,
		},
		{
			name: "a policy the requester alone could approve is unusable",
			when: cmd("c1", dave, approval.Submit{
				Action: approval.Action{Type: "access", Resource: "db/prod", Environment: "production"},
				Reason: "debugging",
			}),
			refusal: approval.ReasonNoPolicy,
		},
		{
			name: "a submit without a reason is invalid",
			when: cmd("c1", dave, func() approval.Submit {
				s := deploy()
				s.Reason = ""
				return s
			}()),
			refusal: approval.ReasonInvalid,
		},
		{
			name: "details must be a JSON object",
			when: cmd("c1", dave, func() approval.Submit {
				s := deploy()
				s.Action.Details = json.RawMessage(`[1,2]`)
				return s
			}()),
			refusal: approval.ReasonInvalid,
		},
		{
			name: "control characters in a resource are invalid",
			when: cmd("c1", dave, func() approval.Submit {
				s := deploy()
				s.Action.Resource = "payments/\x1b[2Japi"
				return s
			}()),
			refusal: approval.ReasonInvalid,
		},
		{
			name:    "a command without an actor is unauthenticated",
			when:    cmd("c1", "", deploy()),
			refusal: approval.ReasonUnauthenticated,
		},
		{
			name:    "an actor that is not a principal is unauthenticated",
			when:    cmd("c1", "alice", deploy()),
			refusal: approval.ReasonUnauthenticated,
		},
		{
			name:    "a command without an id is invalid",
			when:    cmd("", dave, deploy()),
			refusal: approval.ReasonInvalid,
		},
		{
			name:  "a gateway records a card",
			given: []approval.Event{submitted()},
			when:  cmd("c1", "service:slack-gateway", approval.RecordNotification{Kind: approval.NotifyCard, Channel: "C1", TS: "1.2"}),
			then:  []approval.EventBody{approval.NotificationRecorded{Kind: approval.NotifyCard, Channel: "C1", TS: "1.2"}},
		},
		{
			name:  "a card is recorded after the decision too",
			given: []approval.Event{submitted(), ev(2, "c-cancel", dave, approval.RequestCancelled{By: dave})},
			when:  cmd("c1", "service:slack-gateway", approval.RecordNotification{Kind: approval.NotifyDM, Channel: "D1", TS: "1.3", Recipient: dave}),
			then:  []approval.EventBody{approval.NotificationRecorded{Kind: approval.NotifyDM, Channel: "D1", TS: "1.3", Recipient: dave}},
		},
		{
			name: "the same card recorded twice adds nothing",
			given: []approval.Event{submitted(),
				ev(2, "c-note", "service:slack-gateway", approval.NotificationRecorded{Kind: approval.NotifyCard, Channel: "C1", TS: "1.2"})},
			when: cmd("c1", "service:slack-gateway", approval.RecordNotification{Kind: approval.NotifyCard, Channel: "C1", TS: "1.2"}),
		},
		{
			name:    "a user may not record notifications",
			given:   []approval.Event{submitted()},
			when:    cmd("c1", alice, approval.RecordNotification{Kind: approval.NotifyCard, Channel: "C1", TS: "1.2"}),
			refusal: approval.ReasonForbidden,
		},
		{
			name:  "the notifier records a webhook delivery",
			given: []approval.Event{submitted()},
			when: cmd("c1", "service:notifier", approval.RecordNotification{Kind: approval.NotifyWebhook, Channel: "https://hooks.example.com/a", TS: "e-1",
				Outcome: approval.Delivered, Attempts: 2, At: t0}),
			then: []approval.EventBody{approval.NotificationRecorded{Kind: approval.NotifyWebhook, Channel: "https://hooks.example.com/a", TS: "e-1",
				Outcome: approval.Delivered, Attempts: 2, At: t0}},
		},
		{
			name: "a dead letter, its replay and the delivery after it are three facts",
			given: []approval.Event{submitted(),
				ev(2, "c-dead", "service:notifier", approval.NotificationRecorded{Kind: approval.NotifyEmail, Channel: "sre@example.com", TS: "e-1", Outcome: approval.DeadLetter, Reason: "550 no such user", At: t0}),
				ev(3, "c-replay", "service:notifier", approval.NotificationRecorded{Kind: approval.NotifyEmail, Channel: "sre@example.com", TS: "e-1", Outcome: approval.ReplayAsked})},
			when: cmd("c1", "service:notifier", approval.RecordNotification{Kind: approval.NotifyEmail, Channel: "sre@example.com", TS: "e-1", Outcome: approval.Delivered, At: t0, Generation: 1}),
			then: []approval.EventBody{approval.NotificationRecorded{Kind: approval.NotifyEmail, Channel: "sre@example.com", TS: "e-1", Outcome: approval.Delivered, At: t0, Generation: 1}},
		},
		{
			name:    "a delivery needs an outcome",
			given:   []approval.Event{submitted()},
			when:    cmd("c1", "service:notifier", approval.RecordNotification{Kind: approval.NotifyWebhook, Channel: "https://h.example.com", TS: "e-1", At: t0}),
			refusal: approval.ReasonInvalid,
		},
		{
			name:    "a delivery needs its time",
			given:   []approval.Event{submitted()},
			when:    cmd("c1", "service:notifier", approval.RecordNotification{Kind: approval.NotifyWebhook, Channel: "https://h.example.com", TS: "e-1", Outcome: approval.Delivered}),
			refusal: approval.ReasonInvalid,
		},
		{
			name:    "a Slack card carries no outcome",
			given:   []approval.Event{submitted()},
			when:    cmd("c1", "service:slack-gateway", approval.RecordNotification{Kind: approval.NotifyCard, Channel: "C1", TS: "1.2", Outcome: approval.Delivered}),
			refusal: approval.ReasonInvalid,
		},
		{
			name:    "a user may not record a delivery",
			given:   []approval.Event{submitted()},
			when:    cmd("c1", alice, approval.RecordNotification{Kind: approval.NotifyWebhook, Channel: "https://h.example.com", TS: "e-1", Outcome: approval.ReplayAsked}),
			refusal: approval.ReasonForbidden,
		},
		{
			name:    "a notification for an unknown request",
			when:    cmd("c1", "service:slack-gateway", approval.RecordNotification{Kind: approval.NotifyCard, Channel: "C1", TS: "1.2"}),
			refusal: approval.ReasonNotFound,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			at := tt.at
			if at.IsZero() {
				at = now
			}
			state := approval.Fold(tt.given)
			d := approval.Decide(state, tt.when, testPolicies(), at)
			require.False(t, d.Replayed)
			var bodies []approval.EventBody
			for i, e := range d.Events {
				require.Equal(t, state.Sequence+i+1, e.Sequence, "sequences continue without gaps")
				require.Equal(t, tt.when.ID, e.CommandID)
				require.Equal(t, rid, e.RequestID)
				require.Equal(t, at, e.Time)
				bodies = append(bodies, e.Body)
			}
			if tt.refusal == "" {
				require.Nil(t, d.Refusal)
				require.Equal(t, tt.then, bodies)
				return
			}
			require.NotNil(t, d.Refusal)
			require.Equal(t, tt.refusal, d.Refusal.Code, d.Refusal.Detail)
			require.NotEmpty(t, d.Refusal.Detail)
			require.NotEmpty(t, bodies)
			last := bodies[len(bodies)-1]
			require.Equal(t, approval.CommandRejected{
				CommandID: tt.when.ID, CommandType: tt.when.Body.CommandType(),
				Code: tt.refusal, Detail: d.Refusal.Detail,
			}, last)
			require.Equal(t, tt.then, nilIfEmpty(bodies[:len(bodies)-1]))
		})
	}
}

func nilIfEmpty(b []approval.EventBody) []approval.EventBody {
	if len(b) == 0 {
		return nil
	}
	return b
}

func TestEveryReasonCodeIsReachable(t *testing.T) {
	t.Parallel()
	// The table above covers each code; this guards the list against a code
	// being added without a rule that can produce it.
	covered := map[approval.ReasonCode]bool{
		approval.ReasonUnauthenticated: true, approval.ReasonForbidden: true, approval.ReasonInvalid: true,
		approval.ReasonNoPolicy: true, approval.ReasonNotFound: true, approval.ReasonNotEligible: true,
		approval.ReasonSelfApproval: true, approval.ReasonDuplicateVote: true, approval.ReasonAlreadyDecided: true,
		approval.ReasonConflict: true, approval.ReasonExpired: true,
	}
	for _, c := range approval.ReasonCodes() {
		require.True(t, covered[c], "reason code %s has no table test", c)
		require.True(t, c.Valid())
	}
	require.False(t, approval.ReasonCode("nope").Valid())
}

func TestReplayedCommandAddsNothingAndReportsTheOriginalOutcome(t *testing.T) {
	t.Parallel()
	s := approval.Fold([]approval.Event{submitted()})
	pol := testPolicies()
	now := t0.Add(time.Minute)

	first := approval.Decide(s, cmd("c-self", dave, vote(approval.Approve)), pol, now)
	require.Equal(t, approval.ReasonSelfApproval, first.Refusal.Code)
	for _, e := range first.Events {
		s = approval.Evolve(s, e)
	}
	again := approval.Decide(s, cmd("c-self", dave, vote(approval.Approve)), pol, now)
	require.True(t, again.Replayed)
	require.Empty(t, again.Events)
	require.Equal(t, first.Refusal, again.Refusal)

	ok := approval.Decide(s, cmd("c-alice", alice, vote(approval.Approve)), pol, now)
	require.Nil(t, ok.Refusal)
	for _, e := range ok.Events {
		s = approval.Evolve(s, e)
	}
	again = approval.Decide(s, cmd("c-alice", alice, vote(approval.Approve)), pol, now)
	require.True(t, again.Replayed)
	require.Nil(t, again.Refusal)
	require.Empty(t, again.Events)
}

func TestSubmitSnapshotsThePolicy(t *testing.T) {
	t.Parallel()
	pol := testPolicies()
	e := submitted()
	b := e.Body.(approval.RequestSubmitted)
	require.Equal(t, "prod-deploy", b.Policy.Name)
	require.Equal(t, pol.Rules[0].Hash(), b.Policy.Hash)
	require.Equal(t, []string{alice, bob, carol}, b.Policy.Approvers)
	require.Equal(t, 2, b.Policy.MinApprovals)
	require.Equal(t, t0.Add(time.Hour), b.Policy.ExpiresAt)
	require.Equal(t, dave, b.Requester)
	require.Equal(t, 1, e.Sequence)

	// A later edit of the policy changes nothing for the request in flight.
	s := approval.Fold([]approval.Event{e})
	pol.Rules[0].Approvers = []string{"user:zed@example.com"}
	pol.Rules[0].MinApprovals = 1
	d := approval.Decide(s, cmd("c1", alice, vote(approval.Approve)), pol, t0.Add(time.Minute))
	require.Nil(t, d.Refusal)
	require.Len(t, d.Events, 1, "the snapshot's quorum of 2 still applies")
	d = approval.Decide(s, cmd("c2", "user:zed@example.com", vote(approval.Approve)), pol, t0.Add(time.Minute))
	require.Equal(t, approval.ReasonNotEligible, d.Refusal.Code)
}

func TestSubmitTTLIsCappedByThePolicy(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		asked, want time.Duration
	}{{0, time.Hour}, {10 * time.Minute, 10 * time.Minute}, {48 * time.Hour, time.Hour}} {
		s := deploy()
		s.TTL = approval.Duration(tc.asked)
		d := approval.Decide(approval.State{}, cmd("c1", dave, s), testPolicies(), t0)
		require.Nil(t, d.Refusal)
		p := d.Events[0].Body.(approval.RequestSubmitted).Policy
		require.Equal(t, approval.Duration(tc.want), p.TTL)
		require.Equal(t, t0.Add(tc.want), p.ExpiresAt)
	}
	s := deploy()
	s.TTL = approval.Duration(-time.Minute)
	d := approval.Decide(approval.State{}, cmd("c1", dave, s), testPolicies(), t0)
	require.Equal(t, approval.ReasonInvalid, d.Refusal.Code)
}

func TestRequesterDefaultsToTheActor(t *testing.T) {
	t.Parallel()
	s := deploy()
	s.Requester = ""
	d := approval.Decide(approval.State{}, cmd("c1", dave, s), testPolicies(), t0)
	require.Nil(t, d.Refusal)
	require.Equal(t, dave, d.Events[0].Body.(approval.RequestSubmitted).Requester)
}

func TestNotifyTargetsWantTheirEvents(t *testing.T) {
	t.Parallel()
	hook := approval.NotifyTarget{Kind: "webhook", Target: "https://h.example.com"}
	requester := approval.NotifyTarget{Kind: "email", Target: "requester"}
	picky := approval.NotifyTarget{Kind: "email", Target: "a@example.com", Events: []string{approval.NotifyVoted}}
	for typ, want := range map[string][3]bool{
		approval.TypeRequestSubmitted:     {true, false, false},
		approval.TypeVoteRecorded:         {false, false, true},
		approval.TypeRequestApproved:      {true, true, false},
		approval.TypeRequestRejected:      {true, true, false},
		approval.TypeRequestExpired:       {true, true, false},
		approval.TypeRequestCancelled:     {true, true, false},
		approval.TypeCommandRejected:      {false, false, false},
		approval.TypeNotificationRecorded: {false, false, false},
	} {
		require.Equal(t, want, [3]bool{hook.Wants(typ), requester.Wants(typ), picky.Wants(typ)}, typ)
	}
}

func TestDeadLettersAreTheLatestOutcomeOfEachDelivery(t *testing.T) {
	t.Parallel()
	note := func(target, event string, o approval.DeliveryOutcome, gen int) approval.NotificationRecorded {
		return approval.NotificationRecorded{Kind: approval.NotifyWebhook, Channel: target, TS: event, Outcome: o, At: t0, Generation: gen}
	}
	st := approval.State{Notes: []approval.NotificationRecorded{
		{Kind: approval.NotifyCard, Channel: "C1", TS: "1.2"},
		note("https://a", "e-1", approval.DeadLetter, 0),
		note("https://a", "e-1", approval.ReplayAsked, 0),
		note("https://b", "e-1", approval.DeadLetter, 0),
		note("https://a", "e-2", approval.Delivered, 0),
	}}
	require.Equal(t, []approval.NotificationRecorded{note("https://b", "e-1", approval.DeadLetter, 0)}, st.DeadLetters(),
		"a replayed dead letter is no longer dead, a delivered one never was, and a card is not a delivery")
	st.Notes = append(st.Notes, note("https://a", "e-1", approval.DeadLetter, 1))
	require.Len(t, st.DeadLetters(), 2, "the replay failed again")
	require.Equal(t, 1, st.Replays(approval.NotifyWebhook, "https://a", "e-1"))
}

func TestFoldBuildsTheView(t *testing.T) {
	t.Parallel()
	events := []approval.Event{submitted(), voted(2, alice, approval.Approve), voted(3, bob, approval.Approve),
		ev(4, "c-vote-bob", bob, approval.RequestApproved{Approvers: []string{alice, bob}}),
		ev(5, "c-late", carol, approval.CommandRejected{CommandID: "c-late", CommandType: approval.TypeVote, Code: approval.ReasonAlreadyDecided, Detail: "x"}),
		// A second terminal event cannot come from Decide; the fold never flips.
		ev(6, "c-bad", dave, approval.RequestCancelled{By: dave}),
	}
	s := approval.Fold(events)
	require.Equal(t, approval.StatusApproved, s.Status)
	require.Equal(t, []string{alice, bob}, s.DecidedBy)
	require.Equal(t, 6, s.Sequence)
	require.Equal(t, t0, s.CreatedAt)
	a, r := s.Tally()
	require.Equal(t, 2, a)
	require.Equal(t, 0, r)
	require.Equal(t, approval.ReasonAlreadyDecided, s.Outcomes["c-late"].Code)
	require.Nil(t, s.Outcomes["c-vote-bob"].Refusal())
}

func TestEvolveDoesNotMutateItsInput(t *testing.T) {
	t.Parallel()
	base := approval.Fold([]approval.Event{submitted(), voted(2, alice, approval.Approve),
		ev(3, "c-no", dave, approval.CommandRejected{CommandID: "c-no", CommandType: approval.TypeVote, Code: approval.ReasonSelfApproval})})
	base.Votes = append(make([]approval.VoteView, 0, 8), base.Votes...) // spare capacity invites aliasing
	base.Refused = append(make([]string, 0, 8), base.Refused...)        // here too
	want := fmt.Sprintf("%+v", base)
	a := approval.Evolve(base, voted(4, bob, approval.Approve))
	a = approval.Evolve(a, ev(5, "c-a", carol, approval.CommandRejected{CommandID: "c-a", Code: approval.ReasonInvalid}))
	b := approval.Evolve(base, voted(4, carol, approval.Reject))
	b = approval.Evolve(b, ev(5, "c-b", bob, approval.CommandRejected{CommandID: "c-b", Code: approval.ReasonInvalid}))
	require.Equal(t, want, fmt.Sprintf("%+v", base), "the base is as it was")
	require.Len(t, base.Votes, 1)
	require.NotContains(t, base.Outcomes, "c-vote-"+bob)
	require.Equal(t, bob, a.Votes[1].Voter)
	require.Equal(t, carol, b.Votes[1].Voter)
	require.Equal(t, []string{"c-no", "c-a"}, a.Refused)
	require.Equal(t, []string{"c-no", "c-b"}, b.Refused)
	require.NotContains(t, a.Outcomes, "c-b")
	require.NotContains(t, b.Outcomes, "c-a")
}

// TestEvolveDoesNotMutateAFullWindow: a state whose refusals fill the
// window forgets its oldest on the next refusal, in the state Evolve
// returns only; the state it was given still holds it (the decider rolls
// back to it when a transaction aborts).
func TestEvolveDoesNotMutateAFullWindow(t *testing.T) {
	t.Parallel()
	full := approval.Evolve(approval.State{}, submitted())
	for i := range approval.MaxRefusedOutcomes {
		id := fmt.Sprintf("c-%d", i)
		full = approval.Evolve(full, ev(full.Sequence+1, id, dave, approval.CommandRejected{CommandID: id, Code: approval.ReasonInvalid}))
	}
	require.False(t, full.Forgot())
	want := fmt.Sprintf("%+v", full)
	next := approval.Evolve(full, ev(full.Sequence+1, "c-new", dave, approval.CommandRejected{CommandID: "c-new", Code: approval.ReasonInvalid}))
	require.True(t, next.Forgot())
	require.NotContains(t, next.Outcomes, "c-0")
	require.Equal(t, "c-1", next.Refused[0])
	require.Equal(t, want, fmt.Sprintf("%+v", full), "the state given is as it was")
	require.Contains(t, full.Outcomes, "c-0")
	require.NotContains(t, full.Outcomes, "c-new")
}

// TestDecideNeverChangesItsState: Decide reads the state it is given and
// leaves it as it was, even for a vote that decides the request (the
// decider evolves the same state with the events afterwards).
func TestDecideNeverChangesItsState(t *testing.T) {
	t.Parallel()
	s := approval.Fold([]approval.Event{submitted(), voted(2, alice, approval.Approve)})
	s.Votes = append(make([]approval.VoteView, 0, 8), s.Votes...)
	want := fmt.Sprintf("%+v", s)
	d := approval.Decide(s, cmd("c-vote-bob", bob, vote(approval.Approve)), testPolicies(), t0.Add(time.Minute))
	require.Nil(t, d.Refusal)
	require.Len(t, d.Events, 2)
	require.Equal(t, approval.RequestApproved{Approvers: []string{alice, bob}}, d.Events[1].Body)
	require.Equal(t, want, fmt.Sprintf("%+v", s))
	d = approval.Decide(s, cmd("c-vote-carol", carol, vote(approval.Reject)), testPolicies(), t0.Add(time.Minute))
	require.Equal(t, approval.RequestRejected{Rejecters: []string{carol}}, d.Events[1].Body)
	require.Equal(t, want, fmt.Sprintf("%+v", s))
}

func TestRefuseRecordsACommandThatCouldNotBeDecoded(t *testing.T) {
	t.Parallel()
	s := approval.Fold([]approval.Event{submitted()})
	c := approval.Command{ID: "c-bad", RequestID: rid, Actor: alice}
	d := approval.Refuse(s, c, "dev.assent.command.vote", &approval.Refusal{Code: approval.ReasonInvalid, Detail: "bad json"}, t0)
	require.Equal(t, approval.ReasonInvalid, d.Refusal.Code)
	require.Len(t, d.Events, 1)
	require.Equal(t, 2, d.Events[0].Sequence)
	require.Equal(t, approval.CommandRejected{CommandID: "c-bad", CommandType: "dev.assent.command.vote", Code: approval.ReasonInvalid, Detail: "bad json"}, d.Events[0].Body)
	require.Equal(t, approval.ReasonInvalid, approval.Evolve(s, d.Events[0]).Outcomes["c-bad"].Code)
}

package sdke2e_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	assent "github.com/assent-dev/assent/libs/sdk"
	"github.com/assent-dev/assent/schemas"
	"github.com/assent-dev/assent/test/sdktest"
)

// TestIntegrationHTTPEndToEnd runs the HTTP client against two api
// replicas and two deciders on the real cluster: an approval asked by
// billing and given by alice through the other replica, refusals with
// their codes, idempotent retries, a cancel, the history, and a failover
// when one api replica is killed.
func TestIntegrationHTTPEndToEnd(t *testing.T) {
	c := sdktest.Start(t, 2, 2)
	urls := c.URLs()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	billing, err := assent.New(urls, "demo-billing", assent.WithPrincipal("service:billing"))
	require.NoError(t, err)
	alice, err := assent.New([]string{urls[1], urls[0]}, "demo-alice", assent.WithPrincipal("user:alice@example.com"))
	require.NoError(t, err)

	// Approval: billing waits, alice finds the request in her list and
	// approves it through the other replica.
	req := deploy()
	req.RequestID = assent.NewRequestID()
	type result struct {
		d   assent.Decision
		err error
	}
	waited := make(chan result, 1)
	go func() {
		d, err := billing.RequestApproval(ctx, req)
		waited <- result{d, err}
	}()
	require.Eventually(t, func() bool {
		for r, err := range alice.ListAll(ctx, assent.ListOptions{Approver: "user:alice@example.com"}) {
			require.NoError(t, err)
			if r.ID == req.RequestID {
				return true
			}
		}
		return false
	}, 30*time.Second, 50*time.Millisecond, "alice sees the request among those she may vote on")
	key := "test-" + req.RequestID
	vote := assent.VoteRequest{Decision: assent.Approve, Comment: "canary is green", IdempotencyKey: key}
	v, err := alice.Vote(ctx, req.RequestID, vote)
	require.NoError(t, err)
	require.Equal(t, assent.StatusApproved, v.Status, "the deciding vote's answer shows the decision")
	r := <-waited
	require.NoError(t, r.err)
	require.True(t, r.d.Approved)
	require.Equal(t, req.RequestID, r.d.RequestID)
	require.Equal(t, []string{"user:alice@example.com"}, r.d.DecidedBy)
	require.Equal(t, "prod-deploy", r.d.View.Policy.Name)
	require.Equal(t, time.Hour, r.d.View.Policy.TTL)
	require.True(t, r.d.View.HasVote("user:alice@example.com", assent.Approve))

	// The same vote again with the same Idempotency-Key is the same
	// command, and gets its original outcome on either replica; with
	// another key it is a new vote, refused.
	for _, u := range urls {
		v, err = mustClient(t, []string{u}, "demo-alice").Vote(ctx, req.RequestID, vote)
		require.NoError(t, err, "a retry of the deciding vote through %s", u)
		require.Equal(t, assent.StatusApproved, v.Status)
	}
	vote.IdempotencyKey = ""
	_, err = alice.Vote(ctx, req.RequestID, vote)
	require.True(t, assent.IsCode(err, assent.CodeAlreadyDecided), "%v", err)

	// An identical resubmit answers with the request as it stands.
	again, err := billing.Submit(ctx, req)
	require.NoError(t, err)
	require.Equal(t, assent.StatusApproved, again.Status)
	changed := req
	changed.Reason = "something else"
	_, err = billing.Submit(ctx, changed)
	require.True(t, assent.IsCode(err, assent.CodeConflict), "%v", err)

	// The history, exactly as stored.
	events, err := billing.Events(ctx, req.RequestID)
	require.NoError(t, err)
	var types []string
	for i, e := range events {
		types = append(types, e.Event.Type)
		require.NoError(t, schemas.Validate(e.Raw), "event %d", i)
		require.Equal(t, req.RequestID, e.Event.Subject)
		if i > 0 && e.Partition == events[i-1].Partition && e.Offset == events[i-1].Offset+1 {
			require.Equal(t, events[i-1].Hash(), e.Event.PrevHash, "adjacent records chain")
		}
	}
	require.Equal(t, []string{assent.EventRequestSubmitted, assent.EventVoteRecorded, assent.EventRequestApproved},
		slices.DeleteFunc(types, func(s string) bool { return s == assent.EventCommandRejected }))

	// Refusals, with their codes.
	qa := deploy()
	qa.Action.Environment = "qa"
	d, err := billing.RequestApproval(ctx, qa)
	require.True(t, assent.IsCode(err, assent.CodeNoPolicy), "%v", err)
	require.False(t, d.Approved)
	var p *assent.Problem
	require.ErrorAs(t, err, &p)
	require.Equal(t, 422, p.Status)

	pendingReq := deploy()
	pendingReq.RequestID = assent.NewRequestID() // to follow it with RequestApproval below
	pending, err := billing.Submit(ctx, pendingReq)
	require.NoError(t, err)
	require.Equal(t, assent.StatusPending, pending.Status)
	_, err = billing.Vote(ctx, pending.ID, assent.VoteRequest{Decision: assent.Approve})
	require.True(t, assent.IsCode(err, assent.CodeSelfApproval), "%v", err)
	mallory := mustClient(t, urls, "demo-mallory")
	_, err = mallory.Vote(ctx, pending.ID, assent.VoteRequest{Decision: assent.Approve})
	require.True(t, assent.IsCode(err, assent.CodeNotEligible), "%v", err)
	_, err = mustClient(t, urls, "demo-bob").Cancel(ctx, pending.ID, assent.CancelRequest{})
	require.True(t, assent.IsCode(err, assent.CodeForbidden), "%v", err)
	_, err = billing.Get(ctx, "no-such-request")
	require.True(t, assent.IsCode(err, assent.CodeNotFound), "%v", err)
	_, err = mustClient(t, urls, "not-a-token").Get(ctx, pending.ID)
	require.True(t, assent.IsCode(err, assent.CodeUnauthenticated), "%v", err)

	// A wait that runs out leaves the request pending, and says so.
	short, stop := context.WithTimeout(ctx, 2*time.Second)
	d, err = billing.RequestApproval(short, pendingReq)
	stop()
	require.ErrorIs(t, err, assent.ErrPending)
	require.False(t, d.Approved)
	require.Equal(t, pending.ID, d.RequestID)

	// The requester withdraws it.
	cancelled, err := billing.Cancel(ctx, pending.ID, assent.CancelRequest{Reason: "superseded"})
	require.NoError(t, err)
	require.Equal(t, assent.StatusCancelled, cancelled.Status)
	d, err = billing.RequestApproval(ctx, pendingReq)
	require.NoError(t, err)
	require.False(t, d.Approved)
	require.Equal(t, assent.StatusCancelled, d.Status)

	// Failover: with the first replica killed, every call goes to the
	// second one.
	c.APIs[0].Kill()
	failover := deploy()
	v, err = billing.Submit(ctx, failover)
	require.NoError(t, err)
	require.Equal(t, assent.StatusPending, v.Status)
	list, err := billing.List(ctx, assent.ListOptions{Requester: "service:billing", Status: assent.StatusPending, Limit: 1})
	require.NoError(t, err)
	require.Len(t, list.Items, 1)
	require.Equal(t, v.ID, list.Items[0].ID, "newest first")
}

func mustClient(t *testing.T, urls []string, token string) *assent.Client {
	t.Helper()
	c, err := assent.New(urls, token)
	require.NoError(t, err)
	return c
}

func deploy() assent.SubmitRequest {
	return assent.SubmitRequest{
		Action: assent.Action{Type: "deploy", Resource: "services/billing/api", Environment: "production",
			Details: map[string]any{"version": "1.4.2"}},
		Reason: "release 1.4.2",
	}
}

package app

import (
	"context"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/services/api/internal/auth"
)

// VoteInput is a vote as the caller sent it.
type VoteInput struct {
	RequestID      string
	Decision       approval.VoteDecision
	Comment        string
	Voter          string // optional; only with the on_behalf role
	IdempotencyKey string // optional
}

// Vote approves or rejects. The voter is the command's actor: the caller,
// or the principal a gateway with the on_behalf role names.
func (a *App) Vote(ctx context.Context, caller auth.Principal, in VoteInput) (Result, error) {
	if err := a.ready(); err != nil {
		return Result{}, err
	}
	voter, err := actingFor(caller, in.Voter, "voter", "vote")
	if err != nil {
		return Result{}, err
	}
	if !ValidRequestID(in.RequestID) {
		return Result{}, notFound(in.RequestID)
	}
	c := a.command(caller, voter, in.RequestID, in.IdempotencyKey, approval.Vote{Decision: in.Decision, Comment: in.Comment})
	if err := a.preflight(c); err != nil {
		return Result{RequestID: in.RequestID}, err
	}
	return a.write(ctx, c, func(st approval.State) (bool, error) {
		known, refusal := outcomeOf(st, c.ID)
		if !known || refusal != nil {
			return known, refusal
		}
		// The decision, if this vote makes one, is written in the same
		// transaction as the vote; a poll may still split them. Wait for
		// it, so that the answer says whether the vote decided.
		return !decisive(st), nil
	})
}

// decisive reports whether a pending request's votes already reach the
// quorum or the reject threshold, so that its terminal event must follow.
func decisive(st approval.State) bool {
	if st.Status != approval.StatusPending {
		return false
	}
	approvals, rejections := st.Tally()
	return approvals >= st.Policy.MinApprovals || rejections >= max(st.Policy.RejectThreshold, 1)
}

package app

import (
	"context"
	"fmt"
	"slices"

	"github.com/assent-dev/assent/libs/command"

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
	if err := command.Preflight(c); err != nil {
		return Result{RequestID: in.RequestID}, err
	}
	decided := command.Decided(c.ID)
	return a.write(ctx, c, func(st approval.State) (bool, error) {
		if known, refusal := command.OutcomeOf(st, c.ID); known && refusal == nil && in.IdempotencyKey != "" {
			// The key's command was accepted: it recorded this voter's
			// vote, the only one it has (the actor is part of the id).
			// A refusal needs no check: it never depends on the decision
			// or the comment, so it is this body's answer too.
			if i := slices.IndexFunc(st.Votes, func(v approval.VoteView) bool { return v.Voter == voter }); i >= 0 &&
				(st.Votes[i].Decision != in.Decision || st.Votes[i].Comment != in.Comment) {
				return true, &KeyReusedError{Detail: fmt.Sprintf(
					"the Idempotency-Key was used for another vote of %s on %s (a decision or comment other than this one); use a new key for a new vote",
					voter, in.RequestID)}
			}
		}
		return decided(st)
	})
}

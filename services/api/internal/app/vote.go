package app

import (
	"context"

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
	return a.write(ctx, c, command.Decided(c.ID))
}

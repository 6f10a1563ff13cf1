package app

import (
	"context"

	"github.com/assent-dev/assent/libs/command"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/services/api/internal/auth"
)

// CancelInput is a cancel as the caller sent it.
type CancelInput struct {
	RequestID      string
	Reason         string
	IdempotencyKey string // optional
}

// Cancel withdraws a pending request. The decider allows it for the
// requester and for the admins of the policy file.
func (a *App) Cancel(ctx context.Context, caller auth.Principal, in CancelInput) (Result, error) {
	if err := a.ready(); err != nil {
		return Result{}, err
	}
	if !ValidRequestID(in.RequestID) {
		return Result{}, notFound(in.RequestID)
	}
	c := a.command(caller, caller.ID, in.RequestID, in.IdempotencyKey, approval.Cancel{Reason: in.Reason})
	if err := command.Preflight(c); err != nil {
		return Result{RequestID: in.RequestID}, err
	}
	return a.write(ctx, c, func(st approval.State) (bool, error) {
		return command.OutcomeOf(st, c.ID)
	})
}

package app

import (
	"context"
	"fmt"

	"github.com/assent-dev/assent/libs/codec"
	"github.com/assent-dev/assent/libs/command"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/wire"
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
		known, refusal := command.OutcomeOf(st, c.ID)
		if !known || refusal != nil || in.IdempotencyKey == "" {
			// A refusal never depends on the reason, so it is this body's
			// answer too.
			return known, refusal
		}
		reason, err := a.cancelReason(c.RequestID, c.ID)
		if err != nil {
			return true, err
		}
		if reason != in.Reason {
			return true, &KeyReusedError{Detail: fmt.Sprintf(
				"the Idempotency-Key was used for a cancel of %s with another reason; use a new key for a new cancel", in.RequestID)}
		}
		return true, nil
	})
}

// cancelReason returns the reason of the cancel that command id recorded:
// the state keeps who cancelled, not why, so it is read from the event.
func (a *App) cancelReason(rid, id string) (string, error) {
	h, err := a.cfg.Store.History(rid)
	if err != nil {
		return "", err
	}
	for _, s := range h {
		env, err := wire.Unmarshal(s.Value)
		if err != nil || env.CommandID != id || env.Type != approval.TypeRequestCancelled {
			continue
		}
		e, err := codec.DomainEvent(env)
		if err != nil {
			return "", fmt.Errorf("app: decode the cancel of %s: %w", rid, err)
		}
		if b, ok := e.Body.(approval.RequestCancelled); ok {
			return b.Reason, nil
		}
	}
	return "", fmt.Errorf("app: %s has no request.cancelled event of command %s", rid, id)
}

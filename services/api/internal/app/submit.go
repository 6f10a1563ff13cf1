package app

import (
	"context"

	"github.com/assent-dev/assent/libs/command"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/services/api/internal/auth"
)

// SubmitInput is a submit as the caller sent it.
type SubmitInput struct {
	RequestID      string // optional
	Action         approval.Action
	Reason         string
	Requester      string // optional; only with the on_behalf role
	TTL            approval.Duration
	IdempotencyKey string // optional
}

// Submit asks for approval. The result's state is the request, pending
// unless an identical earlier submit has been decided since.
func (a *App) Submit(ctx context.Context, caller auth.Principal, in SubmitInput) (Result, error) {
	if err := a.ready(); err != nil {
		return Result{}, err
	}
	requester, err := actingFor(caller, in.Requester, "requester", "submit")
	if err != nil {
		return Result{}, err
	}
	rid := in.RequestID
	switch {
	case rid != "":
		if !ValidRequestID(rid) {
			return Result{}, refuse(approval.ReasonInvalid,
				"request_id must be 1 to %d printable characters without spaces or slashes", approval.MaxIDLen)
		}
	case in.IdempotencyKey != "":
		rid = derivedRequestID(caller, in.IdempotencyKey)
	default:
		rid = wire.NewID(a.cfg.Now())
	}
	body := approval.Submit{Action: in.Action, Reason: in.Reason, TTL: in.TTL}
	if requester != caller.ID {
		body.Requester = requester
	}
	// Canonical details (sorted keys, no spaces): the event then carries
	// exactly what the content hash covers, whatever the client's layout.
	if details, err := approval.NormalizeDetails(body.Action.Details); err == nil {
		body.Action.Details = details
	}
	c := a.command(caller, caller.ID, rid, in.IdempotencyKey, body)
	if err := command.Preflight(c); err != nil {
		return Result{RequestID: rid}, err
	}
	// The decider hashes the submit with the requester filled in.
	full := body
	full.Requester = requester
	hash := approval.ContentHash(full)

	return a.write(ctx, c, func(st approval.State) (bool, error) {
		if known, refusal := command.OutcomeOf(st, c.ID); known {
			if refusal == nil && st.ContentHash != hash {
				// Only a reused Idempotency-Key can get here: the key's
				// command was a submit of other content.
				return true, refuse(approval.ReasonConflict,
					"the Idempotency-Key was used for a submit of request %s with different content", rid)
			}
			return true, refusal
		}
		// An identical submit, this one or an earlier one, opened it: a
		// resubmit adds no events, so the content hash is the outcome.
		return st.Status != approval.StatusNone && st.ContentHash == hash, nil
	})
}

package assent

import (
	"context"
	"encoding/json"
	"time"
)

// Decision is the outcome of an approval request.
//
// Only Approved == true means go ahead. Rejected, expired and cancelled
// requests come back with Approved == false and a nil error; refusals and
// failures come back as errors, also with Approved == false. Never treat an
// error, or a zero Decision, as permission.
type Decision struct {
	// Approved is true only when the request reached its quorum.
	Approved bool
	// Status is the request's terminal status; StatusPending when the
	// wait ended first (or failed while the request was pending); empty
	// when the submit was refused or failed before the request was seen.
	Status    Status
	RequestID string
	// DecidedBy is the approvers, the rejecters or the canceller; empty
	// for an expired request.
	DecidedBy []string
	// View is the request as last read; nil if it was never read.
	View *RequestView
}

// DecisionOf returns the decision that a view shows. Approved is set only
// for StatusApproved.
func DecisionOf(v *RequestView) Decision {
	return Decision{
		Approved:  v.Status == StatusApproved,
		Status:    v.Status,
		RequestID: v.ID,
		DecidedBy: v.DecidedBy,
		View:      v,
	}
}

// Polling of RequestApproval while a request cannot be seen yet, or when a
// server answers a long poll early.
const (
	pollMin = 100 * time.Millisecond
	pollMax = 2 * time.Second
)

// RequestApproval is the call a backend service makes before a sensitive
// action. It submits req, then long-polls the request (GET ?wait=, again
// and again, up to ctx's deadline) until it is no longer pending, and
// returns the decision.
//
//   - Approved: Decision.Approved is true and the error is nil. Go ahead.
//   - Rejected, expired or cancelled: Approved is false, Status says which,
//     and the error is nil. Do not go ahead.
//   - Refused (CodeNoPolicy, CodeInvalid, CodeForbidden, CodeConflict...):
//     the error is a *Problem; IsCode tells which. Do not go ahead.
//   - The submit's outcome is unknown (the client gave up after attempts
//     that may have taken effect): the error is an *OutcomeUnknownError.
//     Do not go ahead; call RequestApproval again with its RequestID and
//     IdempotencyKey in req, which name the same submit.
//   - ctx ended first: the error wraps ErrPending and ctx.Err(), and
//     Status is StatusPending. The request is still open and may yet be approved,
//     but the caller must not proceed on it; it can wait again with
//     GetWait on Decision.RequestID, or cancel it.
//
// Give ctx a deadline that matches how long a person may take to approve,
// which the policy's ttl also bounds. If req.RequestID is empty a UUIDv7
// is chosen; it is in Decision.RequestID whatever the outcome. Calling
// RequestApproval again with the same RequestID and content is safe: the
// submit is an idempotent resubmit, and the decision is the same.
func (c *Client) RequestApproval(ctx context.Context, req SubmitRequest) (Decision, error) {
	if req.RequestID == "" {
		req.RequestID = NewRequestID()
	}
	id := req.RequestID
	d := Decision{RequestID: id}
	view, err := c.Submit(ctx, req)
	if err != nil {
		if ctx.Err() != nil {
			d.Status = StatusPending
			return d, pendingError(id, err)
		}
		return d, err
	}
	commandID := view.CommandID // set if the submit's outcome was not seen (202)
	if view.Status != StatusAccepted {
		d.View, d.Status = view, view.Status
	}
	pause := pollMin
	for !view.Status.Terminal() {
		wait := pollWait(ctx)
		began := time.Now()
		next, err := c.GetWait(ctx, id, wait)
		switch {
		case ctx.Err() != nil:
			d.Status = StatusPending
			return d, pendingError(id, ctx.Err())
		case IsCode(err, CodeNotFound):
			// Not visible on this replica yet, or, after a 202, refused:
			// a refused submit leaves only its command.rejected event.
			if commandID != "" {
				if p := c.refusalOf(ctx, id, commandID); p != nil {
					return d, p
				}
			}
		case err != nil:
			return d, err
		default:
			view, d.View = next, next
			d.Status = next.Status
			if next.Status.Terminal() || time.Since(began) >= wait/2 {
				pause = pollMin
				continue
			}
			// The server answered a pending request early; do not spin.
		}
		if err := sleep(ctx, pause); err != nil {
			d.Status = StatusPending
			return d, pendingError(id, err)
		}
		pause = min(2*pause, pollMax)
	}
	return DecisionOf(view), nil
}

// pollWait is the wait of the next long poll: as long as the API allows,
// but ending a little before ctx's deadline, so that the answer arrives
// before the context gives up on it.
func pollWait(ctx context.Context) time.Duration {
	dl, ok := ctx.Deadline()
	if !ok {
		return MaxWait
	}
	left := time.Until(dl)
	return min(MaxWait, left-min(time.Second, left/10))
}

// refusalOf looks in a request's history for the command.rejected of
// commandID and returns its Problem, or nil if there is none (yet).
func (c *Client) refusalOf(ctx context.Context, id, commandID string) *Problem {
	events, err := c.Events(ctx, id)
	if err != nil {
		return nil
	}
	for _, e := range events {
		if e.Event.Type != EventCommandRejected {
			continue
		}
		var r struct {
			CommandID string `json:"command_id"`
			Code      Code   `json:"code"`
			Detail    string `json:"detail"`
		}
		if json.Unmarshal(e.Event.Data, &r) == nil && r.CommandID == commandID {
			return NewRefusal(r.Code, r.Detail)
		}
	}
	return nil
}

package app

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/command"
	"github.com/assent-dev/assent/libs/projection/requests"
	"github.com/assent-dev/assent/libs/tracing"
)

// MaxWait bounds a long poll.
const MaxWait = 60 * time.Second

// MaxListLimit bounds a list page.
const MaxListLimit = 200

func notFound(rid string) *approval.Refusal {
	return refuse(approval.ReasonNotFound, "request %s does not exist", rid)
}

// Get returns a request. With a positive wait it long-polls: it returns as
// soon as the request is no longer pending, or when the wait (at most
// MaxWait) runs out. A request that does not exist yet is waited for too,
// since its submit may be on its way through another replica.
func (a *App) Get(ctx context.Context, rid string, wait time.Duration) (approval.State, error) {
	if err := a.ready(); err != nil {
		return approval.State{}, err
	}
	if !ValidRequestID(rid) {
		return approval.State{}, notFound(rid)
	}
	wait = min(wait, MaxWait)
	var deadline <-chan time.Time
	if wait > 0 {
		timer := time.NewTimer(wait)
		defer timer.Stop()
		deadline = timer.C
	} else {
		closed := make(chan time.Time)
		close(closed)
		deadline = closed
	}
	st, timedOut, _, err := command.Await(ctx, projectionView{a.cfg.Projection, a.cfg.Store}, rid, deadline, a.cfg.Done, func(st approval.State) (bool, error) {
		return st.Status.Terminal(), nil
	})
	if err != nil {
		return st, err
	}
	if wait > 0 && !timedOut {
		trace.SpanFromContext(ctx).AddEvent(tracing.EventWake)
	}
	if st.Status == approval.StatusNone {
		return st, notFound(rid)
	}
	return st, nil
}

// ListInput selects requests; see requests.Filter.
type ListInput = requests.Filter

// ErrBadCursor is returned by List for a cursor it did not issue for the
// same filter.
var ErrBadCursor = requests.ErrBadCursor

// List returns one page of requests, newest first.
func (a *App) List(_ context.Context, f ListInput) (requests.Page, error) {
	if err := a.ready(); err != nil {
		return requests.Page{}, err
	}
	if f.Limit > MaxListLimit {
		return requests.Page{}, refuse(approval.ReasonInvalid, "limit is at most %d", MaxListLimit)
	}
	page, err := a.cfg.Store.List(f)
	if errors.Is(err, requests.ErrBadCursor) {
		return page, ErrBadCursor
	}
	return page, err
}

// History returns a request's events as stored, in sequence order.
func (a *App) History(_ context.Context, rid string) ([]requests.Stored, error) {
	if err := a.ready(); err != nil {
		return nil, err
	}
	if !ValidRequestID(rid) {
		return nil, notFound(rid)
	}
	h, err := a.cfg.Store.History(rid)
	if err != nil {
		return nil, err
	}
	if len(h) == 0 {
		return nil, notFound(rid)
	}
	return h, nil
}

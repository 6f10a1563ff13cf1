package command

import (
	"context"
	"time"

	"github.com/assent-dev/assent/libs/approval"
)

// View is a projection of the requests that a writer waits on.
type View interface {
	Get(rid string) (approval.State, bool, error)
	// Watch returns a channel closed after the next batch that applies an
	// event about subject; stop releases it.
	Watch(subject string) (woken <-chan struct{}, stop func())
}

// Settled inspects a request's state and says whether the outcome being
// waited for is known, and if so whether it was refused.
type Settled func(st approval.State) (done bool, refusal error)

// Await reads the request from v until done says so, or the wait ends:
// deadline fires, ctx ends or stop is closed (shutdown), in which case it
// reports timedOut with the state it has. The watch is registered before
// each read, so a batch applied between the read and the wait still wakes
// it.
func Await(ctx context.Context, v View, rid string, deadline <-chan time.Time, stop <-chan struct{}, done Settled) (st approval.State, timedOut bool, refusal, err error) {
	for {
		woken, release := v.Watch(rid)
		st, _, err = v.Get(rid)
		if err != nil {
			release()
			return st, false, nil, err
		}
		if ok, refusal := done(st); ok {
			release()
			return st, false, refusal, nil
		}
		select {
		case <-woken:
			release()
			continue
		case <-deadline:
		case <-ctx.Done():
		case <-stop:
		}
		release()
		return st, true, nil, nil
	}
}

// OutcomeOf reports the recorded outcome of command id in st, if any: a
// refusal as a *approval.Refusal.
func OutcomeOf(st approval.State, id string) (known bool, refusal error) {
	o, ok := st.Outcomes[id]
	if !ok {
		return false, nil
	}
	if r := o.Refusal(); r != nil {
		return true, r
	}
	return true, nil
}

// Outcome is the Settled of a command whose outcome is all that matters.
func Outcome(id string) Settled {
	return func(st approval.State) (bool, error) { return OutcomeOf(st, id) }
}

// Decided is the Settled of a vote: its outcome, and if it was accepted,
// also the decision it makes, which the decider writes in the same
// transaction as the vote but a poll may still split from it.
func Decided(id string) Settled {
	return func(st approval.State) (bool, error) {
		known, refusal := OutcomeOf(st, id)
		if !known || refusal != nil {
			return known, refusal
		}
		return !Decisive(st), nil
	}
}

// Decisive reports whether a pending request's votes already reach the
// quorum or the reject threshold, so that its terminal event must follow.
func Decisive(st approval.State) bool {
	if st.Status != approval.StatusPending {
		return false
	}
	approvals, rejections := st.Tally()
	return approvals >= st.Policy.MinApprovals || rejections >= max(st.Policy.RejectThreshold, 1)
}

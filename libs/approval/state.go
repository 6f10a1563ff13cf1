package approval

import (
	"maps"
	"slices"
	"time"
)

// MaxRefusedOutcomes is how many refusals a request's state remembers by
// command id: the latest ones. Every refusal is still an event in the
// log (the audit trail); the state forgets the oldest refusal's command
// id when a newer one would make it hold more, so that a client sending
// refused command after refused command cannot make the state, and the
// cost of applying each event, grow without bound. See "Refusals kept per
// request" in docs/architecture.md for what a retry of a forgotten
// command gets.
const MaxRefusedOutcomes = 256

// Status is where a request is in its lifecycle:
// pending → approved | rejected | expired | cancelled.
type Status string

// The statuses. StatusNone is a request that was never submitted (its id
// may still have refused commands recorded against it).
const (
	StatusNone      Status = ""
	StatusPending   Status = "pending"
	StatusApproved  Status = "approved"
	StatusRejected  Status = "rejected"
	StatusExpired   Status = "expired"
	StatusCancelled Status = "cancelled"
)

// Terminal reports whether the status is final.
func (s Status) Terminal() bool {
	switch s {
	case StatusApproved, StatusRejected, StatusExpired, StatusCancelled:
		return true
	case StatusNone, StatusPending:
		return false
	default:
		return false
	}
}

// State is everything the domain knows about one request: the fold of its
// events. The zero State is a request nobody has submitted.
type State struct {
	RequestID   string
	Status      Status
	Action      Action
	Reason      string
	Requester   string
	ContentHash string
	Policy      PolicySnapshot
	CreatedAt   time.Time
	DecidedAt   time.Time
	DecidedBy   []string // approvers, rejecters, or the canceller
	Votes       []VoteView
	Notes       []NotificationRecorded
	Sequence    int // of the last event applied
	// Outcomes remembers the command ids that produced events, with the
	// refusal of those that were refused, so a retried command adds
	// nothing (I2): every accepted command, and the latest
	// MaxRefusedOutcomes refused ones (see Recall for the others).
	Outcomes map[string]Outcome
	// Refused lists the refused command ids Outcomes holds, oldest first:
	// the next to forget when a new refusal comes.
	Refused []string
	// Refusals counts the refusals recorded for the request, forgotten
	// ones included (a refusal of a command id Outcomes still holds as
	// refused replaces it and is not counted again).
	Refusals int
}

// VoteView is a vote as the request view shows it.
type VoteView struct {
	Voter    string       `json:"voter"`
	Decision VoteDecision `json:"decision"`
	Comment  string       `json:"comment,omitempty"`
	At       time.Time    `json:"at"`
}

// Outcome is how a command ended. A zero Code means it was accepted.
type Outcome struct {
	Code   ReasonCode `json:"code,omitempty"`
	Detail string     `json:"detail,omitempty"`
}

// Refusal returns the outcome as a refusal, or nil if it was accepted.
func (o Outcome) Refusal() *Refusal {
	if o.Code == "" {
		return nil
	}
	return &Refusal{Code: o.Code, Detail: o.Detail}
}

// Tally counts the approvals and rejections recorded so far.
func (s State) Tally() (approvals, rejections int) {
	for _, v := range s.Votes {
		switch v.Decision {
		case Approve:
			approvals++
		case Reject:
			rejections++
		}
	}
	return approvals, rejections
}

// HasVoted reports whether the principal has voted.
func (s State) HasVoted(principal string) bool {
	return slices.ContainsFunc(s.Votes, func(v VoteView) bool { return v.Voter == principal })
}

// DeadLetters returns the deliveries (webhook and email notes) whose latest
// outcome is a dead letter, in the order they were given up: a replayed
// or later delivered one is no longer dead.
func (s State) DeadLetters() []NotificationRecorded {
	type key struct {
		kind        NotificationKind
		channel, ts string
	}
	latest := map[key]int{}
	for i, n := range s.Notes {
		if n.Kind.Delivery() {
			latest[key{n.Kind, n.Channel, n.TS}] = i
		}
	}
	var out []NotificationRecorded
	for i, n := range s.Notes {
		if n.Kind.Delivery() && n.Outcome == DeadLetter && latest[key{n.Kind, n.Channel, n.TS}] == i {
			out = append(out, n)
		}
	}
	return out
}

// Replays counts the replays asked for one delivery (of the event ts to
// the target channel): the generation its next outcome belongs to.
func (s State) Replays(kind NotificationKind, channel, ts string) int {
	n := 0
	for _, note := range s.Notes {
		if note.Kind == kind && note.Channel == channel && note.TS == ts && note.Outcome == ReplayAsked {
			n++
		}
	}
	return n
}

// Evolve applies one event and returns the next state. It never mutates s:
// slices and maps are copied before they change, so earlier states stay
// valid (the decider keeps them to roll back an aborted transaction:
// services/decider's overlay holds the state a committed transaction left,
// and the next transaction evolves that same value). What it copies is
// bounded whatever the request's history: Outcomes holds at most
// MaxRefusedOutcomes refusals beside the accepted commands, so one event
// costs the same after 1,000 refusals as after 100,000.
//
// Evolve trusts the log. If the log holds a second terminal event, which
// Decide never produces, the first one stands: a status never flips. The
// auditor, not the fold, reports such an anomaly.
func Evolve(s State, e Event) State { return evolve(s, e, false) }

// EvolveOwned is Evolve for a caller that keeps no other copy of s, nor of
// any state s was evolved from: it may change s's map and slices in place
// where Evolve copies them, and returns a state equal to Evolve's. The
// auditor's domain replay, which keeps one state per request, uses it;
// the decider, which keeps earlier states to roll back to, must not.
func EvolveOwned(s State, e Event) State { return evolve(s, e, true) }

// evolve is Evolve; owned says s's map and slices may change in place.
func evolve(s State, e Event, owned bool) State {
	s.RequestID = e.RequestID
	s.Sequence = e.Sequence
	r, refusal := e.Body.(CommandRejected)
	if _, seen := s.Outcomes[e.CommandID]; (e.CommandID != "" && !seen) || refusal {
		if !owned {
			s.Outcomes = maps.Clone(s.Outcomes) // the one copy this event makes
		}
		if s.Outcomes == nil {
			s.Outcomes = make(map[string]Outcome)
		}
		if e.CommandID != "" && !seen {
			s.Outcomes[e.CommandID] = Outcome{}
		}
	}
	switch b := e.Body.(type) {
	case RequestSubmitted:
		if s.Status == StatusNone {
			s.Status = StatusPending
			s.Action = b.Action
			s.Reason = b.Reason
			s.Requester = b.Requester
			s.ContentHash = b.ContentHash
			s.Policy = b.Policy
			s.CreatedAt = e.Time
		}
	case VoteRecorded:
		s.Votes = add(s.Votes, owned, VoteView{Voter: b.Voter, Decision: b.Decision, Comment: b.Comment, At: e.Time})
	case RequestApproved:
		s = decided(s, StatusApproved, e.Time, b.Approvers)
	case RequestRejected:
		s = decided(s, StatusRejected, e.Time, b.Rejecters)
	case RequestExpired:
		s = decided(s, StatusExpired, e.Time, nil)
	case RequestCancelled:
		s = decided(s, StatusCancelled, e.Time, []string{b.By})
	case CommandRejected:
		s = refused(s, r.CommandID, Outcome{Code: r.Code, Detail: r.Detail}, owned)
	case NotificationRecorded:
		s.Notes = add(s.Notes, owned, b)
	default:
		// An unknown body cannot be decoded into an Event; nothing to apply.
	}
	return s
}

// add appends v to list: in place when the caller owns list, else to a
// copy, so that a state evolved from never changes.
func add[T any](list []T, owned bool, v T) []T {
	if !owned {
		list = slices.Clip(list)
	}
	return append(list, v)
}

// refused records the refusal of command id in s.Outcomes, which Evolve
// has just copied, forgetting the oldest refusal beyond
// MaxRefusedOutcomes. A refusal of an id still held as refused replaces it
// where it stands; one of an id held as accepted (the expiry that time
// alone caused, written under the refused command's id just before its
// refusal) or forgotten is a new refusal.
func refused(s State, id string, o Outcome, owned bool) State {
	if held, ok := s.Outcomes[id]; ok && held.Code != "" {
		s.Outcomes[id] = o
		return s
	}
	s.Outcomes[id] = o
	s.Refused = add(s.Refused, owned, id)
	s.Refusals++
	if len(s.Refused) > MaxRefusedOutcomes {
		delete(s.Outcomes, s.Refused[0])
		s.Refused = s.Refused[1:]
	}
	return s
}

// Forgot reports whether the state has forgotten refusals: a command id
// that Outcomes does not hold may then still have been decided, and only
// the log (a projection's record of every refusal) can tell. See Recall.
func (s State) Forgot() bool { return s.Refusals > len(s.Refused) }

func decided(s State, status Status, at time.Time, by []string) State {
	if s.Status.Terminal() {
		return s
	}
	s.Status = status
	s.DecidedAt = at
	s.DecidedBy = slices.Clone(by)
	return s
}

// Fold replays events from the empty state.
func Fold(events []Event) State {
	var s State
	for _, e := range events {
		s = Evolve(s, e)
	}
	return s
}

package approval

import (
	"maps"
	"slices"
	"time"
)

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
	// Outcomes remembers every command id that produced events, with its
	// refusal if it was refused, so a retried command adds nothing (I2).
	Outcomes map[string]Outcome
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
// valid (the decider keeps them to roll back an aborted transaction).
//
// Evolve trusts the log. If the log holds a second terminal event, which
// Decide never produces, the first one stands: a status never flips. The
// auditor, not the fold, reports such an anomaly.
func Evolve(s State, e Event) State {
	s.RequestID = e.RequestID
	s.Sequence = e.Sequence
	if e.CommandID != "" {
		if _, seen := s.Outcomes[e.CommandID]; !seen {
			s.Outcomes = maps.Clone(s.Outcomes)
			if s.Outcomes == nil {
				s.Outcomes = make(map[string]Outcome)
			}
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
		s.Votes = append(slices.Clip(s.Votes), VoteView{Voter: b.Voter, Decision: b.Decision, Comment: b.Comment, At: e.Time})
	case RequestApproved:
		s = decided(s, StatusApproved, e.Time, b.Approvers)
	case RequestRejected:
		s = decided(s, StatusRejected, e.Time, b.Rejecters)
	case RequestExpired:
		s = decided(s, StatusExpired, e.Time, nil)
	case RequestCancelled:
		s = decided(s, StatusCancelled, e.Time, []string{b.By})
	case CommandRejected:
		s.Outcomes = maps.Clone(s.Outcomes)
		if s.Outcomes == nil {
			s.Outcomes = make(map[string]Outcome)
		}
		s.Outcomes[b.CommandID] = Outcome{Code: b.Code, Detail: b.Detail}
	case NotificationRecorded:
		s.Notes = append(slices.Clip(s.Notes), b)
	default:
		// An unknown body cannot be decoded into an Event; nothing to apply.
	}
	return s
}

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

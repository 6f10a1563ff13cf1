package assent

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// Status is where a request is in its lifecycle: pending, then approved,
// rejected, expired or cancelled. StatusAccepted is not a lifecycle status:
// only a 202 response carries it, and it means "durable, outcome not known
// yet".
type Status string

// The statuses of HTTP API v1.
const (
	StatusPending   Status = "pending"
	StatusApproved  Status = "approved"
	StatusRejected  Status = "rejected"
	StatusExpired   Status = "expired"
	StatusCancelled Status = "cancelled"
	// StatusAccepted is the status of a view built from a 202 response:
	// the command is in Kafka and will be decided, but its outcome did not
	// appear within the server's write wait.
	StatusAccepted Status = "accepted"
)

// Terminal reports whether the status is final: approved, rejected,
// expired or cancelled. A terminal status never changes (invariant I3).
func (s Status) Terminal() bool {
	switch s {
	case StatusApproved, StatusRejected, StatusExpired, StatusCancelled:
		return true
	case StatusPending, StatusAccepted:
		return false
	default:
		return false
	}
}

// VoteDecision is approve or reject.
type VoteDecision string

// The two votes.
const (
	Approve VoteDecision = "approve"
	Reject  VoteDecision = "reject"
)

// Action is what the requester wants to do. The policy that matches Type,
// Environment and Resource (a glob in the policy) decides who may approve.
type Action struct {
	Type        string `json:"type"`        // "deploy", "sql_write", "config_change", ...
	Resource    string `json:"resource"`    // "services/billing/api", "databases/prod/users"
	Environment string `json:"environment"` // "production"
	// Details are free-form, shown to the approvers; at most 16 KiB as
	// JSON. Numbers read back from a view are float64.
	Details map[string]any `json:"details,omitempty"`
	// Digest identifies the exact artefact, if there is one, so that what
	// was approved is what runs.
	Digest string `json:"digest,omitempty"`
}

// SubmitRequest asks for approval of an action.
type SubmitRequest struct {
	// RequestID is the idempotency key of the submit: resubmitting the
	// same id with the same content returns the request as it stands;
	// with other content it is refused with CodeConflict. Leave it empty
	// and the client generates a UUIDv7, which it reuses for its own
	// retries. Set it yourself (NewRequestID) when a retry may come from
	// another call or another process, such as a restarted pipeline step.
	RequestID string
	Action    Action
	// Reason is why; shown to the approvers. Required, at most 2000 bytes.
	Reason string
	// Requester names who asks, if not the caller. Only a caller with the
	// on_behalf role may set it.
	Requester string
	// TTL is how long the request may stay pending; the policy caps it.
	// Zero means the policy's.
	TTL time.Duration
	// IdempotencyKey names this submit's command across retries (the HTTP
	// client's Idempotency-Key). Empty means a key generated for this
	// call, which its own retries reuse; set it, with RequestID, to repeat
	// a submit whose outcome was unknown (see OutcomeUnknownError). The
	// Kafka transport derives its command ids itself and ignores it.
	IdempotencyKey string
}

type wireSubmit struct {
	RequestID string `json:"request_id,omitempty"`
	Action    Action `json:"action"`
	Reason    string `json:"reason"`
	Requester string `json:"requester,omitempty"`
	TTL       string `json:"ttl,omitempty"`
}

// MarshalJSON writes the SubmitRequest body of openapi.yaml.
func (r SubmitRequest) MarshalJSON() ([]byte, error) {
	w := wireSubmit{RequestID: r.RequestID, Action: r.Action, Reason: r.Reason, Requester: r.Requester}
	if r.TTL > 0 {
		w.TTL = r.TTL.String()
	}
	return json.Marshal(w)
}

// VoteRequest approves or rejects a request.
type VoteRequest struct {
	Decision VoteDecision `json:"decision"`
	Comment  string       `json:"comment,omitempty"`
	// Voter names the voter, if not the caller. Only a caller with the
	// on_behalf role (a gateway) may set it.
	Voter string `json:"voter,omitempty"`
	// IdempotencyKey identifies this vote across retries. Empty means a
	// key generated for this call, which its own retries reuse; set it to
	// make retries from other calls or processes idempotent too.
	IdempotencyKey string `json:"-"`
}

// CancelRequest withdraws a pending request. Only its requester or an
// admin of the policy file may.
type CancelRequest struct {
	Reason string `json:"reason,omitempty"`
	// IdempotencyKey is as in VoteRequest.
	IdempotencyKey string `json:"-"`
}

// RequestView is a request as the API's projection of the event log shows
// it.
type RequestView struct {
	ID        string    `json:"id"`
	Status    Status    `json:"status"`
	Action    Action    `json:"action"`
	Requester string    `json:"requester"`
	Reason    string    `json:"reason"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	// DecidedAt is when the request left pending; zero while pending.
	DecidedAt time.Time `json:"decided_at"`
	// DecidedBy is the approvers, the rejecters or the canceller; empty
	// while pending and for an expired request.
	DecidedBy []string       `json:"decided_by,omitempty"`
	Policy    PolicySnapshot `json:"policy"`
	Votes     []Vote         `json:"votes"`
	Approvals int            `json:"approvals"`
	// Rejections counts the reject votes.
	Rejections int `json:"rejections"`
	// Sequence is that of the last event applied to this view; a client
	// that saw a higher one knows this view is behind.
	Sequence int64 `json:"sequence"`
	// DeadLetters are the notifier's deliveries (webhooks, emails) for
	// this request that were given up and not replayed since.
	DeadLetters []DeadLetter `json:"dead_letters,omitempty"`

	// CommandID is set only on a view built from a 202 response (Status
	// StatusAccepted): the id of the command whose outcome is pending. A
	// 202 view has no other field but ID.
	CommandID string `json:"-"`
}

// DeadLetter is a notification the notifier gave up on: a permanent
// refusal, or its retry horizon passed.
type DeadLetter struct {
	Kind      string    `json:"kind"`   // "webhook" or "email"
	Target    string    `json:"target"` // the webhook URL or the email address
	Recipient string    `json:"recipient,omitempty"`
	EventID   string    `json:"event_id"` // the event that was not delivered
	Reason    string    `json:"reason"`
	Attempts  int       `json:"attempts"`
	At        time.Time `json:"at"`
}

// HasVote reports whether voter has a recorded vote with the decision.
func (v *RequestView) HasVote(voter string, decision VoteDecision) bool {
	for _, x := range v.Votes {
		if x.Voter == voter && x.Decision == decision {
			return true
		}
	}
	return false
}

// PolicySnapshot is the policy as it stood at submission; later policy
// edits never change a request in flight.
type PolicySnapshot struct {
	Name            string        `json:"name"`
	Hash            string        `json:"hash"` // "sha256:..." of the policy's canonical JSON
	Approvers       []string      `json:"approvers"`
	MinApprovals    int           `json:"min_approvals"`
	RejectThreshold int           `json:"reject_threshold"`
	TTL             time.Duration `json:"-"`
	ExpiresAt       time.Time     `json:"expires_at"`
}

// UnmarshalJSON reads the ttl as a Go duration string.
func (p *PolicySnapshot) UnmarshalJSON(b []byte) error {
	type plain PolicySnapshot
	var w struct {
		plain
		TTL string `json:"ttl"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*p = PolicySnapshot(w.plain)
	if w.TTL != "" {
		d, err := time.ParseDuration(w.TTL)
		if err != nil {
			return fmt.Errorf("assent: policy ttl %q: %w", w.TTL, err)
		}
		p.TTL = d
	}
	return nil
}

// MarshalJSON writes the ttl as a Go duration string.
func (p PolicySnapshot) MarshalJSON() ([]byte, error) {
	type plain PolicySnapshot
	return json.Marshal(struct {
		plain
		TTL string `json:"ttl"`
	}{plain(p), p.TTL.String()})
}

// Vote is one recorded vote.
type Vote struct {
	Voter    string       `json:"voter"`
	Decision VoteDecision `json:"decision"`
	Comment  string       `json:"comment,omitempty"`
	At       time.Time    `json:"at"`
}

// ListOptions filters List. The zero value lists every request, newest
// first, in pages of the server's default size (50).
type ListOptions struct {
	Status    Status // only requests in this status
	Requester string // only requests by this principal
	// Approver lists the pending requests this principal may still vote
	// on: eligible under the snapshot, not the requester, not yet voted.
	Approver string
	Limit    int    // page size, 1 to 200; 0 means the server's default
	Cursor   string // the NextCursor of the previous page
}

// RequestList is one page of requests.
type RequestList struct {
	Items []RequestView `json:"items"`
	// NextCursor is passed as ListOptions.Cursor for the next page; empty
	// on the last page.
	NextCursor string `json:"next_cursor,omitempty"`
}

// StoredEvent is one event of a request's history with where it is stored.
type StoredEvent struct {
	Partition int32
	Offset    int64
	// Raw is the record value exactly as stored: the bytes the hash chain
	// covers. Hash returns their chain hash.
	Raw json.RawMessage
	// Event is Raw decoded.
	Event CloudEvent
}

// UnmarshalJSON keeps the event's bytes verbatim in Raw.
func (e *StoredEvent) UnmarshalJSON(b []byte) error {
	var w struct {
		Partition int32           `json:"partition"`
		Offset    int64           `json:"offset"`
		Event     json.RawMessage `json:"event"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*e = StoredEvent{Partition: w.Partition, Offset: w.Offset, Raw: w.Event}
	if len(w.Event) > 0 {
		if err := json.Unmarshal(w.Event, &e.Event); err != nil {
			return fmt.Errorf("assent: event at %d@%d: %w", w.Partition, w.Offset, err)
		}
	}
	return nil
}

// Hash returns the chain hash of the stored record value, "sha256:" and
// hex: the next event of the same partition carries it as its PrevHash.
// It is only meaningful if the server embedded the value verbatim, as
// openapi.yaml promises.
func (e StoredEvent) Hash() string {
	sum := sha256.Sum256(e.Raw)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// CloudEvent is a CloudEvents 1.0 event as Assent stores it. Data depends
// on Type; see schemas/events/.
type CloudEvent struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject,omitempty"`
	Time            time.Time       `json:"time"`
	DataContentType string          `json:"datacontenttype,omitempty"`
	Actor           string          `json:"actor,omitempty"`
	CommandID       string          `json:"commandid,omitempty"`
	Sequence        string          `json:"sequence,omitempty"`
	PrevHash        string          `json:"prevhash,omitempty"`
	Data            json.RawMessage `json:"data,omitempty"`
}

// The event types of a request's history.
const (
	EventRequestSubmitted     = "dev.assent.request.submitted"
	EventVoteRecorded         = "dev.assent.vote.recorded"
	EventRequestApproved      = "dev.assent.request.approved"
	EventRequestRejected      = "dev.assent.request.rejected"
	EventRequestExpired       = "dev.assent.request.expired"
	EventRequestCancelled     = "dev.assent.request.cancelled"
	EventCommandRejected      = "dev.assent.command.rejected"
	EventNotificationRecorded = "dev.assent.notification.recorded"
)

// accepted is the body of a 202 response.
type accepted struct {
	Status    Status `json:"status"`
	RequestID string `json:"request_id"`
	CommandID string `json:"command_id"`
}

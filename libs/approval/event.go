package approval

import "time"

// Event is a fact about one request. Events never change: the events topic
// is the only source of truth and the audit trail.
type Event struct {
	RequestID string
	CommandID string    // the command that caused it
	Actor     string    // who caused it; SystemDecider for expiry
	Time      time.Time // when it was decided
	Sequence  int       // per request, from 1, without gaps
	Body      EventBody
}

// EventBody is the closed set of event payloads.
type EventBody interface {
	// EventType is the CloudEvents type on the events topic.
	EventType() string
	isEventBody()
}

// Event types on the wire.
const (
	TypeRequestSubmitted     = "dev.assent.request.submitted"
	TypeVoteRecorded         = "dev.assent.vote.recorded"
	TypeRequestApproved      = "dev.assent.request.approved"
	TypeRequestRejected      = "dev.assent.request.rejected"
	TypeRequestExpired       = "dev.assent.request.expired"
	TypeRequestCancelled     = "dev.assent.request.cancelled"
	TypeCommandRejected      = "dev.assent.command.rejected"
	TypeNotificationRecorded = "dev.assent.notification.recorded"
)

// RequestSubmitted opens a request. It carries the policy snapshot, so that
// later policy edits never change a request in flight.
type RequestSubmitted struct {
	Action      Action         `json:"action"`
	Reason      string         `json:"reason"`
	Requester   string         `json:"requester"`
	ContentHash string         `json:"content_hash"` // of the submit, for idempotent resubmits
	Policy      PolicySnapshot `json:"policy"`
}

// VoteRecorded is one eligible approver's vote.
type VoteRecorded struct {
	Voter    string       `json:"voter"`
	Decision VoteDecision `json:"decision"`
	Comment  string       `json:"comment,omitempty"`
}

// RequestApproved is terminal: the quorum was reached.
type RequestApproved struct {
	Approvers []string `json:"approvers"`
}

// RequestRejected is terminal: the reject threshold was reached.
type RequestRejected struct {
	Rejecters []string `json:"rejecters"`
	Comment   string   `json:"comment,omitempty"` // of the deciding vote
}

// RequestExpired is terminal: the request was still pending at expires_at.
type RequestExpired struct {
	ExpiresAt time.Time `json:"expires_at"`
}

// RequestCancelled is terminal: the requester or an admin withdrew it.
type RequestCancelled struct {
	By     string `json:"by"`
	Reason string `json:"reason,omitempty"`
}

// CommandRejected records a refusal, so that a retried command reports the
// same outcome and auditors see what was attempted.
type CommandRejected struct {
	CommandID   string     `json:"command_id"`
	CommandType string     `json:"command_type"`
	Code        ReasonCode `json:"code"`
	Detail      string     `json:"detail"`
}

// NotificationRecorded says where a notification was posted, or, for the
// kinds webhook and email, what became of a delivery (see
// RecordNotification).
type NotificationRecorded struct {
	Kind       NotificationKind `json:"kind"`
	Channel    string           `json:"channel"`
	TS         string           `json:"ts"`
	Recipient  string           `json:"recipient,omitempty"`
	Outcome    DeliveryOutcome  `json:"outcome,omitempty"`
	Reason     string           `json:"reason,omitempty"`
	Attempts   int              `json:"attempts,omitempty"`
	At         time.Time        `json:"at,omitzero"`
	Generation int              `json:"generation,omitempty"`
}

func (RequestSubmitted) EventType() string     { return TypeRequestSubmitted }
func (VoteRecorded) EventType() string         { return TypeVoteRecorded }
func (RequestApproved) EventType() string      { return TypeRequestApproved }
func (RequestRejected) EventType() string      { return TypeRequestRejected }
func (RequestExpired) EventType() string       { return TypeRequestExpired }
func (RequestCancelled) EventType() string     { return TypeRequestCancelled }
func (CommandRejected) EventType() string      { return TypeCommandRejected }
func (NotificationRecorded) EventType() string { return TypeNotificationRecorded }

func (RequestSubmitted) isEventBody()     {}
func (VoteRecorded) isEventBody()         {}
func (RequestApproved) isEventBody()      {}
func (RequestRejected) isEventBody()      {}
func (RequestExpired) isEventBody()       {}
func (RequestCancelled) isEventBody()     {}
func (CommandRejected) isEventBody()      {}
func (NotificationRecorded) isEventBody() {}

// EventTypes lists the request event types (the log also carries
// dev.assent.log.checkpoint, which belongs to a partition, not a request).
func EventTypes() []string {
	return []string{
		TypeRequestSubmitted, TypeVoteRecorded, TypeRequestApproved,
		TypeRequestRejected, TypeRequestExpired, TypeRequestCancelled,
		TypeCommandRejected, TypeNotificationRecorded,
	}
}

// Terminal reports whether an event body ends a request.
func Terminal(b EventBody) bool {
	switch b.(type) {
	case RequestApproved, RequestRejected, RequestExpired, RequestCancelled:
		return true
	default:
		return false
	}
}

// DecodeEventBody decodes the data of an event of the given wire type.
func DecodeEventBody(typ string, data []byte) (EventBody, error) {
	switch typ {
	case TypeRequestSubmitted:
		return decodeBody[RequestSubmitted](typ, data)
	case TypeVoteRecorded:
		return decodeBody[VoteRecorded](typ, data)
	case TypeRequestApproved:
		return decodeBody[RequestApproved](typ, data)
	case TypeRequestRejected:
		return decodeBody[RequestRejected](typ, data)
	case TypeRequestExpired:
		return decodeBody[RequestExpired](typ, data)
	case TypeRequestCancelled:
		return decodeBody[RequestCancelled](typ, data)
	case TypeCommandRejected:
		return decodeBody[CommandRejected](typ, data)
	case TypeNotificationRecorded:
		return decodeBody[NotificationRecorded](typ, data)
	default:
		return nil, refuse(ReasonInvalid, "unknown event type %q", typ)
	}
}

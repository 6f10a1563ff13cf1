package approval

import (
	"bytes"
	"encoding/json"
	"time"
)

// Command is an intention: somebody asks for something to happen. It may be
// refused. ID is the command id, the key for exactly-once processing: the
// same intention sent twice carries the same ID.
type Command struct {
	ID        string
	RequestID string
	Actor     string    // the principal asking, "kind:id"
	Time      time.Time // when it was issued; Decide uses its own now
	Body      CommandBody
}

// CommandBody is the closed set of command payloads.
type CommandBody interface {
	// CommandType is the CloudEvents type on the commands topic.
	CommandType() string
	isCommandBody()
}

// Command types on the wire.
const (
	TypeSubmit             = "dev.assent.command.submit"
	TypeVote               = "dev.assent.command.vote"
	TypeCancel             = "dev.assent.command.cancel"
	TypeRecordNotification = "dev.assent.command.record-notification"
	// TypeExpire is the decider's timer asking for an expiry: only
	// system:decider may send it (Decide refuses anyone else), and it
	// changes nothing unless the request is pending and due.
	TypeExpire = "dev.assent.command.expire"
)

// Action is what the requester wants to do.
type Action struct {
	Type        string          `json:"type"`        // "deploy", "sql", "config", "access"
	Resource    string          `json:"resource"`    // "payments/api", "db/prod/users"
	Environment string          `json:"environment"` // "production"
	Details     json.RawMessage `json:"details,omitempty"`
	Digest      string          `json:"digest,omitempty"` // of the exact artefact, if any
}

// Submit asks for approval of an action.
type Submit struct {
	Action    Action   `json:"action"`
	Reason    string   `json:"reason"`
	Requester string   `json:"requester,omitempty"` // the actor unless set on behalf
	TTL       Duration `json:"ttl,omitempty"`       // capped by the policy
}

// Vote approves or rejects. The voter is the command's actor.
type Vote struct {
	Decision VoteDecision `json:"decision"`
	Comment  string       `json:"comment,omitempty"`
}

// VoteDecision is approve or reject.
type VoteDecision string

// The two votes.
const (
	Approve VoteDecision = "approve"
	Reject  VoteDecision = "reject"
)

// Cancel withdraws a pending request.
type Cancel struct {
	Reason string `json:"reason,omitempty"`
}

// RecordNotification records where a notification about the request was
// posted, so that any gateway replica can update it later.
type RecordNotification struct {
	Kind      NotificationKind `json:"kind"`
	Channel   string           `json:"channel"`
	TS        string           `json:"ts"`
	Recipient string           `json:"recipient,omitempty"` // the principal a DM went to
}

// NotificationKind says what was posted.
type NotificationKind string

// The notification kinds.
const (
	NotifyCard NotificationKind = "card" // the approval card in a channel
	NotifyDM   NotificationKind = "dm"   // a direct message to one person
)

// Expire asks the decider to expire a request whose time is up.
type Expire struct{}

func (Submit) CommandType() string             { return TypeSubmit }
func (Vote) CommandType() string               { return TypeVote }
func (Cancel) CommandType() string             { return TypeCancel }
func (RecordNotification) CommandType() string { return TypeRecordNotification }
func (Expire) CommandType() string             { return TypeExpire }

func (Submit) isCommandBody()             {}
func (Vote) isCommandBody()               {}
func (Cancel) isCommandBody()             {}
func (RecordNotification) isCommandBody() {}
func (Expire) isCommandBody()             {}

// CommandTypes lists the command types accepted from the commands topic.
func CommandTypes() []string {
	return []string{TypeSubmit, TypeVote, TypeCancel, TypeRecordNotification, TypeExpire}
}

// DecodeCommandBody decodes the data of a command of the given wire type.
func DecodeCommandBody(typ string, data []byte) (CommandBody, error) {
	switch typ {
	case TypeSubmit:
		return decodeBody[Submit](typ, data)
	case TypeVote:
		return decodeBody[Vote](typ, data)
	case TypeCancel:
		return decodeBody[Cancel](typ, data)
	case TypeRecordNotification:
		return decodeBody[RecordNotification](typ, data)
	case TypeExpire:
		return decodeBody[Expire](typ, data)
	default:
		return nil, refuse(ReasonInvalid, "unknown command type %q", typ)
	}
}

// decodeBody decodes strictly: an unknown field is a mistake the sender
// should hear about, not something to drop silently.
func decodeBody[T any](typ string, data []byte) (T, error) {
	var v T
	if len(data) == 0 {
		data = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return v, refuse(ReasonInvalid, "%s data: %v", typ, err)
	}
	if dec.More() {
		return v, refuse(ReasonInvalid, "%s data: trailing content after the JSON object", typ)
	}
	return v, nil
}

package approval

import "fmt"

// ReasonCode is why a command was refused. The codes are a stable API: they
// appear in command.rejected events, in HTTP problem details and in Slack
// replies, and clients branch on them.
type ReasonCode string

// The reason codes of docs/architecture.md. Add to this list only with a new API version.
const (
	ReasonUnauthenticated ReasonCode = "unauthenticated"
	ReasonForbidden       ReasonCode = "forbidden"
	ReasonInvalid         ReasonCode = "invalid"
	ReasonNoPolicy        ReasonCode = "no_policy"
	ReasonNotFound        ReasonCode = "not_found"
	ReasonNotEligible     ReasonCode = "not_eligible"
	ReasonSelfApproval    ReasonCode = "self_approval"
	ReasonDuplicateVote   ReasonCode = "duplicate_vote"
	ReasonAlreadyDecided  ReasonCode = "already_decided"
	ReasonConflict        ReasonCode = "conflict"
	ReasonExpired         ReasonCode = "expired"
)

// ReasonCodes lists every reason code, in the order of docs/architecture.md.
func ReasonCodes() []ReasonCode {
	return []ReasonCode{
		ReasonUnauthenticated, ReasonForbidden, ReasonInvalid, ReasonNoPolicy,
		ReasonNotFound, ReasonNotEligible, ReasonSelfApproval, ReasonDuplicateVote,
		ReasonAlreadyDecided, ReasonConflict, ReasonExpired,
	}
}

// Valid reports whether c is one of the defined reason codes.
func (c ReasonCode) Valid() bool {
	for _, k := range ReasonCodes() {
		if c == k {
			return true
		}
	}
	return false
}

// Refusal is a command the domain would not accept. It is a value, not a
// failure of the system: the decider records it as a command.rejected event
// and the edges map its code to an HTTP status or a Slack reply.
type Refusal struct {
	Code   ReasonCode
	Detail string
}

func (r *Refusal) Error() string {
	return fmt.Sprintf("approval: %s: %s", r.Code, r.Detail)
}

func refuse(code ReasonCode, format string, args ...any) *Refusal {
	return &Refusal{Code: code, Detail: fmt.Sprintf(format, args...)}
}

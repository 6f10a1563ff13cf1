// Package slackport is Assent's contract with Slack's interactivity: the
// action ids on approval cards, the reject modal's ids and the metadata it
// carries, the form bodies Slack posts when someone clicks or submits, and
// Slack's v0 request signature.
//
// The gateway reads these (and verifies the signature); the fake Slack,
// the benchmark and the tests write them. Keeping both sides in one place
// means a renamed button cannot silently stop matching.
package slackport

// The action ids of the card's buttons and the reject modal's callback id.
const (
	ActionApprove  = "assent.approve"
	ActionReject   = "assent.reject"
	CallbackReject = "assent.reject"
	// ReasonBlock and ReasonAction name the modal's reason input.
	ReasonBlock  = "reason"
	ReasonAction = "reason"
)

// RejectMetadata travels in the reject modal's private_metadata: the
// view_submission may reach another gateway replica, which knows nothing
// else about the click.
type RejectMetadata struct {
	RequestID string `json:"request_id"`
	Channel   string `json:"channel"`
}

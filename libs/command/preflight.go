package command

import (
	"time"

	"github.com/assent-dev/assent/libs/approval"
)

// preflightPolicies match every action and can always reach their quorum,
// so that Decide against an empty state stops only at validation.
var preflightPolicies = approval.Policies{Rules: []approval.Policy{{
	Name:         "preflight",
	Approvers:    []string{"service:assent-preflight-a", "service:assent-preflight-b"},
	MinApprovals: 1,
	TTL:          approval.Duration(time.Hour),
}}}

// Preflight runs the domain's own validation on a command before it is
// sent: Decide against an empty state refuses a malformed command (invalid)
// or one without a valid actor (unauthenticated) before it looks at any
// state; a vote or cancel then stops at not_found, a submit is accepted.
// Only those two codes are taken from it, as a *approval.Refusal; every
// other outcome is the decider's to find against the real state.
func Preflight(c approval.Command) error {
	at := c.Time
	if at.IsZero() {
		at = time.Unix(0, 0)
	}
	d := approval.Decide(approval.State{}, c, preflightPolicies, at)
	if d.Refusal != nil && (d.Refusal.Code == approval.ReasonInvalid || d.Refusal.Code == approval.ReasonUnauthenticated) {
		return d.Refusal
	}
	return nil
}

package card

import (
	"fmt"
	"strings"

	"github.com/assent-dev/assent/libs/approval"
)

// Reply is the ephemeral answer to an approver whose vote command has been
// decided: what the log says happened to it.
func Reply(st approval.State, commandID string, d approval.VoteDecision) string {
	out, ok := st.Outcomes[commandID]
	if !ok {
		return "Your vote is recorded; the decision is still being made."
	}
	what := "request"
	if st.Status != approval.StatusNone {
		what = "*" + Escape(Truncate(title(st.Action), 300)) + "*"
	}
	r := out.Refusal()
	if r == nil {
		verb := "approval"
		if d == approval.Reject {
			verb = "rejection"
		}
		s := fmt.Sprintf("Recorded: your %s of %s. %s.", verb, what, Escape(Tally(st)))
		if o := Outcome(st); o != "" {
			s += "\n" + o
		}
		return s
	}
	switch r.Code {
	case approval.ReasonAlreadyDecided:
		return fmt.Sprintf("This request is already decided: %s %s.", strings.ToLower(statusWord(st.Status)), decidedBy(st))
	case approval.ReasonNotEligible:
		return "You are not an approver for this request (policy " + Escape(st.Policy.Name) + ")."
	case approval.ReasonSelfApproval:
		return "You cannot approve your own request."
	case approval.ReasonDuplicateVote:
		return "You have already voted on this request."
	case approval.ReasonExpired:
		return "This request has expired; ask the requester to submit it again."
	case approval.ReasonNotFound:
		return "Assent does not know this request."
	case approval.ReasonUnauthenticated, approval.ReasonForbidden, approval.ReasonInvalid,
		approval.ReasonNoPolicy, approval.ReasonConflict:
		return fmt.Sprintf("Your vote was refused (%s): %s", r.Code, Escape(r.Detail))
	default:
		return fmt.Sprintf("Your vote was refused (%s): %s", r.Code, Escape(r.Detail))
	}
}

// decidedBy is "by alice@example.com" or "" for an expiry.
func decidedBy(st approval.State) string {
	if len(st.DecidedBy) == 0 {
		return ""
	}
	return "by " + Escape(whoList(st.DecidedBy))
}

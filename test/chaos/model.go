package chaos

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/assent-dev/assent/libs/approval"
)

// The linearizability model of one request, for porcupine.
//
// A request is a small state machine: absent, pending with votes, then one
// terminal status. Every write carries a command id, and a command id that
// was already decided reports its first outcome and changes nothing (the
// domain's idempotency), so a retry or a duplicate sent to two replicas is
// one operation to the model. Expiry is the model's only nondeterminism:
// from the moment expires_at has passed, a pending request may turn
// expired before any operation.
//
// The rules of the policy snapshot (who may vote, the quorum, the reject
// threshold, expires_at) are parameters taken from the request.submitted
// event; the model checks the order of outcomes that clients were told,
// not the policy engine.
//
// How each operation is placed:
//   - a write with a known outcome (ok or refused) took effect between its
//     call and its return;
//   - a write whose outcome is unknown (timeout, connection error, 5xx) or
//     only known to be durable (a 202, a Slack click's 200) returns "never":
//     it may take effect at any point after its call, including after
//     everything else, which is "not at all" as far as anyone observed;
//   - the view returned with a write is a read in the write's interval;
//   - a GET is a read in [start of history, return]: API replicas serve
//     reads from their own projection, which may trail the log (API
//     contract), so a read proves only that the state it shows existed
//     before it returned. That each replica's views never go backwards is
//     checked separately (MONO).

// params are a request's rules, from its snapshot.
type params struct {
	requester  string
	approvers  []string
	quorum     int
	rejections int
	expiresAt  int64 // Unix ns; 0 when the request was never submitted
}

func paramsOf(st approval.State) params {
	p := params{
		requester: st.Requester, approvers: st.Policy.Approvers,
		quorum: st.Policy.MinApprovals, rejections: max(st.Policy.RejectThreshold, 1),
	}
	if !st.Policy.ExpiresAt.IsZero() {
		p.expiresAt = st.Policy.ExpiresAt.UnixNano()
	}
	return p
}

// mstate is the model's state of a request. It is never mutated: steps
// copy the maps they change.
type mstate struct {
	status   approval.Status
	content  string
	votes    map[string]string // voter → approve|reject
	outcomes map[string]string // command id → reason code, "" when accepted
}

func (s mstate) key() string {
	var b strings.Builder
	b.WriteString(string(s.status) + "|" + s.content + "|")
	for _, k := range slices.Sorted(maps.Keys(s.votes)) {
		b.WriteString(k + "=" + s.votes[k] + ",")
	}
	b.WriteString("|")
	for _, k := range slices.Sorted(maps.Keys(s.outcomes)) {
		b.WriteString(k + "=" + s.outcomes[k] + ",")
	}
	return b.String()
}

// linOp is one porcupine operation: the op, and whether it stands for the
// view that came with it rather than its write.
type linOp struct {
	op     *Op
	asRead bool
}

// step applies one operation to s, returning every state it may lead to.
func (p params) step(s mstate, in linOp) []mstate {
	op := in.op
	var cands []mstate
	// A decided write with call >= expires_at was decided after it: a
	// pending request was then expired by the decider's own check.
	decided := op.Write() && !in.asRead && !op.Indeterminate()
	expiredFirst := decided && s.status == approval.StatusPending && p.expiresAt > 0 && op.Call >= p.expiresAt
	if !expiredFirst {
		cands = append(cands, s)
	}
	ret := op.Return
	if op.Indeterminate() && !in.asRead {
		ret = math.MaxInt64
	}
	if s.status == approval.StatusPending && p.expiresAt > 0 && ret >= p.expiresAt {
		e := s
		e.status = approval.StatusExpired
		cands = append(cands, e)
	}
	var out []mstate
	for _, c := range cands {
		if n, ok := p.apply(c, in); ok {
			out = append(out, n)
		}
	}
	return out
}

// apply runs op on a state the model is sure of.
func (p params) apply(s mstate, in linOp) (mstate, bool) {
	op := in.op
	if in.asRead || op.Kind == KindRead {
		shows := string(s.status) == op.Status && len(s.votes) == op.Votes
		if in.asRead {
			// The view came after the write's own outcome.
			_, applied := s.outcomes[op.Command]
			shows = shows && (applied || op.Kind == KindSubmit && s.status != approval.StatusNone)
		}
		return s, shows
	}
	if op.Outcome == Refused && op.Code == codeRateLimited {
		return s, true // refused by the api's rate limit: nothing was written
	}
	if code, seen := s.outcomes[op.Command]; seen && op.Command != "" {
		return s, op.Indeterminate() || op.Outcome == OK && code == "" || op.Outcome == Refused && code == op.Code
	}
	next, codes := p.decide(s, op)
	if op.Indeterminate() || op.Outcome == OK && slices.Contains(codes, "") || op.Outcome == Refused && slices.Contains(codes, op.Code) {
		code := op.Code
		if op.Indeterminate() || op.Outcome == OK {
			code = codes[0]
		}
		if code != "" {
			next = s // a refusal changes nothing but the memo
		}
		resubmit := op.Kind == KindSubmit && code == "" && s.status != approval.StatusNone
		if op.Command != "" && !resubmit {
			next.outcomes = maps.Clone(s.outcomes)
			if next.outcomes == nil {
				next.outcomes = map[string]string{}
			}
			next.outcomes[op.Command] = code
		}
		return next, true
	}
	return s, false
}

// decide is the domain's rule for op in state s: the next state if it is
// accepted, and the codes it may be answered with ("" for accepted, which
// comes first when possible).
func (p params) decide(s mstate, op *Op) (mstate, []string) {
	terminal := s.status.Terminal()
	switch op.Kind {
	case KindSubmit:
		switch {
		case s.status == approval.StatusNone:
			n := s
			n.status, n.content = approval.StatusPending, op.Content
			// A submit may also be refused by policy or validation, which
			// the model does not evaluate; the log says which (I3 checks it).
			return n, []string{"", string(approval.ReasonNoPolicy), string(approval.ReasonInvalid), string(approval.ReasonForbidden)}
		case s.content == op.Content:
			return s, []string{""} // an identical resubmit
		default:
			return s, []string{string(approval.ReasonConflict)}
		}
	case KindVote:
		switch {
		case s.status == approval.StatusNone:
			return s, []string{string(approval.ReasonNotFound)}
		case s.status == approval.StatusExpired:
			// The timer expired it, or this very vote found it due.
			return s, []string{string(approval.ReasonAlreadyDecided), string(approval.ReasonExpired)}
		case terminal:
			return s, []string{string(approval.ReasonAlreadyDecided)}
		case op.Actor == p.requester:
			return s, []string{string(approval.ReasonSelfApproval)}
		case !slices.Contains(p.approvers, op.Actor):
			return s, []string{string(approval.ReasonNotEligible)}
		}
		if _, voted := s.votes[op.Actor]; voted {
			return s, []string{string(approval.ReasonDuplicateVote)}
		}
		n := s
		n.votes = maps.Clone(s.votes)
		if n.votes == nil {
			n.votes = map[string]string{}
		}
		n.votes[op.Actor] = op.Decision
		approvals, rejections := 0, 0
		for _, d := range n.votes {
			if d == string(approval.Approve) {
				approvals++
			} else {
				rejections++
			}
		}
		switch {
		case approvals >= p.quorum:
			n.status = approval.StatusApproved
		case rejections >= p.rejections:
			n.status = approval.StatusRejected
		}
		return n, []string{""}
	case KindCancel:
		switch {
		case s.status == approval.StatusNone:
			return s, []string{string(approval.ReasonNotFound)}
		case s.status == approval.StatusExpired && op.Actor != p.requester && !op.Admin:
			// Before the timer fires, the domain finds forbidden first.
			return s, []string{string(approval.ReasonAlreadyDecided), string(approval.ReasonForbidden)}
		case s.status == approval.StatusExpired:
			return s, []string{string(approval.ReasonAlreadyDecided), string(approval.ReasonExpired)}
		case terminal:
			return s, []string{string(approval.ReasonAlreadyDecided)}
		case op.Actor != p.requester && !op.Admin:
			return s, []string{string(approval.ReasonForbidden)}
		}
		n := s
		n.status = approval.StatusCancelled
		return n, []string{""}
	case KindRead, KindNegative:
		// Not writes: apply checks reads itself, and negatives are
		// left out of the histories the model checks.
		return s, nil
	default:
		return s, nil
	}
}

// model is the porcupine model of one request with rules p.
func (p params) model() porcupine.Model {
	nm := porcupine.NondeterministicModel{
		Init: func() []any { return []any{mstate{}} },
		Step: func(state, input, _ any) []any {
			var out []any
			for _, n := range p.step(state.(mstate), input.(linOp)) {
				out = append(out, n)
			}
			return out
		},
		Equal: func(a, b any) bool { return a.(mstate).key() == b.(mstate).key() },
		DescribeOperation: func(input, _ any) string {
			in := input.(linOp)
			if in.asRead {
				return "view of " + in.op.String()
			}
			return in.op.String()
		},
		DescribeState: func(state any) string { return state.(mstate).key() },
	}
	return nm.ToModel()
}

// linearizable checks one request's operations. It returns porcupine's
// verdict and, when it is Illegal, the longest linearizable prefix it
// found, for the report.
func linearizable(p params, ops []*Op, timeout time.Duration) (porcupine.CheckResult, string) {
	var hist []porcupine.Operation
	for _, op := range ops {
		switch {
		case op.Kind == KindRead:
			if !op.HasView || op.Outcome != OK {
				continue
			}
			hist = append(hist, porcupine.Operation{ClientId: op.Client, Input: linOp{op: op}, Call: 0, Return: op.Return})
		case op.Write():
			ret := op.Return
			if op.Indeterminate() {
				ret = math.MaxInt64
			}
			hist = append(hist, porcupine.Operation{ClientId: op.Client, Input: linOp{op: op}, Call: op.Call, Return: ret})
			if op.HasView && op.Outcome == OK {
				hist = append(hist, porcupine.Operation{ClientId: op.Client, Input: linOp{op: op, asRead: true}, Call: op.Call, Return: op.Return})
			}
		default:
		}
	}
	if len(hist) == 0 {
		return porcupine.Ok, ""
	}
	res, info := porcupine.CheckOperationsVerbose(p.model(), hist, timeout)
	if res != porcupine.Illegal {
		return res, ""
	}
	var b strings.Builder
	for _, part := range info.PartialLinearizationsOperations() {
		var longest []porcupine.Operation
		for _, l := range part {
			if len(l) > len(longest) {
				longest = l
			}
		}
		fmt.Fprintf(&b, "longest linearizable prefix (%d of %d operations):", len(longest), len(hist))
		for _, o := range longest {
			in := o.Input.(linOp)
			prefix := "\n      "
			if in.asRead {
				prefix += "view of "
			}
			b.WriteString(prefix + in.op.String())
		}
	}
	return res, b.String()
}

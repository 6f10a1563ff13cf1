package approval

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"
	"time"
)

// Policies is the rule book in force: the ordered policies and the admins
// who may cancel any request. The policy loader (libs/policy) builds it from
// YAML with groups already expanded, so the domain sees only principals.
type Policies struct {
	Admins []string
	Rules  []Policy // the first rule that matches wins
}

// Policy says who may approve which actions, and how many must.
type Policy struct {
	Name            string         `json:"name"`
	Match           Match          `json:"match"`
	Approvers       []string       `json:"approvers"` // principals, groups expanded
	MinApprovals    int            `json:"min_approvals"`
	RejectThreshold int            `json:"reject_threshold"`
	TTL             Duration       `json:"ttl"`
	Notify          []NotifyTarget `json:"notify,omitempty"`
}

// Match selects actions. An empty list matches anything; "*" too.
type Match struct {
	ActionTypes  []string `json:"action_types,omitempty"`
	Environments []string `json:"environments,omitempty"`
	// Resource is a glob: "*" matches within one path segment, "**" across
	// segments, "?" one character. Empty matches every resource.
	Resource string `json:"resource,omitempty"`
}

// NotifyTarget is where notifications about a matched request go.
type NotifyTarget struct {
	Kind   string `json:"kind"`   // "slack_channel", "slack_dm_approvers", "webhook", "email"
	Target string `json:"target"` // channel id or name, URL or address ("approvers" or "requester" for email); empty for DMs
	// Events, for webhook and email targets, lists the events delivered
	// there (NotifyEvents); empty means the default, DefaultNotifyEvents.
	Events []string `json:"events,omitempty"`
}

// The event names a webhook or email target may list.
const (
	NotifySubmitted = "submitted"
	NotifyVoted     = "voted"
	NotifyApproved  = "approved"
	NotifyRejected  = "rejected"
	NotifyExpired   = "expired"
	NotifyCancelled = "cancelled"
)

// NotifyEvents are the event names, in lifecycle order.
func NotifyEvents() []string {
	return []string{NotifySubmitted, NotifyVoted, NotifyApproved, NotifyRejected, NotifyExpired, NotifyCancelled}
}

// NotifyEventOf names an event type for a target's Events; "" for an event
// that is never delivered (a refusal, a notification note).
func NotifyEventOf(eventType string) string {
	switch eventType {
	case TypeRequestSubmitted:
		return NotifySubmitted
	case TypeVoteRecorded:
		return NotifyVoted
	case TypeRequestApproved:
		return NotifyApproved
	case TypeRequestRejected:
		return NotifyRejected
	case TypeRequestExpired:
		return NotifyExpired
	case TypeRequestCancelled:
		return NotifyCancelled
	default:
		return ""
	}
}

// DefaultNotifyEvents is what a webhook or email target gets when its
// Events are empty: a submission goes to the approvers' targets (every
// target but the requester's), and a decision, expiry or cancellation to
// every target.
func (t NotifyTarget) DefaultNotifyEvents() []string {
	outcomes := []string{NotifyApproved, NotifyRejected, NotifyExpired, NotifyCancelled}
	if t.Kind == "email" && t.Target == "requester" {
		return outcomes
	}
	return append([]string{NotifySubmitted}, outcomes...)
}

// Wants reports whether the target gets events of the given type.
func (t NotifyTarget) Wants(eventType string) bool {
	name := NotifyEventOf(eventType)
	if name == "" {
		return false
	}
	events := t.Events
	if len(events) == 0 {
		events = t.DefaultNotifyEvents()
	}
	return slices.Contains(events, name)
}

// PolicySnapshot is the policy as it stood when the request was submitted.
type PolicySnapshot struct {
	Name            string         `json:"name"`
	Hash            string         `json:"hash"` // "sha256:..." of the policy's canonical JSON
	Approvers       []string       `json:"approvers"`
	MinApprovals    int            `json:"min_approvals"`
	RejectThreshold int            `json:"reject_threshold"`
	TTL             Duration       `json:"ttl"`
	ExpiresAt       time.Time      `json:"expires_at"`
	Notify          []NotifyTarget `json:"notify,omitempty"`
}

// Hash is the content hash of the policy: SHA-256 over its canonical JSON
// (fields in declaration order, approvers sorted), so that the audit can
// prove which rule applied.
func (p Policy) Hash() string {
	c := p
	c.Approvers = sortedSet(p.Approvers)
	b, err := json.Marshal(c)
	if err != nil {
		// A Policy holds only strings, numbers and slices of them.
		panic("approval: policy hash: " + err.Error())
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Matches reports whether the policy applies to the action.
func (m Match) Matches(a Action) bool {
	return matchList(m.ActionTypes, a.Type) &&
		matchList(m.Environments, a.Environment) &&
		(m.Resource == "" || Glob(m.Resource, a.Resource))
}

func matchList(list []string, v string) bool {
	return len(list) == 0 || slices.Contains(list, "*") || slices.Contains(list, v)
}

// Find returns the first policy that matches the action.
func (ps Policies) Find(a Action) (Policy, bool) {
	for _, p := range ps.Rules {
		if p.Match.Matches(a) {
			return p, true
		}
	}
	return Policy{}, false
}

// IsAdmin reports whether the principal is an admin.
func (ps Policies) IsAdmin(principal string) bool {
	return slices.Contains(ps.Admins, principal)
}

// Glob matches name against pattern, where "*" matches any run of
// characters other than '/', "**" any run including '/', and "?" any one
// character other than '/'. Everything else matches itself.
func Glob(pattern, name string) bool {
	// Iterative matching that remembers the last "*" and the last "**" to
	// backtrack to: linear in practice, never exponential on hostile input.
	px, nx := 0, 0
	single, singleNx := -1, 0 // position of the last "*" and where it resumes
	deep, deepNx := -1, 0     // position of the last "**" and where it resumes
	for nx < len(name) {
		if px < len(pattern) {
			switch {
			case strings.HasPrefix(pattern[px:], "**"):
				deep, deepNx, single = px, nx, -1
				px += 2
				continue
			case pattern[px] == '*':
				single, singleNx = px, nx
				px++
				continue
			case pattern[px] == '?':
				if name[nx] != '/' {
					px++
					nx++
					continue
				}
			case pattern[px] == name[nx]:
				px++
				nx++
				continue
			}
		}
		switch {
		case single >= 0 && name[singleNx] != '/':
			singleNx++
			px, nx = single+1, singleNx
		case deep >= 0:
			deepNx++
			px, nx, single = deep+2, deepNx, -1
		default:
			return false
		}
	}
	for px < len(pattern) && pattern[px] == '*' {
		px++
	}
	return px == len(pattern)
}

package approval

import (
	"fmt"
	"strings"
)

// Principal kinds. A principal is written "kind:id", as in the actor
// attribute of every command and event: "user:alice@example.com",
// "service:billing", "system:decider".
const (
	KindUser    = "user"
	KindService = "service"
	KindSystem  = "system"
)

// SystemDecider is the actor of events that no person or service caused,
// such as an expiry.
const SystemDecider = "system:decider"

// maxPrincipalLen bounds a principal so that no actor can bloat a state.
const maxPrincipalLen = 320

// ParsePrincipal splits "kind:id" and checks both parts.
func ParsePrincipal(p string) (kind, id string, err error) {
	kind, id, ok := strings.Cut(p, ":")
	if !ok {
		return "", "", fmt.Errorf("approval: principal %q: want kind:id, such as user:alice@example.com", p)
	}
	switch kind {
	case KindUser, KindService, KindSystem:
	default:
		return "", "", fmt.Errorf("approval: principal %q: kind %q is not user, service or system", p, kind)
	}
	if id == "" || len(p) > maxPrincipalLen || !printable(id) || strings.ContainsAny(id, " ,") {
		return "", "", fmt.Errorf("approval: principal %q: the id must be 1 to %d printable characters without spaces or commas", p, maxPrincipalLen)
	}
	return kind, id, nil
}

// NormalizePrincipal accepts a bare email as a user, the shorthand used in
// policy files, and returns the canonical "kind:id" form. User ids are
// emails and are lowercased, so that "Alice@example.com" in a policy and
// "alice@example.com" from Slack are one person. Principals are compared
// exactly everywhere else, so every edge normalizes before it builds a
// command.
func NormalizePrincipal(p string) (string, error) {
	p = strings.TrimSpace(p)
	if !strings.Contains(p, ":") && strings.Contains(p, "@") {
		p = KindUser + ":" + p
	}
	if id, ok := strings.CutPrefix(p, KindUser+":"); ok {
		p = KindUser + ":" + strings.ToLower(id)
	}
	if _, _, err := ParsePrincipal(p); err != nil {
		return "", err
	}
	return p, nil
}

func principalKind(p string) string {
	kind, _, err := ParsePrincipal(p)
	if err != nil {
		return ""
	}
	return kind
}

// printable reports whether s has no control characters, so that user text
// can be shown in logs, Slack and terminals without surprises.
func printable(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == '\uFFFD' {
			return false
		}
	}
	return true
}

package policy

import (
	"slices"

	"github.com/assent-dev/assent/libs/approval"
)

// checkShadowed reports a policy that can never be chosen because an earlier
// one matches every action it matches: the first match wins, so the later
// policy is dead, and its author almost certainly meant something else.
//
// The check is sound but deliberately incomplete: it flags a policy only
// when each part of an earlier match is plainly at least as broad (any, or
// a superset of the listed values, and a resource glob that is any or the
// very same pattern). Deciding whether one glob covers another in general
// is not worth the risk of a false alarm.
func (p *parser) checkShadowed(rs []rule) {
	for j, later := range rs {
		if !later.matchOK {
			continue
		}
		for _, earlier := range rs[:j] {
			if earlier.matchOK && covers(earlier.policy.Match, later.policy.Match) {
				p.errorf(later.line, "%s: never used: %s at line %d matches everything it does; move it above that policy, or narrow that policy's match",
					later.label, earlier.label, earlier.line)
				break
			}
		}
	}
}

// covers reports whether every action that b matches is matched by a. Both
// are canonical: "*" is the empty list and a "**" resource the empty glob.
func covers(a, b approval.Match) bool {
	return listCovers(a.ActionTypes, b.ActionTypes) &&
		listCovers(a.Environments, b.Environments) &&
		(a.Resource == "" || a.Resource == b.Resource)
}

func listCovers(a, b []string) bool {
	if len(a) == 0 {
		return true
	}
	if len(b) == 0 {
		return false
	}
	for _, v := range b {
		if !slices.Contains(a, v) {
			return false
		}
	}
	return true
}

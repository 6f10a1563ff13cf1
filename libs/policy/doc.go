// Package policy loads the policy file, the YAML rule book that says who
// must approve which actions, and turns it into the [approval.Policies] the
// pure domain decides with. It is the only place that knows the file
// format: the domain sees principals, never groups, and never YAML.
//
// [Load] reads a file and [Parse] reads bytes. Both validate the whole file
// and return every problem at once, one per line and sorted by line, each
// naming the file, the line, what is wrong and, where it is not obvious,
// how to fix it:
//
//	policy: infra/policies/example.yaml:14: min_approvals is 3 but only 2 approvers are listed (...)
//	policy: infra/policies/example.yaml:19: approvers.groups: unknown group "sre2" (defined groups: dba, sre)
//
// Each problem is an [*Error]; the joined error's Unwrap() []error gives
// them one by one. A file with any problem yields no policies at all: a
// service must not start with half a rule book.
//
// # File format
//
//	version: 1                        # required; the only version there is
//	admins: [root@example.com, group:platform-leads]
//	groups:
//	  sre: [alice@example.com, bob@example.com, "service:oncall-bot"]
//	policies:                         # first match wins, in file order
//	  - name: prod-deploy             # lowercase letters, digits, dashes; unique
//	    match:
//	      action: [deploy]            # action types; omitted or "*" = any
//	      environment: [production]   # omitted or "*" = any
//	      resource: "payments/**"     # glob; omitted or "**" = any
//	    approvers:
//	      groups: [sre]
//	      users: [carol@example.com]
//	    min_approvals: 2              # required; 1 to the number of approvers
//	    reject_threshold: 1           # optional; default 1
//	    ttl: 1h                       # required; Go duration, at most 720h
//	    notify:                       # optional
//	      - slack_channel: C0DEPLOYS  # a channel id, or a quoted "#name"
//	      - slack_dm: approvers       # DM each eligible approver
//	      - webhook: https://hooks.example.com/assent
//	      - email: sre@example.com
//	      - email: requester          # or approvers: each one's address
//	        events: [approved, rejected] # optional, for webhook and email
//
// A webhook or email target gets, unless its events say otherwise, the
// submission and the outcome (approved, rejected, expired, cancelled);
// "email: requester" gets only the outcome, since the requester cannot
// approve. events lists any of submitted, voted, approved, rejected,
// expired, cancelled. The notifier service delivers them
// (services/notifier).
//
// infra/policies/example.yaml is a complete, commented example, and the
// tests keep it valid.
//
// # Principals and groups
//
// A principal is written as in every command and event, "kind:id", with
// kind user or service ("service:oncall-bot"). A bare email is shorthand
// for a user: "alice@example.com" is "user:alice@example.com". System
// principals are refused: the decider acts as one only to expire requests.
//
// groups maps a name (lowercase letters, digits, dashes) to a non-empty list
// of principals. Groups do not nest. approvers.groups names groups bare;
// admins, where a principal could also stand, writes "group:<name>".
// Groups are expanded when the file is loaded, and the approvers and admins
// are normalized, sorted and de-duplicated, so min_approvals counts
// distinct people: a user listed in two groups counts once.
//
// Wherever a list is expected, a single value is accepted as a list of one:
// "environment: production" is "environment: [production]".
//
// # Matching
//
// An action matches a policy when its type is in match.action, its
// environment in match.environment and its resource matches the
// match.resource glob; an omitted part matches anything. The glob is
// [approval.Glob]: "*" within one path segment, "**" across segments, "?"
// one character. Globs that start with * must be quoted in YAML, or the
// parser reads an alias. match.action and match.environment take exact
// values, never globs. The first matching policy wins, so narrow policies
// go above broad ones; an action that no policy matches is refused with
// no_policy.
//
// # Validation
//
// Beyond types and required keys, a file is refused when it has: a version
// other than 1; an unknown or repeated key (with the likely intended key
// suggested, so min_aprovals is caught); no policies; a missing, malformed
// or repeated policy name; min_approvals below 1 or above the number of
// distinct approvers; reject_threshold below 1 or above the number of
// approvers (no request could ever be rejected); a ttl that is missing, not
// positive or above [MaxTTL]; an invalid principal; an empty or unknown
// group; an empty glob or empty match list; a webhook that is not https
// (http is allowed for localhost only) or carries credentials; an email
// that is not a bare address; a slack_channel with no value (an unquoted
// #name is a YAML comment); or a policy that an earlier one shadows.
//
// # Shadowed policies
//
// A policy is refused as never used when an earlier policy matches every
// action it does. The check is kept simple so that it never raises a false
// alarm: it fires only when each of the earlier policy's action and
// environment lists is any or a superset of the later one's, and its
// resource glob is any or exactly the same pattern. A shadow that depends on
// one glob covering another ("services/*" before "services/api") is not
// detected.
//
// # Canonical form and the content hash
//
// Every request snapshots its policy's [approval.Policy.Hash]. So that the
// hash depends on what a policy means and not on how its YAML is laid out,
// Parse writes each policy in a canonical form: approvers and match lists
// sorted and de-duplicated, "*" as the empty list, a "**" resource as the
// empty glob, and reject_threshold filled in with its default. Notify
// targets keep their file order.
package policy

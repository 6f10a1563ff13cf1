package app

import (
	"strings"
	"time"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/services/api/internal/auth"
)

// MaxIdempotencyKeyLen bounds the Idempotency-Key header.
const MaxIdempotencyKeyLen = 255

// ValidIdempotencyKey reports whether k may be used as an Idempotency-Key:
// 1 to 255 printable ASCII characters.
func ValidIdempotencyKey(k string) bool {
	if k == "" || len(k) > MaxIdempotencyKeyLen {
		return false
	}
	for i := range len(k) {
		if k[i] < 0x20 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// ValidRequestID reports whether id is a request id the domain accepts:
// 1 to 128 printable characters, without spaces or slashes.
func ValidRequestID(id string) bool {
	if id == "" || len(id) > approval.MaxIDLen || strings.ContainsAny(id, " /") {
		return false
	}
	for _, r := range id {
		if r < 0x20 || r == 0x7f || r == '\uFFFD' {
			return false
		}
	}
	return true
}

// derive names a command or request from the parts (see wire.DerivedID).
func derive(parts ...string) string { return wire.DerivedID(parts...) }

// derivedRequestID names the request of a keyed submit without request_id.
func derivedRequestID(caller auth.Principal, key string) string {
	return derive("assent/api request v1", caller.ID, key)
}

// command builds a command. With an Idempotency-Key its id is derived from
// everything that identifies the intention; otherwise it is a new UUIDv7.
func (a *App) command(caller auth.Principal, actor, rid, key string, body approval.CommandBody) approval.Command {
	now := a.cfg.Now().UTC()
	id := wire.NewID(now)
	if key != "" {
		id = derive("assent/api command v1", caller.ID, actor, body.CommandType(), rid, key)
	}
	return approval.Command{ID: id, RequestID: rid, Actor: actor, Time: now, Body: body}
}

// preflightPolicies match every action and can always reach their quorum,
// so that Decide against an empty state stops only at validation.
var preflightPolicies = approval.Policies{Rules: []approval.Policy{{
	Name:         "preflight",
	Approvers:    []string{"service:assent-preflight-a", "service:assent-preflight-b"},
	MinApprovals: 1,
	TTL:          approval.Duration(time.Hour),
}}}

// preflight runs the domain's own validation on a command before it is
// sent: Decide against an empty state refuses a malformed command as
// invalid before it looks at any state (a vote or cancel then stops at
// not_found, a submit is accepted). Only invalid is taken from it; every
// other outcome is the decider's to find against the real state.
func (a *App) preflight(c approval.Command) error {
	d := approval.Decide(approval.State{}, c, preflightPolicies, a.cfg.Now())
	if d.Refusal != nil && d.Refusal.Code == approval.ReasonInvalid {
		return d.Refusal
	}
	return nil
}

// actingFor returns the principal a write is made for: the caller, or the
// one it names when it has the on_behalf role.
func actingFor(caller auth.Principal, named, field, verb string) (string, error) {
	if named == "" || named == caller.ID {
		return caller.ID, nil
	}
	if !caller.Has(auth.RoleOnBehalf) {
		return "", refuse(approval.ReasonForbidden, "%s may not %s on behalf of %s without the %s role",
			caller.ID, verb, named, auth.RoleOnBehalf)
	}
	p, err := approval.NormalizePrincipal(named)
	if err != nil {
		return "", refuse(approval.ReasonInvalid, "%s: %v", field, err)
	}
	if kind, _, _ := approval.ParsePrincipal(p); kind == approval.KindSystem {
		return "", refuse(approval.ReasonInvalid, "%s: %s is a system principal; name a user or a service", field, p)
	}
	return p, nil
}

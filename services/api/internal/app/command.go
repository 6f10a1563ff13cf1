package app

import (
	"strings"

	"github.com/assent-dev/assent/libs/command"

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

// derivedRequestID names the request of a keyed submit without request_id.
func derivedRequestID(caller auth.Principal, key string) string {
	return command.APIRequestID(caller.ID, key)
}

// command builds a command. With an Idempotency-Key its id is derived from
// everything that identifies the intention; otherwise it is a new UUIDv7.
func (a *App) command(caller auth.Principal, actor, rid, key string, body approval.CommandBody) approval.Command {
	now := a.cfg.Now().UTC()
	id := wire.NewID(now)
	if key != "" {
		id = command.APICommandID(caller.ID, actor, body.CommandType(), rid, key)
	}
	return approval.Command{ID: id, RequestID: rid, Actor: actor, Time: now, Body: body}
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

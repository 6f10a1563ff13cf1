package command

import (
	"fmt"
	"strings"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/wire"
)

// Authenticate checks, before the domain sees a command, that the service
// that produced it signed it and may speak for whom it names
// (docs/architecture.md, "Authenticated commands"): the envelope's
// signature verifies with a published key (wire.CommandKeys.Verify), and
// its signer may name the actor and, for a submit, the requester. It
// returns the unauthenticated refusal the decider records, or nil.
//
// c is the command decoded from env; its body may be nil (a body that
// does not decode is refused invalid afterwards, if it is authentic).
func Authenticate(keys wire.CommandKeys, env wire.Envelope, c approval.Command) *approval.Refusal {
	signer, err := keys.Verify(env)
	if err != nil {
		return &approval.Refusal{Code: approval.ReasonUnauthenticated, Detail: strings.TrimPrefix(err.Error(), "wire: ")}
	}
	if s, ok := c.Body.(approval.Submit); ok && s.Requester != "" && !signer.MayName(s.Requester) {
		return &approval.Refusal{Code: approval.ReasonUnauthenticated, Detail: fmt.Sprintf(
			"key %q speaks as %s and may not name %q as the requester: it has no %s role", signer.KeyID, signer.Principal, s.Requester, wire.RoleOnBehalf)}
	}
	return nil
}

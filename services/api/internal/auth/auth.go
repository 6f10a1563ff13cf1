// Package auth maps bearer tokens to principals.
//
// # The tokens file
//
// Only SHA-256 hashes of tokens are stored, so the file can be read by
// anyone who may read the service's configuration without giving away a
// credential:
//
//	tokens:
//	  - sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
//	    principal: service:billing
//	  - sha256: 60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752
//	    principal: service:slack-gateway
//	    roles: [on_behalf]
//
// `api hash-token <token>` prints the sha256 line for a token. A principal
// is "kind:id" with kind user or service; system principals are the
// decider's alone. Roles:
//
//   - on_behalf: may name the requester of a submit or the voter of a vote
//     (the Slack gateway, a deploy pipeline acting for a person).
//   - admin: recorded for operators and future endpoints. Who may cancel
//     any request is decided by the decider from the policy file's admins,
//     not from this role, so the two cannot disagree about an audit trail.
//
// The file is validated as a whole and every problem reported at once. It
// is read at start; restart the replicas to change it.
package auth

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/assent-dev/assent/libs/approval"
)

// Roles a token may carry.
const (
	RoleOnBehalf = "on_behalf"
	RoleAdmin    = "admin"
)

// Principal is who a token speaks for.
type Principal struct {
	ID    string // "kind:id", the actor of the commands it sends
	Kind  string // approval.KindUser or approval.KindService
	Roles []string
}

// Has reports whether the principal has the role.
func (p Principal) Has(role string) bool { return slices.Contains(p.Roles, role) }

// Tokens authenticates bearer tokens. The zero value knows no token.
type Tokens struct {
	entries []entry
}

type entry struct {
	hash      [sha256.Size]byte
	principal Principal
}

// Hash returns the hex SHA-256 of a token, as the tokens file stores it.
func Hash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// Authenticate returns the principal of a token. It compares the token's
// hash with every stored hash in constant time and never stops early, so
// the time taken says nothing about which entry, if any, matched.
func (t *Tokens) Authenticate(token string) (Principal, bool) {
	if token == "" {
		return Principal{}, false
	}
	sum := sha256.Sum256([]byte(token))
	found := -1
	for i := range t.entries {
		if subtle.ConstantTimeCompare(sum[:], t.entries[i].hash[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return Principal{}, false
	}
	return t.entries[found].principal, true
}

// Len is the number of tokens.
func (t *Tokens) Len() int { return len(t.entries) }

type fileFormat struct {
	Tokens []fileEntry `yaml:"tokens"`
}

type fileEntry struct {
	SHA256    string   `yaml:"sha256"`
	Principal string   `yaml:"principal"`
	Roles     []string `yaml:"roles"`
}

// Load reads a tokens file.
func Load(path string) (*Tokens, error) {
	raw, err := os.ReadFile(path) //nolint:gosec // G304: the path is the operator's ASSENT_TOKENS_FILE
	if err != nil {
		return nil, fmt.Errorf("auth: tokens file: %w (set ASSENT_TOKENS_FILE)", err)
	}
	t, err := Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("auth: %s: %w", path, err)
	}
	return t, nil
}

// Parse reads the tokens file format.
func Parse(raw []byte) (*Tokens, error) {
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	var f fileFormat
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("not a tokens file: %w", err)
	}
	var problems []string
	t := &Tokens{}
	seen := map[string]int{}
	for i, fe := range f.Tokens {
		n := i + 1
		h := strings.ToLower(strings.TrimPrefix(strings.TrimSpace(fe.SHA256), "sha256:"))
		b, err := hex.DecodeString(h)
		if err != nil || len(b) != sha256.Size {
			problems = append(problems, fmt.Sprintf("token %d: sha256 must be 64 hex digits (api hash-token <token> prints it)", n))
			continue
		}
		if prev, dup := seen[h]; dup {
			problems = append(problems, fmt.Sprintf("token %d: the same hash as token %d", n, prev))
			continue
		}
		seen[h] = n
		kind, _, err := approval.ParsePrincipal(fe.Principal)
		if err != nil || kind == approval.KindSystem {
			problems = append(problems, fmt.Sprintf("token %d: principal %q must be user:<id> or service:<id>", n, fe.Principal))
			continue
		}
		var roles []string
		for _, r := range fe.Roles {
			if r != RoleOnBehalf && r != RoleAdmin {
				problems = append(problems, fmt.Sprintf("token %d: unknown role %q (known: %s, %s)", n, r, RoleOnBehalf, RoleAdmin))
				continue
			}
			roles = append(roles, r)
		}
		e := entry{principal: Principal{ID: fe.Principal, Kind: kind, Roles: roles}}
		copy(e.hash[:], b)
		t.entries = append(t.entries, e)
	}
	if len(f.Tokens) == 0 {
		problems = append(problems, "no tokens: the file must list at least one under tokens:")
	}
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "; "))
	}
	return t, nil
}

package wire

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"time"
)

// Authenticated commands (docs/architecture.md, "Authenticated
// commands"): every command carries, in the authkeyid and authsig
// extension attributes, an Ed25519 signature by the key of the service
// that produced it. The decider refuses, as unauthenticated, a command
// whose signature is missing or does not verify with a published service
// key (infra/keys/service-keys.json), or whose signer may not speak as its
// actor.

// commandDomain opens every string a command signature signs, so that it
// can never be mistaken for a seal's (sealDomain) or anything else's.
const commandDomain = "assent-command-v1"

// ServiceKeysFormat names the format of the published service keys file.
const ServiceKeysFormat = "assent-service-keys-v1"

// RoleOnBehalf lets a service key sign commands whose actor (or a submit's
// requester) is another user or service principal: the api, the Slack
// gateway and the console speak for the people they authenticated.
const RoleOnBehalf = "on_behalf"

// ErrNoCommandKey is returned by SignCommand without a signer.
var ErrNoCommandKey = errors.New("wire: no command signing key: every command must be signed (ASSENT_COMMAND_KEY_FILE and ASSENT_COMMAND_KEY_ID, infra/keys/README.md)")

// ErrCommandAuth is wrapped by every error CommandKeys.Verify returns.
var ErrCommandAuth = errors.New("wire: command is not authenticated")

// servicePrincipal is what a service key may speak as: a user or a
// service principal (system principals are the deciders', whose key is a
// seal key).
var servicePrincipal = regexp.MustCompile(`^(user|service):[^\s:][^\s]*$`)

// ValidServicePrincipal reports whether a service key may speak as p: a
// user or a service principal.
func ValidServicePrincipal(p string) bool { return servicePrincipal.MatchString(p) }

// CommandMessage is the canonical string a command signature signs (see
// schemas/README.md): the domain, the id, type, source, subject, actor,
// commandid and time attributes (the time formatted exactly as Marshal
// writes it), and the lowercase hex SHA-256 of the data bytes exactly as
// they are in the record, separated by eight "\n", no trailing newline.
// An absent attribute is the empty string.
func CommandMessage(env Envelope) []byte {
	sum := sha256.Sum256(env.Data)
	b := make([]byte, 0, 256+len(env.Actor)+len(env.Subject))
	for _, s := range []string{commandDomain, env.ID, env.Type, env.Source, env.Subject, env.Actor, env.CommandID} {
		b = append(b, s...)
		b = append(b, '\n')
	}
	b = env.Time.UTC().AppendFormat(b, timeLayout)
	b = append(b, '\n')
	return hex.AppendEncode(b, sum[:])
}

// SignCommand returns env signed by s: its data compacted as Marshal will
// write it, its time in UTC, and authkeyid and authsig set. Sign last:
// any later change to a signed attribute or to the data breaks the
// signature.
func SignCommand(s *Signer, env Envelope) (Envelope, error) {
	if s == nil {
		return Envelope{}, ErrNoCommandKey
	}
	if len(env.Data) > 0 {
		var buf bytes.Buffer
		if err := json.Compact(&buf, env.Data); err != nil {
			return Envelope{}, fmt.Errorf("%w: data: %w", ErrInvalidEnvelope, err)
		}
		env.Data = buf.Bytes()
	}
	env.Time = env.Time.UTC()
	env.AuthKeyID = s.keyID
	env.AuthSig = base64.StdEncoding.EncodeToString(ed25519.Sign(s.key, CommandMessage(env)))
	return env, nil
}

// ServiceKey is one entry of the published service keys file.
type ServiceKey struct {
	KeyID     string `json:"key_id"`
	Algorithm string `json:"algorithm"`  // "ed25519"
	PublicKey string `json:"public_key"` // standard base64 of the 32-byte key
	// Principal is who the key speaks as: the actor of the commands it
	// signs, such as "service:api" or "service:billing".
	Principal string `json:"principal"`
	// Roles: only RoleOnBehalf, which lets the key name another actor.
	Roles []string `json:"roles,omitempty"`
	// NotBefore and NotAfter, if set, bound the command times the key may
	// sign: a retired key cannot vouch for a command dated after its
	// retirement.
	NotBefore *time.Time `json:"not_before,omitempty"`
	NotAfter  *time.Time `json:"not_after,omitempty"`
	Comment   string     `json:"comment,omitempty"`
}

// ServiceKeysFile is the published service keys file.
type ServiceKeysFile struct {
	Format string       `json:"format"` // ServiceKeysFormat
	Keys   []ServiceKey `json:"keys"`
}

// ServiceKeyRing holds the public keys commands may be signed with.
type ServiceKeyRing struct {
	keys map[string]serviceKey
}

type serviceKey struct {
	ringKey
	principal string
	onBehalf  bool
}

// ParseServiceKeyRing reads a service keys file (ServiceKeysFile as JSON),
// refusing unknown fields and roles, duplicate ids, malformed keys and
// principals that are not user or service principals.
func ParseServiceKeyRing(raw []byte) (*ServiceKeyRing, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var f ServiceKeysFile
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("wire: service keys: %w", err)
	}
	if f.Format != ServiceKeysFormat {
		return nil, fmt.Errorf("wire: service keys: format is %q, want %q", f.Format, ServiceKeysFormat)
	}
	ring := &ServiceKeyRing{keys: map[string]serviceKey{}}
	for i, k := range f.Keys {
		if !keyIDPattern.MatchString(k.KeyID) {
			return nil, fmt.Errorf("wire: service keys: key %d: bad key_id %q", i, k.KeyID)
		}
		if k.Algorithm != AlgorithmEd25519 {
			return nil, fmt.Errorf("wire: service keys: key %s: algorithm %q, want %q", k.KeyID, k.Algorithm, AlgorithmEd25519)
		}
		pub, err := base64.StdEncoding.DecodeString(k.PublicKey)
		if err != nil || len(pub) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("wire: service keys: key %s: public_key is not %d bytes of standard base64", k.KeyID, ed25519.PublicKeySize)
		}
		if !servicePrincipal.MatchString(k.Principal) {
			return nil, fmt.Errorf("wire: service keys: key %s: principal %q is not a user: or service: principal", k.KeyID, k.Principal)
		}
		for _, r := range k.Roles {
			if r != RoleOnBehalf {
				return nil, fmt.Errorf("wire: service keys: key %s: unknown role %q (known: %s)", k.KeyID, r, RoleOnBehalf)
			}
		}
		if _, dup := ring.keys[k.KeyID]; dup {
			return nil, fmt.Errorf("wire: service keys: key_id %s appears twice", k.KeyID)
		}
		ring.keys[k.KeyID] = serviceKey{
			ringKey:   ringKey{pub: pub, notBefore: k.NotBefore, notAfter: k.NotAfter},
			principal: k.Principal, onBehalf: slices.Contains(k.Roles, RoleOnBehalf),
		}
	}
	return ring, nil
}

// LoadServiceKeyRing reads a service keys file.
func LoadServiceKeyRing(path string) (*ServiceKeyRing, error) {
	raw, err := os.ReadFile(path) //nolint:gosec // the operator names the keys file
	if err != nil {
		return nil, fmt.Errorf("wire: service keys: %w", err)
	}
	ring, err := ParseServiceKeyRing(raw)
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, path)
	}
	return ring, nil
}

// Len is the number of keys.
func (r *ServiceKeyRing) Len() int {
	if r == nil {
		return 0
	}
	return len(r.keys)
}

// CommandKeys are the keys commands are verified with: the published
// service keys, and the deciders' seal keys, which sign the deciders' own
// commands (the timers' expiries) as system:decider.
type CommandKeys struct {
	Services *ServiceKeyRing
	Deciders *KeyRing
}

// CommandSigner is who signed a command.
type CommandSigner struct {
	KeyID     string
	Principal string
	// OnBehalf: the key may name another user or service principal.
	OnBehalf bool
}

// MayName reports whether the signer may put p in a command as its actor
// or as a submit's requester: its own principal always; another user or
// service principal only with the on_behalf role; a system principal
// never (only a decider's key speaks as system:decider).
func (s CommandSigner) MayName(p string) bool {
	return p == s.Principal || (s.OnBehalf && servicePrincipal.MatchString(p))
}

// Verify authenticates a command envelope as read: it is signed
// (authkeyid, authsig), by a published key valid at the command's time,
// the signature verifies over CommandMessage, and the signer may name the
// command's actor. A key id in both rings is refused: it is ambiguous.
func (k CommandKeys) Verify(env Envelope) (CommandSigner, error) {
	if env.AuthKeyID == "" || env.AuthSig == "" {
		return CommandSigner{}, fmt.Errorf("%w: the command is not signed (no authkeyid and authsig)", ErrCommandAuth)
	}
	var (
		rk     ringKey
		signer = CommandSigner{KeyID: env.AuthKeyID}
		inSvc  bool
	)
	if k.Services != nil {
		var sk serviceKey
		sk, inSvc = k.Services.keys[env.AuthKeyID]
		rk, signer.Principal, signer.OnBehalf = sk.ringKey, sk.principal, sk.onBehalf
	}
	dk, inDecider := ringKey{}, false
	if k.Deciders != nil {
		dk, inDecider = k.Deciders.keys[env.AuthKeyID]
	}
	switch {
	case inSvc && inDecider:
		return CommandSigner{}, fmt.Errorf("%w: key id %q is both a service key and a decider key", ErrCommandAuth, env.AuthKeyID)
	case inDecider:
		rk, signer.Principal = dk, SealActor
	case !inSvc:
		return CommandSigner{}, fmt.Errorf("%w: key id %q is not a published service or decider key", ErrCommandAuth, env.AuthKeyID)
	}
	t := env.Time
	switch {
	case rk.notBefore != nil && t.Before(*rk.notBefore):
		return CommandSigner{}, fmt.Errorf("%w: key %q is valid from %s, the command is dated %s", ErrCommandAuth, env.AuthKeyID, rk.notBefore.Format(time.RFC3339), t.Format(time.RFC3339Nano))
	case rk.notAfter != nil && t.After(*rk.notAfter):
		return CommandSigner{}, fmt.Errorf("%w: key %q was retired at %s, the command is dated %s", ErrCommandAuth, env.AuthKeyID, rk.notAfter.Format(time.RFC3339), t.Format(time.RFC3339Nano))
	}
	sig, err := base64.StdEncoding.DecodeString(env.AuthSig)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return CommandSigner{}, fmt.Errorf("%w: authsig is not %d bytes of standard base64", ErrCommandAuth, ed25519.SignatureSize)
	}
	if !ed25519.Verify(rk.pub, CommandMessage(env), sig) {
		return CommandSigner{}, fmt.Errorf("%w: the signature by key %q does not verify (the command was altered, or not signed by that key)", ErrCommandAuth, env.AuthKeyID)
	}
	if !signer.MayName(env.Actor) {
		why := "it has no " + RoleOnBehalf + " role"
		if signer.OnBehalf {
			why = "no service key may speak as a system principal"
		}
		return CommandSigner{}, fmt.Errorf("%w: key %q speaks as %s and may not act as %q: %s", ErrCommandAuth, env.AuthKeyID, signer.Principal, env.Actor, why)
	}
	return signer, nil
}

package wire

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"regexp"
	"time"
)

// keyIDPattern is the schema's pattern for data.key_id.
var keyIDPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// Signer signs seals with one Ed25519 key, named by its key id.
type Signer struct {
	keyID string
	key   ed25519.PrivateKey
}

// NewSigner returns a signer for key, named keyID.
func NewSigner(keyID string, key ed25519.PrivateKey) (*Signer, error) {
	if !keyIDPattern.MatchString(keyID) {
		return nil, fmt.Errorf("eventlog: key id %q: use 1 to 128 of A-Z a-z 0-9 . _ : -", keyID)
	}
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("eventlog: key %q is not an Ed25519 private key", keyID)
	}
	return &Signer{keyID: keyID, key: key}, nil
}

// KeyID names the signer's key.
func (s *Signer) KeyID() string { return s.keyID }

// Public is the signer's public key.
func (s *Signer) Public() ed25519.PublicKey { return s.key.Public().(ed25519.PublicKey) }

// LoadSigner reads an Ed25519 private key from a PEM file holding a PKCS #8
// "PRIVATE KEY" block, as `openssl genpkey -algorithm ed25519` or
// `auditor keygen` write it.
func LoadSigner(keyID, path string) (*Signer, error) {
	raw, err := os.ReadFile(path) //nolint:gosec // the operator names the key file
	if err != nil {
		return nil, fmt.Errorf("wire: signing key: %w", err)
	}
	key, err := ParsePrivateKeyPEM(raw)
	if err != nil {
		return nil, fmt.Errorf("wire: signing key %s: %w", path, err)
	}
	return NewSigner(keyID, key)
}

// ParsePrivateKeyPEM decodes a PKCS #8 PEM Ed25519 private key.
func ParsePrivateKeyPEM(raw []byte) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(raw)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("no PEM \"PRIVATE KEY\" block; create one with `openssl genpkey -algorithm ed25519` or `auditor keygen`")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("PKCS #8: %w", err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("the key is a %T, not Ed25519", k)
	}
	return ek, nil
}

// MarshalPrivateKeyPEM encodes key as a PKCS #8 PEM block.
func MarshalPrivateKeyPEM(key ed25519.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("eventlog: encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// KeysFormat names the format of the published public keys file.
const KeysFormat = "assent-checkpoint-keys-v1"

// PublicKey is one entry of the published public keys file.
type PublicKey struct {
	KeyID     string `json:"key_id"`
	Algorithm string `json:"algorithm"`  // "ed25519"
	PublicKey string `json:"public_key"` // standard base64 of the 32-byte key
	// NotBefore and NotAfter, if set, bound the seal times the key may
	// sign: a retired key cannot vouch for a seal dated after
	// its retirement, even if it leaks later.
	NotBefore *time.Time `json:"not_before,omitempty"`
	NotAfter  *time.Time `json:"not_after,omitempty"`
	Comment   string     `json:"comment,omitempty"`
}

// KeysFile is the published public keys file: what an auditor needs to
// verify seals offline, and every reader to authenticate the log.
type KeysFile struct {
	Format string      `json:"format"` // KeysFormat
	Keys   []PublicKey `json:"keys"`
}

// KeyRing holds the public keys that seals may be signed with.
type KeyRing struct {
	keys map[string]ringKey
}

type ringKey struct {
	pub                 ed25519.PublicKey
	notBefore, notAfter *time.Time
}

// ParseKeyRing reads a public keys file (KeysFile as JSON), refusing
// unknown fields, duplicate ids and malformed keys.
func ParseKeyRing(raw []byte) (*KeyRing, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var f KeysFile
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("eventlog: public keys: %w", err)
	}
	if f.Format != KeysFormat {
		return nil, fmt.Errorf("eventlog: public keys: format is %q, want %q", f.Format, KeysFormat)
	}
	ring := &KeyRing{keys: map[string]ringKey{}}
	for i, k := range f.Keys {
		if !keyIDPattern.MatchString(k.KeyID) {
			return nil, fmt.Errorf("eventlog: public keys: key %d: bad key_id %q", i, k.KeyID)
		}
		if k.Algorithm != AlgorithmEd25519 {
			return nil, fmt.Errorf("eventlog: public keys: key %s: algorithm %q, want %q", k.KeyID, k.Algorithm, AlgorithmEd25519)
		}
		pub, err := base64.StdEncoding.DecodeString(k.PublicKey)
		if err != nil || len(pub) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("eventlog: public keys: key %s: public_key is not %d bytes of standard base64", k.KeyID, ed25519.PublicKeySize)
		}
		if _, dup := ring.keys[k.KeyID]; dup {
			return nil, fmt.Errorf("eventlog: public keys: key_id %s appears twice", k.KeyID)
		}
		ring.keys[k.KeyID] = ringKey{pub: pub, notBefore: k.NotBefore, notAfter: k.NotAfter}
	}
	return ring, nil
}

// LoadKeyRing reads a public keys file.
func LoadKeyRing(path string) (*KeyRing, error) {
	raw, err := os.ReadFile(path) //nolint:gosec // the auditor names the keys file
	if err != nil {
		return nil, fmt.Errorf("eventlog: public keys: %w", err)
	}
	ring, err := ParseKeyRing(raw)
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, path)
	}
	return ring, nil
}

// NewKeyRing returns a ring of keys without time bounds (for tests and
// tools that hold the keys already).
func NewKeyRing(keys map[string]ed25519.PublicKey) *KeyRing {
	ring := &KeyRing{keys: map[string]ringKey{}}
	for id, k := range keys {
		ring.keys[id] = ringKey{pub: k}
	}
	return ring
}

// Len is the number of keys.
func (r *KeyRing) Len() int {
	if r == nil {
		return 0
	}
	return len(r.keys)
}

// Lookup returns the key named id, if it may sign at time t.
func (r *KeyRing) Lookup(id string, t time.Time) (ed25519.PublicKey, error) {
	if r == nil {
		return nil, fmt.Errorf("no public keys configured to verify key %q", id)
	}
	k, ok := r.keys[id]
	switch {
	case !ok:
		return nil, fmt.Errorf("key id %q is not in the published public keys", id)
	case k.notBefore != nil && t.Before(*k.notBefore):
		return nil, fmt.Errorf("key %q is valid from %s, the seal is dated %s", id, k.notBefore.Format(time.RFC3339), t.Format(time.RFC3339Nano))
	case k.notAfter != nil && t.After(*k.notAfter):
		return nil, fmt.Errorf("key %q was retired at %s, the seal is dated %s", id, k.notAfter.Format(time.RFC3339), t.Format(time.RFC3339Nano))
	}
	return k.pub, nil
}

// Package webhook delivers events as Standard Webhooks: a structured
// CloudEvent in the body, signed with HMAC-SHA256 under each of the
// target's secrets, over an HTTP client that refuses private addresses,
// verifies TLS, never follows a redirect, bounds what it reads and times
// out every call.
package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// SecretPrefix starts every secret in the Standard Webhooks form.
const SecretPrefix = "whsec_"

// Secret is one signing key. Its String never shows the key.
type Secret struct{ key []byte }

// ParseSecret reads a secret in the whsec_<base64> form: 24 to 64 bytes of
// key, as the specification recommends.
func ParseSecret(s string) (Secret, error) {
	b64, ok := strings.CutPrefix(strings.TrimSpace(s), SecretPrefix)
	if !ok {
		return Secret{}, errors.New("a webhook secret starts with whsec_")
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return Secret{}, errors.New("a webhook secret is whsec_ followed by base64")
	}
	if len(key) < 24 || len(key) > 64 {
		return Secret{}, fmt.Errorf("a webhook secret holds 24 to 64 bytes of key, this one %d", len(key))
	}
	return Secret{key: key}, nil
}

// String hides the key, so that a secret printed by mistake shows nothing.
func (Secret) String() string { return "whsec_[redacted]" }

// GoString hides the key from %#v too.
func (Secret) GoString() string { return "webhook.Secret{[redacted]}" }

// Sign returns the webhook-signature header value: one "v1,<base64>"
// signature of "id.timestamp.body" per secret, separated by spaces, so
// that a receiver in the middle of a rotation verifies with either key.
func Sign(secrets []Secret, id string, timestamp int64, body []byte) string {
	sigs := make([]string, 0, len(secrets))
	for _, s := range secrets {
		mac := hmac.New(sha256.New, s.key)
		mac.Write([]byte(id))
		mac.Write([]byte{'.'})
		mac.Write([]byte(strconv.FormatInt(timestamp, 10)))
		mac.Write([]byte{'.'})
		mac.Write(body)
		sigs = append(sigs, "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	}
	return strings.Join(sigs, " ")
}

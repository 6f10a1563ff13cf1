// Package session keeps a signed-in person in an encrypted cookie, so that
// any console replica that reads the same key file serves them: nothing
// is stored on a replica, and losing one signs nobody out.
//
// A cookie is base64url(nonce || AES-256-GCM(key, JSON)), with the
// cookie's name as additional data so that one kind of cookie cannot be
// replayed as another. The first key seals; every key opens, so a key is
// rotated by adding the new one first, and removing the old one once
// every session sealed with it has expired (ASSENT_CONSOLE_SESSION_TTL).
//
// Signing out deletes the cookie. A copy of the cookie taken before that
// stays valid until it expires: keep the lifetime short, and rotate the
// key (which signs everyone out) if cookies may have leaked.
package session

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Cookie names. Behind TLS they carry the __Host- prefix, which a browser
// accepts only with Secure, Path=/ and no Domain: no sibling domain can
// set or shadow them.
const (
	nameSession = "assent_session"
	nameFlow    = "assent_signin"
	// MaxCookie bounds what Open will look at.
	MaxCookie = 3800
)

// ErrInvalid is returned for a cookie that is missing, malformed, forged,
// sealed with an unknown key, or expired.
var ErrInvalid = errors.New("session: invalid or expired")

// Session is a signed-in person.
type Session struct {
	Principal string    `json:"p"` // user:<email>
	Name      string    `json:"n,omitempty"`
	Groups    []string  `json:"g,omitempty"` // the IdP groups the console maps to roles
	Issued    time.Time `json:"i"`
	Expires   time.Time `json:"e"`
	CSRF      []byte    `json:"c"` // per-session secret the CSRF tokens derive from
}

// CSRFToken is the token every form of this session carries.
func (s *Session) CSRFToken() string {
	m := hmac.New(sha256.New, s.CSRF)
	m.Write([]byte("assent/console csrf v1"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// CheckCSRF reports whether token is this session's CSRF token, in
// constant time.
func (s *Session) CheckCSRF(token string) bool {
	want := s.CSRFToken()
	return len(token) == len(want) && subtle.ConstantTimeCompare([]byte(token), []byte(want)) == 1
}

// Flow is an OIDC sign-in in progress: what the callback must match.
type Flow struct {
	State    string    `json:"s"`
	Nonce    string    `json:"n"`
	Verifier string    `json:"v"` // PKCE
	Next     string    `json:"x"` // a local path to return to
	Expires  time.Time `json:"e"`
}

// Jar seals and opens the console's cookies.
type Jar struct {
	aeads  []cipher.AEAD
	secure bool
	now    func() time.Time
}

// NewJar returns a jar with keys (32 bytes each, the first seals). secure
// sets the Secure attribute and the __Host- prefix (the console is served
// over https).
func NewJar(keys [][]byte, secure bool, now func() time.Time) (*Jar, error) {
	if len(keys) == 0 {
		return nil, errors.New("session: no key")
	}
	if now == nil {
		now = time.Now
	}
	j := &Jar{secure: secure, now: now}
	for i, k := range keys {
		if len(k) != 32 {
			return nil, fmt.Errorf("session: key %d is %d bytes, not 32", i+1, len(k))
		}
		block, err := aes.NewCipher(k)
		if err != nil {
			return nil, fmt.Errorf("session: %w", err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("session: %w", err)
		}
		j.aeads = append(j.aeads, aead)
	}
	return j, nil
}

// NewSecret returns n random bytes.
func NewSecret(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return b
}

// RandomToken returns a random URL-safe string of 32 bytes of entropy.
func RandomToken() string { return base64.RawURLEncoding.EncodeToString(NewSecret(32)) }

func (j *Jar) name(base string) string {
	if j.secure {
		return "__Host-" + base
	}
	return base
}

func (j *Jar) seal(name string, v any) (string, error) {
	plain, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("session: %w", err)
	}
	aead := j.aeads[0]
	nonce := NewSecret(aead.NonceSize())
	return base64.RawURLEncoding.EncodeToString(aead.Seal(nonce, nonce, plain, []byte(name))), nil
}

func (j *Jar) open(name, value string, v any) error {
	if value == "" || len(value) > MaxCookie {
		return ErrInvalid
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(value)
	if err != nil {
		return ErrInvalid
	}
	for _, aead := range j.aeads {
		if len(raw) < aead.NonceSize()+aead.Overhead() {
			return ErrInvalid
		}
		plain, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], []byte(name))
		if err != nil {
			continue
		}
		if json.Unmarshal(plain, v) != nil {
			return ErrInvalid
		}
		return nil
	}
	return ErrInvalid
}

func (j *Jar) set(w http.ResponseWriter, name, value string, maxAge time.Duration) {
	http.SetCookie(w, &http.Cookie{ //nolint:gosec // G124: HttpOnly and SameSite=Lax always; Secure whenever the console is served over https (j.secure)
		Name: name, Value: value, Path: "/", MaxAge: int(maxAge.Seconds()),
		HttpOnly: true, Secure: j.secure, SameSite: http.SameSiteLaxMode,
	})
}

func (j *Jar) clear(w http.ResponseWriter, name string) {
	http.SetCookie(w, &http.Cookie{ //nolint:gosec // G124: a deletion; the same attributes as set, Secure behind https
		Name: name, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: j.secure, SameSite: http.SameSiteLaxMode,
	})
}

// Start seals s into the session cookie.
func (j *Jar) Start(w http.ResponseWriter, s *Session) error {
	v, err := j.seal(j.name(nameSession), s)
	if err != nil {
		return err
	}
	if len(v) > MaxCookie {
		return errors.New("session: the session does not fit in a cookie")
	}
	j.set(w, j.name(nameSession), v, s.Expires.Sub(j.now()))
	return nil
}

// Get returns the request's session, or ErrInvalid.
func (j *Jar) Get(r *http.Request) (*Session, error) {
	c, err := r.Cookie(j.name(nameSession))
	if err != nil {
		return nil, ErrInvalid
	}
	var s Session
	if err := j.open(j.name(nameSession), c.Value, &s); err != nil {
		return nil, err
	}
	if s.Principal == "" || len(s.CSRF) < 16 || !j.now().Before(s.Expires) {
		return nil, ErrInvalid
	}
	return &s, nil
}

// End deletes the session cookie.
func (j *Jar) End(w http.ResponseWriter) { j.clear(w, j.name(nameSession)) }

// StartFlow seals a sign-in in progress into its own short-lived cookie.
func (j *Jar) StartFlow(w http.ResponseWriter, f *Flow) error {
	v, err := j.seal(j.name(nameFlow), f)
	if err != nil {
		return err
	}
	j.set(w, j.name(nameFlow), v, f.Expires.Sub(j.now()))
	return nil
}

// TakeFlow returns the sign-in in progress and deletes its cookie: a flow
// is used once.
func (j *Jar) TakeFlow(w http.ResponseWriter, r *http.Request) (*Flow, error) {
	c, err := r.Cookie(j.name(nameFlow))
	if err != nil {
		return nil, ErrInvalid
	}
	j.clear(w, j.name(nameFlow))
	var f Flow
	if err := j.open(j.name(nameFlow), c.Value, &f); err != nil {
		return nil, err
	}
	if f.State == "" || f.Verifier == "" || !j.now().Before(f.Expires) {
		return nil, ErrInvalid
	}
	return &f, nil
}

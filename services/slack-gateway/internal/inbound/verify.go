package inbound

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The reasons a request is refused before anything reads it.
var (
	ErrMissingSignature = errors.New("inbound: X-Slack-Signature or X-Slack-Request-Timestamp is missing")
	ErrBadSignature     = errors.New("inbound: the signature does not match the body")
	ErrStale            = errors.New("inbound: the request timestamp is more than 5 minutes from now")
	ErrReplayed         = errors.New("inbound: this signed request was already received")
	ErrReplayCacheFull  = errors.New("inbound: the replay cache is full")
)

// Window is how far a request's timestamp may be from now, as Slack
// recommends; a signature seen within it is a replay.
const Window = 5 * time.Minute

// Verifier checks Slack's v0 request signatures
// (https://api.slack.com/authentication/verifying-requests-from-slack) and
// refuses replays.
//
// The replay cache is per replica: a replay sent to another replica within
// the window passes this check, but carries the same derived command id as
// the original, so the decider adds nothing for it (I2).
type Verifier struct {
	secret []byte
	now    func() time.Time
	max    int

	mu    sync.Mutex
	seen  map[string]time.Time // signature → when it stops mattering
	swept time.Time
}

// NewVerifier returns a Verifier; max bounds the replay cache.
func NewVerifier(secret string, now func() time.Time, max int) *Verifier {
	if now == nil {
		now = time.Now
	}
	if max <= 0 {
		max = 1 << 20
	}
	return &Verifier{secret: []byte(secret), now: now, max: max, seen: map[string]time.Time{}}
}

// Verify checks the signature over the exact raw body, the timestamp and
// replays. Only a request that passes is remembered.
func (v *Verifier) Verify(h http.Header, body []byte) error {
	sig, ts := h.Get("X-Slack-Signature"), h.Get("X-Slack-Request-Timestamp")
	if sig == "" || ts == "" {
		return ErrMissingSignature
	}
	secs, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: timestamp %q is not a number", ErrStale, ts)
	}
	now := v.now()
	at := time.Unix(secs, 0)
	if d := now.Sub(at); d > Window || d < -Window {
		return ErrStale
	}
	got, ok := strings.CutPrefix(sig, "v0=")
	if !ok {
		return ErrBadSignature
	}
	gotMAC, err := hex.DecodeString(got)
	if err != nil || len(gotMAC) != sha256.Size {
		return ErrBadSignature
	}
	mac := hmac.New(sha256.New, v.secret)
	mac.Write([]byte("v0:" + ts + ":"))
	mac.Write(body)
	if !hmac.Equal(mac.Sum(nil), gotMAC) {
		return ErrBadSignature
	}
	return v.remember(got, at.Add(Window+time.Minute), now)
}

func (v *Verifier) remember(sig string, until, now time.Time) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if now.Sub(v.swept) > time.Minute || len(v.seen) >= v.max {
		for k, u := range v.seen {
			if now.After(u) {
				delete(v.seen, k)
			}
		}
		v.swept = now
	}
	if _, dup := v.seen[sig]; dup {
		return ErrReplayed
	}
	if len(v.seen) >= v.max {
		return ErrReplayCacheFull
	}
	v.seen[sig] = until
	return nil
}

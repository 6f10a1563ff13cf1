package session_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/services/console/internal/session"
)

func key(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

func newSession(now time.Time) *session.Session {
	return &session.Session{Principal: "user:alice@example.com", Groups: []string{"assent-auditors"}, Issued: now,
		Expires: now.Add(time.Hour), CSRF: session.NewSecret(32)}
}

// carry moves the cookies a response set into a new request.
func carry(rec *httptest.ResponseRecorder) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	for _, c := range rec.Result().Cookies() {
		r.AddCookie(c)
	}
	return r
}

func TestSessionRoundTripAndCookieAttributes(t *testing.T) {
	t.Parallel()
	c := &clock{now: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}
	for _, secure := range []bool{false, true} {
		jar, err := session.NewJar([][]byte{key(1)}, secure, c.Now)
		require.NoError(t, err)
		rec := httptest.NewRecorder()
		s := newSession(c.now)
		require.NoError(t, jar.Start(rec, s))
		cookies := rec.Result().Cookies()
		require.Len(t, cookies, 1)
		ck := cookies[0]
		require.True(t, ck.HttpOnly, "HttpOnly")
		require.Equal(t, http.SameSiteLaxMode, ck.SameSite, "SameSite=Lax")
		require.Equal(t, "/", ck.Path)
		require.Empty(t, ck.Domain)
		require.Equal(t, secure, ck.Secure, "Secure behind TLS")
		require.Equal(t, secure, strings.HasPrefix(ck.Name, "__Host-"), "the __Host- prefix behind TLS")
		require.Equal(t, 3600, ck.MaxAge)
		require.NotContains(t, ck.Value, "alice", "the session is encrypted, not only signed")

		got, err := jar.Get(carry(rec))
		require.NoError(t, err)
		require.Equal(t, s.Principal, got.Principal)
		require.Equal(t, s.Groups, got.Groups)
		require.True(t, got.CheckCSRF(s.CSRFToken()))
		require.False(t, got.CheckCSRF(""))
		require.False(t, got.CheckCSRF(newSession(c.now).CSRFToken()), "another session's token")
	}
}

func TestSessionRefusesForgedExpiredAndForeignCookies(t *testing.T) {
	t.Parallel()
	c := &clock{now: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}
	jar, err := session.NewJar([][]byte{key(1)}, false, c.Now)
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	require.NoError(t, jar.Start(rec, newSession(c.now)))
	good := rec.Result().Cookies()[0]

	// One bit flipped anywhere in the value is refused.
	for i := range len(good.Value) {
		v := []byte(good.Value)
		if v[i] == 'A' {
			v[i] = 'B'
		} else {
			v[i] = 'A'
		}
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.AddCookie(&http.Cookie{ //nolint:gosec // G124: a request cookie in a test, carrying a forged value
			Name: good.Name, Value: string(v)})
		_, err := jar.Get(r)
		require.ErrorIs(t, err, session.ErrInvalid, "byte %d changed", i)
	}

	// Sealed with a key this jar does not have.
	other, err := session.NewJar([][]byte{key(2)}, false, c.Now)
	require.NoError(t, err)
	_, err = other.Get(carry(rec))
	require.ErrorIs(t, err, session.ErrInvalid)

	// Expired.
	c.now = c.now.Add(time.Hour)
	_, err = jar.Get(carry(rec))
	require.ErrorIs(t, err, session.ErrInvalid)
	c.now = c.now.Add(-time.Hour)

	// A sign-in flow cookie is not a session, even with the same key.
	frec := httptest.NewRecorder()
	require.NoError(t, jar.StartFlow(frec, &session.Flow{State: "s", Nonce: "n", Verifier: "v", Next: "/", Expires: c.now.Add(time.Minute)}))
	flow := frec.Result().Cookies()[0]
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.AddCookie(&http.Cookie{ //nolint:gosec // G124: a request cookie in a test, carrying a forged value
		Name: good.Name, Value: flow.Value})
	_, err = jar.Get(r)
	require.ErrorIs(t, err, session.ErrInvalid, "the cookie's name is bound into the seal")

	// Garbage and oversized values.
	for _, v := range []string{"", "x", "!!!", strings.Repeat("A", session.MaxCookie+1)} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.AddCookie(&http.Cookie{ //nolint:gosec // G124: a request cookie in a test, carrying a forged value
			Name: good.Name, Value: v})
		_, err := jar.Get(r)
		require.ErrorIs(t, err, session.ErrInvalid, "%q", v)
	}
}

func TestSessionKeyRotation(t *testing.T) {
	t.Parallel()
	now := time.Now()
	old, err := session.NewJar([][]byte{key(1)}, false, nil)
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	require.NoError(t, old.Start(rec, newSession(now)))

	// The new key seals; the old one still opens what it sealed.
	rotated, err := session.NewJar([][]byte{key(2), key(1)}, false, nil)
	require.NoError(t, err)
	_, err = rotated.Get(carry(rec))
	require.NoError(t, err)
	rec2 := httptest.NewRecorder()
	require.NoError(t, rotated.Start(rec2, newSession(now)))
	_, err = old.Get(carry(rec2))
	require.ErrorIs(t, err, session.ErrInvalid, "new sessions are sealed with the new key")

	_, err = session.NewJar(nil, false, nil)
	require.Error(t, err)
	_, err = session.NewJar([][]byte{key(1)[:16]}, false, nil)
	require.Error(t, err, "keys are 32 bytes")
}

func TestFlowIsUsedOnce(t *testing.T) {
	t.Parallel()
	jar, err := session.NewJar([][]byte{key(1)}, true, nil)
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	require.NoError(t, jar.StartFlow(rec, &session.Flow{State: "s", Nonce: "n", Verifier: "v", Next: "/inbox", Expires: time.Now().Add(time.Minute)}))
	take := httptest.NewRecorder()
	f, err := jar.TakeFlow(take, carry(rec))
	require.NoError(t, err)
	require.Equal(t, "/inbox", f.Next)
	cleared := take.Result().Cookies()
	require.Len(t, cleared, 1)
	require.Equal(t, -1, cleared[0].MaxAge, "the flow cookie is deleted when used")
	require.Equal(t, "__Host-assent_signin", cleared[0].Name)
}

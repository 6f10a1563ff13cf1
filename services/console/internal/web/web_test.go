package web_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/auditindex"
	"github.com/assent-dev/assent/libs/command"
	"github.com/assent-dev/assent/libs/daemon"
	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/schemas"
	"github.com/assent-dev/assent/services/console/internal/live"
	"github.com/assent-dev/assent/services/console/internal/oidc"
	"github.com/assent-dev/assent/services/console/internal/session"
	"github.com/assent-dev/assent/services/console/internal/web"
	"github.com/assent-dev/assent/test/apifake"
	"github.com/assent-dev/assent/test/fakeoidc"
)

// noAudit is an audit projection that has read nothing yet.
type noAudit struct{}

func (noAudit) Events(auditindex.Query) ([]auditindex.Row, string, error) { return nil, "", nil }
func (noAudit) Request(string) (auditindex.Request, error) {
	return auditindex.Request{}, auditindex.ErrNotFound
}
func (noAudit) Scan(int32, func(auditindex.Row, wire.Envelope) error) error { return nil }
func (noAudit) Partitions(n int32) ([]auditindex.PartitionStatus, error) {
	return make([]auditindex.PartitionStatus, n), nil
}

type applied struct{}

func (applied) WaitOffset(context.Context, int32, int64) error { return nil }

type fixture struct {
	t       *testing.T
	url     string
	log     *apifake.Log
	jar     *session.Jar
	metrics *web.Metrics
	idp     *fakeoidc.Server
}

func newFixture(t *testing.T, rate float64) *fixture {
	t.Helper()
	log := apifake.New(t)
	jar, err := session.NewJar([][]byte{[]byte(strings.Repeat("k", 32))}, false, nil)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	idp, err := fakeoidc.Start(ln, "assent-console", "test-secret", fakeoidc.DemoUsers())
	require.NoError(t, err)
	t.Cleanup(func() { _ = idp.Shutdown() })

	srvLn, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	base := "http://" + srvLn.Addr().String()
	pub, _ := url.Parse(base)
	reg := daemon.NewRegistry()
	streams := live.NewLimit(10, 2)
	m := web.NewMetrics(reg, streams.Open)
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	srv := web.New(web.Config{
		Jar: jar,
		SignIn: oidc.New(oidc.Config{Issuer: idp.Issuer(), ClientID: "assent-console", ClientSecret: "test-secret",
			RedirectURL: base + "/auth/callback", Scopes: []string{"openid", "email", "profile", "groups"}, GroupsClaim: "groups"}),
		Store: log.Store, Projection: log, Audit: noAudit{}, Hub: live.NewHub(applied{}), Streams: streams,
		Sender: log, AuditorGroups: []string{fakeoidc.AuditorGroup}, Partitions: apifake.Partitions, PublicURL: pub,
		WriteWait: 5 * time.Second, RateLimit: rate, StreamLife: time.Minute, ExportMaxRows: 100,
		Logger: slog.New(slog.DiscardHandler), Registry: reg, Metrics: m, Done: done,
		Ready: func(context.Context) error { return nil },
	})
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hs.Serve(srvLn) }()
	t.Cleanup(func() { _ = hs.Close() })
	return &fixture{t: t, url: base, log: log, jar: jar, metrics: m, idp: idp}
}

// as returns a client signed in as principal (a session sealed by the
// server's own jar), and its CSRF token.
func (f *fixture) as(principal string, groups ...string) (*http.Client, string) {
	f.t.Helper()
	s := &session.Session{Principal: principal, Groups: groups, Issued: time.Now(), Expires: time.Now().Add(time.Hour), CSRF: session.NewSecret(32)}
	rec := httptest.NewRecorder()
	require.NoError(f.t, f.jar.Start(rec, s))
	cj, _ := cookiejar.New(nil)
	u, _ := url.Parse(f.url)
	cj.SetCookies(u, rec.Result().Cookies())
	return &http.Client{Jar: cj, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}, s.CSRFToken()
}

func (f *fixture) submit(rid, reason string) {
	f.t.Helper()
	w := command.Writer{Source: command.SourceAPI, Sender: f.log}
	c := w.New(wire.NewID(time.Now()), rid, "user:carol@example.com", approval.Submit{
		Action: approval.Action{Type: "deploy", Resource: "services/web", Environment: "production"}, Reason: reason})
	require.NoError(f.t, w.Send(f.t.Context(), c))
	require.Eventually(f.t, func() bool {
		st, ok, _ := f.log.Store.Get(rid)
		return ok && st.Status == approval.StatusPending
	}, 5*time.Second, 10*time.Millisecond)
}

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

func post(t *testing.T, c *http.Client, u string, form url.Values, header http.Header) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	require.NoError(t, err)
	return resp
}

var inlineScript = regexp.MustCompile(`<script(?:\s[^>]*)?>\s*[^<\s]`)

func TestSecurityHeadersAndNoInlineScript(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1000)
	f.submit("r-1", "ship it")
	alice, _ := f.as("user:alice@example.com")
	for _, path := range []string{"/login", "/inbox", "/mine", "/requests/r-1", "/nowhere"} {
		resp, err := alice.Get(f.url + path)
		require.NoError(t, err)
		page := body(t, resp)
		h := resp.Header
		csp := h.Get("Content-Security-Policy")
		require.Contains(t, csp, "script-src 'self'", path)
		require.Contains(t, csp, "style-src 'self'", path)
		require.Contains(t, csp, "default-src 'none'", path)
		require.Contains(t, csp, "frame-ancestors 'none'", path)
		require.Contains(t, csp, "form-action 'self'", path)
		require.NotContains(t, csp, "unsafe-inline", path)
		require.NotContains(t, csp, "unsafe-eval", path)
		require.Equal(t, "DENY", h.Get("X-Frame-Options"), path)
		require.Equal(t, "nosniff", h.Get("X-Content-Type-Options"), path)
		require.Equal(t, "same-origin", h.Get("Referrer-Policy"), path)
		require.False(t, inlineScript.MatchString(page), "%s has an inline script", path)
		require.NotContains(t, page, " style=", "%s has an inline style", path)
		require.NotRegexp(t, `\son[a-z]+=`, page, "%s has an inline event handler", path)
	}
	resp, err := alice.Get(f.url + "/inbox")
	require.NoError(t, err)
	require.Equal(t, "no-store", resp.Header.Get("Cache-Control"), "signed-in pages are not cached")
	_ = body(t, resp)
	resp, err = http.Get(f.url + "/static/htmx.min.js")
	require.NoError(t, err)
	require.Equal(t, "text/javascript; charset=utf-8", resp.Header.Get("Content-Type"))
	require.Contains(t, body(t, resp), "htmx")
}

func TestSignInWithPKCEThroughARealProvider(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1000)
	cj, _ := cookiejar.New(nil)
	c := &http.Client{Jar: cj, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	resp, err := c.Get(f.url + "/inbox")
	require.NoError(t, err)
	_ = body(t, resp)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Equal(t, "/login?next=%2Finbox", resp.Header.Get("Location"))

	resp, err = c.Get(f.url + "/auth/start?next=/mine")
	require.NoError(t, err)
	_ = body(t, resp)
	require.Equal(t, http.StatusFound, resp.StatusCode)
	auth, err := url.Parse(resp.Header.Get("Location"))
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(auth.String(), f.idp.AuthorizationEndpoint()), auth.String())
	q := auth.Query()
	require.Equal(t, "S256", q.Get("code_challenge_method"), "PKCE with S256")
	require.Len(t, q.Get("code_challenge"), 43)
	require.NotEmpty(t, q.Get("nonce"))
	require.NotEmpty(t, q.Get("state"))
	require.Equal(t, "code", q.Get("response_type"))
	require.Equal(t, f.url+"/auth/callback", q.Get("redirect_uri"))
	var flow *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == "assent_signin" {
			flow = ck
		}
	}
	require.NotNil(t, flow, "the flow is kept in a cookie")
	require.True(t, flow.HttpOnly)
	require.NotContains(t, flow.Value, q.Get("state"), "the state is sealed, not in clear")

	// The provider's page: choose bob.
	form := url.Values{}
	for k, v := range q {
		form[k] = v
	}
	form.Set("login_as", "bob@example.com")
	resp = post(t, c, f.idp.AuthorizationEndpoint(), form, nil)
	_ = body(t, resp)
	require.Equal(t, http.StatusFound, resp.StatusCode)
	cb := resp.Header.Get("Location")
	require.True(t, strings.HasPrefix(cb, f.url+"/auth/callback?"), cb)

	// A callback with the right code but a forged state is refused.
	forged, _ := url.Parse(cb)
	fq := forged.Query()
	fq.Set("state", "forged")
	forged.RawQuery = fq.Encode()
	cj2, _ := cookiejar.New(nil)
	u, _ := url.Parse(f.url)
	cj2.SetCookies(u, []*http.Cookie{flow})
	other := &http.Client{Jar: cj2, CheckRedirect: c.CheckRedirect}
	resp, err = other.Get(forged.String())
	require.NoError(t, err)
	require.Contains(t, body(t, resp), "This sign-in had expired")
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.InDelta(t, 1, testutil.ToFloat64(f.metrics.SignIns.WithLabelValues("state_invalid")), 0)

	resp, err = c.Get(cb)
	require.NoError(t, err)
	_ = body(t, resp)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, "signed in")
	require.Equal(t, "/mine", resp.Header.Get("Location"), "back to the page asked for")
	var sess *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == "assent_session" {
			sess = ck
		}
	}
	require.NotNil(t, sess)
	require.True(t, sess.HttpOnly)
	require.Equal(t, http.SameSiteLaxMode, sess.SameSite)
	require.InDelta(t, 1, testutil.ToFloat64(f.metrics.SignIns.WithLabelValues("ok")), 0)

	resp, err = c.Get(f.url + "/mine")
	require.NoError(t, err)
	page := body(t, resp)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, page, "Signed in as <strong>bob@example.com</strong>")

	// The callback cannot be replayed: the flow cookie was used up.
	resp, err = c.Get(cb)
	require.NoError(t, err)
	_ = body(t, resp)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
}

func TestSignInNeverRedirectsElsewhere(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1000)
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, next := range []string{"//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:alert(1)", "/%0d%0aSet-Cookie:x=1"} {
		resp, err := c.Get(f.url + "/login?next=" + url.QueryEscape(next))
		require.NoError(t, err)
		page := body(t, resp)
		m := regexp.MustCompile(`href="/auth/start\?next=([^"]*)"`).FindStringSubmatch(page)
		require.NotNil(t, m, next)
		got, err := url.QueryUnescape(strings.ReplaceAll(m[1], "&amp;", "&"))
		require.NoError(t, err)
		if next == "/%0d%0aSet-Cookie:x=1" {
			require.Equal(t, next, got, "a local path stays, escaped")
			continue
		}
		require.Equal(t, "/inbox", got, "%s is replaced by /inbox", next)
	}
}

func TestFormsNeedTheSessionsCSRFTokenAndThisOrigin(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1000)
	f.submit("r-1", "ship it")
	alice, token := f.as("user:alice@example.com")
	_, otherToken := f.as("user:alice@example.com")
	vote := f.url + "/requests/r-1/vote"
	for name, tc := range map[string]struct {
		form   url.Values
		header http.Header
	}{
		"no token":             {url.Values{"decision": {"approve"}}, nil},
		"another session's":    {url.Values{"decision": {"approve"}, "csrf": {otherToken}}, nil},
		"cross-site origin":    {url.Values{"decision": {"approve"}, "csrf": {token}}, http.Header{"Origin": {"https://evil.example"}}},
		"cross-site fetch":     {url.Values{"decision": {"approve"}, "csrf": {token}}, http.Header{"Sec-Fetch-Site": {"cross-site"}}},
		"no token, logout too": {url.Values{}, nil},
	} {
		u := vote
		if name == "no token, logout too" {
			u = f.url + "/logout"
		}
		resp := post(t, alice, u, tc.form, tc.header)
		require.Equal(t, http.StatusForbidden, resp.StatusCode, name)
		require.Contains(t, body(t, resp), "This form was refused", name)
	}
	require.Empty(t, f.log.Sent()[1:], "no vote was sent")
	require.InDelta(t, 5, testutil.ToFloat64(f.metrics.CSRF), 0)

	// With its token, from this origin, the same vote goes through the
	// one command path: a vote command, source assent/console, alice as
	// actor.
	resp := post(t, alice, vote, url.Values{"decision": {"approve"}, "csrf": {token}, "nonce": {session.RandomToken()}},
		http.Header{"Origin": {f.url}, "Sec-Fetch-Site": {"same-origin"}})
	_ = body(t, resp)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Equal(t, "/requests/r-1?done=approve", resp.Header.Get("Location"))
	sent := f.log.Sent()
	require.Len(t, sent, 2)
	require.Equal(t, approval.TypeVote, sent[1].Type)
	require.Equal(t, web.Source, sent[1].Source)
	st, _, err := f.log.Store.Get("r-1")
	require.NoError(t, err)
	require.Equal(t, approval.StatusApproved, st.Status)
	require.Equal(t, []string{"user:alice@example.com"}, st.DecidedBy)
	for _, env := range sent {
		raw, err := wire.Marshal(env)
		require.NoError(t, err)
		require.NoError(t, schemas.Validate(raw), "the command matches its JSON Schema: %s", raw)
	}
}

func TestARejectionNeedsACommentAndAResubmittedFormIsOneVote(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1000)
	f.submit("r-1", "ship it")
	alice, token := f.as("user:alice@example.com")
	resp := post(t, alice, f.url+"/requests/r-1/vote", url.Values{"decision": {"reject"}, "comment": {"   "}, "csrf": {token}}, nil)
	page := body(t, resp)
	require.Equal(t, http.StatusUnprocessableEntity, resp.StatusCode)
	require.Contains(t, page, "A rejection needs a comment")
	require.Contains(t, page, `aria-invalid="true"`)
	require.Len(t, f.log.Sent(), 1, "nothing was sent")

	nonce := session.RandomToken()
	form := url.Values{"decision": {"reject"}, "comment": {"not today"}, "csrf": {token}, "nonce": {nonce}}
	for range 2 {
		resp = post(t, alice, f.url+"/requests/r-1/vote", form, nil)
		_ = body(t, resp)
		require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	}
	require.Len(t, f.log.Sent(), 2, "the same form sent twice is one command")
	st, _, err := f.log.Store.Get("r-1")
	require.NoError(t, err)
	require.Equal(t, approval.StatusRejected, st.Status)

	// A refusal from the decider comes back as the form's error.
	bob, bobToken := f.as("user:bob@example.com")
	resp = post(t, bob, f.url+"/requests/r-1/vote", url.Values{"decision": {"approve"}, "csrf": {bobToken}, "nonce": {session.RandomToken()}}, nil)
	page = body(t, resp)
	require.Equal(t, http.StatusConflict, resp.StatusCode)
	require.Contains(t, page, "Your vote was refused")
}

func TestRequestsAreHiddenFromStrangersAndAuditPagesFromNonAuditors(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1000)
	f.submit("r-1", "ship it")
	erin, _ := f.as("user:erin@example.com") // a DBA: not an approver of deploys
	resp, err := erin.Get(f.url + "/requests/r-1")
	require.NoError(t, err)
	require.NotContains(t, body(t, resp), "ship it")
	require.Equal(t, http.StatusNotFound, resp.StatusCode, "as if it did not exist")
	resp, err = erin.Get(f.url + "/audit")
	require.NoError(t, err)
	_ = body(t, resp)
	require.Equal(t, http.StatusForbidden, resp.StatusCode)

	olivia, _ := f.as("user:olivia@example.com", fakeoidc.AuditorGroup)
	resp, err = olivia.Get(f.url + "/requests/r-1")
	require.NoError(t, err)
	require.Contains(t, body(t, resp), "ship it", "auditors see every request")
	resp, err = olivia.Get(f.url + "/audit?from=yesterday")
	require.NoError(t, err)
	require.Contains(t, body(t, resp), "From: use a time such as")
	require.Equal(t, http.StatusUnprocessableEntity, resp.StatusCode)
	resp, err = olivia.Get(f.url + "/audit/export?format=xml")
	require.NoError(t, err)
	_ = body(t, resp)
	require.Equal(t, http.StatusUnprocessableEntity, resp.StatusCode)
}

func TestProblemJSONForClientsThatAskForIt(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1000)
	alice, _ := f.as("user:alice@example.com")
	req, _ := http.NewRequest(http.MethodGet, f.url+"/requests/nope", nil)
	req.Header.Set("Accept", "application/json")
	resp, err := alice.Do(req)
	require.NoError(t, err)
	require.Equal(t, "application/problem+json", resp.Header.Get("Content-Type"))
	var p map[string]any
	require.NoError(t, json.Unmarshal([]byte(body(t, resp)), &p))
	require.InDelta(t, 404, p["status"], 0)
	require.Equal(t, "/requests/nope", p["instance"])
}

func TestRateLimitPerPerson(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 2) // 2/s, bursts of 4
	alice, _ := f.as("user:alice@example.com")
	bob, _ := f.as("user:bob@example.com")
	var limited int
	for range 10 {
		resp, err := alice.Get(f.url + "/mine")
		require.NoError(t, err)
		_ = body(t, resp)
		if resp.StatusCode == http.StatusTooManyRequests {
			limited++
			require.Equal(t, "1", resp.Header.Get("Retry-After"))
		}
	}
	require.GreaterOrEqual(t, limited, 5)
	resp, err := bob.Get(f.url + "/mine")
	require.NoError(t, err)
	_ = body(t, resp)
	require.Equal(t, http.StatusOK, resp.StatusCode, "another person has a bucket of their own")
}

func TestLiveStreamSendsOnlyChanges(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1000)
	f.submit("r-1", "ship it")
	carol, _ := f.as("user:carol@example.com")
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.url+"/requests/r-1/live", nil)
	resp, err := carol.Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	read := func(until string) string {
		var got strings.Builder
		buf := make([]byte, 4096)
		for !strings.Contains(got.String(), until) {
			n, err := resp.Body.Read(buf)
			require.NoError(t, err, "stream so far:\n%s", got.String())
			got.Write(buf[:n])
		}
		return got.String()
	}
	first := read("event: synced")
	require.Contains(t, first, "event: request\n", "a page without a version gets the fragment")
	require.Contains(t, first, "pending")

	alice, token := f.as("user:alice@example.com")
	vresp := post(t, alice, f.url+"/requests/r-1/vote", url.Values{"decision": {"approve"}, "csrf": {token}, "nonce": {session.RandomToken()}}, nil)
	_ = body(t, vresp)
	update := read("approved")
	require.Contains(t, update, "event: request\n")
	require.NotContains(t, update, "ship it</script>")
}

func TestCancelIsForTheRequesterOrAnAdmin(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1000)
	f.submit("r-1", "ship it")
	bob, bobToken := f.as("user:bob@example.com")
	resp := post(t, bob, f.url+"/requests/r-1/cancel", url.Values{"csrf": {bobToken}, "nonce": {session.RandomToken()}}, nil)
	page := body(t, resp)
	require.Equal(t, http.StatusForbidden, resp.StatusCode, "the decider refuses bob: he neither asked nor administers")
	require.Contains(t, page, "The cancel was refused")
	resp, err := bob.Get(f.url + "/requests/r-1")
	require.NoError(t, err)
	require.NotContains(t, body(t, resp), `action="/requests/r-1/cancel"`, "bob is offered no cancel form")

	carol, carolToken := f.as("user:carol@example.com")
	resp, err = carol.Get(f.url + "/requests/r-1")
	require.NoError(t, err)
	require.Contains(t, body(t, resp), `action="/requests/r-1/cancel"`, "the requester is offered the cancel form")
	resp = post(t, carol, f.url+"/requests/r-1/cancel", url.Values{"reason": {"wrong build"}, "csrf": {carolToken}, "nonce": {session.RandomToken()}}, nil)
	_ = body(t, resp)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Equal(t, "/requests/r-1?done=cancel", resp.Header.Get("Location"))
	st, _, err := f.log.Store.Get("r-1")
	require.NoError(t, err)
	require.Equal(t, approval.StatusCancelled, st.Status)
	require.Equal(t, []string{"user:carol@example.com"}, st.DecidedBy)
}

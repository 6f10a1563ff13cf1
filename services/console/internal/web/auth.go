package web

import (
	"crypto/subtle"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/assent-dev/assent/services/console/internal/oidc"
	"github.com/assent-dev/assent/services/console/internal/session"
)

// flowTTL bounds how long a sign-in may take at the provider.
const flowTTL = 10 * time.Minute

// localPath returns next if it is a path on this site, else "/inbox": a
// sign-in never sends the browser elsewhere (no open redirect).
func localPath(next string) string {
	if next == "" || len(next) > 2048 || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") ||
		strings.ContainsAny(next, "\\\r\n\t") {
		return "/inbox"
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return "/inbox"
	}
	return next
}

type loginData struct {
	Next      string
	LoggedOut bool
	Problem   string
}

// login is the sign-in page: a link to the provider (a link, not a form,
// so that form-action 'self' does not stop the redirect).
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if !s.allow(w, r, "addr:"+clientAddr(r)) {
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	q := r.URL.Query()
	d := loginData{Next: localPath(q.Get("next")), LoggedOut: q.Get("signed_out") == "1"}
	if sess, err := s.cfg.Jar.Get(r); err == nil && !d.LoggedOut {
		_ = sess
		http.Redirect(w, r, d.Next, http.StatusSeeOther)
		return
	}
	s.render(w, r, http.StatusOK, "login", page{Title: "Sign in", Data: d})
}

// authStart begins the authorization code flow: a fresh state, nonce and
// PKCE verifier, kept in an encrypted cookie for the callback.
func (s *Server) authStart(w http.ResponseWriter, r *http.Request) {
	if !s.allow(w, r, "addr:"+clientAddr(r)) {
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	f := &session.Flow{
		State: session.RandomToken(), Nonce: session.RandomToken(), Verifier: oauth2.GenerateVerifier(),
		Next: localPath(r.URL.Query().Get("next")), Expires: s.cfg.Now().Add(flowTTL),
	}
	to, err := s.cfg.SignIn.AuthURL(r.Context(), f.State, f.Nonce, f.Verifier)
	if err != nil {
		s.cfg.Metrics.SignIns.WithLabelValues(signInUnavailable).Inc()
		s.cfg.Logger.Error("sign-in: the identity provider is unavailable", "err", err)
		s.render(w, r, http.StatusServiceUnavailable, "login", page{Title: "Sign in", Data: loginData{
			Next: f.Next, Problem: "The identity provider cannot be reached right now. Try again in a minute.",
		}})
		return
	}
	if err := s.cfg.Jar.StartFlow(w, f); err != nil {
		s.fail(w, r, http.StatusInternalServerError, "Sign-in failed", "The sign-in could not be started.")
		return
	}
	http.Redirect(w, r, to, http.StatusFound)
}

// authCallback ends the flow: the state must match the cookie's, the code
// is exchanged with the verifier, and the ID token (signature, issuer,
// audience, expiry, nonce) names the person by email.
func (s *Server) authCallback(w http.ResponseWriter, r *http.Request) {
	if !s.allow(w, r, "addr:"+clientAddr(r)) {
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	q := r.URL.Query()
	again := func(status int, outcome, msg string) {
		s.cfg.Metrics.SignIns.WithLabelValues(outcome).Inc()
		s.render(w, r, status, "login", page{Title: "Sign in", Data: loginData{Next: "/inbox", Problem: msg}})
	}
	f, err := s.cfg.Jar.TakeFlow(w, r)
	if err != nil || subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(f.State)) != 1 {
		again(http.StatusBadRequest, signInState, "This sign-in had expired or was started in another window. Sign in again.")
		return
	}
	if e := q.Get("error"); e != "" {
		s.cfg.Logger.Warn("sign-in: the identity provider answered with an error", "error", truncate(e, 100))
		again(http.StatusUnauthorized, signInIdPError, "The identity provider did not sign you in. Try again, or ask your administrator for access.")
		return
	}
	code := q.Get("code")
	if code == "" || len(code) > 4096 {
		again(http.StatusBadRequest, signInExchange, "The identity provider's answer was incomplete. Sign in again.")
		return
	}
	id, err := s.cfg.SignIn.Exchange(r.Context(), code, f.Verifier, f.Nonce)
	if err != nil {
		outcome, status := signInToken, http.StatusUnauthorized
		switch {
		case errors.Is(err, oidc.ErrUnavailable):
			outcome, status = signInUnavailable, http.StatusServiceUnavailable
		case errors.Is(err, oidc.ErrExchange):
			outcome = signInExchange
		case errors.Is(err, oidc.ErrEmail):
			outcome = signInEmail
		}
		s.cfg.Logger.Warn("sign-in failed", "outcome", outcome, "err", err)
		again(status, outcome, "You could not be signed in ("+strings.ReplaceAll(outcome, "_", " ")+"). Try again, or ask your administrator.")
		return
	}
	// Keep only the groups that mean something here: the cookie stays
	// small however many groups the provider lists.
	var groups []string
	for _, g := range id.Groups {
		if slices.Contains(s.cfg.AuditorGroups, g) && !slices.Contains(groups, g) {
			groups = append(groups, g)
		}
	}
	now := s.cfg.Now()
	sess := &session.Session{Principal: id.Principal, Name: truncate(id.Name, 100), Groups: groups, Issued: now,
		Expires: now.Add(s.sessionTTL()), CSRF: session.NewSecret(32)}
	if err := s.cfg.Jar.Start(w, sess); err != nil {
		s.fail(w, r, http.StatusInternalServerError, "Sign-in failed", "The session could not be started.")
		return
	}
	s.cfg.Metrics.SignIns.WithLabelValues(signInOK).Inc()
	s.cfg.Logger.Info("signed in", "principal", id.Principal, "auditor", len(groups) > 0)
	http.Redirect(w, r, localPath(f.Next), http.StatusSeeOther) //nolint:gosec // G710: localPath keeps only a path on this site, and f.Next came sealed from our own cookie
}

func (s *Server) sessionTTL() time.Duration {
	if s.cfg.SessionTTL > 0 {
		return s.cfg.SessionTTL
	}
	return 8 * time.Hour
}

// logout ends the session (a POST with the CSRF token: a link elsewhere
// cannot sign anyone out).
func (s *Server) logout(w http.ResponseWriter, r *http.Request, v *viewer) {
	s.cfg.Jar.End(w)
	s.cfg.Logger.Info("signed out", "principal", v.Principal)
	http.Redirect(w, r, "/login?signed_out=1", http.StatusSeeOther)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

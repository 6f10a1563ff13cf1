// Package fakeoidc is a local OpenID Connect provider for the console's
// demo and tests: oauth2-proxy's mockoidc (discovery, JWKS, RS256 ID
// tokens, the authorization code flow with PKCE) with a page that asks
// which demo person to sign in as.
//
// FOR THE LOCAL DEMO AND TESTS ONLY. It signs in anyone who clicks a name,
// with no password. It is never linked into the console (depguard forbids
// production code from importing test/); tools/fake-oidc runs it for
// scripts/up.
package fakeoidc

import (
	"html/template"
	"net"
	"net/http"
	"strings"
	"sync"

	"github.com/oauth2-proxy/mockoidc"
)

// User is a demo person.
type User struct {
	Email  string
	Name   string
	Groups []string
}

// AuditorGroup is the demo's auditor group (scripts/up maps it to the
// console's auditor role with ASSENT_CONSOLE_AUDITOR_GROUPS).
const AuditorGroup = "assent-auditors"

// DemoUsers are the people of infra/policies/example.yaml, with their
// policy groups as IdP groups, and an auditor.
func DemoUsers() []User {
	return []User{
		{Email: "alice@example.com", Name: "Alice (SRE)", Groups: []string{"sre"}},
		{Email: "bob@example.com", Name: "Bob (SRE)", Groups: []string{"sre"}},
		{Email: "carol@example.com", Name: "Carol (release manager)", Groups: []string{"release"}},
		{Email: "dana@example.com", Name: "Dana (SRE)", Groups: []string{"sre"}},
		{Email: "erin@example.com", Name: "Erin (DBA)", Groups: []string{"dba"}},
		{Email: "frank@example.com", Name: "Frank (DBA)", Groups: []string{"dba"}},
		{Email: "heidi@example.com", Name: "Heidi (security)", Groups: []string{"security"}},
		{Email: "judy@example.com", Name: "Judy (platform lead, admin)", Groups: []string{"platform-leads"}},
		{Email: "olivia@example.com", Name: "Olivia (auditor)", Groups: []string{AuditorGroup}},
	}
}

// Server is a running provider.
type Server struct {
	*mockoidc.MockOIDC
	users []User
	mu    sync.Mutex // one sign-in at a time: mockoidc hands out queued users in order
}

// Start serves a provider on ln for one client. The issuer is
// http://<ln address>/oidc.
func Start(ln net.Listener, clientID, clientSecret string, users []User) (*Server, error) {
	m, err := mockoidc.NewServer(nil)
	if err != nil {
		return nil, err
	}
	m.ClientID, m.ClientSecret = clientID, clientSecret
	m.CodeChallengeMethodsSupported = []string{"S256"}
	s := &Server{MockOIDC: m, users: users}
	if err := m.AddMiddleware(s.chooser); err != nil {
		return nil, err
	}
	if err := m.Start(ln, nil); err != nil {
		return nil, err
	}
	return s, nil
}

var page = template.Must(template.New("chooser").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Demo identity provider</title></head>
<body>
<main>
<h1>Demo identity provider</h1>
<p><strong>For the local demo only:</strong> anyone may sign in as anyone here, without a password.</p>
<form method="post" action="{{.Action}}">
{{range $k, $vs := .Params}}{{range $vs}}<input type="hidden" name="{{$k}}" value="{{.}}">
{{end}}{{end}}
<ul>
{{range .Users}}<li><button type="submit" name="login_as" value="{{.Email}}">Sign in as {{.Email}}</button> {{.Name}}{{with .Groups}} ({{range $i, $g := .}}{{if $i}}, {{end}}{{$g}}{{end}}){{end}}</li>
{{end}}</ul>
</form>
</main>
</body></html>
`))

// chooser shows the sign-in page on the authorization endpoint, and
// queues the chosen person for mockoidc's own handler.
func (s *Server) chooser(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != mockoidc.AuthorizationEndpoint {
			next.ServeHTTP(w, r)
			return
		}
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		email := r.Form.Get("login_as")
		if email == "" {
			params := r.Form
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_ = page.Execute(w, map[string]any{"Action": mockoidc.AuthorizationEndpoint, "Params": params, "Users": s.users})
			return
		}
		var u *User
		for i := range s.users {
			if strings.EqualFold(s.users[i].Email, email) {
				u = &s.users[i]
			}
		}
		if u == nil {
			http.Error(w, "unknown demo user", http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		s.QueueUser(&mockoidc.MockUser{
			Subject: u.Email, Email: u.Email, EmailVerified: true, PreferredUsername: strings.Split(u.Email, "@")[0], Groups: u.Groups,
		})
		next.ServeHTTP(w, r)
	})
}

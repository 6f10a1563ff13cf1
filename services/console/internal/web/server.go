// Package web is the console's HTTP edge: server-rendered pages
// (html/template), the OIDC sign-in, forms with CSRF tokens, live updates
// over Server-Sent Events, the audit exports, the security headers, the
// rate limit and the probes.
//
// Every page works without JavaScript. With it, a vendored htmx (and its
// SSE extension) swaps in fresh fragments when the projection changes, and
// console.js counts deadlines down; both are served from this binary
// (go:embed), under a Content-Security-Policy that allows no inline script
// or style and no other origin.
package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/time/rate"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/auditindex"
	"github.com/assent-dev/assent/libs/command"
	"github.com/assent-dev/assent/libs/projection/requests"
	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/services/console/internal/live"
	"github.com/assent-dev/assent/services/console/internal/oidc"
	"github.com/assent-dev/assent/services/console/internal/session"
)

// Source is the CloudEvents source of the commands the console writes.
const Source = "assent/console"

// Store is what the pages read from the request projection.
type Store interface {
	Get(rid string) (approval.State, bool, error)
	History(rid string) ([]requests.Stored, error)
	List(f requests.Filter) (requests.Page, error)
}

// Watcher is a projection runner's wake-up for one subject.
type Watcher interface {
	Ready() bool
	Watch(subject string) (woken <-chan struct{}, stop func())
}

// Audit is what the audit pages read from the audit projection.
type Audit interface {
	Events(q auditindex.Query) ([]auditindex.Row, string, error)
	Request(rid string) (auditindex.Request, error)
	Scan(p int32, fn func(auditindex.Row, wire.Envelope) error) error
	Partitions(n int32) ([]auditindex.PartitionStatus, error)
}

// SignIn is the OIDC relying party.
type SignIn interface {
	AuthURL(ctx context.Context, state, nonce, verifier string) (string, error)
	Exchange(ctx context.Context, code, verifier, nonce string) (oidc.Identity, error)
}

// Config wires the server.
type Config struct {
	Jar    *session.Jar
	SignIn SignIn
	Store  Store
	// Projection is the runner of the console's one store, which holds the
	// requests and the audit index (projection.Join): both are applied in
	// the same batch, so a page never shows one ahead of the other.
	Projection    Watcher
	Audit         Audit
	Hub           *live.Hub
	Streams       *live.Limit
	Sender        command.Sender
	Policies      approval.Policies
	AuditorGroups []string
	Partitions    int32
	PublicURL     *url.URL
	WriteWait     time.Duration
	SessionTTL    time.Duration
	RateLimit     float64
	StreamLife    time.Duration
	ExportMaxRows int
	Logger        *slog.Logger
	Registry      *prometheus.Registry
	Metrics       *Metrics
	// Ready reports whether this replica can serve (projections caught
	// up, Kafka reachable).
	Ready func(ctx context.Context) error
	// Done is closed when the service stops: live streams and waits end.
	Done <-chan struct{}
	Now  func() time.Time
}

// Server is the console's HTTP handler.
type Server struct {
	cfg     Config
	mux     *http.ServeMux
	limits  *limiter
	exports chan struct{}
	secure  bool
	origin  string
	csp     string
}

// New returns the console's handler.
func New(cfg Config) *Server {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{
		cfg:     cfg,
		mux:     http.NewServeMux(),
		limits:  newLimiter(cfg.RateLimit, 10_000),
		exports: make(chan struct{}, 2),
		secure:  cfg.PublicURL.Scheme == "https",
		origin:  cfg.PublicURL.Scheme + "://" + cfg.PublicURL.Host,
	}
	// No inline script or style, nothing from another origin; forms post
	// only here; no framing, no plugins, no <base>.
	s.csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
		"font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
	m := s.mux
	m.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/inbox", http.StatusSeeOther) })
	m.HandleFunc("GET /login", s.login)
	m.HandleFunc("GET /auth/start", s.authStart)
	m.HandleFunc("GET /auth/callback", s.authCallback)
	m.HandleFunc("POST /logout", s.user(s.logout))
	m.HandleFunc("GET /inbox", s.user(s.inbox))
	m.HandleFunc("GET /inbox/live", s.user(s.inboxLive))
	m.HandleFunc("GET /mine", s.user(s.mine))
	m.HandleFunc("GET /mine/live", s.user(s.mineLive))
	m.HandleFunc("GET /requests/{id}", s.user(s.request))
	m.HandleFunc("GET /requests/{id}/live", s.user(s.requestLive))
	m.HandleFunc("POST /requests/{id}/vote", s.user(s.vote))
	m.HandleFunc("POST /requests/{id}/cancel", s.user(s.cancel))
	m.HandleFunc("GET /audit", s.auditor(s.audit))
	m.HandleFunc("GET /audit/export", s.auditor(s.export))
	m.HandleFunc("GET /audit/state", s.auditor(s.stateAt))
	m.HandleFunc("GET /static/{file}", s.static)
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	m.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := cfg.Ready(r.Context()); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = fmt.Fprintf(w, "not ready: %v\n", err)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	m.Handle("GET /metrics", promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{}))
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, http.StatusNotFound, "Not found", "There is no page at this address.")
	})
	return s
}

// statusWriter records the status for the metrics. It passes Flush and
// the ResponseController's deadlines through (Unwrap).
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// pageTimeout bounds every answer that is not a stream or an export.
const pageTimeout = 30 * time.Second

// ServeHTTP adds the security headers, the metrics, panic recovery and
// the per-request bounds around the routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	began := time.Now()
	h := w.Header()
	h.Set("Content-Security-Policy", s.csp)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=(), usb=()")
	if s.secure {
		h.Set("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
	}
	sw := &statusWriter{ResponseWriter: w}
	streaming := strings.HasSuffix(r.URL.Path, "/live") || r.URL.Path == "/audit/export"
	if !streaming {
		ctx, cancel := context.WithTimeout(r.Context(), pageTimeout)
		defer cancel()
		r = r.WithContext(ctx)
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(pageTimeout + 5*time.Second))
	}
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler { //nolint:errorlint // the sentinel http.Server itself compares by identity
				panic(v)
			}
			s.cfg.Logger.Error("panic", "route", r.Pattern, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			if sw.status == 0 {
				s.fail(sw, r, http.StatusInternalServerError, "Something went wrong", "The console met an error it did not expect. It has been logged; try again.")
			}
		}
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		status := sw.status
		if status == 0 {
			status = http.StatusOK
		}
		s.cfg.Metrics.HTTPRequests.WithLabelValues(route, r.Method, strconv.Itoa(status)).Inc()
		if !streaming {
			s.cfg.Metrics.HTTPSeconds.WithLabelValues(route).Observe(time.Since(began).Seconds())
		}
	}()
	s.mux.ServeHTTP(sw, r)
}

// viewer is the signed-in person, with the roles the console derives.
type viewer struct {
	*session.Session
	Auditor bool
	Admin   bool
}

func (s *Server) viewerOf(sess *session.Session) *viewer {
	v := &viewer{Session: sess, Admin: s.cfg.Policies.IsAdmin(sess.Principal)}
	for _, g := range sess.Groups {
		for _, a := range s.cfg.AuditorGroups {
			if g == a {
				v.Auditor = true
			}
		}
	}
	return v
}

// user runs h for a signed-in person: a page without a session sends the
// browser to sign in (and back here afterwards); a form or a stream
// without one is refused. Writes must carry the session's CSRF token.
func (s *Server) user(h func(http.ResponseWriter, *http.Request, *viewer)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sess, err := s.cfg.Jar.Get(r)
		if err != nil {
			if !s.allow(w, r, "addr:"+clientAddr(r)) {
				return
			}
			if r.Method == http.MethodGet && !strings.HasSuffix(r.URL.Path, "/live") {
				http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			s.fail(w, r, http.StatusUnauthorized, "Please sign in", "Your session has ended. Sign in again, then repeat what you were doing.")
			return
		}
		if !s.allow(w, r, sess.Principal) {
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		v := s.viewerOf(sess)
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
			if err := r.ParseForm(); err != nil {
				s.fail(w, r, http.StatusBadRequest, "The form could not be read", "The form was too large or malformed.")
				return
			}
			if !s.sameOrigin(r) || !v.CheckCSRF(r.PostForm.Get("csrf")) {
				s.cfg.Metrics.CSRF.Inc()
				s.cfg.Logger.Warn("csrf refusal", "principal", sess.Principal, "route", r.Pattern, "origin", r.Header.Get("Origin"))
				s.fail(w, r, http.StatusForbidden, "This form was refused",
					"It did not carry this session's security token, or it came from another site. Go back, reload the page and send it again.")
				return
			}
		}
		h(w, r, v)
	}
}

// auditor is user for the auditor role only.
func (s *Server) auditor(h func(http.ResponseWriter, *http.Request, *viewer)) http.HandlerFunc {
	return s.user(func(w http.ResponseWriter, r *http.Request, v *viewer) {
		if !v.Auditor {
			s.fail(w, r, http.StatusForbidden, "Auditors only", "The audit pages are for people in an auditor group of the identity provider.")
			return
		}
		h(w, r, v)
	})
}

// sameOrigin checks the browser's own statement of where a form came
// from, on top of the token: Sec-Fetch-Site when sent, else Origin.
func (s *Server) sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return false
	}
	if o := r.Header.Get("Origin"); o != "" && o != "null" && o != s.origin && o != "http://"+r.Host && o != "https://"+r.Host {
		return false
	}
	return true
}

func clientAddr(r *http.Request) string {
	host := r.RemoteAddr
	if i := strings.LastIndexByte(host, ':'); i > 0 {
		host = host[:i]
	}
	return host
}

// allow applies the rate limit for key, answering 429 when it is spent.
func (s *Server) allow(w http.ResponseWriter, r *http.Request, key string) bool {
	if s.limits.allow(key) {
		return true
	}
	s.cfg.Metrics.RateLimited.Inc()
	w.Header().Set("Retry-After", "1")
	s.fail(w, r, http.StatusTooManyRequests, "Too many requests", "Slow down a little and try again in a second.")
	return false
}

// limiter is a token bucket per key, with at most max keys (the least
// recently used are dropped).
type limiter struct {
	mu    sync.Mutex
	rate  float64
	max   int
	byKey map[string]*bucket
}

type bucket struct {
	l    *rate.Limiter
	seen time.Time
}

func newLimiter(perSecond float64, max int) *limiter {
	return &limiter{rate: perSecond, max: max, byKey: map[string]*bucket{}}
}

func (l *limiter) allow(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	b := l.byKey[key]
	if b == nil {
		if len(l.byKey) >= l.max {
			l.evict(now)
		}
		b = &bucket{l: rate.NewLimiter(rate.Limit(l.rate), int(2*l.rate))}
		l.byKey[key] = b
	}
	b.seen = now
	return b.l.AllowN(now, 1)
}

// evict drops keys idle for a minute, or else the oldest half.
func (l *limiter) evict(now time.Time) {
	for k, b := range l.byKey {
		if now.Sub(b.seen) > time.Minute {
			delete(l.byKey, k)
		}
	}
	for k := range l.byKey {
		if len(l.byKey) < l.max/2 {
			break
		}
		delete(l.byKey, k)
	}
}

// wantsJSON reports whether the client asked for JSON rather than a page.
func wantsJSON(r *http.Request) bool {
	a := r.Header.Get("Accept")
	return (strings.Contains(a, "application/json") || strings.Contains(a, "application/problem+json")) && !strings.Contains(a, "text/html")
}

var errNotFound = errors.New("not found")

package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/assent-dev/assent/libs/approval"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// static files by their served name: the vendored htmx and its SSE
// extension (see static/vendor/README.md), console.js and console.css.
var staticFiles = map[string]string{
	"htmx.min.js": "static/vendor/htmx-2.0.11.min.js",
	"htmx-sse.js": "static/vendor/htmx-ext-sse-2.2.4.min.js",
	"console.js":  "static/console.js",
	"console.css": "static/console.css",
	"favicon.svg": "static/favicon.svg",
}

// assetVersion changes whenever a static file does, for cache busting.
var assetVersion = func() string {
	h := sha256.New()
	for _, name := range []string{"htmx.min.js", "htmx-sse.js", "console.js", "console.css", "favicon.svg"} {
		b, err := staticFS.ReadFile(staticFiles[name])
		if err != nil {
			panic(err)
		}
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}()

func (s *Server) static(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	p, ok := staticFiles[name]
	if !ok {
		s.fail(w, r, http.StatusNotFound, "Not found", "There is no such file.")
		return
	}
	b, err := staticFS.ReadFile(p)
	if err != nil {
		s.fail(w, r, http.StatusNotFound, "Not found", "There is no such file.")
		return
	}
	switch path.Ext(p) {
	case ".js":
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	case ".css":
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
	case ".svg":
		w.Header().Set("Content-Type", "image/svg+xml")
	}
	if r.URL.Query().Get("v") == assetVersion {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		w.Header().Set("Cache-Control", "public, max-age=300")
	}
	_, _ = w.Write(b)
}

var funcs = template.FuncMap{
	"reqURL": func(id string) string { return "/requests/" + url.PathEscape(id) },
	"when":   fmtTime,
	"iso": func(t time.Time) string {
		return t.UTC().Format(time.RFC3339)
	},
	"left": func(deadline, now time.Time) string { return remaining(deadline.Sub(now)) },
	"who":  who,
	"short": func(typ string) string {
		return strings.TrimPrefix(typ, "dev.assent.")
	},
	"asset": func() string { return assetVersion },
	"past": func(d approval.VoteDecision) string {
		if d == approval.Reject {
			return "rejected"
		}
		return "approved"
	},
	"title": func(s approval.Status) string {
		if s == "" {
			return ""
		}
		return strings.ToUpper(string(s[:1])) + string(s[1:])
	},
}

// who shows a principal: an email for a user, kind:id otherwise.
func who(p string) string { return strings.TrimPrefix(p, approval.KindUser+":") }

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// remaining is a countdown as people read it: "59m 12s", "2h 3m",
// "expired".
func remaining(d time.Duration) string {
	if d <= 0 {
		return "deadline passed"
	}
	d = d.Round(time.Second)
	h, m, sec := int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60
	switch {
	case h >= 24:
		return fmt.Sprintf("%dd %dh left", h/24, h%24)
	case h > 0:
		return fmt.Sprintf("%dh %dm left", h, m)
	case m > 0:
		return fmt.Sprintf("%dm %02ds left", m, sec)
	}
	return fmt.Sprintf("%ds left", sec)
}

// pages are the parsed templates: each page is the layout plus its file.
var pages = func() map[string]*template.Template {
	out := map[string]*template.Template{}
	files, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		panic(err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(path.Base(f), ".html")
		if name == "layout" {
			continue
		}
		out[name] = template.Must(template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", f))
	}
	return out
}()

// page is what every page template gets.
type page struct {
	Title  string
	Nav    string // inbox, mine, audit
	Viewer *viewer
	CSRF   string
	Flash  string
	Asset  string
	Data   any
}

func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	if p.Viewer != nil {
		p.CSRF = p.Viewer.CSRFToken()
	}
	p.Asset = assetVersion
	var buf bytes.Buffer
	if err := pages[name].ExecuteTemplate(&buf, "layout", p); err != nil {
		s.cfg.Logger.Error("render", "page", name, "err", err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// fragment renders one named template of a page, for a live update.
func fragment(pageName, name string, data any) (string, error) {
	var buf bytes.Buffer
	if err := pages[pageName].ExecuteTemplate(&buf, name, data); err != nil {
		return "", err
	}
	return buf.String(), nil
}

type failure struct {
	Status  int
	Heading string
	Detail  string
}

// fail answers an error: a page for a browser, RFC 9457 problem+json for
// a client that asked for JSON.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, status int, heading, detail string) {
	if wantsJSON(r) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]any{
			"type": "about:blank", "title": http.StatusText(status), "status": status, "detail": detail, "instance": r.URL.Path,
		})
		return
	}
	var v *viewer
	if sess, err := s.cfg.Jar.Get(r); err == nil {
		v = s.viewerOf(sess)
	}
	s.render(w, r, status, "error", page{Title: heading, Viewer: v, Data: failure{Status: status, Heading: heading, Detail: detail}})
}

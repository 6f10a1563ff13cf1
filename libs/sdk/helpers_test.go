package assent_test

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	assent "github.com/assent-dev/assent/libs/sdk"
)

// seen is one request a fake server received.
type seen struct {
	Method, Path, Query string
	Header              http.Header
	Body                map[string]any
}

// fake is an httptest server whose answers a test scripts per request.
type fake struct {
	*httptest.Server
	mu     sync.Mutex
	seen   []seen
	handle func(w http.ResponseWriter, r *http.Request, n int)
}

func newFake(t *testing.T, handle func(w http.ResponseWriter, r *http.Request, n int)) *fake {
	t.Helper()
	f := &fake{handle: handle}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s := seen{Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery, Header: r.Header.Clone()}
		if len(b) > 0 {
			_ = json.Unmarshal(b, &s.Body)
		}
		f.mu.Lock()
		n := len(f.seen)
		f.seen = append(f.seen, s)
		f.mu.Unlock()
		f.handle(w, r, n)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fake) requests() []seen {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seen(nil), f.seen...)
}

// client returns a client with fast backoff for urls.
func client(t *testing.T, urls []string, opts ...assent.Option) *assent.Client {
	t.Helper()
	c, err := assent.New(urls, "demo-billing", append([]assent.Option{assent.WithBackoff(time.Millisecond, 5*time.Millisecond)}, opts...)...)
	require.NoError(t, err)
	return c
}

// deadURL is a URL on which nothing listens: connecting is refused.
func deadURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return "http://" + addr
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeProblem(w http.ResponseWriter, status int, code, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	p := map[string]any{
		"type":   "https://github.com/assent-dev/assent/blob/main/schemas/README.md#" + code,
		"title":  http.StatusText(status),
		"status": status,
		"detail": detail,
	}
	if code != "" {
		p["code"] = code
	} else {
		p["type"] = "about:blank"
	}
	_ = json.NewEncoder(w).Encode(p)
}

// cut closes the connection without an answer: the request was sent and
// may have taken effect, but the client cannot know.
func cut(t *testing.T, w http.ResponseWriter) {
	conn, _, err := w.(http.Hijacker).Hijack()
	require.NoError(t, err)
	_ = conn.Close()
}

// view is a request view as the API writes it.
func view(id string, status assent.Status, votes ...map[string]any) map[string]any {
	v := map[string]any{
		"id": id, "status": status,
		"action":    map[string]any{"type": "deploy", "resource": "services/billing/api", "environment": "production", "details": map[string]any{"version": "1.4.2"}},
		"requester": "service:billing", "reason": "release 1.4.2",
		"created_at": "2026-11-21T10:00:00.412730118Z", "expires_at": "2026-11-21T11:00:00.412730118Z",
		"policy": map[string]any{
			"name": "prod-deploy", "hash": "sha256:9b9751d70ffb14300cc53bc6c66ffea6a8fd8fe90c133e47e385f99d50ecf43f",
			"approvers":     []string{"user:alice@example.com", "user:bob@example.com", "user:carol@example.com", "user:dana@example.com"},
			"min_approvals": 1, "reject_threshold": 1, "ttl": "1h0m0s", "expires_at": "2026-11-21T11:00:00.412730118Z",
		},
		"votes": []any{}, "approvals": 0, "rejections": 0, "sequence": 1,
	}
	if len(votes) > 0 {
		v["votes"] = votes
		v["sequence"] = 1 + len(votes)
	}
	if status.Terminal() {
		v["decided_at"] = "2026-11-21T10:02:30.52965834Z"
		v["decided_by"] = []string{"user:alice@example.com"}
	}
	return v
}

func deploy() assent.SubmitRequest {
	return assent.SubmitRequest{
		Action: assent.Action{Type: "deploy", Resource: "services/billing/api", Environment: "production",
			Details: map[string]any{"version": "1.4.2"}},
		Reason: "release 1.4.2",
	}
}

package ports_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/schemas"
	"github.com/assent-dev/assent/services/api/internal/app"
	"github.com/assent-dev/assent/services/api/internal/auth"
	"github.com/assent-dev/assent/services/api/internal/metrics"
	"github.com/assent-dev/assent/services/api/internal/ports"
	"github.com/assent-dev/assent/test/apifake"
)

// The demo tokens of testdata/tokens.yaml.
const (
	deployBot = "demo-deploy-bot"    // service:deploy-bot
	gateway   = "demo-slack-gateway" // service:slack-gateway, on_behalf
	alice     = "demo-alice"         // sre
	bob       = "demo-bob"           // sre
	erin      = "demo-erin"          // dba: not an approver of deploys
	heidi     = "demo-heidi"         // security
	judy      = "demo-judy"          // platform lead, a policy admin
	zed       = "demo-zed"           // in no policy
)

type harness struct {
	t   testing.TB
	log *apifake.Log
	h   http.Handler
}

type option func(*app.Config)

func withWriteWait(d time.Duration) option { return func(c *app.Config) { c.WriteWait = d } }

func withStore(wrap func(app.Store) app.Store) option {
	return func(c *app.Config) { c.Store = wrap(c.Store) }
}

func newHarness(t testing.TB, opts ...option) *harness {
	t.Helper()
	log := apifake.New(t)
	tokens, err := auth.Load("../../testdata/tokens.yaml")
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	m := metrics.New(reg, log.Ready)
	log.Store.OnEvent = m.OnEvent(log.Ready)
	cfg := app.Config{
		Sender: log, Projection: log, Store: log.Store, WriteWait: 5 * time.Second, Now: log.Now,
		ObserveSend: m.ObserveSend, ObserveWait: m.ObserveWait,
	}
	for _, o := range opts {
		o(&cfg)
	}
	h := ports.New(ports.Config{
		App: app.New(cfg), Tokens: tokens, Metrics: m, Registry: reg, MaxBody: 64 << 10,
		Logger: slog.New(slog.DiscardHandler),
		Ready: func(context.Context) error {
			if !log.Ready() {
				return errors.New("the projection is catching up")
			}
			return nil
		},
	})
	return &harness{t: t, log: log, h: h}
}

type response struct {
	*httptest.ResponseRecorder
	body []byte
}

func (r response) json(t testing.TB) map[string]any {
	t.Helper()
	var v map[string]any
	require.NoError(t, json.Unmarshal(r.body, &v), "body: %s", r.body)
	return v
}

// do sends a request; headers are "Name: value" strings.
func (h *harness) do(method, path, token, body string, headers ...string) response {
	h.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for _, hv := range headers {
		k, v, _ := strings.Cut(hv, ": ")
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	rec := httptest.NewRecorder()
	h.h.ServeHTTP(rec, req)
	return response{ResponseRecorder: rec, body: rec.Body.Bytes()}
}

// doRaw sends a request with any path, even one httptest.NewRequest
// would refuse to parse.
// It takes its own t, for use inside a fuzz target.
func (h *harness) doRaw(t *testing.T, method, path, token, body string, headers ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, "http://api.test/", strings.NewReader(body))
	require.NoError(t, err)
	req.URL.Path, req.URL.RawPath = path, ""
	if u, err := url.Parse("http://api.test" + path); err == nil {
		req.URL = u
	}
	req.RequestURI = path
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for _, hv := range headers {
		k, v, _ := strings.Cut(hv, ": ")
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.h.ServeHTTP(rec, req)
	return response{ResponseRecorder: rec, body: rec.Body.Bytes()}
}

// submit posts a submit and requires the status.
func (h *harness) submit(token, body string, status int, headers ...string) map[string]any {
	h.t.Helper()
	r := h.do(http.MethodPost, "/v1/requests", token, body, headers...)
	require.Equal(h.t, status, r.Code, "body: %s", r.body)
	return r.json(h.t)
}

// deploy is a prod-deploy submit body: one approval from sre or carol.
func deploy(rid, reason string) string {
	return `{"request_id":"` + rid + `","action":{"type":"deploy","resource":"services/web","environment":"production","details":{"version":"1.2.3"}},"reason":"` + reason + `"}`
}

// payments is a prod-deploy-payments submit body: two approvals from sre
// and security, one rejection rejects.
func payments(rid string) string {
	return `{"request_id":"` + rid + `","action":{"type":"deploy","resource":"services/payments/api","environment":"production"},"reason":"PCI release"}`
}

// requireProblem checks an RFC 9457 answer.
func requireProblem(t testing.TB, r response, status int, code string) map[string]any {
	t.Helper()
	require.Equal(t, status, r.Code, "body: %s", r.body)
	require.Equal(t, ports.ProblemContentType, r.Header().Get("Content-Type"))
	p := r.json(t)
	require.EqualValues(t, status, p["status"])
	require.NotEmpty(t, p["title"])
	require.NotEmpty(t, p["type"])
	require.NotEmpty(t, p["detail"])
	if code == "" {
		require.NotContains(t, p, "code")
		require.Equal(t, "about:blank", p["type"])
	} else {
		require.Equal(t, code, p["code"], "problem: %s", r.body)
	}
	validateAPI(t, "Problem", r.body)
	return p
}

// validateSent checks every command sent against its JSON Schema.
func (h *harness) validateSent() {
	h.t.Helper()
	for _, env := range h.log.Sent() {
		raw, err := wire.Marshal(env)
		require.NoError(h.t, err)
		require.NoError(h.t, schemas.Validate(raw), "command: %s", raw)
	}
}

const openapiURL = schemas.BaseURL + "openapi.yaml"

var openapiCompiler = sync.OnceValues(func() (*jsonschema.Compiler, error) {
	var doc any
	if err := yaml.Unmarshal(schemas.OpenAPI(), &doc); err != nil {
		return nil, err
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	if err := c.AddResource(openapiURL, v); err != nil {
		return nil, err
	}
	return c, nil
})

var compileMu sync.Mutex

// validateAPI checks a response body against a component schema of
// schemas/openapi.yaml.
func validateAPI(t testing.TB, component string, body []byte) {
	t.Helper()
	c, err := openapiCompiler()
	require.NoError(t, err)
	compileMu.Lock()
	sch, err := c.Compile(openapiURL + "#/components/schemas/" + component)
	compileMu.Unlock()
	require.NoError(t, err)
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	require.NoError(t, err)
	require.NoError(t, sch.Validate(inst), "%s: %s", component, body)
}

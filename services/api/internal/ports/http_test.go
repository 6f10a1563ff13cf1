package ports_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestAuthentication(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for _, tc := range []struct {
		name, header, challenge string
	}{
		{"missing", "", `Bearer realm="assent"`},
		{"not bearer", "Basic YWxpY2U6c2VjcmV0", `Bearer realm="assent", error="invalid_request"`},
		{"no token", "Bearer", `Bearer realm="assent", error="invalid_request"`},
		{"empty token", "Bearer ", `Bearer realm="assent", error="invalid_token"`},
		{"unknown token", "Bearer demo-mallory", `Bearer realm="assent", error="invalid_token"`},
		{"hash as token", "Bearer 3f1b0b5a3f0a1ac1a5b1a1b0e6c2ff2c4bd3d1b1c2e3f4a5b6c7d8e9f0a1b2c3", `Bearer realm="assent", error="invalid_token"`},
	} {
		for _, route := range []struct{ method, path, body string }{
			{http.MethodPost, "/v1/requests", deploy("r-auth", "x")},
			{http.MethodGet, "/v1/requests/r-auth", ""},
			{http.MethodGet, "/v1/requests", ""},
			{http.MethodPost, "/v1/requests/r-auth/votes", `{"decision":"approve"}`},
		} {
			r := h.do(route.method, route.path, "", route.body, "Authorization: "+tc.header)
			requireProblem(t, r, http.StatusUnauthorized, "unauthenticated")
			require.Equal(t, tc.challenge, r.Header().Get("WWW-Authenticate"), tc.name)
		}
	}
	require.Empty(t, h.log.Sent())
	// The scheme is case-insensitive (RFC 7235).
	r := h.do(http.MethodGet, "/v1/requests", "", "", "Authorization: bearer "+zed)
	require.Equal(t, http.StatusOK, r.Code, "body: %s", r.body)
}

func TestMalformedRequests(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	valid := deploy("r-bad", "x")
	for _, tc := range []struct {
		name, path, body string
		headers          []string
		status           int
		code             string
	}{
		{"not JSON", "/v1/requests", `{"action":`, nil, 400, "invalid"},
		{"garbage", "/v1/requests", `hello`, nil, 400, "invalid"},
		{"array", "/v1/requests", `[1,2]`, nil, 400, "invalid"},
		{"null", "/v1/requests", `null`, nil, 400, "invalid"},
		{"unknown field", "/v1/requests", strings.Replace(valid, `"reason"`, `"colour":"red","reason"`, 1), nil, 400, "invalid"},
		{"unknown nested field", "/v1/requests", strings.Replace(valid, `"type"`, `"kind":"x","type"`, 1), nil, 400, "invalid"},
		{"repeated field", "/v1/requests", strings.Replace(valid, `"reason"`, `"reason":"a","reason"`, 1), nil, 400, "invalid"},
		{"repeated in details", "/v1/requests", strings.Replace(valid, `"version"`, `"v":1,"v"`, 1), nil, 400, "invalid"},
		{"trailing", "/v1/requests", valid + `{}`, nil, 400, "invalid"},
		{"wrong type", "/v1/requests", strings.Replace(valid, `"reason":"x"`, `"reason":5`, 1), nil, 400, "invalid"},
		{"empty", "/v1/requests", ` `, []string{"Content-Type: application/json"}, 400, "invalid"},
		{"no content type", "/v1/requests", valid, []string{"Content-Type: "}, 415, "invalid"},
		{"text", "/v1/requests", valid, []string{"Content-Type: text/plain"}, 415, "invalid"},
		{"latin1", "/v1/requests", valid, []string{"Content-Type: application/json; charset=latin1"}, 415, "invalid"},
		{"too large", "/v1/requests", `{"reason":"` + strings.Repeat("x", 70<<10) + `"}`, nil, 413, "invalid"},
		{"vote not JSON", "/v1/requests/r-bad/votes", `{decision: approve}`, nil, 400, "invalid"},
		{"vote unknown field", "/v1/requests/r-bad/votes", `{"decision":"approve","weight":2}`, nil, 400, "invalid"},
		{"vote empty", "/v1/requests/r-bad/votes", ``, nil, 400, "invalid"},
		{"cancel unknown field", "/v1/requests/r-bad/cancel", `{"why":"x"}`, nil, 400, "invalid"},
		{"cancel text", "/v1/requests/r-bad/cancel", `{"reason":"x"}`, []string{"Content-Type: text/plain"}, 415, "invalid"},
		{"key twice", "/v1/requests", valid, []string{"Idempotency-Key: a"}, 0, ""},
	} {
		if tc.status == 0 {
			continue
		}
		r := h.do(http.MethodPost, tc.path, deployBot, tc.body, tc.headers...)
		requireProblem(t, r, tc.status, tc.code)
		require.Empty(t, h.log.Sent(), tc.name)
	}
	r := h.do(http.MethodPost, "/v1/requests", deployBot, valid, "charset-ok: x", "Content-Type: application/json; charset=UTF-8")
	require.Equal(t, http.StatusCreated, r.Code, "body: %s", r.body)
}

func TestRoutesAnswerProblems(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	requireProblem(t, h.do(http.MethodGet, "/v2/requests", zed, ""), http.StatusNotFound, "not_found")
	requireProblem(t, h.do(http.MethodGet, "/", "", ""), http.StatusNotFound, "not_found")
	r := h.do(http.MethodDelete, "/v1/requests/x", zed, "")
	requireProblem(t, r, http.StatusMethodNotAllowed, "invalid")
	require.Contains(t, r.Header().Get("Allow"), "GET")
	requireProblem(t, h.do(http.MethodPut, "/v1/requests", zed, "{}"), http.StatusMethodNotAllowed, "invalid")
}

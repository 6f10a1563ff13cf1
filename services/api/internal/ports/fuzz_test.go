package ports_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The fuzz targets send random bodies, headers and tokens to each write
// route. Whatever arrives: no panic, no 5xx, every error is a problem, and
// nothing reaches Kafka without a valid token.

var fuzzTokens = []string{deployBot, gateway, alice, "", "not-a-token", bob + " ", "Basic x"}

// valid are the fuzz tokens that authenticate (spaces around a token are
// not part of it).
var valid = map[string]bool{deployBot: true, gateway: true, alice: true, bob + " ": true}

func fuzzWrite(f *testing.F, path func(rid string) string, seeds ...string) {
	for _, s := range seeds {
		f.Add(s, uint8(0), "application/json", "r-fuzz", "")
		f.Add(s, uint8(1), "application/json; charset=utf-8", "r-fuzz", "key-1")
		f.Add(s, uint8(4), "application/json", "r-fuzz", "")
	}
	f.Add(`{"decision":"approve"`, uint8(2), "text/plain", "a%2Fb", "")
	f.Add(`[]`, uint8(3), "", "%zz", "\x00")
	h := newHarness(f, withWriteWait(200*time.Millisecond))
	// A pending request to vote on and cancel.
	h.submit(deployBot, deploy("r-fuzz", "fuzz target"), http.StatusCreated)

	f.Fuzz(func(t *testing.T, body string, tok uint8, contentType, rid, key string) {
		token := fuzzTokens[int(tok)%len(fuzzTokens)]
		authorized := valid[token]
		headers := []string{"Content-Type: " + contentType}
		if key != "" {
			headers = append(headers, "Idempotency-Key: "+key)
		}
		before := len(h.log.Sent())
		r := h.doRaw(t, http.MethodPost, path(rid), token, body, headers...)
		require.Less(t, r.Code, 500, "body: %s", r.body)
		if r.Code >= 400 {
			var p map[string]any
			require.NoError(t, json.Unmarshal(r.body, &p), "a problem: %s", r.body)
			require.EqualValues(t, r.Code, p["status"])
			require.NotEmpty(t, p["code"])
		}
		if !authorized {
			require.Equal(t, before, len(h.log.Sent()), "sent without a valid token")
			require.Contains(t, []int{401, 404, 405}, r.Code)
		}
	})
}

func FuzzSubmit(f *testing.F) {
	fuzzWrite(f, func(string) string { return "/v1/requests" },
		deploy("r-fuzz-1", "ship"),
		`{"action":{"type":"deploy","resource":"services/web","environment":"production","details":{"a":[1,{"b":null}]}},"reason":"r","ttl":"1m","requester":"user:x@example.com"}`,
		`{"action":{"type":"deploy","resource":"services/web","environment":"production"},"reason":"r","request_id":"r-fuzz"}`,
		`{"action":{"type":"x","resource":"","environment":"qa"},"reason":""}`,
		`{"action":null,"reason":null,"ttl":null}`,
	)
}

func FuzzVote(f *testing.F) {
	fuzzWrite(f, func(rid string) string { return "/v1/requests/" + rid + "/votes" },
		`{"decision":"approve","comment":"ok"}`,
		`{"decision":"reject","voter":"user:bob@example.com"}`,
		`{"decision":"approve","voter":"system:decider"}`,
		`{"decision":""}`,
	)
}

func FuzzCancel(f *testing.F) {
	fuzzWrite(f, func(rid string) string { return "/v1/requests/" + rid + "/cancel" },
		``, `{}`, `{"reason":"done"}`, `{"reason":7}`,
	)
}

// The read routes: whatever the path, query and token, no panic, no 5xx,
// every error is a problem, nothing is sent to Kafka, and nothing is read
// without a valid token.

func fuzzRead(f *testing.F, target func(rid, query string) string, seeds ...string) {
	for _, s := range seeds {
		f.Add("r-decided", s, uint8(0))
		f.Add("r-fuzz-unknown", s, uint8(3))
	}
	f.Add("a%2Fb", "limit=0", uint8(1))
	f.Add("%zz", "cursor=%ff", uint8(4))
	h := newHarness(f, withWriteWait(200*time.Millisecond))
	h.submit(deployBot, deploy("r-decided", "fuzz target"), http.StatusCreated)
	h.submit(deployBot, deploy("r-pending", "fuzz target"), http.StatusCreated)
	r := h.do(http.MethodPost, "/v1/requests/r-decided/votes", alice, `{"decision":"approve"}`)
	require.Equal(f, http.StatusOK, r.Code, "%s", r.body)

	f.Fuzz(func(t *testing.T, rid, query string, tok uint8) {
		token := fuzzTokens[int(tok)%len(fuzzTokens)]
		before := len(h.log.Sent())
		r := h.doRaw(t, http.MethodGet, target(rid, query), token, "")
		require.Less(t, r.Code, 500, "body: %s", r.body)
		require.Equal(t, before, len(h.log.Sent()), "a read sent a command")
		if r.Code >= 400 {
			var p map[string]any
			require.NoError(t, json.Unmarshal(r.body, &p), "a problem: %s", r.body)
			require.EqualValues(t, r.Code, p["status"])
			require.NotEmpty(t, p["code"])
		}
		if !valid[token] {
			require.Contains(t, []int{400, 401, 404, 405}, r.Code)
		}
	})
}

// FuzzGet fuzzes GET /v1/requests/{id}. A long poll on a request that does
// not exist would wait for it, so ?wait= is fuzzed only on the decided
// request, which answers at once.
func FuzzGet(f *testing.F) {
	fuzzRead(f, func(rid, query string) string {
		if rid == "r-decided" {
			return "/v1/requests/r-decided?" + query
		}
		return "/v1/requests/" + rid
	}, "", "wait=30s", "wait=-1s", "wait=forever", "wait=1h&wait=2s", "x=%zz")
}

// FuzzList fuzzes GET /v1/requests with any query.
func FuzzList(f *testing.F) {
	fuzzRead(f, func(_, query string) string { return "/v1/requests?" + query },
		"status=pending", "status=approved&requester=service:deploy-bot", "approver=user:alice@example.com&limit=1",
		"limit=201", "cursor=abc", "status=nope", "requester=not a principal", "limit=1&limit=2")
}

// FuzzHistory fuzzes GET /v1/requests/{id}/events.
func FuzzHistory(f *testing.F) {
	fuzzRead(f, func(rid, _ string) string { return "/v1/requests/" + rid + "/events" }, "")
}

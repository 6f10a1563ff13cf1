package ports_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/approval"
)

func TestSubmitAnswersCreatedWithTheView(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	r := h.do(http.MethodPost, "/v1/requests", deployBot, deploy("r-created", "ship 1.2.3 <now> & then"))
	require.Equal(t, http.StatusCreated, r.Code, "body: %s", r.body)
	require.Equal(t, "application/json", r.Header().Get("Content-Type"))
	require.Equal(t, "/v1/requests/r-created", r.Header().Get("Location"))
	require.Contains(t, string(r.body), "<now> & then", "no HTML escaping")
	validateAPI(t, "RequestView", r.body)
	v := r.json(t)
	require.Equal(t, "r-created", v["id"])
	require.Equal(t, "pending", v["status"])
	require.Equal(t, "service:deploy-bot", v["requester"])
	require.NotContains(t, v, "decided_at")
	require.NotContains(t, v, "decided_by")
	require.Equal(t, []any{}, v["votes"])
	require.EqualValues(t, 1, v["sequence"])
	pol := v["policy"].(map[string]any)
	require.Equal(t, "prod-deploy", pol["name"])
	require.Contains(t, pol["approvers"], "user:carol@example.com")

	sent := h.log.Sent()
	require.Len(t, sent, 1)
	c := sent[0]
	require.Equal(t, approval.TypeSubmit, c.Type)
	require.Equal(t, "assent/api", c.Source)
	require.Equal(t, "service:deploy-bot", c.Actor)
	require.Equal(t, "r-created", c.Subject)
	require.Regexp(t, `^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`, c.ID)
	require.Equal(t, c.ID, r.Header().Get("Assent-Command-Id"))
	require.NotContains(t, string(c.Data), "requester", "the requester is the actor, so it is left out")
	h.validateSent()
}

func TestSubmitWithoutRequestIDGetsAUUIDv7(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	v := h.submit(deployBot, `{"action":{"type":"deploy","resource":"services/web","environment":"production"},"reason":"r"}`, http.StatusCreated)
	require.Regexp(t, `^[0-9a-f]{8}-[0-9a-f]{4}-7`, v["id"])
}

func TestSubmitOnBehalf(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	body := `{"request_id":"r-behalf","action":{"type":"deploy","resource":"services/web","environment":"production"},"reason":"r","requester":"dave@example.com"}`
	v := h.submit(gateway, body, http.StatusCreated)
	require.Equal(t, "user:dave@example.com", v["requester"], "a bare email is a user")
	require.Equal(t, "service:slack-gateway", h.log.Sent()[0].Actor)

	// Without the role, naming anyone but yourself is forbidden, and
	// nothing is sent.
	r := h.do(http.MethodPost, "/v1/requests", deployBot, strings.Replace(body, "r-behalf", "r-behalf-2", 1))
	requireProblem(t, r, http.StatusForbidden, "forbidden")
	require.Len(t, h.log.Sent(), 1)
	// Naming yourself is allowed.
	h.submit(deployBot, `{"request_id":"r-self-named","action":{"type":"deploy","resource":"services/web","environment":"production"},"reason":"r","requester":"service:deploy-bot"}`, http.StatusCreated)
	// A system principal is never a requester.
	r = h.do(http.MethodPost, "/v1/requests", gateway, `{"action":{"type":"deploy","resource":"services/web","environment":"production"},"reason":"r","requester":"system:decider"}`)
	requireProblem(t, r, http.StatusUnprocessableEntity, "invalid")
	h.validateSent()
}

func TestSubmitResubmitIsIdempotent(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	first := h.submit(deployBot, deploy("r-again", "ship"), http.StatusCreated)
	// The same content, laid out differently, is the same submit: answered
	// from the projection without a second command.
	r := h.do(http.MethodPost, "/v1/requests", deployBot, `{"reason":"ship","action":{"details":{ "version" : "1.2.3" },"environment":"production","resource":"services/web","type":"deploy"},"request_id":"r-again"}`)
	require.Equal(t, http.StatusCreated, r.Code)
	require.Equal(t, first, r.json(t))
	require.Len(t, h.log.Sent(), 1)
	require.Empty(t, r.Header().Get("Assent-Command-Id"), "no command was written")
}

func TestSubmitConflict(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.submit(deployBot, deploy("r-conflict", "ship"), http.StatusCreated)
	r := h.do(http.MethodPost, "/v1/requests", deployBot, deploy("r-conflict", "ship something else"))
	p := requireProblem(t, r, http.StatusConflict, "conflict")
	require.Equal(t, "/v1/requests", p["instance"])
	require.Equal(t, h.log.Sent()[1].ID, r.Header().Get("Assent-Command-Id"), "the refused command is in the log")
	require.Len(t, h.log.Sent(), 2, "the decider, not the api, refuses a conflict")
	// Another principal reusing the id conflicts too: the requester is content.
	r = h.do(http.MethodPost, "/v1/requests", alice, deploy("r-conflict", "ship"))
	requireProblem(t, r, http.StatusConflict, "conflict")
}

func TestSubmitRefusals(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for _, tc := range []struct {
		name, body string
		status     int
		code       string
		sent       bool
	}{
		{"no policy", `{"action":{"type":"deploy","resource":"services/web","environment":"qa"},"reason":"r"}`, 422, "no_policy", true},
		{"missing type", `{"action":{"resource":"services/web","environment":"production"},"reason":"r"}`, 422, "invalid", false},
		{"missing reason", `{"action":{"type":"deploy","resource":"services/web","environment":"production"}}`, 422, "invalid", false},
		{"long reason", `{"action":{"type":"deploy","resource":"services/web","environment":"production"},"reason":"` + strings.Repeat("x", approval.MaxReasonLen+1) + `"}`, 422, "invalid", false},
		{"details not an object", `{"action":{"type":"deploy","resource":"services/web","environment":"production","details":[1]},"reason":"r"}`, 422, "invalid", false},
		{"control character", `{"action":{"type":"deploy\u0007","resource":"services/web","environment":"production"},"reason":"r"}`, 422, "invalid", false},
		{"bad ttl", `{"action":{"type":"deploy","resource":"services/web","environment":"production"},"reason":"r","ttl":"forever"}`, 422, "invalid", false},
		{"negative ttl", `{"action":{"type":"deploy","resource":"services/web","environment":"production"},"reason":"r","ttl":"-5s"}`, 422, "invalid", false},
		{"slash in request id", `{"request_id":"a/b","action":{"type":"deploy","resource":"services/web","environment":"production"},"reason":"r"}`, 422, "invalid", false},
		{"long request id", `{"request_id":"` + strings.Repeat("a", 129) + `","action":{"type":"deploy","resource":"services/web","environment":"production"},"reason":"r"}`, 422, "invalid", false},
		{"bad requester", `{"action":{"type":"deploy","resource":"services/web","environment":"production"},"reason":"r","requester":"nobody"}`, 403, "forbidden", false},
	} {
		before := len(h.log.Sent())
		r := h.do(http.MethodPost, "/v1/requests", deployBot, tc.body)
		requireProblem(t, r, tc.status, tc.code)
		require.Equal(t, tc.sent, len(h.log.Sent()) > before, tc.name)
	}
}

func TestSubmitTTLIsCappedAndKept(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	v := h.submit(deployBot, `{"request_id":"r-ttl","action":{"type":"deploy","resource":"services/web","environment":"production"},"reason":"r","ttl":"90s"}`, http.StatusCreated)
	require.Equal(t, "1m30s", v["policy"].(map[string]any)["ttl"])
	v = h.submit(deployBot, `{"request_id":"r-ttl-long","action":{"type":"deploy","resource":"services/web","environment":"production"},"reason":"r","ttl":"100h"}`, http.StatusCreated)
	require.Equal(t, "1h0m0s", v["policy"].(map[string]any)["ttl"], "capped by the policy")
}

func TestWriteTimesOutWithAccepted(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withWriteWait(50*time.Millisecond))
	h.log.Hold.Store(true)
	r := h.do(http.MethodPost, "/v1/requests", deployBot, deploy("r-slow", "ship"))
	require.Equal(t, http.StatusAccepted, r.Code, "body: %s", r.body)
	require.Equal(t, "/v1/requests/r-slow", r.Header().Get("Location"))
	validateAPI(t, "Accepted", r.body)
	v := r.json(t)
	require.Equal(t, "accepted", v["status"])
	require.Equal(t, "r-slow", v["request_id"])
	require.Equal(t, h.log.Sent()[0].ID, v["command_id"])

	r = h.do(http.MethodPost, "/v1/requests/r-slow/votes", alice, `{"decision":"approve"}`)
	require.Equal(t, http.StatusAccepted, r.Code, "body: %s", r.body)
	require.Equal(t, "/v1/requests/r-slow", r.Header().Get("Location"))
	r = h.do(http.MethodPost, "/v1/requests/r-slow/cancel", deployBot, "")
	require.Equal(t, http.StatusAccepted, r.Code, "body: %s", r.body)
}

func TestSlowDecisionIsWaitedFor(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.log.Delay = 100 * time.Millisecond
	h.submit(deployBot, deploy("r-late", "ship"), http.StatusCreated)
}

func TestSendFailureIsUnavailable(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.log.Fail = errors.New("NOT_ENOUGH_REPLICAS")
	r := h.do(http.MethodPost, "/v1/requests", deployBot, deploy("r-down", "ship"))
	requireProblem(t, r, http.StatusServiceUnavailable, "")
	require.Equal(t, "1", r.Header().Get("Retry-After"))
	require.NotContains(t, string(r.body), "NOT_ENOUGH_REPLICAS", "internals stay in the log")
}

func TestVotes(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.submit(deployBot, payments("r-pay"), http.StatusCreated)
	vote := func(token, body string) response {
		t.Helper()
		return h.do(http.MethodPost, "/v1/requests/r-pay/votes", token, body)
	}
	// Not an approver under the snapshot.
	requireProblem(t, vote(erin, `{"decision":"approve"}`), http.StatusForbidden, "not_eligible")
	// Naming a voter needs on_behalf.
	requireProblem(t, vote(zed, `{"decision":"approve","voter":"user:alice@example.com"}`), http.StatusForbidden, "forbidden")
	// A bad decision never reaches Kafka.
	before := len(h.log.Sent())
	requireProblem(t, vote(alice, `{"decision":"maybe"}`), http.StatusUnprocessableEntity, "invalid")
	require.Len(t, h.log.Sent(), before)

	r := vote(alice, `{"decision":"approve","comment":"lgtm"}`)
	require.Equal(t, http.StatusOK, r.Code, "body: %s", r.body)
	validateAPI(t, "RequestView", r.body)
	v := r.json(t)
	require.Equal(t, "pending", v["status"], "payments needs two")
	require.EqualValues(t, 1, v["approvals"])
	require.NotContains(t, r.Header(), "Location") // a 200 answers in place
	requireProblem(t, vote(alice, `{"decision":"approve"}`), http.StatusConflict, "duplicate_vote")

	// The gateway votes for heidi: the actor is heidi.
	r = vote(gateway, `{"decision":"approve","comment":"ok","voter":"user:heidi@example.com"}`)
	require.Equal(t, http.StatusOK, r.Code, "body: %s", r.body)
	v = r.json(t)
	require.Equal(t, "approved", v["status"], "the deciding vote answers with the decision")
	require.Equal(t, []any{"user:alice@example.com", "user:heidi@example.com"}, v["decided_by"])
	require.NotEmpty(t, v["decided_at"])
	sent := h.log.Sent()
	require.Equal(t, "user:heidi@example.com", sent[len(sent)-1].Actor)
	require.NotContains(t, string(sent[len(sent)-1].Data), "voter", "the voter is the actor")

	requireProblem(t, vote(bob, `{"decision":"reject"}`), http.StatusConflict, "already_decided")
	// An unknown request: the decider says not_found.
	r = h.do(http.MethodPost, "/v1/requests/r-nope/votes", alice, `{"decision":"approve"}`)
	requireProblem(t, r, http.StatusNotFound, "not_found")
	h.validateSent()
}

func TestSelfApprovalAndReject(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.submit(alice, deploy("r-mine", "mine"), http.StatusCreated)
	requireProblem(t, h.do(http.MethodPost, "/v1/requests/r-mine/votes", alice, `{"decision":"approve"}`), http.StatusForbidden, "self_approval")
	r := h.do(http.MethodPost, "/v1/requests/r-mine/votes", bob, `{"decision":"reject","comment":"not today"}`)
	require.Equal(t, http.StatusOK, r.Code, "body: %s", r.body)
	v := r.json(t)
	require.Equal(t, "rejected", v["status"])
	require.Equal(t, []any{"user:bob@example.com"}, v["decided_by"])
}

func TestExpiredVote(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	start := time.Now().UTC()
	h.log.SetNow(start)
	h.submit(deployBot, `{"request_id":"r-old","action":{"type":"deploy","resource":"services/web","environment":"production"},"reason":"r","ttl":"1m"}`, http.StatusCreated)
	h.log.SetNow(start.Add(2 * time.Minute))
	requireProblem(t, h.do(http.MethodPost, "/v1/requests/r-old/votes", bob, `{"decision":"approve"}`), http.StatusConflict, "expired")
	v := h.do(http.MethodGet, "/v1/requests/r-old", bob, "").json(t)
	require.Equal(t, "expired", v["status"])
	require.NotContains(t, v, "decided_by", "nobody decided an expiry")
}

func TestCancel(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.submit(deployBot, deploy("r-c1", "one"), http.StatusCreated)
	h.submit(deployBot, deploy("r-c2", "two"), http.StatusCreated)

	requireProblem(t, h.do(http.MethodPost, "/v1/requests/r-c1/cancel", zed, ""), http.StatusForbidden, "forbidden")
	// The requester, without a body.
	r := h.do(http.MethodPost, "/v1/requests/r-c1/cancel", deployBot, "")
	require.Equal(t, http.StatusOK, r.Code, "body: %s", r.body)
	v := r.json(t)
	require.Equal(t, "cancelled", v["status"])
	require.Equal(t, []any{"service:deploy-bot"}, v["decided_by"])
	requireProblem(t, h.do(http.MethodPost, "/v1/requests/r-c1/cancel", deployBot, `{"reason":"again"}`), http.StatusConflict, "already_decided")
	// A policy admin, with a reason.
	r = h.do(http.MethodPost, "/v1/requests/r-c2/cancel", judy, `{"reason":"superseded"}`)
	require.Equal(t, http.StatusOK, r.Code, "body: %s", r.body)
	require.Equal(t, "cancelled", r.json(t)["status"])
	requireProblem(t, h.do(http.MethodPost, "/v1/requests/r-c3/cancel", judy, `{}`), http.StatusNotFound, "not_found")
	h.validateSent()
}

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	body := `{"action":{"type":"deploy","resource":"services/web","environment":"production"},"reason":"r"}`
	first := h.submit(deployBot, body, http.StatusCreated, "Idempotency-Key: build-42")
	again := h.submit(deployBot, body, http.StatusCreated, "Idempotency-Key: build-42")
	require.Equal(t, first, again, "a keyed submit without request_id names one request")
	require.Len(t, h.log.Sent(), 1)
	rid := first["id"].(string)
	require.Regexp(t, `^[0-9a-f]{8}-[0-9a-f]{4}-8`, rid, "derived ids are name-based UUIDv8")
	// The same key for other content.
	r := h.do(http.MethodPost, "/v1/requests", deployBot, strings.Replace(body, `"r"`, `"other"`, 1), "Idempotency-Key: build-42")
	requireProblem(t, r, http.StatusConflict, "conflict")
	// Another caller's key is another request.
	other := h.submit(alice, body, http.StatusCreated, "Idempotency-Key: build-42")
	require.NotEqual(t, rid, other["id"])

	// A keyed vote retried reports the first outcome without a new command.
	path := "/v1/requests/" + rid + "/votes"
	r1 := h.do(http.MethodPost, path, bob, `{"decision":"approve"}`, "Idempotency-Key: click-1")
	require.Equal(t, http.StatusOK, r1.Code, "body: %s", r1.body)
	n := len(h.log.Sent())
	r2 := h.do(http.MethodPost, path, bob, `{"decision":"approve"}`, "Idempotency-Key: click-1")
	require.Equal(t, http.StatusOK, r2.Code, "body: %s", r2.body)
	require.Equal(t, r1.body, r2.body)
	require.Len(t, h.log.Sent(), n)
	// Unkeyed, the retry is a second vote.
	requireProblem(t, h.do(http.MethodPost, path, bob, `{"decision":"approve"}`), http.StatusConflict, "already_decided")

	requireProblem(t, h.do(http.MethodPost, "/v1/requests", deployBot, body, "Idempotency-Key: caf\u00e9"), http.StatusBadRequest, "invalid")
}

package ports_test

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
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

// TestSendFailureIsOutcomeUnknown: a send Kafka did not acknowledge may
// still have been written, so the api cannot say "nothing happened". It
// answers 503 outcome_unknown with the ids a retry must repeat, and a
// submit without request_id or key still gets a request id to retry with.
func TestSendFailureIsOutcomeUnknown(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.log.Fail = errors.New("NOT_ENOUGH_REPLICAS")
	body := `{"action":{"type":"deploy","resource":"services/web","environment":"production"},"reason":"r"}`
	r := h.do(http.MethodPost, "/v1/requests", deployBot, body)
	p := requireProblem(t, r, http.StatusServiceUnavailable, "outcome_unknown")
	require.Equal(t, "1", r.Header().Get("Retry-After"))
	require.NotContains(t, string(r.body), "NOT_ENOUGH_REPLICAS", "internals stay in the log")
	rid, _ := p["request_id"].(string)
	require.Regexp(t, `^[0-9a-f]{8}-[0-9a-f]{4}-7`, rid, "the request id made for the submit, to retry with")
	require.NotEmpty(t, p["command_id"])
	require.Equal(t, "/v1/requests/"+rid, r.Header().Get("Location"), "where to look the outcome up")
	require.Empty(t, r.Header().Get("Assent-Command-Id"), "no command is known to be in the log")

	// A vote and a cancel name their request and command too.
	for path, body := range map[string]string{"/v1/requests/r-down/votes": `{"decision":"approve"}`, "/v1/requests/r-down/cancel": ""} {
		r = h.do(http.MethodPost, path, alice, body, "Idempotency-Key: k-1")
		p = requireProblem(t, r, http.StatusServiceUnavailable, "outcome_unknown")
		require.Equal(t, "r-down", p["request_id"], path)
		require.NotEmpty(t, p["command_id"], path)
		require.Equal(t, "/v1/requests/r-down", r.Header().Get("Location"), path)
	}

	// Kafka is back: the retry with the request id it was given is the
	// same submit, and there is one request.
	h.log.Fail = nil
	retry := strings.Replace(body, `{"action"`, `{"request_id":"`+rid+`","action"`, 1)
	v := h.submit(deployBot, retry, http.StatusCreated)
	require.Equal(t, rid, v["id"])
	v = h.submit(deployBot, retry, http.StatusCreated)
	require.Equal(t, rid, v["id"])
	require.Len(t, h.log.Sent(), 1, "the second retry is answered from the projection")
}

// TestLostAcknowledgementRetryIsExactlyOnce: Kafka wrote the command but
// its acknowledgement was lost, so the api answered outcome_unknown. A
// retry with the same Idempotency-Key names the same command, whether the
// first one was decided already (answered from the projection) or not yet
// (sent again, and the decider's command-id dedupe adds nothing).
func TestLostAcknowledgementRetryIsExactlyOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	lost := errors.New("the connection to the leader was cut after the write")
	body := `{"action":{"type":"deploy","resource":"services/payments/api","environment":"production"},"reason":"PCI release"}`

	// A keyed submit without request_id: decided already when retried.
	h.log.FailAfterWrite = lost
	r := h.do(http.MethodPost, "/v1/requests", deployBot, body, "Idempotency-Key: build-7")
	p := requireProblem(t, r, http.StatusServiceUnavailable, "outcome_unknown")
	rid, cid := p["request_id"].(string), p["command_id"].(string)
	require.Regexp(t, `^[0-9a-f]{8}-[0-9a-f]{4}-8`, rid, "derived from the key")
	require.Len(t, h.log.Sent(), 1)
	require.Equal(t, cid, h.log.Sent()[0].CommandID, "the body names the command that was written")
	h.log.FailAfterWrite = nil
	requireEventually(t, func() bool { return h.do(http.MethodGet, "/v1/requests/"+rid, deployBot, "").Code == http.StatusOK })
	r = h.do(http.MethodPost, "/v1/requests", deployBot, body, "Idempotency-Key: build-7")
	require.Equal(t, http.StatusCreated, r.Code, "body: %s", r.body)
	require.Equal(t, rid, r.json(t)["id"])
	require.Equal(t, cid, r.Header().Get("Assent-Command-Id"))
	require.Len(t, h.log.Sent(), 1, "answered from the projection")

	// A keyed vote retried before the first is decided: sent again under
	// the same command id, and counted once. The fake decides each command
	// 100ms after its send, so the retry finds no outcome yet.
	d := newHarness(t)
	d.log.Delay = 100 * time.Millisecond
	d.submit(deployBot, payments("r-lost"), http.StatusCreated)
	path := "/v1/requests/r-lost/votes"
	d.log.FailAfterWrite = lost
	r = d.do(http.MethodPost, path, alice, `{"decision":"approve","comment":"ok"}`, "Idempotency-Key: vote-1")
	p = requireProblem(t, r, http.StatusServiceUnavailable, "outcome_unknown")
	vid := p["command_id"].(string)
	require.Equal(t, "r-lost", p["request_id"])
	d.log.FailAfterWrite = nil
	r = d.do(http.MethodPost, path, alice, `{"decision":"approve","comment":"ok"}`, "Idempotency-Key: vote-1")
	require.Equal(t, http.StatusOK, r.Code, "body: %s", r.body)
	require.Equal(t, vid, r.Header().Get("Assent-Command-Id"))
	sent := d.log.Sent()
	require.Len(t, sent, 3)
	require.Equal(t, vid, sent[1].CommandID)
	require.Equal(t, vid, sent[2].CommandID, "the retry is the same command")
	v := r.json(t)
	require.Len(t, v["votes"], 1)
	require.EqualValues(t, 1, v["approvals"])

	// Both sends are decided; the second adds nothing (I2).
	d.log.Settle()
	n := 0
	for _, e := range d.do(http.MethodGet, "/v1/requests/r-lost/events", deployBot, "").json(t)["items"].([]any) {
		ev := e.(map[string]any)["event"].(map[string]any)
		require.NotEqual(t, approval.TypeCommandRejected, ev["type"])
		if ev["type"] == approval.TypeVoteRecorded {
			n++
			require.Equal(t, vid, ev["commandid"])
		}
	}
	require.Equal(t, 1, n, "one vote.recorded for two sends of the command")
	h.validateSent()
	d.validateSent()
}

// requireEventually polls cond until it holds, for at most 5s.
func requireEventually(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		require.False(t, time.Now().After(deadline), "the condition did not hold within 5s")
		time.Sleep(5 * time.Millisecond)
	}
}

// TestIdempotencyKeyReusedOnVoteAndCancel: a key names one intention. A
// retry with the same body gets the first outcome; the same key with
// another body is a client bug, refused 422 idempotency_key_reused rather
// than answered with the first outcome as if it were this one.
func TestIdempotencyKeyReusedOnVoteAndCancel(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.submit(deployBot, payments("r-reuse"), http.StatusCreated)
	path := "/v1/requests/r-reuse/votes"
	r := h.do(http.MethodPost, path, alice, `{"decision":"approve","comment":"lgtm"}`, "Idempotency-Key: k-vote")
	require.Equal(t, http.StatusOK, r.Code, "body: %s", r.body)
	first := r.Header().Get("Assent-Command-Id")
	n := len(h.log.Sent())
	for _, body := range []string{
		`{"decision":"reject","comment":"lgtm"}`,
		`{"decision":"approve","comment":"looks fine"}`,
		`{"decision":"approve"}`,
	} {
		r = h.do(http.MethodPost, path, alice, body, "Idempotency-Key: k-vote")
		p := requireProblem(t, r, http.StatusUnprocessableEntity, "idempotency_key_reused")
		require.Equal(t, "https://github.com/assent-dev/assent/blob/main/schemas/README.md#idempotency_key_reused", p["type"])
		require.Empty(t, r.Header().Get("Assent-Command-Id"), body)
	}
	require.Len(t, h.log.Sent(), n, "refused before anything is sent")
	// The same body is still the retry it always was.
	r = h.do(http.MethodPost, path, alice, `{"decision":"approve","comment":"lgtm"}`, "Idempotency-Key: k-vote")
	require.Equal(t, http.StatusOK, r.Code, "body: %s", r.body)
	require.Equal(t, first, r.Header().Get("Assent-Command-Id"))
	v := h.do(http.MethodGet, "/v1/requests/r-reuse", alice, "").json(t)
	require.Equal(t, []any{map[string]any{"voter": "user:alice@example.com", "decision": "approve", "comment": "lgtm", "at": v["votes"].([]any)[0].(map[string]any)["at"]}}, v["votes"])

	// Another voter's vote under the same key string is another command.
	r = h.do(http.MethodPost, path, heidi, `{"decision":"reject"}`, "Idempotency-Key: k-vote")
	require.Equal(t, http.StatusOK, r.Code, "body: %s", r.body)
	require.Equal(t, "rejected", r.json(t)["status"])

	// Cancel: the reason is the body.
	h.submit(deployBot, deploy("r-reuse-c", "x"), http.StatusCreated)
	cpath := "/v1/requests/r-reuse-c/cancel"
	r = h.do(http.MethodPost, cpath, deployBot, `{"reason":"superseded"}`, "Idempotency-Key: k-cancel")
	require.Equal(t, http.StatusOK, r.Code, "body: %s", r.body)
	for _, body := range []string{`{"reason":"wrong build"}`, ``, `{}`} {
		r = h.do(http.MethodPost, cpath, deployBot, body, "Idempotency-Key: k-cancel")
		requireProblem(t, r, http.StatusUnprocessableEntity, "idempotency_key_reused")
	}
	r = h.do(http.MethodPost, cpath, deployBot, `{"reason":"superseded"}`, "Idempotency-Key: k-cancel")
	require.Equal(t, http.StatusOK, r.Code, "body: %s", r.body)
	require.Equal(t, "cancelled", r.json(t)["status"])

	// Two bodies under one key at once, each sent before either is
	// decided (the fake decides 50ms after a send): the decider decides
	// the key's command once, and the write whose body lost is refused.
	d := newHarness(t)
	d.log.Delay = 50 * time.Millisecond
	d.submit(deployBot, payments("r-race"), http.StatusCreated)
	bodies := []string{`{"decision":"approve"}`, `{"decision":"reject"}`}
	answers := make([]response, len(bodies))
	var wg sync.WaitGroup
	for i, body := range bodies {
		wg.Go(func() {
			answers[i] = d.do(http.MethodPost, "/v1/requests/r-race/votes", bob, body, "Idempotency-Key: k-race")
		})
	}
	wg.Wait()
	won := slices.IndexFunc(answers, func(r response) bool { return r.Code == http.StatusOK })
	require.GreaterOrEqual(t, won, 0, "one of them is the key's vote: %s / %s", answers[0].body, answers[1].body)
	requireProblem(t, answers[1-won], http.StatusUnprocessableEntity, "idempotency_key_reused")
	votes := answers[won].json(t)["votes"].([]any)
	require.Len(t, votes, 1)
	require.Equal(t, []string{"approve", "reject"}[won], votes[0].(map[string]any)["decision"])
	d.log.Settle()
	require.Len(t, d.do(http.MethodGet, "/v1/requests/r-race", bob, "").json(t)["votes"], 1)

	// A key whose command was refused answers that refusal: the refusal
	// of a vote never depends on its decision or comment.
	r = h.do(http.MethodPost, path, erin, `{"decision":"approve"}`, "Idempotency-Key: k-erin")
	requireProblem(t, r, http.StatusConflict, "already_decided")
	r = h.do(http.MethodPost, path, erin, `{"decision":"reject"}`, "Idempotency-Key: k-erin")
	requireProblem(t, r, http.StatusConflict, "already_decided")
	h.validateSent()
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

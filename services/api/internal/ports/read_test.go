package ports_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/codec"
	"github.com/assent-dev/assent/libs/projection/requests"
	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/services/api/internal/app"
)

func TestGet(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.submit(deployBot, deploy("r-get", "ship"), http.StatusCreated)
	r := h.do(http.MethodGet, "/v1/requests/r-get", zed, "")
	require.Equal(t, http.StatusOK, r.Code, "body: %s", r.body)
	validateAPI(t, "RequestView", r.body)
	require.Equal(t, "r-get", r.json(t)["id"])

	requireProblem(t, h.do(http.MethodGet, "/v1/requests/r-unknown", zed, ""), http.StatusNotFound, "not_found")
	requireProblem(t, h.do(http.MethodGet, "/v1/requests/r-get?wait=soon", zed, ""), http.StatusBadRequest, "invalid")
	requireProblem(t, h.do(http.MethodGet, "/v1/requests/r-get?wait=-1s", zed, ""), http.StatusBadRequest, "invalid")
	// An id the domain could never accept cannot exist.
	requireProblem(t, h.do(http.MethodGet, "/v1/requests/a%2Fb", zed, ""), http.StatusNotFound, "not_found")
	requireProblem(t, h.do(http.MethodGet, "/v1/requests/"+strings.Repeat("x", 129), zed, ""), http.StatusNotFound, "not_found")
}

func TestRequestIDsAreUnescapedOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for _, rid := range []string{"odd%41id", "colon:and+plus", "ünïcödé", "q?x#y"} {
		body, err := json.Marshal(map[string]any{
			"request_id": rid, "reason": "r",
			"action": map[string]string{"type": "deploy", "resource": "services/web", "environment": "production"},
		})
		require.NoError(t, err)
		r := h.do(http.MethodPost, "/v1/requests", deployBot, string(body))
		require.Equal(t, http.StatusCreated, r.Code, "body: %s", r.body)
		loc := r.Header().Get("Location")
		require.Equal(t, "/v1/requests/"+url.PathEscape(rid), loc)
		got := h.do(http.MethodGet, loc, zed, "")
		require.Equal(t, http.StatusOK, got.Code, "%s: %s", loc, got.body)
		require.Equal(t, rid, got.json(t)["id"])
	}
}

func TestLongPollReturnsWhenDecided(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.submit(deployBot, deploy("r-poll", "ship"), http.StatusCreated)
	type result struct {
		r    response
		took time.Duration
	}
	done := make(chan result, 1)
	go func() {
		began := time.Now()
		r := h.do(http.MethodGet, "/v1/requests/r-poll?wait=30s", zed, "")
		done <- result{r, time.Since(began)}
	}()
	// The poll is either waiting or not started yet; either way it must
	// see the decision.
	r := h.do(http.MethodPost, "/v1/requests/r-poll/votes", bob, `{"decision":"approve"}`)
	require.Equal(t, http.StatusOK, r.Code, "body: %s", r.body)
	select {
	case res := <-done:
		require.Equal(t, http.StatusOK, res.r.Code)
		require.Equal(t, "approved", res.r.json(t)["status"])
		require.Less(t, res.took, 10*time.Second)
	case <-time.After(20 * time.Second):
		t.Fatal("the long poll did not return when the decision landed")
	}
	// A decided request answers at once, and a short wait on a pending one
	// answers with the pending view.
	require.Equal(t, "approved", h.do(http.MethodGet, "/v1/requests/r-poll?wait=60m", zed, "").json(t)["status"])
	h.submit(deployBot, deploy("r-poll-2", "ship"), http.StatusCreated)
	require.Equal(t, "pending", h.do(http.MethodGet, "/v1/requests/r-poll-2?wait=20ms", zed, "").json(t)["status"])
}

func TestLongPollWaitsForARequestOnItsWay(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	done := make(chan response, 1)
	go func() { done <- h.do(http.MethodGet, "/v1/requests/r-coming?wait=30s", zed, "") }()
	h.submit(deployBot, deploy("r-coming", "ship"), http.StatusCreated)
	h.do(http.MethodPost, "/v1/requests/r-coming/cancel", deployBot, "")
	select {
	case r := <-done:
		require.Equal(t, http.StatusOK, r.Code, "body: %s", r.body)
		require.Equal(t, "cancelled", r.json(t)["status"])
	case <-time.After(20 * time.Second):
		t.Fatal("the long poll did not return")
	}
	requireProblem(t, h.do(http.MethodGet, "/v1/requests/r-never?wait=10ms", zed, ""), http.StatusNotFound, "not_found")
}

func TestList(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for i := range 5 {
		h.submit(deployBot, deploy(fmt.Sprintf("r-list-%d", i), "ship"), http.StatusCreated)
	}
	h.submit(alice, deploy("r-list-alice", "mine"), http.StatusCreated)
	h.submit(deployBot, `{"request_id":"r-list-sql","action":{"type":"sql_write","resource":"databases/main","environment":"production"},"reason":"fix"}`, http.StatusCreated)
	r := h.do(http.MethodPost, "/v1/requests/r-list-0/votes", bob, `{"decision":"approve"}`)
	require.Equal(t, http.StatusOK, r.Code)

	ids := func(v map[string]any) []string {
		var out []string
		for _, it := range v["items"].([]any) {
			out = append(out, it.(map[string]any)["id"].(string))
		}
		return out
	}
	list := func(query string) map[string]any {
		t.Helper()
		r := h.do(http.MethodGet, "/v1/requests?"+query, zed, "")
		require.Equal(t, http.StatusOK, r.Code, "body: %s", r.body)
		validateAPI(t, "RequestList", r.body)
		return r.json(t)
	}
	// alice's inbox: the pending deploys she may vote on, newest first;
	// not her own, not the approved one, not the SQL write.
	inbox := list("approver=user:alice@example.com")
	require.Equal(t, []string{"r-list-4", "r-list-3", "r-list-2", "r-list-1"}, ids(inbox))
	require.NotContains(t, inbox, "next_cursor")
	// erin, a DBA, has only the SQL write.
	require.Equal(t, []string{"r-list-sql"}, ids(list("approver=erin@example.com")))

	// Pages of two walk the same list.
	var all []string
	cursor := ""
	for page := 0; ; page++ {
		require.Less(t, page, 10)
		v := list("requester=service:deploy-bot&limit=2" + cursor)
		all = append(all, ids(v)...)
		next, ok := v["next_cursor"].(string)
		if !ok {
			break
		}
		cursor = "&cursor=" + url.QueryEscape(next)
	}
	require.Equal(t, []string{"r-list-sql", "r-list-4", "r-list-3", "r-list-2", "r-list-1", "r-list-0"}, all)
	require.Equal(t, []string{"r-list-0"}, ids(list("status=approved")))
	require.Len(t, ids(list("")), 7)

	for _, bad := range []string{
		"cursor=garbage", "status=maybe", "limit=0", "limit=201", "limit=x", "approver=nobody", "status=pending&status=approved",
	} {
		requireProblem(t, h.do(http.MethodGet, "/v1/requests?"+bad, zed, ""), http.StatusBadRequest, "invalid")
	}
	// A cursor from one filter is no cursor for another.
	v := list("requester=service:deploy-bot&limit=2")
	requireProblem(t, h.do(http.MethodGet, "/v1/requests?status=pending&cursor="+url.QueryEscape(v["next_cursor"].(string)), zed, ""), http.StatusBadRequest, "invalid")
}

func TestHistoryIsTheLogByteForByte(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.submit(deployBot, deploy("r-hist", "<b>ship</b> & \u2028 tell"), http.StatusCreated)
	requireProblem(t, h.do(http.MethodPost, "/v1/requests/r-hist/votes", erin, `{"decision":"approve"}`), http.StatusForbidden, "not_eligible")
	r := h.do(http.MethodPost, "/v1/requests/r-hist/votes", bob, `{"decision":"approve","comment":"a < b"}`)
	require.Equal(t, http.StatusOK, r.Code)

	r = h.do(http.MethodGet, "/v1/requests/r-hist/events", zed, "")
	require.Equal(t, http.StatusOK, r.Code, "body: %s", r.body)
	validateAPI(t, "EventList", r.body)
	var got struct {
		Items []struct {
			Partition int32           `json:"partition"`
			Offset    int64           `json:"offset"`
			Event     json.RawMessage `json:"event"`
		} `json:"items"`
	}
	require.NoError(t, json.Unmarshal(r.body, &got))
	types := []string{}
	prev := wire.GenesisHash
	for i, it := range got.Items {
		env, err := wire.Unmarshal(it.Event)
		require.NoError(t, err)
		types = append(types, env.Type)
		require.Equal(t, fmt.Sprint(i+1), env.Sequence, "gapless sequences")
		require.Equal(t, prev, env.PrevHash, "the bytes served are the bytes hashed")
		require.Equal(t, int64(i), it.Offset, "the fake's partition holds only this request")
		prev = wire.Hash(it.Event)
	}
	require.Equal(t, []string{
		"dev.assent.request.submitted", "dev.assent.command.rejected",
		"dev.assent.vote.recorded", "dev.assent.request.approved",
	}, types)
	require.Contains(t, string(r.body), `<b>ship</b> & `, "no HTML escaping")
	requireProblem(t, h.do(http.MethodGet, "/v1/requests/r-none/events", zed, ""), http.StatusNotFound, "not_found")
}

func TestNotReadyIsUnavailable(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.log.SetReady(false)
	requireProblem(t, h.do(http.MethodGet, "/v1/requests/x", zed, ""), http.StatusServiceUnavailable, "")
	requireProblem(t, h.do(http.MethodPost, "/v1/requests", deployBot, deploy("r-x", "x")), http.StatusServiceUnavailable, "")
	require.Empty(t, h.log.Sent(), "nothing is sent while the outcome could not be seen")
	r := h.do(http.MethodGet, "/readyz", "", "")
	require.Equal(t, http.StatusServiceUnavailable, r.Code)
	require.Contains(t, string(r.body), "catching up")
	h.log.SetReady(true)
	require.Equal(t, http.StatusOK, h.do(http.MethodGet, "/readyz", "", "").Code)
	require.Equal(t, "ok\n", string(h.do(http.MethodGet, "/healthz", "", "").body))
}

type panicky struct{ app.Store }

func (panicky) List(requests.Filter) (requests.Page, error) { panic("boom") }

func TestPanicIsAProblem(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withStore(func(s app.Store) app.Store { return panicky{s} }))
	r := h.do(http.MethodGet, "/v1/requests", zed, "")
	requireProblem(t, r, http.StatusInternalServerError, "")
	require.NotContains(t, string(r.body), "boom")
	// The server goes on.
	require.Equal(t, http.StatusOK, h.do(http.MethodGet, "/healthz", "", "").Code)
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.submit(deployBot, deploy("r-metrics", "ship"), http.StatusCreated)
	require.Equal(t, http.StatusOK, h.do(http.MethodPost, "/v1/requests/r-metrics/votes", bob, `{"decision":"approve"}`).Code)
	h.do(http.MethodGet, "/v1/nothing", zed, "")
	h.do(http.MethodGet, "/v1/requests/r-metrics", "", "")
	body := string(h.do(http.MethodGet, "/metrics", "", "").body)
	for _, want := range []string{
		`assent_api_http_requests_total{method="POST",route="/v1/requests",status="201"} 1`,
		`assent_api_http_requests_total{method="POST",route="/v1/requests/:id/votes",status="200"} 1`,
		`assent_api_http_requests_total{method="GET",route="unmatched",status="404"} 1`,
		`assent_api_http_requests_total{method="GET",route="/v1/requests/:id",status="401"} 1`,
		`assent_api_projected_decisions_total{outcome="approved"} 1`,
		`assent_approval_latency_seconds_count 1`,
		`assent_api_write_wait_seconds_count{command="dev.assent.command.submit",outcome="accepted"} 1`,
		`assent_api_command_send_seconds_count 2`,
		`assent_api_projection_ready 1`,
	} {
		require.Contains(t, body, want)
	}
}

// The notifier's given-up deliveries are in the request's view until a
// replay: an operator sees them through the API, not only in the history.
func TestDeadLettersAreInTheView(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.submit(deployBot, deploy("r-dead", "ship"), http.StatusCreated)
	first := h.log.Sent()[0]
	note := func(id string, outcome approval.DeliveryOutcome, reason string) {
		t.Helper()
		env, err := codec.CommandEnvelope(approval.Command{
			ID: id, RequestID: "r-dead", Actor: "service:notifier", Time: h.log.Now(),
			Body: approval.RecordNotification{
				Kind: approval.NotifyWebhook, Channel: "https://hooks.example.com/assent", TS: first.ID,
				Outcome: outcome, Reason: reason, Attempts: 7, At: h.log.Now(),
			},
		}, "assent/notifier")
		require.NoError(t, err)
		require.NoError(t, h.log.Send(t.Context(), env))
	}
	view := func() map[string]any {
		t.Helper()
		r := h.do(http.MethodGet, "/v1/requests/r-dead", zed, "")
		require.Equal(t, http.StatusOK, r.Code, "body: %s", r.body)
		validateAPI(t, "RequestView", r.body)
		return r.json(t)
	}
	require.NotContains(t, view(), "dead_letters", "absent when there are none")

	note("01930000-0000-7000-8000-00000000dead", approval.DeadLetter, "HTTP 410 Gone")
	require.Eventually(t, func() bool { _, ok := view()["dead_letters"]; return ok }, 5*time.Second, 10*time.Millisecond)
	got := view()["dead_letters"].([]any)
	require.Len(t, got, 1)
	dl := got[0].(map[string]any)
	require.Equal(t, "webhook", dl["kind"])
	require.Equal(t, "https://hooks.example.com/assent", dl["target"])
	require.Equal(t, first.ID, dl["event_id"])
	require.Equal(t, "HTTP 410 Gone", dl["reason"])
	require.EqualValues(t, 7, dl["attempts"])

	note("01930000-0000-7000-8000-0000000eplay", approval.ReplayAsked, "ops@example.com: receiver fixed")
	require.Eventually(t, func() bool { _, ok := view()["dead_letters"]; return !ok }, 5*time.Second, 10*time.Millisecond,
		"a replayed delivery is no longer dead")
}

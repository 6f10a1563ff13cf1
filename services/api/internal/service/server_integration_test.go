package service_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/schemas"
	"github.com/assent-dev/assent/services/api/internal/config"
	"github.com/assent-dev/assent/services/api/internal/service"
	"github.com/assent-dev/assent/test/kafkatest"
	"github.com/assent-dev/assent/test/systest"
)

// The demo tokens of testdata/tokens.yaml.
const (
	deployBot = "demo-deploy-bot"    // service:deploy-bot
	gateway   = "demo-slack-gateway" // service:slack-gateway, on_behalf
	alice     = "demo-alice"         // sre
	bob       = "demo-bob"           // sre
	erin      = "demo-erin"          // dba: no deploys
	heidi     = "demo-heidi"         // security
	judy      = "demo-judy"          // a policy admin
	zed       = "demo-zed"           // in no policy
)

// httpClient bounds every call of the tests: longer than the longest long
// poll (60s) and than a write's produce and wait.
var httpClient = &http.Client{Timeout: 90 * time.Second}

// cluster is two deciders (processes) and two api replicas (in-process)
// on topics of their own.
type cluster struct {
	t      *testing.T
	topics eventlog.TopicSpec
	apis   []string // base URLs
	kafka  eventlog.Config

	mu    sync.Mutex
	acked []systest.Acked
	next  int // round robin over the replicas
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	brokers := kafkatest.Brokers(t)
	topics := kafkatest.NewTopics(t, 12)
	c := &cluster{t: t, topics: topics, kafka: kafkatest.Config(t, "api-e2e")}
	startDeciders(t, topics, brokers)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	for i := range 2 {
		c.apis = append(c.apis, startAPI(t, topics, brokers, fmt.Sprintf("api-%d", i)))
	}
	for _, base := range c.apis {
		require.NoError(t, waitReady(ctx, base))
	}
	return c
}

// startDeciders runs two deciders (processes) on topics, straight to the
// cluster (they authenticate with the environment's ASSENT_KAFKA_USER and
// ASSENT_KAFKA_PASSWORD_FILE, which they inherit).
func startDeciders(t *testing.T, topics eventlog.TopicSpec, brokers []string) {
	t.Helper()
	bin := systest.Build(t, "decider")
	root := systest.RepoRoot()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	for i := range 2 {
		p := systest.NewProc(t, filepath.Join(bin, "decider"), fmt.Sprintf("decider-%d-%s", i, topics.Commands),
			"ASSENT_KAFKA_BROKERS="+strings.Join(brokers, ","),
			"ASSENT_POLICY_FILE="+filepath.Join(root, "infra/policies/example.yaml"),
			"ASSENT_PARTITIONS=12",
			"ASSENT_COMMANDS_TOPIC="+topics.Commands,
			"ASSENT_EVENTS_TOPIC="+topics.Events,
			"ASSENT_DECIDER_GROUP=test-decider-"+topics.Commands,
			"ASSENT_LOG_LEVEL=info",
		)
		p.Start()
		require.NoError(t, p.WaitReady(ctx))
		t.Cleanup(func() {
			if t.Failed() || os.Getenv("ASSENT_TEST_LOGS") != "" {
				logs, _ := os.ReadFile(p.Log)
				t.Logf("%s log (tail):\n%s", p.Name, tail(string(logs), 40))
			}
		})
	}
}

// startAPI runs one api replica in-process until the test ends. env
// ("KEY=value") adds to or overrides its environment.
func startAPI(t *testing.T, topics eventlog.TopicSpec, brokers []string, name string, env ...string) string {
	t.Helper()
	vars := map[string]string{ //nolint:gosec // G101: a path to the demo tokens file, not a credential
		"ASSENT_KAFKA_USER": os.Getenv("ASSENT_KAFKA_USER"), "ASSENT_KAFKA_PASSWORD_FILE": os.Getenv("ASSENT_KAFKA_PASSWORD_FILE"),
		"ASSENT_KAFKA_BROKERS":    strings.Join(brokers, ","),
		"ASSENT_INSTANCE_ID":      name + "-" + topics.Commands,
		"ASSENT_DATA_DIR":         filepath.Join(t.TempDir(), name),
		"ASSENT_TOKENS_FILE":      "../../testdata/tokens.yaml",
		"ASSENT_SEAL_KEYS_FILE":   systest.DemoKeysFile(),
		"ASSENT_COMMAND_KEY_FILE": systest.DemoCommandKeyFile(systest.ServiceAPI),
		"ASSENT_COMMAND_KEY_ID":   systest.DemoCommandKeyID(systest.ServiceAPI),
		"ASSENT_PARTITIONS":       "12",
		"ASSENT_COMMANDS_TOPIC":   topics.Commands,
		"ASSENT_EVENTS_TOPIC":     topics.Events,
		// Generous, so that a slow first rebalance of the deciders
		// gives a late 201 rather than a 202 the test did not expect.
		"ASSENT_WRITE_WAIT": "20s",
	}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	cfg, err := config.Load(func(k string) string { return vars[k] })
	require.NoError(t, err)
	cfg.Listener, err = net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	base := "http://" + cfg.Listener.Addr().String()
	logs := &syncBuf{}
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	done := make(chan error, 1)
	go func() { done <- service.Run(ctx, cfg, logs) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err, "%s stopped with an error", name)
		case <-time.After(30 * time.Second):
			t.Errorf("%s did not stop within 30s", name)
		}
		if t.Failed() || os.Getenv("ASSENT_TEST_LOGS") != "" {
			t.Logf("%s log (tail):\n%s", name, tail(logs.String(), 40))
		}
	})
	return base
}

func waitReady(ctx context.Context, base string) error {
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/readyz", nil)
		resp, err := httpClient.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w", base, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) json(t *testing.T) map[string]any {
	t.Helper()
	var v map[string]any
	require.NoError(t, json.Unmarshal(r.body, &v), "body: %s", r.body)
	return v
}

// call sends a request to replica i (or the next one, round robin, when
// i < 0) and records the commands acknowledged with a 2xx.
func (c *cluster) call(t *testing.T, i int, method, path, token, body string, headers ...string) reply {
	t.Helper()
	c.mu.Lock()
	if i < 0 {
		i = c.next % len(c.apis)
		c.next++
	}
	c.mu.Unlock()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, c.apis[i]+path, rd)
	require.NoError(t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Set(k, v)
	}
	resp, err := httpClient.Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	r := reply{status: resp.StatusCode, header: resp.Header, body: b}
	if method == http.MethodPost && r.status/100 == 2 {
		rid := requestIDOf(t, path, r)
		c.mu.Lock()
		// A submit may be an identical resubmit: answered from the
		// projection without a command, or written (when this replica had
		// not seen the request yet) and decided as a no-op that leaves no
		// event. Either way its promise is that the request exists.
		c.acked = append(c.acked, systest.Acked{RequestID: rid, CommandID: r.header.Get("Assent-Command-Id"),
			Resubmit: path == "/v1/requests"})
		c.mu.Unlock()
	}
	return r
}

func requestIDOf(t *testing.T, path string, r reply) string {
	if path != "/v1/requests" {
		rid, _ := url.PathUnescape(strings.Split(strings.TrimPrefix(path, "/v1/requests/"), "/")[0])
		return rid
	}
	v := r.json(t)
	if id, ok := v["id"].(string); ok {
		return id
	}
	return v["request_id"].(string)
}

func (c *cluster) expect(t *testing.T, i int, method, path, token, body string, status int, headers ...string) map[string]any {
	t.Helper()
	r := c.call(t, i, method, path, token, body, headers...)
	require.Equal(t, status, r.status, "%s %s: %s", method, path, r.body)
	if status >= 400 {
		require.Equal(t, "application/problem+json", r.header.Get("Content-Type"), "body: %s", r.body)
	}
	return r.json(t)
}

func (c *cluster) submit(t *testing.T, i int, token, body string) map[string]any {
	t.Helper()
	return c.expect(t, i, http.MethodPost, "/v1/requests", token, body, http.StatusCreated)
}

func (c *cluster) vote(t *testing.T, i int, token, rid, decision string, status int) map[string]any {
	t.Helper()
	return c.expect(t, i, http.MethodPost, "/v1/requests/"+rid+"/votes", token, `{"decision":"`+decision+`"}`, status)
}

// get reads a request from replica i, waiting for it to have status (the
// replica's projection may be a few milliseconds behind the writer's).
func (c *cluster) get(t *testing.T, i int, rid, status string) map[string]any {
	t.Helper()
	var v map[string]any
	wait := "?wait=5s" // until it is decided
	if status == "pending" {
		wait = ""
	}
	eventually(t, 30*time.Second, func() bool {
		r := c.call(t, i, http.MethodGet, "/v1/requests/"+rid+wait, zed, "")
		if r.status != http.StatusOK {
			return false
		}
		v = r.json(t)
		return v["status"] == status
	}, "request %s never reached %s on replica %d (last %v)", rid, status, i, &v)
	return v
}

func uniq(prefix string) string { return prefix + "-" + wire.NewID(time.Now()) }

func deployBody(rid, reason string) string {
	return `{"request_id":"` + rid + `","action":{"type":"deploy","resource":"services/web","environment":"production","details":{"version":"1.2.3"}},"reason":"` + reason + `"}`
}

func paymentsBody(rid string) string {
	return `{"request_id":"` + rid + `","action":{"type":"deploy","resource":"services/payments/api","environment":"production"},"reason":"PCI release"}`
}

// TestIntegrationAPI drives two api replicas, alternating, in front of two
// deciders on the real cluster, then checks the whole log with the
// invariant checker.
func TestIntegrationAPI(t *testing.T) {
	c := startCluster(t)
	t.Run("scenarios", func(t *testing.T) {
		t.Run("approve by quorum", c.approveByQuorum)
		t.Run("reject", c.reject)
		t.Run("expire", c.expire)
		t.Run("cancel", c.cancel)
		t.Run("refusals", c.refusals)
		t.Run("resubmit and conflict", c.resubmit)
		t.Run("idempotency key across replicas", c.idempotencyKey)
		t.Run("auth and malformed input", c.badInput)
		t.Run("list", c.list)
		t.Run("long poll", c.longPoll)
	})
	if t.Failed() {
		return
	}
	// The log agrees with everything the replicas said (I1–I4, I6).
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	log, err := systest.ReadLog(ctx, c.kafka, c.topics.Events)
	require.NoError(t, err)
	res := systest.Check(log, c.acked)
	require.Empty(t, res.Anomalies, res.Summary())
	for _, r := range log {
		require.NoError(t, schemas.Validate(r.Value), "event at %d@%d", r.Partition, r.Offset)
	}
	t.Logf("log: %s", res.Summary())
	// Each replica's projection saw the decisions.
	for i := range c.apis {
		r := c.call(t, i, http.MethodGet, "/metrics", "", "")
		require.Contains(t, string(r.body), "assent_approval_latency_seconds_count")
		require.Contains(t, string(r.body), `assent_api_projected_decisions_total{outcome="approved"}`)
		for _, kind := range []string{"fold", "gap", "invalid", "unauthenticated"} {
			require.Contains(t, string(r.body), `assent_consistency_violations_total{kind="`+kind+`"} 0`)
		}
	}
}

func (c *cluster) approveByQuorum(t *testing.T) {
	t.Parallel()
	rid := uniq("quorum")
	v := c.submit(t, 0, deployBot, paymentsBody(rid))
	require.Equal(t, "pending", v["status"])
	require.Equal(t, "prod-deploy-payments", v["policy"].(map[string]any)["name"])
	v = c.vote(t, 1, alice, rid, "approve", http.StatusOK)
	require.Equal(t, "pending", v["status"], "payments needs two approvals")
	require.EqualValues(t, 1, v["approvals"])
	v = c.expect(t, 0, http.MethodPost, "/v1/requests/"+rid+"/votes", gateway, `{"decision":"approve","comment":"via Slack","voter":"user:heidi@example.com"}`, http.StatusOK)
	require.Equal(t, "approved", v["status"])
	require.Equal(t, []any{"user:alice@example.com", "user:heidi@example.com"}, v["decided_by"])
	require.NotEmpty(t, v["decided_at"])
	c.get(t, 1, rid, "approved")
	c.vote(t, 1, bob, rid, "approve", http.StatusConflict) // already_decided

	// The history, from either replica, is the log: in order, gapless,
	// in the request's partition, chained where nothing came between.
	r := c.call(t, 1, http.MethodGet, "/v1/requests/"+rid+"/events", zed, "")
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	var h struct {
		Items []struct {
			Partition int32           `json:"partition"`
			Offset    int64           `json:"offset"`
			Event     json.RawMessage `json:"event"`
		} `json:"items"`
	}
	require.NoError(t, json.Unmarshal(r.body, &h))
	var types []string
	for i, it := range h.Items {
		env, err := wire.Unmarshal(it.Event)
		require.NoError(t, err)
		require.NoError(t, schemas.Validate(it.Event))
		types = append(types, env.Type)
		require.Equal(t, fmt.Sprint(i+1), env.Sequence)
		require.Equal(t, rid, env.Subject)
		require.Equal(t, wire.Partition([]byte(rid), 12), it.Partition)
		if i > 0 {
			prev := h.Items[i-1]
			require.Greater(t, it.Offset, prev.Offset)
			if it.Offset == prev.Offset+1 { // same transaction: nothing between
				require.Equal(t, wire.Hash(prev.Event), env.PrevHash)
			}
		}
	}
	require.Equal(t, []string{
		"dev.assent.request.submitted", "dev.assent.vote.recorded", "dev.assent.vote.recorded",
		"dev.assent.request.approved", "dev.assent.command.rejected",
	}, types)
}

func (c *cluster) reject(t *testing.T) {
	t.Parallel()
	rid := uniq("reject")
	c.submit(t, 1, deployBot, deployBody(rid, "risky"))
	v := c.expect(t, 0, http.MethodPost, "/v1/requests/"+rid+"/votes", bob, `{"decision":"reject","comment":"not on a Friday"}`, http.StatusOK)
	require.Equal(t, "rejected", v["status"])
	require.Equal(t, []any{"user:bob@example.com"}, v["decided_by"])
	c.get(t, 1, rid, "rejected")
}

func (c *cluster) expire(t *testing.T) {
	t.Parallel()
	rid := uniq("expire")
	v := c.submit(t, 0, deployBot, `{"request_id":"`+rid+`","action":{"type":"deploy","resource":"services/web","environment":"production"},"reason":"quick","ttl":"2s"}`)
	require.Equal(t, "2s", v["policy"].(map[string]any)["ttl"])
	began := time.Now()
	r := c.call(t, 1, http.MethodGet, "/v1/requests/"+rid+"?wait=60s", zed, "")
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	v = r.json(t)
	if v["status"] == "pending" { // replica 1 had not seen the submit yet
		v = c.get(t, 1, rid, "expired")
	}
	require.Equal(t, "expired", v["status"])
	require.Less(t, time.Since(began), 30*time.Second)
	require.NotContains(t, v, "decided_by")
	p := c.vote(t, 0, bob, rid, "approve", http.StatusConflict)
	require.Equal(t, "already_decided", p["code"])
}

func (c *cluster) cancel(t *testing.T) {
	t.Parallel()
	one, two := uniq("cancel"), uniq("cancel-admin")
	c.submit(t, 0, deployBot, deployBody(one, "one"))
	c.submit(t, 1, deployBot, deployBody(two, "two"))
	p := c.expect(t, 1, http.MethodPost, "/v1/requests/"+one+"/cancel", zed, "", http.StatusForbidden)
	require.Equal(t, "forbidden", p["code"])
	v := c.expect(t, 1, http.MethodPost, "/v1/requests/"+one+"/cancel", deployBot, `{"reason":"superseded"}`, http.StatusOK)
	require.Equal(t, "cancelled", v["status"])
	p = c.expect(t, 0, http.MethodPost, "/v1/requests/"+one+"/cancel", deployBot, "", http.StatusConflict)
	require.Equal(t, "already_decided", p["code"])
	v = c.expect(t, 0, http.MethodPost, "/v1/requests/"+two+"/cancel", judy, "", http.StatusOK)
	require.Equal(t, []any{"user:judy@example.com"}, v["decided_by"])
}

func (c *cluster) refusals(t *testing.T) {
	t.Parallel()
	mine, pay := uniq("self"), uniq("dup")
	c.submit(t, 0, alice, deployBody(mine, "alice's own"))
	p := c.vote(t, 1, alice, mine, "approve", http.StatusForbidden)
	require.Equal(t, "self_approval", p["code"])
	p = c.vote(t, 0, erin, mine, "approve", http.StatusForbidden)
	require.Equal(t, "not_eligible", p["code"])

	c.submit(t, 1, deployBot, paymentsBody(pay))
	c.vote(t, 0, heidi, pay, "approve", http.StatusOK)
	p = c.vote(t, 1, heidi, pay, "approve", http.StatusConflict)
	require.Equal(t, "duplicate_vote", p["code"])
	p = c.vote(t, 0, alice, uniq("nothing"), "approve", http.StatusNotFound)
	require.Equal(t, "not_found", p["code"])
	p = c.expect(t, 1, http.MethodPost, "/v1/requests", deployBot,
		`{"action":{"type":"deploy","resource":"services/web","environment":"qa"},"reason":"no rule for qa"}`, http.StatusUnprocessableEntity)
	require.Equal(t, "no_policy", p["code"])
}

func (c *cluster) resubmit(t *testing.T) {
	t.Parallel()
	rid := uniq("resubmit")
	first := c.submit(t, 0, deployBot, deployBody(rid, "ship"))
	// The other replica may not have it yet; either way the answer is the
	// same request, and no event is added.
	again := c.submit(t, 1, deployBot, deployBody(rid, "ship"))
	require.Equal(t, first, again)
	p := c.expect(t, 0, http.MethodPost, "/v1/requests", deployBot, deployBody(rid, "ship something else"), http.StatusConflict)
	require.Equal(t, "conflict", p["code"])
	c.vote(t, 1, carolToken, rid, "approve", http.StatusOK)
	// Commands of one request are decided in order, so the history now
	// shows whatever the resubmit added: nothing.
	c.get(t, 0, rid, "approved")
	r := c.call(t, 0, http.MethodGet, "/v1/requests/"+rid+"/events", zed, "")
	var h struct {
		Items []struct {
			Event wire.Envelope `json:"event"`
		} `json:"items"`
	}
	require.NoError(t, json.Unmarshal(r.body, &h))
	var types []string
	for _, it := range h.Items {
		types = append(types, it.Event.Type)
	}
	require.Equal(t, []string{
		"dev.assent.request.submitted", "dev.assent.command.rejected", // the conflict
		"dev.assent.vote.recorded", "dev.assent.request.approved",
	}, types)
}

const carolToken = "demo-carol"

func (c *cluster) idempotencyKey(t *testing.T) {
	t.Parallel()
	key := "Idempotency-Key: " + uniq("build")
	body := `{"action":{"type":"deploy","resource":"services/web","environment":"production"},"reason":"keyed"}`
	a := c.expect(t, 0, http.MethodPost, "/v1/requests", deployBot, body, http.StatusCreated, key)
	b := c.expect(t, 1, http.MethodPost, "/v1/requests", deployBot, body, http.StatusCreated, key)
	require.Equal(t, a["id"], b["id"], "one key, one request")
	rid := a["id"].(string)
	vote := "Idempotency-Key: " + uniq("click")
	r1 := c.call(t, 1, http.MethodPost, "/v1/requests/"+rid+"/votes", bob, `{"decision":"approve"}`, vote)
	require.Equal(t, http.StatusOK, r1.status, "body: %s", r1.body)
	r2 := c.call(t, 0, http.MethodPost, "/v1/requests/"+rid+"/votes", bob, `{"decision":"approve"}`, vote)
	require.Equal(t, http.StatusOK, r2.status, "a retry reports the first outcome: %s", r2.body)
	require.Equal(t, r1.header.Get("Assent-Command-Id"), r2.header.Get("Assent-Command-Id"))
	require.Equal(t, "approved", r2.json(t)["status"])
}

func (c *cluster) badInput(t *testing.T) {
	t.Parallel()
	p := c.expect(t, 0, http.MethodPost, "/v1/requests", "", deployBody(uniq("x"), "x"), http.StatusUnauthorized)
	require.Equal(t, "unauthenticated", p["code"])
	r := c.call(t, 1, http.MethodGet, "/v1/requests", "wrong-token", "")
	require.Equal(t, http.StatusUnauthorized, r.status)
	require.Contains(t, r.header.Get("WWW-Authenticate"), "Bearer")
	p = c.expect(t, 1, http.MethodPost, "/v1/requests", deployBot,
		`{"action":{"type":"deploy","resource":"services/web","environment":"production"},"reason":"x","requester":"user:dave@example.com"}`, http.StatusForbidden)
	require.Equal(t, "forbidden", p["code"])
	for _, tc := range []struct {
		body    string
		headers []string
		status  int
	}{
		{`{"action":`, nil, http.StatusBadRequest},
		{`{"surprise":true}`, nil, http.StatusBadRequest},
		{deployBody("x", "x"), []string{"Content-Type: text/plain"}, http.StatusUnsupportedMediaType},
		{`{"reason":"` + strings.Repeat("x", 100<<10) + `"}`, nil, http.StatusRequestEntityTooLarge},
		{`{"action":{"type":"deploy","resource":"services/web","environment":"production"},"reason":""}`, nil, http.StatusUnprocessableEntity},
	} {
		p := c.expect(t, -1, http.MethodPost, "/v1/requests", deployBot, tc.body, tc.status, tc.headers...)
		require.Equal(t, "invalid", p["code"])
	}
	p = c.expect(t, 0, http.MethodGet, "/v1/nowhere", zed, "", http.StatusNotFound)
	require.Equal(t, "not_found", p["code"])
	c.expect(t, 1, http.MethodPatch, "/v1/requests/x", zed, "", http.StatusMethodNotAllowed)
}

func (c *cluster) list(t *testing.T) {
	t.Parallel()
	// A requester of its own keeps other scenarios out of the list.
	owner := "user:" + uniq("owner") + "@example.com"
	var ids []string
	for i := range 3 {
		rid := uniq(fmt.Sprintf("list-%d", i))
		c.submit(t, i%2, gateway, `{"request_id":"`+rid+`","action":{"type":"deploy","resource":"services/web","environment":"production"},"reason":"r","requester":"`+owner+`"}`)
		ids = append([]string{rid}, ids...) // newest first
	}
	q := "/v1/requests?requester=" + url.QueryEscape(owner) + "&approver=user:dana@example.com&limit=2"
	var got []string
	eventually(t, 30*time.Second, func() bool {
		got = nil
		path := q
		for range 5 {
			r := c.call(t, 1, http.MethodGet, path, zed, "")
			require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
			v := r.json(t)
			for _, it := range v["items"].([]any) {
				got = append(got, it.(map[string]any)["id"].(string))
			}
			next, ok := v["next_cursor"].(string)
			if !ok {
				break
			}
			path = q + "&cursor=" + url.QueryEscape(next)
		}
		return len(got) == 3
	}, "the list never showed all three: %v", &got)
	require.Equal(t, ids, got)
	// Once dana votes, the request leaves her inbox.
	c.vote(t, 0, "demo-dana", ids[0], "approve", http.StatusOK)
	eventually(t, 30*time.Second, func() bool {
		v := c.call(t, 1, http.MethodGet, q, zed, "").json(t)
		return len(v["items"].([]any)) == 2 && v["next_cursor"] == nil
	}, "the vote never left dana's inbox")
	p := c.expect(t, 0, http.MethodGet, "/v1/requests?cursor=bogus", zed, "", http.StatusBadRequest)
	require.Equal(t, "invalid", p["code"])
}

func (c *cluster) longPoll(t *testing.T) {
	t.Parallel()
	rid := uniq("poll")
	c.submit(t, 0, deployBot, deployBody(rid, "poll me"))
	c.get(t, 1, rid, "pending") // replica 1 has it
	type result struct {
		r    reply
		took time.Duration
	}
	done := make(chan result, 1)
	go func() {
		began := time.Now()
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, c.apis[1]+"/v1/requests/"+rid+"?wait=50s", nil)
		req.Header.Set("Authorization", "Bearer "+zed)
		resp, err := httpClient.Do(req)
		if err != nil {
			done <- result{reply{status: -1, body: []byte(err.Error())}, time.Since(began)}
			return
		}
		defer func() { _ = resp.Body.Close() }()
		b, _ := io.ReadAll(resp.Body)
		done <- result{reply{status: resp.StatusCode, body: b}, time.Since(began)}
	}()
	c.vote(t, 0, bob, rid, "approve", http.StatusOK)
	select {
	case res := <-done:
		require.Equal(t, http.StatusOK, res.r.status, "body: %s", res.r.body)
		require.Equal(t, "approved", res.r.json(t)["status"])
		require.Less(t, res.took, 30*time.Second, "well before the wait")
	case <-time.After(45 * time.Second):
		t.Fatal("the long poll did not return when the decision landed")
	}
}

// eventually polls cond in the test's goroutine until it holds or the
// deadline passes.
func eventually(t *testing.T, d time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf(format, args...)
		}
		<-tick.C
	}
}

type syncBuf = systest.SyncBuffer

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

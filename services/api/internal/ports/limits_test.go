package ports_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/daemon"
	"github.com/assent-dev/assent/services/api/internal/app"
	"github.com/assent-dev/assent/services/api/internal/auth"
	"github.com/assent-dev/assent/services/api/internal/metrics"
	"github.com/assent-dev/assent/services/api/internal/ports"
	"github.com/assent-dev/assent/test/apifake"
)

// newLimitedHarness is newHarness with the edge's limits and readiness
// set.
func newLimitedHarness(t *testing.T, limits ports.Limits, change ...func(*ports.Config)) *harness {
	t.Helper()
	log := apifake.New(t)
	tokens, err := auth.Load("../../testdata/tokens.yaml")
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	m := metrics.New(reg, log.Ready)
	cfg := ports.Config{
		App: app.New(app.Config{
			Sender: log, Projection: log, Store: log.Store, WriteWait: 5 * time.Second, Now: log.Now,
			ObserveSend: m.ObserveSend, ObserveWait: m.ObserveWait,
		}),
		Tokens: tokens, Metrics: m, Registry: reg, MaxBody: 64 << 10, Logger: slog.New(slog.DiscardHandler),
		Limits: limits,
	}
	for _, c := range change {
		c(&cfg)
	}
	return &harness{t: t, log: log, h: ports.New(cfg)}
}

// metric returns the value of a sample on /metrics ("" when absent).
func (h *harness) metric(sample string) string {
	h.t.Helper()
	for line := range strings.Lines(string(h.do(http.MethodGet, "/metrics", "", "").body)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), sample+" "); ok {
			return v
		}
	}
	return ""
}

// parked waits until n long polls are waiting on the replica.
func (h *harness) parked(n int) {
	h.t.Helper()
	require.Eventually(h.t, func() bool { return h.metric("assent_api_long_polls_in_flight") == strconv.Itoa(n) },
		10*time.Second, 5*time.Millisecond, "%d long polls never parked (now %q)", n, h.metric("assent_api_long_polls_in_flight"))
}

// poll starts a long poll and returns where its answer will arrive.
func (h *harness) poll(path, token string) <-chan response {
	done := make(chan response, 1)
	go func() { done <- h.do(http.MethodGet, path, token, "") }()
	return done
}

// requireRetryAfter checks that a refusal says when to come back.
func requireRetryAfter(t *testing.T, r response) {
	t.Helper()
	n, err := strconv.Atoi(r.Header().Get("Retry-After"))
	require.NoError(t, err, "Retry-After is whole seconds: %q", r.Header().Get("Retry-After"))
	require.Positive(t, n)
}

// TestLongPollsAreCappedPerPrincipal: a principal holding as many long
// polls as it may is told 429 rate_limited, at once, for the next one;
// others are not affected, and its plain reads and polls of decided
// requests are still answered.
func TestLongPollsAreCappedPerPrincipal(t *testing.T) {
	t.Parallel()
	h := newLimitedHarness(t, ports.Limits{LongPolls: 100, LongPollsPerPrincipal: 2})
	h.submit(deployBot, deploy("r-cap", "ship"), http.StatusCreated)
	h.submit(deployBot, deploy("r-done", "ship"), http.StatusCreated)
	require.Equal(t, http.StatusOK, h.do(http.MethodPost, "/v1/requests/r-done/cancel", deployBot, "").Code)

	first, second := h.poll("/v1/requests/r-cap?wait=30s", zed), h.poll("/v1/requests/r-cap?wait=30s", zed)
	h.parked(2)
	began := time.Now()
	r := h.do(http.MethodGet, "/v1/requests/r-cap?wait=30s", zed, "")
	p := requireProblem(t, r, http.StatusTooManyRequests, "rate_limited")
	require.Less(t, time.Since(began), 2*time.Second, "refused at once, not after the wait")
	require.Contains(t, p["detail"], "2 long polls")
	requireRetryAfter(t, r)

	// Still answered for the same principal: a read, and a long poll of a
	// request that is already decided.
	require.Equal(t, "pending", h.do(http.MethodGet, "/v1/requests/r-cap", zed, "").json(t)["status"])
	require.Equal(t, "cancelled", h.do(http.MethodGet, "/v1/requests/r-done?wait=30s", zed, "").json(t)["status"])
	// Another principal is not affected.
	require.Equal(t, "pending", h.do(http.MethodGet, "/v1/requests/r-cap?wait=10ms", alice, "").json(t)["status"])

	// The decision releases the parked polls, and with them the slots.
	require.Equal(t, http.StatusOK, h.do(http.MethodPost, "/v1/requests/r-cap/votes", bob, `{"decision":"approve"}`).Code)
	for _, done := range []<-chan response{first, second} {
		select {
		case r := <-done:
			require.Equal(t, "approved", r.json(t)["status"])
		case <-time.After(10 * time.Second):
			t.Fatal("a parked long poll did not see the decision")
		}
	}
	h.parked(0)
	h.submit(deployBot, deploy("r-again", "ship"), http.StatusCreated)
	require.Equal(t, "pending", h.do(http.MethodGet, "/v1/requests/r-again?wait=10ms", zed, "").json(t)["status"])
	require.Equal(t, "1", h.metric(`assent_api_long_polls_refused_total{limit="principal"}`))
}

// TestLongPollsAreCappedPerReplica: once the replica holds as many long
// polls as it may, the next is 503 with Retry-After (another replica may
// have room), whoever asks.
func TestLongPollsAreCappedPerReplica(t *testing.T) {
	t.Parallel()
	h := newLimitedHarness(t, ports.Limits{LongPolls: 2, LongPollsPerPrincipal: 10})
	h.submit(deployBot, deploy("r-full", "ship"), http.StatusCreated)
	a, b := h.poll("/v1/requests/r-full?wait=30s", zed), h.poll("/v1/requests/r-full?wait=30s", alice)
	h.parked(2)
	r := h.do(http.MethodGet, "/v1/requests/r-full?wait=30s", bob, "")
	requireProblem(t, r, http.StatusServiceUnavailable, "")
	requireRetryAfter(t, r)
	require.Equal(t, "1", h.metric(`assent_api_long_polls_refused_total{limit="replica"}`))
	require.Equal(t, http.StatusOK, h.do(http.MethodPost, "/v1/requests/r-full/cancel", deployBot, "").Code)
	for _, done := range []<-chan response{a, b} {
		select {
		case r := <-done:
			require.Equal(t, "cancelled", r.json(t)["status"])
		case <-time.After(10 * time.Second):
			t.Fatal("a parked long poll did not see the decision")
		}
	}
}

// TestWritesAreRateLimitedPerPrincipal: a principal over its write rate
// is told 429 rate_limited with Retry-After, and nothing is sent; other
// principals, and its own reads, are not affected.
func TestWritesAreRateLimitedPerPrincipal(t *testing.T) {
	t.Parallel()
	h := newLimitedHarness(t, ports.Limits{WriteRate: 0.2, WriteBurst: 3})
	for i := range 3 {
		h.submit(deployBot, deploy("r-burst-"+strconv.Itoa(i), "ship"), http.StatusCreated)
	}
	for _, w := range []struct{ path, body string }{
		{"/v1/requests", deploy("r-over", "ship")},
		{"/v1/requests/r-burst-0/cancel", ""},
		{"/v1/requests/r-burst-0/votes", `{"decision":"approve"}`},
	} {
		r := h.do(http.MethodPost, w.path, deployBot, w.body)
		p := requireProblem(t, r, http.StatusTooManyRequests, "rate_limited")
		require.Contains(t, p["detail"], "writes")
		requireRetryAfter(t, r)
		n, _ := strconv.Atoi(r.Header().Get("Retry-After"))
		require.LessOrEqual(t, n, 5, "one write's worth of tokens comes back within 5s at 0.2/s")
	}
	require.Len(t, h.log.Sent(), 3, "nothing over the limit reached the log")
	require.Equal(t, http.StatusOK, h.do(http.MethodGet, "/v1/requests/r-burst-0", deployBot, "").Code)
	require.Equal(t, http.StatusOK, h.do(http.MethodPost, "/v1/requests/r-burst-0/votes", alice, `{"decision":"approve"}`).Code)
	require.Equal(t, "3", h.metric("assent_api_writes_throttled_total"))
	// An unauthenticated write is 401, and spends nobody's budget.
	requireProblem(t, h.do(http.MethodPost, "/v1/requests", "", deploy("r-anon", "x")), http.StatusUnauthorized, "unauthenticated")
}

// TestWriteRateLimitIsPerPrincipalUnderLoad: one principal hammering
// writes concurrently gets no more than its burst through, while another
// principal's writes all succeed.
func TestWriteRateLimitIsPerPrincipalUnderLoad(t *testing.T) {
	t.Parallel()
	h := newLimitedHarness(t, ports.Limits{WriteRate: 1, WriteBurst: 5})
	h.submit(alice, deploy("r-target", "ship"), http.StatusCreated) // alice's first write
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for range 200 {
		wg.Go(func() {
			r := h.do(http.MethodPost, "/v1/requests/r-target/votes", erin, `{"decision":"approve"}`) // refused: not eligible
			mu.Lock()
			codes[r.Code]++
			mu.Unlock()
		})
	}
	wg.Wait()
	require.LessOrEqual(t, codes[http.StatusForbidden], 6, "at most the burst (and a token refilled) reached the log: %v", codes)
	require.GreaterOrEqual(t, codes[http.StatusTooManyRequests], 194, "%v", codes)
	for i := range 4 {
		h.submit(alice, deploy("r-alice-"+strconv.Itoa(i), "ship"), http.StatusCreated)
	}
}

// TestReadyzSeparatesReadsFromWrites: while writes cannot be made durable
// (Kafka is unreachable), /readyz still answers 200, so that a load
// balancer keeps sending reads; /readyz?scope=write says why writes are
// not ready.
func TestReadyzSeparatesReadsFromWrites(t *testing.T) {
	t.Parallel()
	var kafkaDown sync.Mutex
	down := true
	h := newLimitedHarness(t, ports.Limits{}, func(c *ports.Config) {
		c.Ready = func(context.Context) error { return nil }
		c.WriteReady = func(context.Context) error {
			kafkaDown.Lock()
			defer kafkaDown.Unlock()
			if down {
				return errors.New("kafka is unreachable")
			}
			return nil
		}
	})
	r := h.do(http.MethodGet, "/readyz", "", "")
	require.Equal(t, http.StatusOK, r.Code, "reads are ready: %s", r.body)
	r = h.do(http.MethodGet, "/readyz?scope=read", "", "")
	require.Equal(t, http.StatusOK, r.Code, "%s", r.body)
	r = h.do(http.MethodGet, "/readyz?scope=write", "", "")
	require.Equal(t, http.StatusServiceUnavailable, r.Code)
	require.Contains(t, string(r.body), "kafka is unreachable")
	kafkaDown.Lock()
	down = false
	kafkaDown.Unlock()
	require.Equal(t, http.StatusOK, h.do(http.MethodGet, "/readyz?scope=write", "", "").Code)
	r = h.do(http.MethodGet, "/readyz?scope=everything", "", "")
	require.Equal(t, http.StatusBadRequest, r.Code)
	require.Contains(t, string(r.body), "scope must be read or write")
}

// TestWritesAreRefusedAtOnceWhileKafkaIsAway: while the replica knows it
// cannot reach Kafka, every write answers 503 writes_unavailable with
// Retry-After at once, before its body is read, and nothing is sent; reads
// and long polls go on; once Kafka answers again, writes go through.
func TestWritesAreRefusedAtOnceWhileKafkaIsAway(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var away error
	h := newLimitedHarness(t, ports.Limits{WriteRate: 1000}, func(c *ports.Config) {
		c.Writable = func() error {
			mu.Lock()
			defer mu.Unlock()
			return away
		}
	})
	h.submit(deployBot, deploy("r-away", "ship"), http.StatusCreated)
	sent := len(h.log.Sent())

	mu.Lock()
	away = errors.New("kafka has not answered its pings since 10:00:00")
	mu.Unlock()
	for _, w := range []struct{ path, token, body string }{
		{"/v1/requests", deployBot, deploy("r-new", "ship")},
		{"/v1/requests/r-away/votes", bob, `{"decision":"approve"}`},
		{"/v1/requests/r-away/cancel", deployBot, ""},
	} {
		r := h.do(http.MethodPost, w.path, w.token, w.body)
		p := requireProblem(t, r, http.StatusServiceUnavailable, "writes_unavailable")
		require.Equal(t, "https://github.com/assent-dev/assent/blob/main/schemas/README.md#writes_unavailable", p["type"])
		require.Contains(t, p["detail"], "kafka has not answered its pings")
		requireRetryAfter(t, r)
		require.Empty(t, r.Header().Get(ports.HeaderCommandID), "nothing was sent")
	}
	require.Len(t, h.log.Sent(), sent, "nothing was sent while Kafka was away")
	require.Equal(t, "3", h.metric("assent_api_writes_unavailable_total"))
	// Unauthenticated writes are still told so, not that Kafka is away.
	requireProblem(t, h.do(http.MethodPost, "/v1/requests", "", deploy("r-anon", "ship")), http.StatusUnauthorized, "unauthenticated")
	// Reads go on.
	require.Equal(t, "pending", h.do(http.MethodGet, "/v1/requests/r-away", zed, "").json(t)["status"])
	require.Equal(t, "pending", h.do(http.MethodGet, "/v1/requests/r-away?wait=10ms", zed, "").json(t)["status"])

	mu.Lock()
	away = nil
	mu.Unlock()
	require.Equal(t, "approved", h.do(http.MethodPost, "/v1/requests/r-away/votes", bob, `{"decision":"approve"}`).json(t)["status"])
	require.Len(t, h.log.Sent(), sent+1)
}

// serve runs h behind daemon's HTTP serving with a short write timeout.
func serve(t *testing.T, h http.Handler, write time.Duration) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	to := daemon.DefaultTimeouts
	to.Write = write
	go func() { done <- daemon.ServeServer(ctx, ln, daemon.NewServer(h, to), time.Second) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return "http://" + ln.Addr().String()
}

// TestLongAnswersOutliveTheWriteTimeout: the server's write timeout
// bounds ordinary answers, but a long poll and a write that waits for its
// outcome move their own deadline, so that the client gets its answer and
// not a closed connection.
func TestLongAnswersOutliveTheWriteTimeout(t *testing.T) {
	t.Parallel()
	h := newLimitedHarness(t, ports.Limits{}, func(c *ports.Config) { c.WriteTimeout = 5 * time.Second })
	base := serve(t, h.h, 300*time.Millisecond)
	call := func(method, path, token, body string) (int, string, error) {
		req, err := http.NewRequestWithContext(t.Context(), method, base+path, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+token)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer func() { _ = resp.Body.Close() }()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	code, body, err := call(http.MethodPost, "/v1/requests", deployBot, deploy("r-long", "ship"))
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, code, body)

	began := time.Now()
	code, body, err = call(http.MethodGet, "/v1/requests/r-long?wait=1s", zed, "")
	require.NoError(t, err, "the long poll's answer arrives after the server's write timeout")
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, `"status":"pending"`)
	require.GreaterOrEqual(t, time.Since(began), time.Second)

	h.log.Delay = 800 * time.Millisecond // the decision takes longer than the write timeout
	code, body, err = call(http.MethodPost, "/v1/requests/r-long/votes", bob, `{"decision":"approve"}`)
	require.NoError(t, err, "the write's answer arrives after the server's write timeout")
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, `"status":"approved"`)
}

package service_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/test/kafkaproxy"
	"github.com/assent-dev/assent/test/kafkatest"
	"github.com/assent-dev/assent/test/systest"
)

// metric reads a sample of replica 0's /metrics ("" when absent).
func (c *cluster) metric(t *testing.T, sample string) string {
	t.Helper()
	for line := range strings.Lines(string(c.call(t, 0, http.MethodGet, "/metrics", "", "").body)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), sample+" "); ok {
			return v
		}
	}
	return ""
}

// probe reads a probe's status.
func (c *cluster) probe(t *testing.T, path string) int {
	t.Helper()
	return c.call(t, 0, http.MethodGet, path, "", "").status
}

// TestIntegrationKafkaOutage runs an api replica whose only way to Kafka
// is a proxy the test cuts, then stalls (the deciders reach the cluster
// directly). While Kafka is away from the replica: /readyz stays 200, so a
// load balancer keeps it; reads and long polls answer from the
// projection; /readyz?scope=write is 503; and writes answer 503 with
// Retry-After at once instead of after the produce's delivery timeout.
// When Kafka is back, writes go through again, and the log agrees with
// everything the replica acknowledged.
func TestIntegrationKafkaOutage(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	topics := kafkatest.NewTopics(t, 12)
	startDeciders(t, topics, brokers)
	proxy := kafkaproxy.New(t, brokers)
	c := &cluster{t: t, topics: topics, kafka: kafkatest.Config(t, "api-outage")}
	c.apis = []string{startAPI(t, topics, proxy.Seeds(), "api-outage")}
	ready, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	require.NoError(t, waitReady(ready, c.apis[0]))

	for _, fault := range []struct {
		name   string
		inject func()
	}{
		{"cut", proxy.Cut},
		{"stall", proxy.Stall},
	} {
		t.Run(fault.name, func(t *testing.T) {
			pending, decided := uniq("outage-pending"), uniq("outage-decided")
			voteKey := "Idempotency-Key: " + uniq("outage-vote") // a retry that did land reports the first outcome
			c.submit(t, 0, deployBot, deployBody(pending, "wait for me"))
			c.submit(t, 0, deployBot, deployBody(decided, "decide me"))
			c.vote(t, 0, alice, decided, "approve", http.StatusOK)
			require.Equal(t, http.StatusOK, c.probe(t, "/readyz?scope=write"))

			fault.inject()
			began := time.Now()
			// A write sent as Kafka goes away, before the replica can know:
			// its outcome may be unknown (franz-go may have written the
			// produce request to a connection the proxy has closed or
			// stalled, and its idempotent producer fails a record only
			// when it knows the broker did not write it), so it is only
			// logged; it is not counted as acknowledged, and the check of
			// the log holds either way.
			type answer struct {
				status int
				err    error
				took   time.Duration
			}
			during := make(chan answer, 1)
			go func() {
				req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, c.apis[0]+"/v1/requests",
					strings.NewReader(deployBody(uniq("outage-during"), "as Kafka goes")))
				req.Header.Set("Authorization", "Bearer "+deployBot)
				req.Header.Set("Content-Type", "application/json")
				resp, err := httpClient.Do(req)
				a := answer{err: err, took: time.Since(began)}
				if err == nil {
					a.status = resp.StatusCode
					_ = resp.Body.Close()
				}
				during <- a
			}()

			// Reads go on, and the load balancer keeps the replica.
			for range 10 {
				require.Equal(t, http.StatusOK, c.probe(t, "/readyz"), "a replica that can serve reads stays ready")
				v := c.expect(t, 0, http.MethodGet, "/v1/requests/"+decided, zed, "", http.StatusOK)
				require.Equal(t, "approved", v["status"])
				time.Sleep(100 * time.Millisecond)
			}
			eventually(t, 15*time.Second, func() bool { return c.probe(t, "/readyz?scope=write") == http.StatusServiceUnavailable },
				"/readyz?scope=write never reported the outage")
			detected := time.Since(began)
			require.Equal(t, http.StatusOK, c.probe(t, "/readyz"), "Kafka is known to be away, and reads are still ready")
			pollBegan := time.Now()
			v := c.expect(t, 0, http.MethodGet, "/v1/requests/"+pending+"?wait=1s", zed, "", http.StatusOK)
			require.Equal(t, "pending", v["status"])
			require.GreaterOrEqual(t, time.Since(pollBegan), time.Second, "the long poll waited")
			c.expect(t, 0, http.MethodGet, "/v1/requests?requester=service:deploy-bot&limit=5", zed, "", http.StatusOK)
			c.expect(t, 0, http.MethodGet, "/v1/requests/"+decided+"/events", zed, "", http.StatusOK)

			// Writes are refused at once, and say when to come back.
			var worst time.Duration
			for range 5 {
				began := time.Now()
				r := c.call(t, 0, http.MethodPost, "/v1/requests/"+pending+"/votes", bob, `{"decision":"approve"}`, voteKey)
				worst = max(worst, time.Since(began))
				require.Equal(t, http.StatusServiceUnavailable, r.status, "body: %s", r.body)
				require.Equal(t, "application/problem+json", r.header.Get("Content-Type"))
				require.NotEmpty(t, r.header.Get("Retry-After"))
				require.Equal(t, "writes_unavailable", r.json(t)["code"], "body: %s", r.body)
				require.Empty(t, r.header.Get("Assent-Command-Id"), "nothing was sent")
			}
			require.Equal(t, "0", c.metric(t, "assent_api_write_ready"))
			require.NotEqual(t, "0", c.metric(t, "assent_api_writes_unavailable_total"))
			t.Logf("%s: write readiness 503 after %s; writes then answered 503 within %s", fault.name,
				detected.Round(time.Millisecond), worst.Round(100*time.Microsecond))
			require.Less(t, worst, time.Second, "writes are refused at once while Kafka is known to be away")

			proxy.Restore()
			select {
			case a := <-during:
				t.Logf("%s: a write sent as Kafka went away answered %d (%v) after %s", fault.name, a.status, a.err, a.took.Round(time.Millisecond))
				require.NoError(t, a.err, "the write got an answer, not a cut connection")
				require.Contains(t, []int{http.StatusCreated, http.StatusAccepted, http.StatusServiceUnavailable}, a.status)
			case <-time.After(90 * time.Second):
				t.Fatalf("%s: a write sent as Kafka went away has no answer 90s after it", fault.name)
			}
			eventually(t, 60*time.Second, func() bool { return c.probe(t, "/readyz?scope=write") == http.StatusOK },
				"writes never became ready again")
			eventually(t, 60*time.Second, func() bool {
				r := c.call(t, 0, http.MethodPost, "/v1/requests/"+pending+"/votes", bob, `{"decision":"approve"}`, voteKey)
				return r.status == http.StatusOK
			}, "the vote never went through after Kafka came back")
			c.get(t, 0, pending, "approved")
			require.Equal(t, "1", c.metric(t, "assent_api_write_ready"))
		})
	}

	// The log agrees with everything the replica acknowledged.
	ctx, cancelRead := context.WithTimeout(t.Context(), time.Minute)
	defer cancelRead()
	log, err := systest.ReadLog(ctx, c.kafka, topics.Events)
	require.NoError(t, err)
	res := systest.Check(log, c.acked)
	require.Empty(t, res.Anomalies, res.Summary())
}

// TestIntegrationLimitsComeFromTheConfig: the replica enforces the limits
// its environment sets: a principal over ASSENT_WRITE_RATE gets 429
// rate_limited, one over ASSENT_MAX_LONG_POLLS_PER_PRINCIPAL too, and a
// long poll over ASSENT_MAX_LONG_POLLS is 503, each with Retry-After.
func TestIntegrationLimitsComeFromTheConfig(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	topics := kafkatest.NewTopics(t, 12)
	c := &cluster{t: t, topics: topics, kafka: kafkatest.Config(t, "api-limits")}
	c.apis = []string{startAPI(t, topics, brokers, "api-limits",
		"ASSENT_WRITE_RATE=1", "ASSENT_WRITE_BURST=1", "ASSENT_WRITE_WAIT=100ms", // no decider: writes answer 202
		"ASSENT_MAX_LONG_POLLS=2", "ASSENT_MAX_LONG_POLLS_PER_PRINCIPAL=1")}
	ready, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	require.NoError(t, waitReady(ready, c.apis[0]))

	// Five writes at once: the limit is checked before anything is sent,
	// within milliseconds of each other, so one passes (the burst), and
	// at most one more if a token came back meanwhile.
	replies := make(chan reply, 5)
	var wg sync.WaitGroup
	for i := range 5 {
		wg.Go(func() {
			replies <- c.call(t, 0, http.MethodPost, "/v1/requests", deployBot, deployBody(uniq("limits"), fmt.Sprintf("at once %d", i)))
		})
	}
	wg.Wait()
	close(replies)
	limited := 0
	for r := range replies {
		if r.status == http.StatusAccepted {
			continue
		}
		require.Equal(t, http.StatusTooManyRequests, r.status, "body: %s", r.body)
		require.Equal(t, "rate_limited", r.json(t)["code"])
		require.NotEmpty(t, r.header.Get("Retry-After"))
		limited++
	}
	require.GreaterOrEqual(t, limited, 3, "ASSENT_WRITE_RATE=1 in bursts of 1 lets 5 writes at once through")
	require.Equal(t, strconv.Itoa(limited), c.metric(t, "assent_api_writes_throttled_total"))

	// Long polls on a request nobody submits: they wait until the test
	// ends them.
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	park := func(token string) {
		go func() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.apis[0]+"/v1/requests/"+uniq("never")+"?wait=60s", nil)
			req.Header.Set("Authorization", "Bearer "+token)
			if resp, err := httpClient.Do(req); err == nil {
				_ = resp.Body.Close()
			}
		}()
	}
	parked := func(n string) {
		eventually(t, 10*time.Second, func() bool { return c.metric(t, "assent_api_long_polls_in_flight") == n },
			"%s long polls never parked", n)
	}
	park(zed)
	parked("1")
	r := c.call(t, 0, http.MethodGet, "/v1/requests/"+uniq("never")+"?wait=60s", zed, "")
	require.Equal(t, http.StatusTooManyRequests, r.status, "body: %s", r.body)
	require.Equal(t, "rate_limited", r.json(t)["code"])
	require.NotEmpty(t, r.header.Get("Retry-After"))
	park(alice)
	parked("2")
	r = c.call(t, 0, http.MethodGet, "/v1/requests/"+uniq("never")+"?wait=60s", bob, "")
	require.Equal(t, http.StatusServiceUnavailable, r.status, "body: %s", r.body)
	require.NotEmpty(t, r.header.Get("Retry-After"))
	require.Equal(t, "1", c.metric(t, `assent_api_long_polls_refused_total{limit="principal"}`))
	require.Equal(t, "1", c.metric(t, `assent_api_long_polls_refused_total{limit="replica"}`))
	stop()
	parked("0")
}

package infra_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/assent-dev/assent/test/kafkatest"
	"github.com/assent-dev/assent/test/systest"
)

// TestIntegrationDecisionsStalledAlert runs two deciders, two api
// replicas, the Kafka health exporter and a real Prometheus with the real
// rules (infra/prometheus/rules/assent.rules.yml). While clients keep
// submitting requests, it stops every decider and asserts through
// Prometheus's HTTP API that AssentDecisionsStalled and
// AssentAllReplicasDown{job="decider"} fire, then restarts the deciders
// and asserts that both resolve. It logs the time from the stop to each
// alert firing.
//
// Prometheus scrapes every 1s here instead of 15s, so the rule file is
// loaded with every range and every "for:" divided by
// ASSENT_ALERT_TIME_SCALE (default 4: [1m] becomes [15s]); with
// ASSENT_ALERT_TIME_SCALE=1 the rules run exactly as written, and the test
// takes about three minutes.
func TestIntegrationDecisionsStalledAlert(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	tl := needTools(t)
	scale := 4
	if v := os.Getenv("ASSENT_ALERT_TIME_SCALE"); v != "" {
		var err error
		scale, err = strconv.Atoi(v)
		require.NoError(t, err, "ASSENT_ALERT_TIME_SCALE must be a whole number")
		require.Positive(t, scale, "ASSENT_ALERT_TIME_SCALE")
	}
	topics := kafkatest.NewTopics(t, 6)
	bin := systest.Build(t, "api", "decider", "kafka-health")
	root := repoRoot()
	group := "assent-decider-" + topics.Commands

	common := []string{
		"ASSENT_KAFKA_BROKERS=" + strings.Join(brokers, ","),
		"ASSENT_COMMANDS_TOPIC=" + topics.Commands,
		"ASSENT_EVENTS_TOPIC=" + topics.Events,
		"ASSENT_PARTITIONS=6",
	}
	decEnv := append(slices.Clone(common), "ASSENT_DECIDER_GROUP="+group,
		"ASSENT_POLICY_FILE="+filepath.Join(root, "infra/policies/example.yaml"))
	apiEnv := append(slices.Clone(common), "ASSENT_TOKENS_FILE="+filepath.Join(root, "infra/tokens/demo-tokens.yaml"),
		"ASSENT_WRITE_WAIT=1s")
	dec := []*systest.Proc{systest.NewProc(t, bin+"/decider", "decider-1", decEnv...), systest.NewProc(t, bin+"/decider", "decider-2", decEnv...)}
	api := []*systest.Proc{systest.NewProc(t, bin+"/api", "api-1", apiEnv...), systest.NewProc(t, bin+"/api", "api-2", apiEnv...)}
	exporter := systest.NewProc(t, bin+"/kafka-health", "kafka-exporter", append(slices.Clone(common), "ASSENT_HEALTH_PERIOD=1s",
		"ASSENT_HEALTH_TOPICS="+topics.Commands+","+topics.Events, "ASSENT_HEALTH_GROUPS="+group)...)
	all := append(append(slices.Clone(dec), api...), exporter)
	for _, p := range all {
		p.Start()
	}
	ready, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	for _, p := range all {
		require.NoError(t, p.WaitReady(ready))
	}

	prom := startPrometheus(t, tl.prometheus, t.TempDir(), scale, map[string][]*systest.Proc{
		"decider": dec, "api": api, "kafka-health": {exporter},
	})

	// Load: four clients submit requests without pause for the whole test.
	billing := &systest.Client{URLs: []string{api[0].URL(), api[1].URL()}, Token: "demo-billing"}
	var sent, answered atomic.Int64
	loadCtx, stopLoad := context.WithCancel(t.Context())
	load, lctx := errgroup.WithContext(loadCtx)
	for w := range 4 {
		load.Go(func() error {
			for i := 0; lctx.Err() == nil; i++ {
				sent.Add(1)
				resp, err := billing.Do(lctx, w+i, "POST", "/v1/requests", map[string]any{
					"request_id": fmt.Sprintf("alert-%d-%d", w, i), "reason": "load",
					"action": map[string]any{"type": "deploy", "resource": "services/billing/api", "environment": "production"},
				}, 2)
				if err == nil && (resp.Status == 201 || resp.Status == 202) {
					answered.Add(1)
				}
				select {
				case <-lctx.Done():
				case <-time.After(50 * time.Millisecond):
				}
			}
			return nil
		})
	}
	defer func() {
		stopLoad()
		_ = load.Wait()
	}()

	// The pipeline works and Prometheus sees decisions being committed.
	require.Eventually(t, func() bool { return prom.value(t, "assent:commands_decided:rate1m") > 0 },
		90*time.Second, 250*time.Millisecond, "Prometheus never saw the decider group commit")
	// A stall can be pending from the warm-up, before the group's first
	// commit; it clears at the next evaluations that see decisions.
	require.Eventually(t, func() bool { return len(prom.active(t, "AssentDecisionsStalled")) == 0 },
		10*time.Second, 250*time.Millisecond, "no stall while the deciders run")
	for _, p := range all {
		size, series, median, maxT := scrapeCost(t, p.URL()+"/metrics")
		fmt.Printf("scrape-cost: %-15s %7d bytes %4d series  median %6.2fms  max %6.2fms (20 scrapes under load)\n",
			p.Name, size, series, float64(median.Microseconds())/1000, float64(maxT.Microseconds())/1000)
	}

	stoppedAt := time.Now()
	for _, d := range dec {
		d.Stop()
	}
	t.Logf("stopped both deciders; %d submits sent, %d answered 201/202 so far", sent.Load(), answered.Load())

	firing := map[string]time.Duration{}
	deadline := time.Now().Add(time.Duration(4*60/scale+60) * time.Second)
	for len(firing) < 2 && time.Now().Before(deadline) {
		for _, a := range prom.alerts(t) {
			if a.State != "firing" {
				continue
			}
			if _, seen := firing[a.Labels["alertname"]]; seen {
				continue
			}
			if a.Labels["alertname"] == "AssentDecisionsStalled" ||
				a.Labels["alertname"] == "AssentAllReplicasDown" && a.Labels["job"] == "decider" {
				firing[a.Labels["alertname"]] = time.Since(stoppedAt)
				t.Logf("%s firing %s after the deciders stopped (time scale 1/%d)", a.Labels["alertname"], firing[a.Labels["alertname"]].Round(100*time.Millisecond), scale)
			}
		}
		select {
		case <-t.Context().Done():
			t.Fatal(t.Context().Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
	require.Contains(t, firing, "AssentDecisionsStalled", "alerts now: %+v", prom.alerts(t))
	require.Contains(t, firing, "AssentAllReplicasDown", "alerts now: %+v", prom.alerts(t))
	require.Positive(t, sent.Load(), "load kept going")

	restartedAt := time.Now()
	for _, d := range dec {
		d.Start()
	}
	require.Eventually(t, func() bool {
		return len(prom.active(t, "AssentDecisionsStalled")) == 0 && len(prom.active(t, "AssentAllReplicasDown")) == 0
	}, time.Duration(2*60/scale+60)*time.Second, 250*time.Millisecond, "the alerts did not resolve after the deciders came back")
	t.Logf("resolved %s after the deciders restarted", time.Since(restartedAt).Round(100*time.Millisecond))
	fmt.Printf("alert-timing: scale=1/%d stalled_firing_after=%s all_deciders_down_firing_after=%s resolved_after_restart=%s\n",
		scale, firing["AssentDecisionsStalled"].Round(100*time.Millisecond), firing["AssentAllReplicasDown"].Round(100*time.Millisecond),
		time.Since(restartedAt).Round(100*time.Millisecond))
}

// scrapeCost fetches a /metrics page 20 times: its size and series count,
// and the median and longest time to serve it.
func scrapeCost(t *testing.T, u string) (size, series int, median, maxT time.Duration) {
	t.Helper()
	var times []time.Duration
	for range 20 {
		start := time.Now()
		resp, err := http.Get(u) //nolint:gosec // G107: the test's own service on 127.0.0.1
		require.NoError(t, err)
		b, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		require.NoError(t, err)
		times = append(times, time.Since(start))
		size, series = len(b), 0
		for _, line := range strings.Split(string(b), "\n") {
			if line != "" && !strings.HasPrefix(line, "#") {
				series++
			}
		}
	}
	slices.Sort(times)
	return size, series, times[len(times)/2], times[len(times)-1]
}

// promServer is a Prometheus process this test started.
type promServer struct{ url string }

// startPrometheus writes a configuration that scrapes procs every second,
// loads the rules with their durations divided by scale, starts
// Prometheus, and stops it when the test ends.
func startPrometheus(t *testing.T, bin, dir string, scale int, jobs map[string][]*systest.Proc) promServer {
	t.Helper()
	rules, err := os.ReadFile(filepath.Join(repoRoot(), "infra/prometheus/rules/assent.rules.yml"))
	require.NoError(t, err)
	rulesPath := filepath.Join(dir, "rules.yml")
	require.NoError(t, os.WriteFile(rulesPath, ScaleDurations(rules, scale), 0o600))

	var cfg strings.Builder
	fmt.Fprintf(&cfg, "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n  evaluation_interval: 1s\nrule_files:\n  - %s\nscrape_configs:\n", rulesPath)
	for _, job := range slices.Sorted(maps.Keys(jobs)) {
		fmt.Fprintf(&cfg, "  - job_name: %s\n    static_configs:\n", job)
		for _, p := range jobs[job] {
			fmt.Fprintf(&cfg, "      - targets: ['127.0.0.1:%d']\n        labels: {instance: %s}\n", p.Port, p.Name)
		}
	}
	cfgPath := filepath.Join(dir, "prometheus.yml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(cfg.String()), 0o600))

	port := systest.FreePort(t)
	logf, err := os.Create(filepath.Join(dir, "prometheus.log"))
	require.NoError(t, err)
	cmd := exec.Command(bin, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
		}
		_ = logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("prometheus log:\n%s", b)
		}
	})
	p := promServer{url: fmt.Sprintf("http://127.0.0.1:%d", port)}
	require.Eventually(t, func() bool {
		resp, err := http.Get(p.url + "/-/ready")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 30*time.Second, 100*time.Millisecond, "prometheus did not become ready")
	return p
}

type promAlert struct {
	Labels map[string]string `json:"labels"`
	State  string            `json:"state"`
}

func (p promServer) get(t *testing.T, path string, v any) {
	t.Helper()
	resp, err := http.Get(p.url + path)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }() // read-only
	var body struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
		Error  string          `json:"error"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	require.Equal(t, "success", body.Status, "%s: %s", path, body.Error)
	require.NoError(t, json.Unmarshal(body.Data, v))
}

// alerts are the pending and firing alerts (/api/v1/alerts).
func (p promServer) alerts(t *testing.T) []promAlert {
	t.Helper()
	var data struct {
		Alerts []promAlert `json:"alerts"`
	}
	p.get(t, "/api/v1/alerts", &data)
	return data.Alerts
}

// active are the pending or firing alerts of that name.
func (p promServer) active(t *testing.T, name string) []promAlert {
	t.Helper()
	var out []promAlert
	for _, a := range p.alerts(t) {
		if a.Labels["alertname"] == name {
			out = append(out, a)
		}
	}
	return out
}

// value is an instant query's single value, or -1 when it has no result.
func (p promServer) value(t *testing.T, query string) float64 {
	t.Helper()
	var data struct {
		Result []struct {
			Value [2]any `json:"value"`
		} `json:"result"`
	}
	p.get(t, "/api/v1/query?query="+url.QueryEscape(query), &data)
	if len(data.Result) == 0 {
		return -1
	}
	f, err := strconv.ParseFloat(data.Result[0].Value[1].(string), 64)
	require.NoError(t, err)
	return f
}

var (
	rangeRE = regexp.MustCompile(`\[(\d+)([smhd])\]`)
	forRE   = regexp.MustCompile(`(?m)^(\s+for: )(\d+)([smhd])\s*$`)
)

// ScaleDurations divides every range selector ([5m]) and every "for:" of
// a rule file by scale, for a Prometheus that scrapes scale times more
// often than the rules assume. Nothing else changes.
func ScaleDurations(rules []byte, scale int) []byte {
	if scale == 1 {
		return rules
	}
	div := func(n, unit string) string {
		v, _ := strconv.Atoi(n)
		ms := int64(v) * map[string]int64{"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}[unit] / int64(scale)
		if ms%1000 == 0 {
			return fmt.Sprintf("%ds", ms/1000)
		}
		return fmt.Sprintf("%dms", ms)
	}
	out := rangeRE.ReplaceAllFunc(rules, func(m []byte) []byte {
		g := rangeRE.FindSubmatch(m)
		return []byte("[" + div(string(g[1]), string(g[2])) + "]")
	})
	return forRE.ReplaceAllFunc(out, func(m []byte) []byte {
		g := forRE.FindSubmatch(m)
		return []byte(string(g[1]) + div(string(g[2]), string(g[3])))
	})
}

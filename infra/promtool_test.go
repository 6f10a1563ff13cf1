package infra_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"
)

// TestPromtool checks the rules and the scrape configuration and runs the
// rules' unit tests (infra/prometheus/rules/tests) with Debian's promtool.
func TestPromtool(t *testing.T) {
	tl := needTools(t)
	dir := filepath.Join(repoRoot(), "infra", "prometheus")
	k8s := k8sConfigForPromtool(t, dir)
	for _, args := range [][]string{
		{"check", "rules", "rules/assent.rules.yml"},
		{"check", "config", k8s},
		{"test", "rules", "rules/tests/assent.test.yml"},
	} {
		cmd := exec.Command(tl.promtool, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "promtool %v:\n%s", args, out)
		t.Logf("promtool %v:\n%s", args, out)
	}
}

// k8sConfigForPromtool writes a copy of prometheus-k8s.yml that Debian's
// promtool can check. Debian builds Prometheus without the Kubernetes
// service discovery (its client libraries are not packaged), so that
// promtool refuses kubernetes_sd_configs; the copy swaps each such list for
// an equivalent static one, and promtool checks everything else (the
// global settings, the rule files, every relabelling). The Kubernetes
// discovery blocks themselves are checked by TestPrometheusK8sDiscovery.
func k8sConfigForPromtool(t *testing.T, dir string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "prometheus-k8s.yml"))
	require.NoError(t, err)
	var out []string
	lines := strings.Split(string(raw), "\n")
	swapped := 0
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if strings.TrimSpace(line) != "kubernetes_sd_configs:" {
			out = append(out, line)
			continue
		}
		indent := line[:len(line)-len(strings.TrimLeft(line, " "))]
		out = append(out, indent+"static_configs:", indent+`  - targets: ["pod.assent.svc:8080"]`)
		for i+1 < len(lines) && strings.HasPrefix(lines[i+1], indent+" ") {
			i++ // the discovery block's own lines
		}
		swapped++
	}
	require.Positive(t, swapped, "the configuration discovers pods")
	path := filepath.Join(dir, ".promtool-prometheus-k8s.yml")
	require.NoError(t, os.WriteFile(path, []byte(strings.Join(out, "\n")), 0o600))
	t.Cleanup(func() { _ = os.Remove(path) })
	return filepath.Base(path)
}

// TestPrometheusK8sDiscovery checks what promtool cannot here (see
// k8sConfigForPromtool): every scrape job discovers pods, in the assent
// namespace only, with no field Prometheus would not know.
func TestPrometheusK8sDiscovery(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repoRoot(), "infra", "prometheus", "prometheus-k8s.yml"))
	require.NoError(t, err)
	var cfg struct {
		ScrapeConfigs []struct {
			JobName string `json:"job_name"`
			SD      []struct {
				Role       string `json:"role"`
				Namespaces struct {
					Names []string `json:"names"`
				} `json:"namespaces"`
			} `json:"kubernetes_sd_configs"`
		} `json:"scrape_configs"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &cfg))
	require.NotEmpty(t, cfg.ScrapeConfigs)
	for _, sc := range cfg.ScrapeConfigs {
		require.Len(t, sc.SD, 1, "job %s discovers with one kubernetes_sd_configs entry", sc.JobName)
		require.Equal(t, "pod", sc.SD[0].Role, "job %s", sc.JobName)
		require.Equal(t, []string{"assent"}, sc.SD[0].Namespaces.Names, "job %s", sc.JobName)
	}
	// Strictly: a misspelt field in a discovery block is an error.
	var strict []map[string]any
	var doc map[string]any
	require.NoError(t, yaml.Unmarshal(raw, &doc))
	for _, sc := range doc["scrape_configs"].([]any) {
		for _, sd := range sc.(map[string]any)["kubernetes_sd_configs"].([]any) {
			strict = append(strict, sd.(map[string]any))
		}
	}
	for _, sd := range strict {
		for k := range sd {
			require.Contains(t, []string{"role", "namespaces", "selectors", "api_server", "kubeconfig_file", "attach_metadata"}, k)
		}
	}
}

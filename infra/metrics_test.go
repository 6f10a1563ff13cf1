package infra_test

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"
)

var (
	// defineRE finds the metric names the code defines: Name fields of
	// client_golang's Opts and the first argument of NewDesc.
	defineRE = regexp.MustCompile(`(?:Name:\s*|NewDesc\(\s*)"(assent_[a-z0-9_]+)"`)
	// useRE finds metric names in PromQL: every Assent metric starts with
	// assent_ and every recording rule with assent: (label values use '-').
	useRE    = regexp.MustCompile(`\bassent[_:][a-zA-Z0-9_:]+`)
	tableRE  = regexp.MustCompile("(?m)^\\| `(assent_[a-z0-9_]+)` \\|")
	suffixes = []string{"_bucket", "_count", "_sum"}
)

// exported are the metrics defined in the non-test Go code of services/
// and libs/.
func exported(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, top := range []string{"services", "libs"} {
		err := filepath.WalkDir(filepath.Join(repoRoot(), top), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, m := range defineRE.FindAllSubmatch(b, -1) {
				rel, _ := filepath.Rel(repoRoot(), path)
				out[string(m[1])] = rel
			}
			return nil
		})
		require.NoError(t, err)
	}
	return out
}

type ruleFile struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []struct {
			Record      string            `json:"record"`
			Alert       string            `json:"alert"`
			Expr        string            `json:"expr"`
			For         string            `json:"for"`
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
		} `json:"rules"`
	} `json:"groups"`
}

// used returns, for every name the rules and the dashboard use, where.
func used(t *testing.T) (names map[string][]string, recorded map[string]bool) {
	t.Helper()
	names, recorded = map[string][]string{}, map[string]bool{}
	raw, err := os.ReadFile(filepath.Join(repoRoot(), "infra/prometheus/rules/assent.rules.yml"))
	require.NoError(t, err)
	var rf ruleFile
	require.NoError(t, yaml.Unmarshal(raw, &rf))
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				recorded[r.Record] = true
			}
			for _, n := range useRE.FindAllString(r.Expr, -1) {
				names[n] = append(names[n], "rule "+r.Record+r.Alert)
			}
		}
	}
	raw, err = os.ReadFile(filepath.Join(repoRoot(), "infra/grafana/assent.json"))
	require.NoError(t, err)
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(raw, &dash))
	var exprs int
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			exprs++
			for _, n := range useRE.FindAllString(tg.Expr, -1) {
				names[n] = append(names[n], "panel "+p.Title)
			}
		}
	}
	require.Greater(t, exprs, 20, "the dashboard has its queries")
	return names, recorded
}

// TestRulesAndDashboardUseExportedMetrics checks that every metric the
// alerting rules and the Grafana dashboard query is exported by some
// service (or is a recording rule defined in the rules), so that no alert
// or panel silently reads nothing.
func TestRulesAndDashboardUseExportedMetrics(t *testing.T) {
	t.Parallel()
	defined := exported(t)
	names, recorded := used(t)
	require.NotEmpty(t, names)
	var missing []string
	for n, where := range names {
		if strings.Contains(n, ":") {
			if !recorded[n] {
				missing = append(missing, n+" (a recording rule that is not defined; used by "+strings.Join(where, ", ")+")")
			}
			continue
		}
		base := n
		for _, s := range suffixes {
			if b, ok := strings.CutSuffix(n, s); ok && defined[b] != "" {
				base = b
			}
		}
		if defined[base] == "" {
			missing = append(missing, n+" (used by "+strings.Join(slices.Compact(slices.Sorted(slices.Values(where))), ", ")+")")
		}
	}
	slices.Sort(missing)
	require.Empty(t, missing, "metrics that the rules or the dashboard use but no service exports")
}

// TestMetricsTableListsEveryMetric keeps docs/metrics.md honest: its table
// lists exactly the metrics the code defines.
func TestMetricsTableListsEveryMetric(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join(repoRoot(), "docs/metrics.md"))
	require.NoError(t, err)
	var table []string
	for _, m := range tableRE.FindAllStringSubmatch(string(raw), -1) {
		table = append(table, m[1])
	}
	defined := exported(t)
	var code []string
	for n := range defined {
		code = append(code, n)
	}
	require.ElementsMatch(t, code, table, "docs/metrics.md's table and the metrics defined in services/ and libs/")
}

// TestEveryAlertHasARunbookSection checks that every alert carries a
// severity and a runbook link, and that docs/runbook.md has the section
// the link points to.
func TestEveryAlertHasARunbookSection(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join(repoRoot(), "infra/prometheus/rules/assent.rules.yml"))
	require.NoError(t, err)
	var rf ruleFile
	require.NoError(t, yaml.UnmarshalStrict(raw, &rf))
	book, err := os.ReadFile(filepath.Join(repoRoot(), "docs/runbook.md"))
	require.NoError(t, err)
	var alerts int
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			alerts++
			require.Contains(t, []string{"page", "warning", "ticket"}, r.Labels["severity"], r.Alert)
			require.Equal(t, "https://github.com/assent-dev/assent/blob/main/docs/runbook.md#"+strings.ToLower(r.Alert), r.Annotations["runbook_url"], r.Alert)
			require.Contains(t, string(book), "\n## "+r.Alert+"\n", "docs/runbook.md has a section for %s", r.Alert)
			require.NotEmpty(t, r.Annotations["summary"], r.Alert)
		}
	}
	require.GreaterOrEqual(t, alerts, 8)
}

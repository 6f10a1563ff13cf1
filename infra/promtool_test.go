package infra_test

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPromtool checks the rules and the scrape configuration and runs the
// rules' unit tests (infra/prometheus/rules/tests) with promtool, built
// from the Go module proxy.
func TestPromtool(t *testing.T) {
	tl := needTools(t)
	dir := filepath.Join(repoRoot(), "infra", "prometheus")
	for _, args := range [][]string{
		{"check", "rules", "rules/assent.rules.yml"},
		{"check", "config", "prometheus-k8s.yml"},
		{"test", "rules", "rules/tests/assent.test.yml"},
	} {
		cmd := exec.Command(tl.promtool, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "promtool %v:\n%s", args, out)
		t.Logf("promtool %v:\n%s", args, out)
	}
}

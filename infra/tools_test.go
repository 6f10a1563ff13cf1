package infra_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// repoRoot is the root of this checkout.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), ".."))
}

// tools are the paths of prometheus and promtool.
type tools struct{ prometheus, promtool string }

var obtain = sync.OnceValues(func() (tools, string) {
	cmd := exec.Command(filepath.Join(repoRoot(), "scripts", "monitoring"), "tools")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return tools{}, "scripts/monitoring tools: " + err.Error()
	}
	m := regexp.MustCompile(`PROMETHEUS=(\S+) PROMTOOL=(\S+)`).FindStringSubmatch(string(out))
	if m == nil {
		return tools{}, "scripts/monitoring tools printed " + strings.TrimSpace(string(out))
	}
	return tools{prometheus: m[1], promtool: m[2]}, ""
})

// needTools returns prometheus and promtool, installing Prometheus from
// Debian (the package ships promtool too) on first use
// (scripts/monitoring tools). It fails the test when they cannot be had:
// these checks never skip.
func needTools(t *testing.T) tools {
	t.Helper()
	tl, problem := obtain()
	if problem != "" {
		t.Fatalf("infra: prometheus and promtool are needed: %s", problem)
	}
	return tl
}

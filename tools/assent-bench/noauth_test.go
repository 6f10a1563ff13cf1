package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The "without authentication" arm of scripts/bench --auth runs binaries
// built with the assentbench_noauth tag. This test proves the switch lives
// only there: the production builds of the decider and the api do not
// contain the benchmark build's code, take no setting or flag that turns
// authentication off, still refuse to start without a signing key, and say
// nothing of it in --help or their READMEs.
func TestNoAuthSwitchOnlyInTheBenchBuild(t *testing.T) {
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	dir := t.TempDir()
	build := func(out string, tags ...string) {
		args := []string{"build", "-o", out + "/"}
		if len(tags) > 0 {
			args = append(args, "-tags", strings.Join(tags, ","))
		}
		cmd := exec.Command("go", append(args, "./services/decider", "./services/api")...)
		cmd.Dir = root
		raw, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", raw)
	}
	prod, bench := filepath.Join(dir, "prod"), filepath.Join(dir, "noauth")
	build(prod)
	build(bench, "assentbench_noauth")

	const marker = "assentbench_noauth"
	for _, svc := range []string{"decider", "api"} {
		p, err := os.ReadFile(filepath.Join(prod, svc))
		require.NoError(t, err)
		b, err := os.ReadFile(filepath.Join(bench, svc))
		require.NoError(t, err)
		// The marker is found where it is (so its absence means something).
		require.True(t, bytes.Contains(b, []byte(marker)), "the benchmark build of %s lacks its banner", svc)
		require.False(t, bytes.Contains(p, []byte(marker)), "the production %s contains the benchmark build's code", svc)

		help, err := exec.Command(filepath.Join(prod, svc), "--help").CombinedOutput()
		require.NoError(t, err, "%s --help: %s", svc, help)
		for _, word := range []string{"noauth", "assentbench", "NOAUTH"} {
			require.NotContains(t, string(help), word, "%s --help", svc)
		}
		readme, err := os.ReadFile(filepath.Join(root, "services", svc, "README.md"))
		require.NoError(t, err)
		require.NotContains(t, string(readme), "noauth", "services/%s/README.md", svc)
	}

	// The production decider refuses to start without a signing key, and
	// no argument turns that off.
	for _, args := range [][]string{nil, {"--noauth"}, {"--no-auth"}} {
		cmd := exec.Command(filepath.Join(prod, "decider"), args...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "ASSENT_NOAUTH=1", "ASSENT_BENCH_NOAUTH=1", "ASSENT_AUTH=off"}
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		require.ErrorAs(t, err, &exit, "the production decider started with %q: %s", args, out)
		if len(args) == 0 {
			require.Contains(t, string(out), "ASSENT_SIGNING_KEY_FILE and ASSENT_SIGNING_KEY_ID are required")
		} else {
			require.Contains(t, string(out), "unknown argument")
		}
	}
}

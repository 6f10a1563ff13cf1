package sdke2e_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	assent "github.com/assent-dev/assent/libs/sdk"
	"github.com/assent-dev/assent/test/sdktest"
	"github.com/assent-dev/assent/test/systest"
)

// buildExample compiles the SDK's example program, as a user would run it.
func buildExample(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "example")
	cmd := exec.Command("go", "build", "-o", bin, "./libs/sdk/example")
	cmd.Dir = systest.RepoRoot()
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "build the example: %s", out)
	return bin
}

// TestIntegrationExample runs the example against two deciders and two api
// replicas: it waits until alice approves, then deploys; a deploy to qa is
// refused with no_policy.
func TestIntegrationExample(t *testing.T) {
	bin := buildExample(t)
	c := sdktest.Start(t, 2, 2)
	url := strings.Join(c.URLs(), ",")
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()

	out := &systest.SyncBuffer{}
	cmd := exec.CommandContext(ctx, bin, "-url", url, "-timeout", "2m")
	cmd.Stdout, cmd.Stderr = out, out
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	waiting := regexp.MustCompile(`waiting for approval of (\S+) \(approve it with: curl `)
	var id string
	require.Eventually(t, func() bool {
		if m := waiting.FindStringSubmatch(out.String()); m != nil {
			id = m[1]
			return true
		}
		return false
	}, time.Minute, 20*time.Millisecond, "the example says what it waits for: %s", out)
	alice, err := assent.New(c.URLs(), "demo-alice")
	require.NoError(t, err)
	_, err = alice.Vote(ctx, id, assent.VoteRequest{Decision: assent.Approve})
	require.NoError(t, err)
	require.NoError(t, <-done, "%s", out)
	require.Contains(t, out.String(), "approved by user:alice@example.com; deploying services/billing/api 1.4.2 to production")

	qa, err := exec.CommandContext(ctx, bin, "-url", url, "-env", "qa").CombinedOutput()
	require.Error(t, err, "a deploy to qa has no policy: the example exits non-zero")
	require.Contains(t, string(qa), "no_policy")
	require.Contains(t, string(qa), "not deploying")
}

package main

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/systest"

	assent "github.com/assent-dev/assent/libs/sdk"
	"github.com/assent-dev/assent/libs/sdk/internal/sdktest"
)

type syncBuf = systest.SyncBuffer

// TestIntegrationExample runs the example against two deciders and two api
// replicas: it waits until alice approves, then deploys; a deploy to qa is
// refused with no_policy.
func TestIntegrationExample(t *testing.T) {
	c := sdktest.Start(t, 2, 2)
	url := strings.Join(c.URLs(), ",")
	out := &syncBuf{}
	done := make(chan error, 1)
	go func() { done <- run(t.Context(), []string{"-url", url, "-timeout", "2m"}, out) }()

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
	_, err = alice.Vote(t.Context(), id, assent.VoteRequest{Decision: assent.Approve})
	require.NoError(t, err)
	require.NoError(t, <-done)
	require.Contains(t, out.String(), "approved by user:alice@example.com; deploying services/billing/api 1.4.2 to production")

	err = run(t.Context(), []string{"-url", url, "-env", "qa"}, out)
	require.True(t, assent.IsCode(err, assent.CodeNoPolicy), "%v", err)
	require.ErrorContains(t, err, "not deploying")
}

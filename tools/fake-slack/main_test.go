package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSignClick(t *testing.T) {
	t.Parallel()
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	var out bytes.Buffer
	require.NoError(t, run(t.Context(), []string{"--help"}, env(nil), &out))
	require.Contains(t, out.String(), "sign-click")
	out.Reset()
	err := run(t.Context(), []string{"sign-click", "--request", "r1", "--user", "U0ALICE"},
		env(map[string]string{"ASSENT_SLACK_SIGNING_SECRET": "s"}), &out)
	require.NoError(t, err)
	require.Contains(t, out.String(), "X-Slack-Signature: v0=")
	require.Contains(t, out.String(), "http://127.0.0.1:8380/slack/interactivity")
	require.Contains(t, out.String(), "assent.approve")
	require.Error(t, run(t.Context(), []string{"sign-click"}, env(nil), &out), "a request, a user and the secret are required")
	require.Error(t, run(t.Context(), []string{"bogus"}, env(nil), &out))
}

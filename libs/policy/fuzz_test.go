package policy_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/policy"
)

// FuzzParse feeds Parse arbitrary bytes, seeded with the example and every
// bad file. It must never panic, and whatever it accepts must hold the
// promises the domain relies on.
func FuzzParse(f *testing.F) {
	seeds, err := filepath.Glob(filepath.Join("testdata", "bad", "*.yaml"))
	require.NoError(f, err)
	for _, path := range append(seeds, examplePath) {
		data, err := os.ReadFile(path)
		require.NoError(f, err)
		f.Add(data)
	}
	f.Add([]byte("version: 1\npolicies:\n  - &p {name: a, match: {}, approvers: {users: [a@b]}, min_approvals: 1, ttl: 1s}\n  - *p\n"))

	f.Fuzz(func(t *testing.T, data []byte) {
		ps, err := policy.Parse("fuzz.yaml", data)
		if err != nil {
			require.Zero(t, ps)
			for line := range strings.SplitSeq(err.Error(), "\n") {
				require.True(t, strings.HasPrefix(line, "policy: fuzz.yaml:"), "error line %q", line)
			}
			return
		}
		require.NotEmpty(t, ps.Rules)
		names := map[string]bool{}
		for _, r := range ps.Rules {
			require.False(t, names[r.Name], "duplicate name %q", r.Name)
			names[r.Name] = true
			require.NotEmpty(t, r.Approvers)
			for _, a := range r.Approvers {
				kind, _, err := approval.ParsePrincipal(a)
				require.NoError(t, err)
				require.NotEqual(t, approval.KindSystem, kind)
			}
			require.GreaterOrEqual(t, r.MinApprovals, 1)
			require.LessOrEqual(t, r.MinApprovals, len(r.Approvers))
			require.GreaterOrEqual(t, r.RejectThreshold, 1)
			require.LessOrEqual(t, r.RejectThreshold, len(r.Approvers))
			require.Positive(t, r.TTL)
			require.LessOrEqual(t, int64(r.TTL), int64(policy.MaxTTL))
		}
	})
}

package approval_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/approval"
)

func TestGlob(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		pattern, name string
		want          bool
	}{
		{"payments/*", "payments/api", true},
		{"payments/*", "payments/api/v2", false},
		{"payments/**", "payments/api/v2", true},
		{"**", "a/b/c", true},
		{"*", "", true},
		{"db/prod-?", "db/prod-1", true},
		{"db/prod-?", "db/prod-12", false},
		{"db/?", "db//", false},
		{"**/x*", "a/xb/xc", true},
		{"**/x*", "a/xb/yc", false},
		{"a/**/z", "a/z", false},
		{"a/**/z", "a/b/c/z", true},
		{"*.sql", "migrations/1.sql", false},
		{"exact", "exact", true},
		{"exact", "exactly", false},
	} {
		require.Equal(t, tc.want, approval.Glob(tc.pattern, tc.name), "Glob(%q, %q)", tc.pattern, tc.name)
		require.Equal(t, tc.want, globRef(tc.pattern, tc.name), "reference Glob(%q, %q)", tc.pattern, tc.name)
	}
}

// globRef is the obvious recursive definition, exponential but clearly
// right; FuzzGlob checks the fast matcher against it.
func globRef(p, n string) bool {
	switch {
	case p == "":
		return n == ""
	case len(p) >= 2 && p[:2] == "**":
		for i := 0; i <= len(n); i++ {
			if globRef(p[2:], n[i:]) {
				return true
			}
		}
		return false
	case p[0] == '*':
		for i := 0; i <= len(n); i++ {
			if globRef(p[1:], n[i:]) {
				return true
			}
			if i < len(n) && n[i] == '/' {
				return false
			}
		}
		return false
	case n == "":
		return false
	case p[0] == '?':
		return n[0] != '/' && globRef(p[1:], n[1:])
	default:
		return p[0] == n[0] && globRef(p[1:], n[1:])
	}
}

func FuzzGlob(f *testing.F) {
	f.Add("**/x*", "a/xb/xc")
	f.Add("a/*/c?", "a/b/cd")
	f.Add("*a*b", "xaxb/ab")
	f.Fuzz(func(t *testing.T, p, n string) {
		if len(p) > 12 || len(n) > 16 {
			return // keep the reference matcher fast
		}
		if got, want := approval.Glob(p, n), globRef(p, n); got != want {
			t.Fatalf("Glob(%q, %q) = %v, reference says %v", p, n, got, want)
		}
	})
}

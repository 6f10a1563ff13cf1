package auth_test

import (
	"bufio"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/services/api/internal/auth"
)

// TestDemoTokensFile checks the shipped example: every token named in a
// comment authenticates as the principal on the next line.
func TestDemoTokensFile(t *testing.T) {
	t.Parallel()
	toks, err := auth.Load("../../testdata/tokens.yaml")
	require.NoError(t, err)
	f, err := os.Open("../../testdata/tokens.yaml")
	require.NoError(t, err)
	defer func() { _ = f.Close() }()
	tokenRe := regexp.MustCompile(`# token: (\S+)$`)
	principalRe := regexp.MustCompile(`principal: (\S+)$`)
	sc := bufio.NewScanner(f)
	n, token := 0, ""
	for sc.Scan() {
		if m := tokenRe.FindStringSubmatch(sc.Text()); m != nil {
			token = m[1]
			continue
		}
		if m := principalRe.FindStringSubmatch(sc.Text()); m != nil && token != "" {
			p, ok := toks.Authenticate(token)
			require.True(t, ok, token)
			require.Equal(t, m[1], p.ID)
			token = ""
			n++
		}
	}
	require.Equal(t, toks.Len(), n)
	gw, ok := toks.Authenticate("demo-slack-gateway")
	require.True(t, ok)
	require.True(t, gw.Has(auth.RoleOnBehalf))
	require.Equal(t, "service", gw.Kind)
	bot, _ := toks.Authenticate("demo-deploy-bot")
	require.False(t, bot.Has(auth.RoleOnBehalf))
}

func TestAuthenticate(t *testing.T) {
	t.Parallel()
	toks, err := auth.Parse([]byte("tokens:\n  - sha256: " + auth.Hash("s3cret") + "\n    principal: user:alice@example.com\n    roles: [admin]\n"))
	require.NoError(t, err)
	p, ok := toks.Authenticate("s3cret")
	require.True(t, ok)
	require.Equal(t, auth.Principal{ID: "user:alice@example.com", Kind: "user", Roles: []string{"admin"}}, p)
	for _, bad := range []string{"", "s3cret ", "S3CRET", auth.Hash("s3cret")} {
		_, ok := toks.Authenticate(bad)
		require.False(t, ok, bad)
	}
	var zero auth.Tokens
	_, ok = zero.Authenticate("s3cret")
	require.False(t, ok)
}

func TestHash(t *testing.T) {
	t.Parallel()
	// echo -n hello | sha256sum
	require.Equal(t, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824", auth.Hash("hello"))
}

func TestParseRefusesBadFiles(t *testing.T) {
	t.Parallel()
	h := auth.Hash("x")
	for _, tc := range []struct{ name, file, want string }{
		{"empty", "", "not a tokens file"},
		{"no tokens", "tokens: []\n", "no tokens"},
		{"unknown key", "tokens:\n  - sha256: " + h + "\n    principal: user:a@b\n    role: [admin]\n", "field role not found"},
		{"short hash", "tokens:\n  - sha256: abc\n    principal: user:a@b\n", "64 hex digits"},
		{"duplicate", "tokens:\n  - sha256: " + h + "\n    principal: user:a@b\n  - sha256: sha256:" + strings.ToUpper(h) + "\n    principal: user:c@d\n", "the same hash as token 1"},
		{"system", "tokens:\n  - sha256: " + h + "\n    principal: system:decider\n", "user:<id> or service:<id>"},
		{"bare email", "tokens:\n  - sha256: " + h + "\n    principal: a@b\n", "user:<id> or service:<id>"},
		{"unknown role", "tokens:\n  - sha256: " + h + "\n    principal: user:a@b\n    roles: [root]\n", `unknown role "root"`},
	} {
		_, err := auth.Parse([]byte(tc.file))
		require.ErrorContains(t, err, tc.want, tc.name)
	}
	_, err := auth.Load("does/not/exist.yaml")
	require.ErrorContains(t, err, "ASSENT_TOKENS_FILE")
}

// TestRepoDemoTokens checks the file ASSENT_TOKENS_FILE defaults to.
func TestRepoDemoTokens(t *testing.T) {
	t.Parallel()
	toks, err := auth.Load("../../../../infra/tokens/demo-tokens.yaml")
	require.NoError(t, err)
	p, ok := toks.Authenticate("demo-alice")
	require.True(t, ok)
	require.Equal(t, "user:alice@example.com", p.ID)
	gw, ok := toks.Authenticate("demo-gateway")
	require.True(t, ok)
	require.True(t, gw.Has(auth.RoleOnBehalf))
}

package sdke2e_test

import (
	"archive/zip"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/test/systest"
)

const sdkModule = "github.com/assent-dev/assent/libs/sdk"

// TestSDKGoGet publishes the SDK from this checkout to a module proxy in a
// temporary directory (the layout GOPROXY serves: list, .info, .mod and
// .zip), then, outside the workspace (GOWORK=off), creates a new module
// that runs `go get` on it and builds a program calling it. It proves what
// a user gets: the SDK's go.mod has no replace directive and no
// requirements, so nothing but the standard library comes with it.
func TestSDKGoGet(t *testing.T) {
	t.Parallel()
	src := filepath.Join(systest.RepoRoot(), "libs", "sdk")
	mod, err := os.ReadFile(filepath.Join(src, "go.mod"))
	require.NoError(t, err)
	require.NotContains(t, string(mod), "replace", "consumers ignore replace: the SDK must not need one")
	require.NotContains(t, string(mod), "require", "the SDK is standard library only")

	proxy := t.TempDir()
	const version = "v0.0.0-test"
	dir := filepath.Join(proxy, filepath.FromSlash(sdkModule), "@v")
	require.NoError(t, os.MkdirAll(dir, 0o750))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "list"), []byte(version+"\n"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, version+".info"), []byte(`{"Version":"`+version+`","Time":"2026-01-01T00:00:00Z"}`), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, version+".mod"), mod, 0o600))
	writeModuleZip(t, filepath.Join(dir, version+".zip"), src, sdkModule+"@"+version)

	user := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(user, "go.mod"), []byte("module example.com/deployer\n\ngo 1.26\n"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(user, "main.go"), []byte(`package main

import (
	"fmt"

	assent "`+sdkModule+`"
)

func main() {
	c, err := assent.New([]string{"http://127.0.0.1:8080"}, "token")
	fmt.Println(c != nil, err, assent.NewRequestID() != "")
}
`), 0o600))
	env := append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod", "GOPROXY=file://"+filepath.ToSlash(proxy),
		"GONOSUMDB=github.com/assent-dev", "GOTOOLCHAIN=local")
	run := func(args ...string) string {
		cmd := exec.CommandContext(t.Context(), "go", args...)
		cmd.Dir, cmd.Env = user, env
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "go %s: %s", strings.Join(args, " "), out)
		return string(out)
	}
	run("get", sdkModule+"@"+version)
	run("build", "-o", filepath.Join(user, "deployer"), ".")
	deps := run("list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".")
	require.Equal(t, []string{sdkModule, "example.com/deployer"}, strings.Fields(deps), "nothing but the SDK and the standard library")
	sum, err := os.ReadFile(filepath.Join(user, "go.sum"))
	require.NoError(t, err)
	require.Equal(t, 2, strings.Count(string(sum), "\n"), "go.sum holds the SDK alone (zip and go.mod): %s", sum)
}

// writeModuleZip zips the module in src as a module proxy serves it: every
// file under the prefix path@version/, without nested modules or testdata
// outside the module.
func writeModuleZip(t *testing.T, dst, src, prefix string) {
	t.Helper()
	f, err := os.Create(dst)
	require.NoError(t, err)
	zw := zip.NewWriter(f)
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		w, err := zw.Create(path.Join(prefix, filepath.ToSlash(rel)))
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	})
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	require.NoError(t, f.Close())
}

package policy_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/policy"
)

// want is one expected error, read from a "# want: <line>: <substring>"
// comment in a testdata/bad file.
type want struct {
	line int
	text string
}

var wantRE = regexp.MustCompile(`(?m)^# want: (\d+): (.+)$`)

func readWants(t *testing.T, data []byte) []want {
	t.Helper()
	var ws []want
	for _, m := range wantRE.FindAllSubmatch(data, -1) {
		line, err := strconv.Atoi(string(m[1]))
		require.NoError(t, err)
		ws = append(ws, want{line: line, text: string(m[2])})
	}
	return ws
}

// TestBadFiles loads every testdata/bad file and checks that it is refused
// with exactly the errors its "# want" comments list, in that order: one
// error per comment, on the line the comment names, containing its text.
func TestBadFiles(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join("testdata", "bad", "*.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".yaml"), func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile(file)
			require.NoError(t, err)
			wants := readWants(t, data)
			require.NotEmpty(t, wants, "%s has no # want: comments", file)

			ps, err := policy.Load(file)
			require.Error(t, err)
			require.Zero(t, ps, "a refused file must not yield partial policies")

			got := strings.Split(err.Error(), "\n")
			require.Len(t, got, len(wants), "errors:\n%s", err)
			for i, w := range wants {
				where := fmt.Sprintf("policy: %s:%d: ", file, w.line)
				require.True(t, strings.HasPrefix(got[i], where), "error %d: want prefix %q, got %q\nall errors:\n%s", i, where, got[i], err)
				require.Contains(t, got[i], w.text, "error %d\nall errors:\n%s", i, err)
			}
		})
	}
}

// TestErrorsAreTyped checks that callers can reach each problem as an
// *policy.Error, with its file and line, not only as text.
func TestErrorsAreTyped(t *testing.T) {
	t.Parallel()
	_, err := policy.Load(filepath.Join("testdata", "bad", "many_errors.yaml"))
	require.Error(t, err)

	joined, ok := err.(interface{ Unwrap() []error })
	require.True(t, ok, "want a joined error, got %T", err)
	var lines []int
	for _, e := range joined.Unwrap() {
		var pe *policy.Error
		require.ErrorAs(t, e, &pe)
		require.Equal(t, filepath.Join("testdata", "bad", "many_errors.yaml"), pe.File)
		lines = append(lines, pe.Line)
	}
	require.IsIncreasing(t, lines)

	var first *policy.Error
	require.True(t, errors.As(err, &first))
	require.Equal(t, lines[0], first.Line)
}

func TestLoadMissingFile(t *testing.T) {
	t.Parallel()
	_, err := policy.Load(filepath.Join(t.TempDir(), "nope.yaml"))
	require.ErrorIs(t, err, os.ErrNotExist)
	require.ErrorContains(t, err, "policy: ")
}

package verify

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestScan(t *testing.T) {
	t.Parallel()
	f, err := scan([]byte(`{"specversion":"1.0","id":"i1","type":"t","subject":"s","data":{"a":[1,"x\"}",{"b":null}],"c":true},"sequence":"3","prevhash":"sha256:00"}`))
	require.NoError(t, err)
	require.Equal(t, "i1", string(f.id))
	require.Equal(t, "t", string(f.typ))
	require.Equal(t, "s", string(f.subject))
	require.Equal(t, "3", string(f.sequence))
	require.Equal(t, "sha256:00", string(f.prevhash))
	require.False(t, f.escaped)

	f, err = scan([]byte(`{"id":"a\"b","type":"t"}`))
	require.NoError(t, err)
	require.True(t, f.escaped, "escapes send the record to the full decoder")

	for name, v := range map[string]string{
		"not an object":  `[1]`,
		"empty":          `{}`,
		"duplicate":      `{"prevhash":"a","prevhash":"b"}`,
		"trailing":       `{"id":"a"} {}`,
		"unterminated":   `{"id":"a`,
		"no colon":       `{"id" "a"}`,
		"non-string id":  `{"id":1}`,
		"bad nesting":    `{"data":{"a":[1,2}}`,
		"missing value":  `{"data":}`,
		"truncated data": `{"data":{"a":1`,
	} {
		_, err := scan([]byte(v))
		require.ErrorIs(t, err, errScan, name)
	}
}

func TestLoadStateRefusesAStateWithoutTheReplay(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "state.json")
	require.NoError(t, os.WriteFile(path, []byte(`{"format":"assent-audit-state-v1","topic":"t","verified_at":"2026-01-01T00:00:00Z","partitions":{}}`), 0o600))
	_, err := LoadState(path)
	require.ErrorContains(t, err, "verify once from the start")
}

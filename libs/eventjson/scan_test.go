package eventjson

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSkipValueWalksOneWellFormedValue(t *testing.T) {
	t.Parallel()
	v := []byte(`{"a":[1,"x\"}",{"b":null}],"c":true} tail`)
	end, err := skipValue(v, 0, 0)
	require.NoError(t, err)
	require.Equal(t, " tail", string(v[end:]))

	s, end, esc, err := scanString([]byte(`"a\"b" rest`), 0)
	require.NoError(t, err)
	require.True(t, esc, "an escape sends the record to the full decoder")
	require.Equal(t, `a\"b`, string(s))
	require.Equal(t, 6, end)

	for name, v := range map[string]string{
		"bad nesting":     `{"a":[1,2}}`,
		"missing value":   `{"a":}`,
		"truncated":       `{"a":1`,
		"unterminated":    `"abc`,
		"no colon":        `{"a" 1}`,
		"nested too deep": strings.Repeat("[", maxDepth+2) + strings.Repeat("]", maxDepth+2),
	} {
		_, err := skipValue([]byte(v), 0, 0)
		require.ErrorIs(t, err, errScan, name)
	}
}

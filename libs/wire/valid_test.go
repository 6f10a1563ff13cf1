package wire

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// validJSON says what json.Valid says, on the usual and the unusual.
func TestValidJSONIsJSONValid(t *testing.T) {
	t.Parallel()
	for _, v := range []string{
		``, ` `, `{}`, `[]`, `{ }`, `[ ]`, `""`, `"a"`, `0`, `-0`, `1`, `-1`, `10`, `01`, `-`, `1.`, `1.5`, `.5`, `1e5`, `1E+5`,
		`1e-5`, `1e`, `1e+`, `-01`, `1.5e3`, `true`, `false`, `null`, `tru`, `nul`, `truex`, `True`, `NaN`, `Infinity`,
		`{"a":1}`, `{"a":1,}`, `{,"a":1}`, `{"a" 1}`, `{"a":}`, `{a:1}`, `{"a":1 "b":2}`, `{"a":[1,2,{"b":null}],"c":"d"}`,
		`[1,2,]`, `[,]`, `[1 2]`, `[[[]]]`, `[[[]]`, `]`, `}`, `{"a":1}}`, `{"a":1} x`, " \n\t\r{} \n", `{} {}`,
		`"\""`, `"\\"`, `"\/"`, `"\b\f\n\r\t"`, `"\u00e9"`, `"\u00E9"`, `"\ud800"`, `"\u12"`, `"\u12g4"`, `"\x"`, `"\`,
		`"abc`, "\"a\tb\"", "\"a\x00b\"", "\"a\x7fb\"", "\"\xff\xfe\"", "\"très\"", `{"a":"\u0000"}`, "[1,\n2]",
		strings.Repeat("[", maxFastDepth) + strings.Repeat("]", maxFastDepth),
		strings.Repeat("[", maxFastDepth+1) + strings.Repeat("]", maxFastDepth+1),
		strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
		strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
		strings.Repeat(`{"a":`, 100) + `1` + strings.Repeat("}", 99),
	} {
		require.Equal(t, json.Valid([]byte(v)), validJSON([]byte(v)), "%q", v)
		requireValidAtAgrees(t, []byte(v))
	}
}

func FuzzValidJSON(f *testing.F) {
	for _, s := range []string{`{"a":[1,-2.5e3,"x\u00e9\n",true,false,null,{}]}`, `[]`, `"`, `1e`, `{"a":1,}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		require.Equal(t, json.Valid(b), validJSON(b), "%q", b)
		requireValidAtAgrees(t, b)
	})
}

// requireValidAtAgrees: validAt at the start of b (and after a member
// name) ends where the value json.Valid accepts ends: a valid value
// followed by anything.
func requireValidAtAgrees(t *testing.T, b []byte) {
	t.Helper()
	for _, prefix := range []string{"", `{"data":`} {
		v := append([]byte(prefix), b...)
		end, ok := validAt(v, len(prefix))
		if !ok {
			continue
		}
		require.True(t, json.Valid(v[len(prefix):end]), "validAt took %q of %q", v[len(prefix):end], v)
		require.Positive(t, end-len(prefix))
	}
	if end, ok := validAt(b, 0); json.Valid(b) && len(b) > 0 && skipSpace(b, 0) == 0 {
		require.True(t, ok, "%q", b)
		require.Equal(t, len(b), skipSpace(b, end), "%q", b)
	}
}

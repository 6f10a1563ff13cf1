package wire

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// strictSeal is DecodeSeal without its fast path.
func strictSeal(data []byte) (Seal, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return Seal{}, err
	}
	for _, f := range []string{"partition", "from", "head", "count", "key_id", "signature", "algorithm"} {
		if _, ok := raw[f]; !ok {
			return Seal{}, ErrSeal
		}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var s Seal
	err := dec.Decode(&s)
	return s, err
}

func sealData(t testing.TB) []byte {
	t.Helper()
	key := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	s, err := NewSigner("k", key)
	require.NoError(t, err)
	env, err := NewSeal(s, "assent/decider", "t", 3, GenesisHash, GenesisHash, 7, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	require.NoError(t, err)
	return env.Data
}

// The fast path reads what NewSeal writes, and leaves everything else to
// the strict decoder; what it reads, it reads as the strict decoder does.
func TestDecodeSealDataIsTheStrictDecoder(t *testing.T) {
	t.Parallel()
	data := sealData(t)
	got, ok := decodeSealData(data)
	require.True(t, ok, "%s", data)
	want, err := strictSeal(data)
	require.NoError(t, err)
	require.Equal(t, want, got)
	require.Equal(t, int32(3), got.Partition)
	require.Equal(t, 7, got.Count)

	for name, edit := range map[string]func(string) string{
		"spaces": func(v string) string { return strings.Replace(v, `,"from"`, `, "from"`, 1) },
		"reordered": func(v string) string {
			return strings.Replace(strings.Replace(v, `"count":7,`, ``, 1), `}`, `,"count":7}`, 1)
		},
		"repeated":      func(v string) string { return strings.Replace(v, `"count":7`, `"count":7,"count":8`, 1) },
		"unknown":       func(v string) string { return strings.Replace(v, `}`, `,"x":1}`, 1) },
		"missing":       func(v string) string { return strings.Replace(v, `"count":7,`, ``, 1) },
		"escaped":       func(v string) string { return strings.Replace(v, `"key_id":"k"`, `"key_id":"\u006b"`, 1) },
		"float":         func(v string) string { return strings.Replace(v, `"count":7`, `"count":7.0`, 1) },
		"leading zero":  func(v string) string { return strings.Replace(v, `"count":7`, `"count":07`, 1) },
		"minus zero":    func(v string) string { return strings.Replace(v, `"count":7`, `"count":-0`, 1) },
		"partition big": func(v string) string { return strings.Replace(v, `"partition":3`, `"partition":2147483648`, 1) },
		"string count":  func(v string) string { return strings.Replace(v, `"count":7`, `"count":"7"`, 1) },
		"null":          func(v string) string { return strings.Replace(v, `"key_id":"k"`, `"key_id":null`, 1) },
		"other case":    func(v string) string { return strings.Replace(v, `"key_id"`, `"Key_ID"`, 1) },
		"trailing":      func(v string) string { return v + " " },
	} {
		v := []byte(edit(string(data)))
		_, ok := decodeSealData(v)
		require.False(t, ok, "%s: %s is the strict decoder's", name, v)
	}
	for _, v := range []string{
		strings.Replace(string(data), `"partition":3`, `"partition":-2147483648`, 1),
		strings.Replace(string(data), `"count":7`, `"count":123456789012345678`, 1),
		strings.Replace(string(data), `"count":7`, `"count":0`, 1),
	} {
		got, ok := decodeSealData([]byte(v))
		require.True(t, ok, v)
		want, err := strictSeal([]byte(v))
		require.NoError(t, err)
		require.Equal(t, want, got)
	}
}

// FuzzDecodeSealData: whatever the fast path reads, the strict decoder
// reads the same way.
func FuzzDecodeSealData(f *testing.F) {
	f.Add(sealData(f))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, ok := decodeSealData(data)
		if !ok {
			return
		}
		want, err := strictSeal(data)
		require.NoError(t, err, "%s", data)
		require.Equal(t, want, got, "%s", data)
	})
}

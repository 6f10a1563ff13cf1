package wire

import (
	"encoding/hex"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var uuidShape = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func idBytes(t *testing.T, id string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(id, "-", ""))
	require.NoError(t, err)
	require.Len(t, b, 16)
	return b
}

func TestNewIDVersionVariantAndTime(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 6, 1, 12, 30, 45, 678_900_000, time.UTC)
	for range 1000 {
		id := NewID(now)
		require.Regexp(t, uuidShape, id)
		b := idBytes(t, id)
		require.Equal(t, byte(7), b[6]>>4, "version")
		require.Equal(t, byte(0b10), b[8]>>6, "variant")

		var ms uint64
		for _, c := range b[:6] {
			ms = ms<<8 | uint64(c)
		}
		require.Equal(t, uint64(now.UnixMilli()), ms, "unix_ts_ms")
	}
}

func TestNewIDKnownTimestamp(t *testing.T) {
	t.Parallel()
	// RFC 9562 appendix A.6: 2022-02-22T19:22:22Z is 0x017F22E279B0 ms.
	id := NewID(time.Date(2022, 2, 22, 14, 22, 22, 0, time.FixedZone("EST", -5*3600)))
	require.True(t, strings.HasPrefix(id, "017f22e2-79b0-7000-"), id)
}

func TestNewIDOrdersByTime(t *testing.T) {
	t.Parallel()
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var ids []string
	for i := range 5000 {
		// Steps of 1µs: most of them fall in the same millisecond, so the
		// order comes from the sub-millisecond bits.
		ids = append(ids, NewID(start.Add(time.Duration(i)*time.Microsecond)))
	}
	require.True(t, slices.IsSorted(ids), "ids for increasing times must sort as strings")

	seen := make(map[string]bool)
	for range 10000 {
		id := NewID(start)
		require.False(t, seen[id], "duplicate id")
		seen[id] = true
	}
}

func TestDerivedIDIsAStableUUIDv8(t *testing.T) {
	t.Parallel()
	a := DerivedID("assent/api command v1", "user:alice@example.com", "key-1")
	require.Equal(t, a, DerivedID("assent/api command v1", "user:alice@example.com", "key-1"))
	require.NotEqual(t, a, DerivedID("assent/api command v1", "user:bob@example.com", "key-1"))
	require.NotEqual(t, a, DerivedID("assent/api command v1user:alice@example.com", "key-1"), "parts are delimited")
	require.Len(t, a, 36)
	require.Equal(t, byte('8'), a[14], "version 8")
	require.Contains(t, "89ab", string(a[19]), "variant 10")
}

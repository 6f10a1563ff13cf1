package main

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/test/otlptest"
)

// The table on synthetic traces: trace i has every hop i+1 ms after the
// one before, except that its commit takes 10*(i+1) ms; one trace is
// incomplete and one vote was not traced.
func TestHopTable(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	tls := map[string]otlptest.Timeline{}
	var ids []string
	for i := range 100 {
		id := string(rune('a'+i/26)) + string(rune('a'+i%26))
		ids = append(ids, id)
		var tl otlptest.Timeline
		at := t0
		for h := range otlptest.Hops {
			if h > 0 {
				step := time.Duration(i+1) * time.Millisecond
				if h == otlptest.Committed {
					step *= 10
				}
				at = at.Add(step)
			}
			tl.At[h] = at
		}
		tls[id] = tl
	}
	ids = append(ids, "untraced")
	rows, n := hopTable(tls, ids)
	require.Equal(t, 100, n)
	require.Len(t, rows, otlptest.Hops)
	require.Equal(t, "decided -> committed", rows[otlptest.Committed-1].name)
	require.Equal(t, 500*time.Millisecond, rows[otlptest.Committed-1].p50)
	require.Equal(t, 990*time.Millisecond, rows[otlptest.Committed-1].p99)
	require.Equal(t, "received -> sent", rows[0].name)
	require.Equal(t, 50*time.Millisecond, rows[0].p50)
	last := rows[len(rows)-1]
	require.Equal(t, "api: received -> responded", last.name)
	require.Equal(t, 16*50*time.Millisecond, last.p50) // 6 hops of 50ms and one of 500ms

	var b strings.Builder
	r, err := otlptest.Start()
	require.NoError(t, err)
	defer func() { _ = r.Close() }()
	printHops(&b, rows, n, len(ids), []time.Duration{time.Second}, r)
	require.Contains(t, b.String(), "100 of 101 votes traced end to end")
	require.Contains(t, b.String(), "decided -> committed")
}

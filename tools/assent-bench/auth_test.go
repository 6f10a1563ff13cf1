package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func arms(with, without []time.Duration) (*arm, *arm) {
	return &arm{name: "with", lat: with, round: with}, &arm{name: "without", lat: without, round: without}
}

func TestReportAuthJudgesTheP50Ratio(t *testing.T) {
	ms := func(xs ...int) []time.Duration {
		out := make([]time.Duration, len(xs))
		for i, x := range xs {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	var b bytes.Buffer
	w, o := arms(ms(104, 104, 104, 104), ms(100, 100, 100, 100))
	reportAuth(&b, defaults(), time.Second, w, o)
	require.Contains(t, b.String(), "1.040  met (<= 1.05x)")
	require.NotContains(t, b.String(), "resolution:")

	b.Reset()
	w, o = arms(ms(110, 110, 110, 110), ms(100, 100, 100, 100))
	reportAuth(&b, defaults(), time.Second, w, o)
	require.Contains(t, b.String(), "1.100  NOT met (<= 1.05x)")

	b.Reset()
	w, o = arms(ms(50, 100, 150, 200), ms(100, 100, 100, 100))
	reportAuth(&b, defaults(), time.Second, w, o)
	require.Contains(t, b.String(), "quartiles 0.500 to 1.500")
	require.Contains(t, b.String(), "resolution: the rounds spread wider than the goal's 5%")
}

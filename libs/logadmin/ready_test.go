package logadmin_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/logadmin"
)

func TestWaitReadyOnFakeCluster(t *testing.T) {
	t.Parallel()
	_, adm := fakeCluster(t, 3)
	_, err := logadmin.Provision(t.Context(), adm, spec(3))
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	require.NoError(t, logadmin.WaitReady(ctx, adm, 3))

	r, err := logadmin.CheckReady(ctx, adm, 3)
	require.NoError(t, err)
	require.True(t, r.Ready())
	require.Equal(t, 3, r.Brokers)
	require.GreaterOrEqual(t, r.Partitions, 6)

	r, err = logadmin.CheckReady(ctx, adm, 0, "c")
	require.NoError(t, err)
	require.Equal(t, 3, r.Partitions)
}

func TestWaitReadyTimesOutNamingWhatIsMissing(t *testing.T) {
	t.Parallel()
	_, adm := fakeCluster(t, 3)
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	var seen []logadmin.Readiness
	err := logadmin.PollReady(ctx, adm, 4, nil, func(r logadmin.Readiness, err error) {
		require.NoError(t, err)
		seen = append(seen, r)
	})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, "eventlog: cluster not ready: 3/4 brokers, 0 partitions without full ISR")
	require.NotEmpty(t, seen)
	require.False(t, seen[0].Ready())
}

func TestCheckReadyMissingTopic(t *testing.T) {
	t.Parallel()
	_, adm := fakeCluster(t, 1)
	r, err := logadmin.CheckReady(t.Context(), adm, 1, "nope")
	require.NoError(t, err)
	require.False(t, r.Ready())
	require.Contains(t, r.String(), "nope: UNKNOWN_TOPIC_OR_PARTITION")
}

func TestReadinessString(t *testing.T) {
	t.Parallel()
	require.Equal(t, "2/3 brokers, 0 partitions without full ISR", logadmin.Readiness{Brokers: 2, WantBrokers: 3}.String())
	require.Equal(t, "3/3 brokers, 2 partitions without full ISR (1 without leader): t/0: no leader, t/1: ISR [1] of replicas [1 2]",
		logadmin.Readiness{Brokers: 3, WantBrokers: 3, Leaderless: 1, NotFullISR: 2, Examples: []string{"t/0: no leader", "t/1: ISR [1] of replicas [1 2]"}}.String())
}

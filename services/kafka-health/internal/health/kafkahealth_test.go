package health_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/assent-dev/assent/services/kafka-health/internal/health"
)

func TestSummarize(t *testing.T) {
	t.Parallel()
	full := kadm.PartitionDetail{Leader: 1, Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2, 3}}
	one := kadm.PartitionDetail{Leader: 1, Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2}}
	two := kadm.PartitionDetail{Leader: 1, Replicas: []int32{1, 2, 3}, ISR: []int32{1}}
	offline := kadm.PartitionDetail{Leader: -1, Replicas: []int32{1, 2, 3}}
	topics := kadm.TopicDetails{
		"healthy":  {Topic: "healthy", Partitions: kadm.PartitionDetails{0: full, 1: full}},
		"degraded": {Topic: "degraded", Partitions: kadm.PartitionDetails{0: full, 1: one, 2: two, 3: offline}},
		"broken":   {Topic: "broken", Err: errors.New("unknown topic")},
	}
	stable := kadm.ListedOffsets{
		"healthy": {0: {Offset: 10}, 1: {Offset: 5}},
		// A partition whose offset could not be listed does not count.
		"degraded": {0: {Offset: 7}, 1: {Offset: -1}, 2: {Err: errors.New("not leader")}},
	}
	got := health.Summarize(topics, map[string]int{"degraded": 2, "healthy": 2}, stable)
	require.Equal(t, map[string]health.TopicHealth{
		"healthy":  {Partitions: 2, StableOffset: 15, MinISR: 2},
		"degraded": {Partitions: 4, UnderReplicated: 3, UnderMinISR: 2, Offline: 1, StableOffset: 7, MinISR: 2},
	}, got, "the topic that failed to load is left out, not reported healthy")
}

func TestLagAgainstStableOffsets(t *testing.T) {
	t.Parallel()
	committed := kadm.OffsetResponses{
		"commands": {
			0: {Offset: kadm.Offset{At: 10}},
			1: {Offset: kadm.Offset{At: 4}},
			// Partition 2: nothing committed, the whole partition lags.
		},
		"gone": {0: {Offset: kadm.Offset{At: 3}}},
	}
	stable := kadm.ListedOffsets{
		"commands": {0: {Offset: 10}, 1: {Offset: 9}, 2: {Offset: 3}},
	}
	got := health.Lag("assent-decider", committed, stable)
	require.Equal(t, []health.GroupLag{{Group: "assent-decider", Topic: "commands", Lag: 5 + 3, Committed: 10 + 4}}, got,
		"a topic without stable offsets (deleted) is left out")

	// A committed offset past the stable offset (a reading taken between
	// the two requests) never yields a negative lag.
	got = health.Lag("g", kadm.OffsetResponses{"t": {0: {Offset: kadm.Offset{At: 12}}}}, kadm.ListedOffsets{"t": {0: {Offset: 11}}})
	require.Equal(t, []health.GroupLag{{Group: "g", Topic: "t", Lag: 0, Committed: 12}}, got)
}

// TestQuorumOf: a voter's age is how long before the leader's own time it
// was last caught up, on the leader's clock (the leader reports itself
// caught up now); a quorum without a leader has no ages; an error or a
// response without the metadata partition is an error.
func TestQuorumOf(t *testing.T) {
	t.Parallel()
	voter := func(id int32, caughtUp int64) kmsg.DescribeQuorumResponseTopicPartitionReplicaState {
		v := kmsg.NewDescribeQuorumResponseTopicPartitionReplicaState()
		v.ReplicaID, v.LastCaughtUpTimestamp = id, caughtUp
		return v
	}
	resp := func(leader int32, voters ...kmsg.DescribeQuorumResponseTopicPartitionReplicaState) *kmsg.DescribeQuorumResponse {
		p := kmsg.NewDescribeQuorumResponseTopicPartition()
		p.LeaderID, p.CurrentVoters = leader, voters
		tp := kmsg.NewDescribeQuorumResponseTopic()
		tp.Topic, tp.Partitions = "__cluster_metadata", []kmsg.DescribeQuorumResponseTopicPartition{p}
		r := kmsg.NewPtrDescribeQuorumResponse()
		r.Topics = []kmsg.DescribeQuorumResponseTopic{tp}
		return r
	}

	q, err := health.QuorumOf(resp(102, voter(101, 1_000_000-40_000), voter(102, 1_000_000), voter(103, 1_000_000-250)))
	require.NoError(t, err)
	require.Equal(t, health.Quorum{Leader: 102, Voters: []health.Voter{
		{ID: 101, CaughtUpAge: 40 * time.Second, Known: true},
		{ID: 102, CaughtUpAge: 0, Known: true},
		{ID: 103, CaughtUpAge: 250 * time.Millisecond, Known: true},
	}}, q)

	q, err = health.QuorumOf(resp(-1, voter(101, 5), voter(102, -1)))
	require.NoError(t, err)
	require.Equal(t, health.Quorum{Leader: -1, Voters: []health.Voter{{ID: 101}, {ID: 102}}}, q, "no leader: no clock to age against")

	q, err = health.QuorumOf(resp(101, voter(101, 9_000), voter(102, -1)))
	require.NoError(t, err)
	require.Equal(t, []health.Voter{{ID: 101, Known: true}, {ID: 102}}, q.Voters, "a voter never caught up has no age")

	bad := resp(101)
	bad.ErrorCode = kerr.ClusterAuthorizationFailed.Code
	_, err = health.QuorumOf(bad)
	require.ErrorIs(t, err, kerr.ClusterAuthorizationFailed)
	_, err = health.QuorumOf(kmsg.NewPtrDescribeQuorumResponse())
	require.Error(t, err)
}

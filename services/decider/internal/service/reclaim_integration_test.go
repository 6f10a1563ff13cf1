package service_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/assent-dev/assent/test/kafkatest"
)

// TestKafkaDropsAStaticMemberOnlyUnderTheIDItHolds pins down the Kafka
// behaviour a fenced decider relies on when it asks the coordinator to drop
// a member id it held before (services/decider/internal/session,
// reclaim.go): a LeaveGroup that names a static member's instance id and a
// member id removes the member only if the coordinator holds exactly that
// id for the instance, and answers FENCED_INSTANCE_ID otherwise. If Kafka
// removed the instance whatever the id, a decider could remove another
// process's place.
func TestKafkaDropsAStaticMemberOnlyUnderTheIDItHolds(t *testing.T) {
	topics := kafkatest.NewTopics(t, 1)
	group, instance := "reclaim-"+topics.Commands, "reclaim-"+topics.Commands+"-a"
	member := kafkatest.NewClient(t, kgo.ConsumerGroup(group), kgo.ConsumeTopics(topics.Commands),
		kgo.InstanceID(instance), kgo.SessionTimeout(30*time.Second))
	adm := kafkatest.NewAdmin(t)
	held := func() string {
		described, err := adm.DescribeGroups(t.Context(), group)
		require.NoError(t, err)
		for _, m := range described[group].Members {
			if m.InstanceID != nil && *m.InstanceID == instance {
				return m.MemberID
			}
		}
		return ""
	}
	var joined string
	deadline := time.Now().Add(30 * time.Second)
	for joined == "" {
		require.True(t, time.Now().Before(deadline), "the static member did not join in 30 s")
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		member.PollFetches(ctx)
		cancel()
		if id, gen := member.GroupMetadata(); id != "" && gen > 0 && held() == id {
			joined = id
		}
	}
	// A static member does not leave when its client closes: the group
	// keeps its place for the 30 s session.
	member.Close()
	require.Equal(t, joined, held())

	leave := func(memberID string) kmsg.LeaveGroupResponseMember {
		req := kmsg.NewPtrLeaveGroupRequest()
		req.Group = group
		m := kmsg.NewLeaveGroupRequestMember()
		m.MemberID, m.InstanceID = memberID, kmsg.StringPtr(instance)
		req.Members = append(req.Members, m)
		resp, err := req.RequestWith(t.Context(), kafkatest.NewClient(t))
		require.NoError(t, err)
		require.NoError(t, kerr.ErrorForCode(resp.ErrorCode))
		require.Len(t, resp.Members, 1)
		return resp.Members[0]
	}

	other := leave(instance + "-another-process")
	require.Equal(t, kerr.FencedInstanceID.Code, other.ErrorCode, "a member id the coordinator does not hold is refused: %v", kerr.ErrorForCode(other.ErrorCode))
	require.Equal(t, joined, held(), "and the member stays")

	own := leave(joined)
	require.Zero(t, own.ErrorCode, "the member id the coordinator holds is dropped: %v", kerr.ErrorForCode(own.ErrorCode))
	require.Empty(t, held(), "the instance has no member now")
}

package session_test

import (
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestAStoppedDeciderLeavesTheGroup: a decider is a static member of the
// group (session.Config.InstanceID), which keeps its place when the
// group's coordinator moves; a static member's client does not leave the
// group when it closes, so the decider leaves by instance id when it
// stops, and the other one takes its partitions at once instead of a
// group session later.
func TestAStoppedDeciderLeavesTheGroup(t *testing.T) {
	t.Parallel()
	r := newRigN(t, 4)
	var joinedAsA, leftAsA atomic.Int32
	r.cluster.ControlKey(int16(kmsg.JoinGroup), func(req kmsg.Request) (kmsg.Response, error, bool) {
		r.cluster.KeepControl()
		if id := req.(*kmsg.JoinGroupRequest).InstanceID; id != nil && *id == "a" {
			joinedAsA.Add(1)
		}
		return nil, nil, false
	})
	r.cluster.ControlKey(int16(kmsg.LeaveGroup), func(req kmsg.Request) (kmsg.Response, error, bool) {
		r.cluster.KeepControl()
		for _, m := range req.(*kmsg.LeaveGroupRequest).Members {
			if m.InstanceID != nil && *m.InstanceID == "a" {
				leftAsA.Add(1)
			}
		}
		return nil, nil, false
	})

	a := r.startDecider(t, "a")
	b := r.startDecider(t, "b")
	eventually(t, "a and b share the partitions", func() bool { return len(a.core.Owned()) > 0 && len(b.core.Owned()) > 0 })
	require.Positive(t, joinedAsA.Load(), "a joins as static member a")
	require.Zero(t, leftAsA.Load())

	a.stop(t)
	require.Equal(t, int32(1), leftAsA.Load(), "a left the group by its instance id when it stopped")
	described, err := r.adm.DescribeGroups(t.Context(), "deciders")
	require.NoError(t, err)
	var members []string
	for _, m := range described["deciders"].Members {
		members = append(members, m.ClientID)
	}
	require.Equal(t, []string{"b"}, members, "a is no member once stopped")
	eventually(t, "b owns every partition", func() bool {
		for p := range r.topics.Partitions {
			if !b.owns(p) {
				return false
			}
		}
		return true
	})
}

package session_test

import (
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/assent-dev/assent/services/decider/internal/session"
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

// movedCoordinator stands in for a group coordinator that took over from a
// broker cut off from the cluster: for the decider named instance it holds
// the member id pinned, which it loaded from the group's log, and refuses
// every other id with FENCED_INSTANCE_ID. A LeaveGroup naming exactly the
// pinned id removes it (the request goes on to kfake, which drops the
// instance's membership); one naming another id is refused, as Kafka
// refuses it. It never drops the pinned id by itself, as a real one does
// when the id's group session expires, so only the decider's own
// LeaveGroup can end the fence.
type movedCoordinator struct {
	instance string

	mu            sync.Mutex
	current       string   // the member id the instance's last request carried
	pinned        string   // the id held; "" once it is removed, or before the move
	rename        bool     // answer the instance's next Heartbeat and JoinGroup with UNKNOWN_MEMBER_ID once
	fencedAnswers int      // requests refused with FENCED_INSTANCE_ID
	left          []string // member ids the instance's LeaveGroups named
}

func (m *movedCoordinator) install(c *kfake.Cluster) {
	member := func(instance *string, id string) (refuse, unknown bool) {
		m.mu.Lock()
		defer m.mu.Unlock()
		if instance == nil || *instance != m.instance {
			return false, false
		}
		if m.rename {
			return false, true
		}
		if m.pinned != "" && id != "" && id != m.pinned {
			m.fencedAnswers++
			return true, false
		}
		if id != "" {
			m.current = id
		}
		return false, false
	}
	c.ControlKey(int16(kmsg.Heartbeat), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		hb := req.(*kmsg.HeartbeatRequest)
		refuse, unknown := member(hb.InstanceID, hb.MemberID)
		if !refuse && !unknown {
			return nil, nil, false
		}
		resp := hb.ResponseKind().(*kmsg.HeartbeatResponse)
		resp.ErrorCode = kerr.FencedInstanceID.Code
		if unknown {
			resp.ErrorCode = kerr.UnknownMemberID.Code
		}
		return resp, nil, true
	})
	c.ControlKey(int16(kmsg.JoinGroup), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		join := req.(*kmsg.JoinGroupRequest)
		refuse, unknown := member(join.InstanceID, join.MemberID)
		if unknown {
			// The decider joins again with no member id, and kfake gives
			// the instance a new one; the moved coordinator still holds
			// the old one.
			m.mu.Lock()
			m.rename, m.pinned = false, m.current
			m.mu.Unlock()
		}
		if !refuse && !unknown {
			return nil, nil, false
		}
		resp := join.ResponseKind().(*kmsg.JoinGroupResponse)
		resp.ErrorCode = kerr.FencedInstanceID.Code
		if unknown {
			resp.ErrorCode = kerr.UnknownMemberID.Code
		}
		return resp, nil, true
	})
	c.ControlKey(int16(kmsg.SyncGroup), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		sync := req.(*kmsg.SyncGroupRequest)
		if refuse, _ := member(sync.InstanceID, sync.MemberID); !refuse {
			return nil, nil, false
		}
		resp := sync.ResponseKind().(*kmsg.SyncGroupResponse)
		resp.ErrorCode = kerr.FencedInstanceID.Code
		return resp, nil, true
	})
	c.ControlKey(int16(kmsg.LeaveGroup), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		leave := req.(*kmsg.LeaveGroupRequest)
		m.mu.Lock()
		defer m.mu.Unlock()
		named, removes := false, false
		for _, lm := range leave.Members {
			if lm.InstanceID != nil && *lm.InstanceID == m.instance {
				named = true
				m.left = append(m.left, lm.MemberID)
				removes = removes || lm.MemberID == "" || (m.pinned != "" && lm.MemberID == m.pinned)
			}
		}
		if !named || m.pinned == "" || removes {
			if removes {
				m.pinned = ""
			}
			return nil, nil, false
		}
		resp := leave.ResponseKind().(*kmsg.LeaveGroupResponse)
		for _, lm := range leave.Members {
			r := kmsg.NewLeaveGroupResponseMember()
			r.MemberID, r.InstanceID, r.ErrorCode = lm.MemberID, lm.InstanceID, kerr.FencedInstanceID.Code
			resp.Members = append(resp.Members, r)
		}
		return resp, nil, true
	})
}

func (m *movedCoordinator) state() (current, pinned string, fencedAnswers int, left []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.current, m.pinned, m.fencedAnswers, append([]string(nil), m.left...)
}

// TestAFencedDeciderDropsTheIDItHeldAndJoinsAgain: when the group's
// coordinator moves while the deciders rejoin it (a broker cut off), the
// new coordinator holds, for each decider's instance id, a member id the
// decider no longer uses, and answers FENCED_INSTANCE_ID to the one it
// does until the old id's group session expires (docs/benchmarks.md,
// "Failover"). Here the coordinator never drops the old id: the decider
// must ask it to, naming the id it held, and join again, in the same
// session (its transactional producer kept).
func TestAFencedDeciderDropsTheIDItHeldAndJoinsAgain(t *testing.T) {
	t.Parallel()
	r := newRigN(t, 2)
	moved := &movedCoordinator{instance: "a"}
	moved.install(r.cluster)

	a := r.startDecider(t, "a")
	b := r.startDecider(t, "b")
	eventually(t, "a and b share the partitions", func() bool { return len(a.core.Owned()) > 0 && len(b.core.Owned()) > 0 })
	old, _, _, _ := moved.state()
	require.NotEmpty(t, old, "a heartbeats under a member id")

	moved.mu.Lock()
	moved.rename = true
	moved.mu.Unlock()
	eventually(t, "the coordinator refuses a's new member id", func() bool {
		_, _, fenced, _ := moved.state()
		return fenced > 0
	})
	eventually(t, "a owns partitions again, under a third member id", func() bool {
		current, pinned, _, _ := moved.state()
		return pinned == "" && current != old && len(a.core.Owned()) > 0
	})
	_, _, _, left := moved.state()
	require.Contains(t, left, old, "a asked the coordinator to drop the member id it held")
	require.NotContains(t, left, "", "a named the member id, never the whole instance")
	require.Contains(t, a.reclaimed(), session.ReclaimRemoved)

	var p int32 = -1
	for q := range a.core.Owned() {
		p = q
	}
	id := r.submit(t, r.ridIn(t, "reclaimed", p), time.Hour)
	eventually(t, "a decides on its partition", func() bool { return r.decided(t, p, id) })
}

// TestAFencedDeciderLeavesAnotherProcessesPlaceAlone: a coordinator that
// holds, for a decider's instance id, a member id the decider was never
// given is another process running with the same instance id. The
// decider must not take that process's place: its LeaveGroup names only
// ids it held, the coordinator refuses them, and it reports the clash.
func TestAFencedDeciderLeavesAnotherProcessesPlaceAlone(t *testing.T) {
	t.Parallel()
	r := newRigN(t, 2)
	moved := &movedCoordinator{instance: "a"}
	moved.install(r.cluster)

	a := r.startDecider(t, "a")
	b := r.startDecider(t, "b")
	eventually(t, "a and b share the partitions", func() bool { return len(a.core.Owned()) > 0 && len(b.core.Owned()) > 0 })
	held, _, _, _ := moved.state()
	require.NotEmpty(t, held)

	moved.mu.Lock()
	moved.pinned = "a-another-process"
	moved.mu.Unlock()
	eventually(t, "a reports that another process holds its instance id", func() bool {
		return slices.Contains(a.reclaimed(), session.ReclaimHeldElsewhere)
	})
	eventually(t, "b owns every partition", func() bool {
		for p := range r.topics.Partitions {
			if !b.owns(p) {
				return false
			}
		}
		return true
	})
	_, pinned, _, left := moved.state()
	require.Equal(t, "a-another-process", pinned, "the other process keeps its place")
	require.NotEmpty(t, left)
	for _, id := range left {
		require.Equal(t, held, id, "a names only the member id it was given")
	}
	require.NotContains(t, a.reclaimed(), session.ReclaimRemoved)
	require.Empty(t, a.core.Owned(), "a decides nothing while another process holds its place")
}

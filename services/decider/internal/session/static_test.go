package session_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
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

// TestAFencedStaticMemberTakesItsPlaceBackAtOnce: when the group's
// coordinator moves while the deciders rejoin it (a broker cut off), the
// new coordinator holds, for each decider's instance id, a member id the
// decider no longer uses, and answers FENCED_INSTANCE_ID to the one it
// does. franz-go keeps rejoining under the fenced id, so the decider waits
// until the coordinator drops the old id at the end of its group session
// (docs/benchmarks.md, "Failover"). Here the coordinator never drops it:
// the decider must start a new session, whose client joins with no member
// id and so takes its instance's place back, replacing the old id.
func TestAFencedStaticMemberTakesItsPlaceBackAtOnce(t *testing.T) {
	t.Parallel()
	r := newRigN(t, 2)
	var (
		mu               sync.Mutex
		current, fenced  string // a's member id as its heartbeats carry it; the one the coordinator refuses
		fencedAnswers    int
		rejoinedWithNone bool
	)
	refuse := func(instance *string, member string) bool {
		mu.Lock()
		defer mu.Unlock()
		if instance == nil || *instance != "a" {
			return false
		}
		if fenced != "" && member == fenced {
			fencedAnswers++
			return true
		}
		return false
	}
	r.cluster.ControlKey(int16(kmsg.Heartbeat), func(req kmsg.Request) (kmsg.Response, error, bool) {
		r.cluster.KeepControl()
		hb := req.(*kmsg.HeartbeatRequest)
		if refuse(hb.InstanceID, hb.MemberID) {
			resp := hb.ResponseKind().(*kmsg.HeartbeatResponse)
			resp.ErrorCode = kerr.FencedInstanceID.Code
			return resp, nil, true
		}
		if hb.InstanceID != nil && *hb.InstanceID == "a" {
			mu.Lock()
			current = hb.MemberID
			mu.Unlock()
		}
		return nil, nil, false
	})
	r.cluster.ControlKey(int16(kmsg.JoinGroup), func(req kmsg.Request) (kmsg.Response, error, bool) {
		r.cluster.KeepControl()
		join := req.(*kmsg.JoinGroupRequest)
		if refuse(join.InstanceID, join.MemberID) {
			resp := join.ResponseKind().(*kmsg.JoinGroupResponse)
			resp.ErrorCode = kerr.FencedInstanceID.Code
			return resp, nil, true
		}
		mu.Lock()
		if fenced != "" && join.InstanceID != nil && *join.InstanceID == "a" && join.MemberID == "" {
			rejoinedWithNone = true
		}
		mu.Unlock()
		return nil, nil, false
	})

	a := r.startDecider(t, "a")
	b := r.startDecider(t, "b")
	eventually(t, "a and b share the partitions", func() bool { return len(a.core.Owned()) > 0 && len(b.core.Owned()) > 0 })
	eventually(t, "a heartbeats", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return current != ""
	})
	mu.Lock()
	fenced = current
	mu.Unlock()

	eventually(t, "a joins again with no member id after it was fenced", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return rejoinedWithNone
	})
	eventually(t, "a owns partitions again, under a member id the coordinator holds", func() bool {
		mu.Lock()
		renewed := current != fenced
		mu.Unlock()
		return renewed && len(a.core.Owned()) > 0
	})
	mu.Lock()
	require.Positive(t, fencedAnswers, "the coordinator refused a's old member id")
	mu.Unlock()
	// And a decides: a request on one of its partitions is decided.
	var p int32 = -1
	for q := range a.core.Owned() {
		p = q
	}
	id := r.submit(t, r.ridIn(t, "fenced", p), time.Hour)
	eventually(t, "a decides on its partition", func() bool { return r.decided(t, p, id) })
}

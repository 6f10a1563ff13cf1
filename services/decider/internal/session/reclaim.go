package session

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A decider is a static member of its group (Config.InstanceID). When the
// group's coordinator moves while the deciders rejoin it (a broker cut off
// from the others answers their heartbeats with COORDINATOR_NOT_AVAILABLE,
// and they rejoin it under member ids its log never replicates), the new
// coordinator loads the member ids last written. It answers
// FENCED_INSTANCE_ID to the ids the deciders use now until the loaded ids'
// group sessions expire, and franz-go rejoins under the refused id
// meanwhile (docs/benchmarks.md, "Failover").
//
// reclaim cuts that wait short. It asks the coordinator to remove this
// instance's membership, naming each member id this process was given. A
// LeaveGroup that names an instance id and a member id removes the member
// only if the coordinator holds exactly that member id for the instance,
// and answers FENCED_INSTANCE_ID otherwise (KIP-345). So it removes the
// stale id the new coordinator loaded, which this process held, and never
// the membership of another process: a second decider started with the
// same instance id keeps its place, and this one stays fenced, as it must.
// Once the stale id is gone, franz-go's next join under the refused id is
// answered UNKNOWN_MEMBER_ID, and it joins again with no member id, which
// takes the instance's place.
//
// The session and its transactional producer stay. Starting a new session
// instead was tried: its InitProducerId waited 10 s for the transaction
// the old session had open when the broker was cut off.

// maxHeldMembers bounds the member ids a decider remembers. The one a
// moved coordinator holds is at most a few sessions old.
const maxHeldMembers = 8

// reclaimEvery spaces the LeaveGroup requests of one fence: franz-go
// reports a fenced join at most once per retry backoff anyway.
const reclaimEvery = 250 * time.Millisecond

// reclaimTimeout bounds one LeaveGroup request.
const reclaimTimeout = 2 * time.Second

// Reclaim results, as Metrics.Reclaim receives them.
const (
	// ReclaimRemoved: the coordinator held a member id this process was
	// given, and removed it.
	ReclaimRemoved = "removed"
	// ReclaimHeldElsewhere: the coordinator holds a member id this
	// process was never given: another process runs with this instance id.
	ReclaimHeldElsewhere = "held_elsewhere"
	// ReclaimError: the LeaveGroup request failed.
	ReclaimError = "error"
)

// heldMembers are the member ids the group gave this process's sessions,
// oldest first.
type heldMembers struct {
	mu  sync.Mutex
	ids []string
}

// note remembers the member id cl's group session holds now.
func (h *heldMembers) note(cl *kgo.Client) {
	id, _ := cl.GroupMetadata()
	if id == "" {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if slices.Contains(h.ids, id) {
		return
	}
	h.ids = append(h.ids, id)
	if len(h.ids) > maxHeldMembers {
		h.ids = slices.Delete(h.ids, 0, len(h.ids)-maxHeldMembers)
	}
}

func (h *heldMembers) list() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.ids)
}

// reclaim asks the group's coordinator, through cl, to drop this
// instance's membership if it holds a member id this process was given
// (see above). It runs on the loop's goroutine, where the session is
// fenced and decides nothing until it joins again.
func (l *Loop) reclaim(ctx context.Context, cl *kgo.Client) {
	if l.cfg.InstanceID == "" || time.Since(l.lastReclaim) < reclaimEvery {
		return
	}
	l.lastReclaim = time.Now()
	ids := l.held.list()
	if len(ids) == 0 {
		return
	}
	req := kmsg.NewPtrLeaveGroupRequest()
	req.Group = l.cfg.Group
	for _, id := range ids {
		m := kmsg.NewLeaveGroupRequestMember()
		m.MemberID, m.InstanceID = id, kmsg.StringPtr(l.cfg.InstanceID)
		m.Reason = kmsg.StringPtr("decider fenced under a member id the coordinator does not hold; removing one it held before")
		req.Members = append(req.Members, m)
	}
	ctx, cancel := context.WithTimeout(ctx, reclaimTimeout)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err == nil {
		err = kerr.ErrorForCode(resp.ErrorCode)
	}
	if err != nil {
		l.cfg.Logger.Warn("fenced from the deciders' group, and could not ask its coordinator to drop the old member id; waiting for that id's group session to expire",
			"group", l.cfg.Group, "instance_id", l.cfg.InstanceID, "err", err)
		l.observeReclaim(ReclaimError)
		return
	}
	for _, m := range resp.Members {
		if m.ErrorCode == 0 {
			l.cfg.Logger.Info("fenced from the deciders' group under a new member id; the coordinator dropped the one this decider held before, and it joins again",
				"group", l.cfg.Group, "instance_id", l.cfg.InstanceID, "removed_member_id", m.MemberID)
			l.observeReclaim(ReclaimRemoved)
			return
		}
	}
	// No id this process held is the coordinator's: either it already
	// dropped the stale one (the next join succeeds), or another process
	// holds the instance id.
	for _, m := range resp.Members {
		if m.ErrorCode == kerr.FencedInstanceID.Code {
			l.cfg.Logger.Error("fenced from the deciders' group by a member id this process was never given: is another decider running with this instance id? Each decider needs its own ASSENT_INSTANCE_ID (docs/runbook.md#assentdeciderinstanceshared)",
				"group", l.cfg.Group, "instance_id", l.cfg.InstanceID)
			l.observeReclaim(ReclaimHeldElsewhere)
			return
		}
	}
}

func (l *Loop) observeReclaim(result string) {
	if l.cfg.Metrics.Reclaim != nil {
		l.cfg.Metrics.Reclaim(result)
	}
}

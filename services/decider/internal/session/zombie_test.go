package session_test

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/assent-dev/assent/libs/approval"
)

// TestZombieCannotWriteTimersOrCheckpoints reproduces issue 13, item 1. The
// owner of a partition stops hearing from the group coordinator (its
// heartbeats are answered "fine" by a forged response, as a decider paused
// past its session timeout sees before it learns it was kicked out, or one
// cut off from the coordinator), the group gives the partition to another
// decider, and a request's deadline passes. The zombie's timer must not
// write anything into the partition the new owner writes: not an
// expiry (a second terminal event, I3) and not a record the new owner's
// chain does not know (a fork, I6).
func TestZombieCannotWriteTimersOrCheckpoints(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	a := r.startDecider(t, "a")
	eventually(t, "a owns the partition", func() bool { return a.owns(0) })
	r.submit(t, "r-1", 3*time.Second)
	eventually(t, "r-1 is pending in a's projection", func() bool { return a.runner.Next(0) > 0 })

	// From now on the coordinator never hears from a, but a is told all
	// is well.
	groups, err := r.adm.DescribeGroups(t.Context(), "deciders")
	require.NoError(t, err)
	var member string
	for _, m := range groups["deciders"].Members {
		if m.ClientID == "a" {
			member = m.MemberID
		}
	}
	require.NotEmpty(t, member)
	var forged sync.Once
	r.cluster.ControlKey(int16(kmsg.Heartbeat), func(req kmsg.Request) (kmsg.Response, error, bool) {
		r.cluster.KeepControl()
		hb := req.(*kmsg.HeartbeatRequest)
		if hb.MemberID != member {
			return nil, nil, false
		}
		forged.Do(func() { t.Log("forging a's heartbeats from now on") })
		resp := hb.ResponseKind().(*kmsg.HeartbeatResponse)
		return resp, nil, true
	})

	b := r.startDecider(t, "b")
	eventually(t, "b owns the partition", func() bool { return b.owns(0) })
	require.True(t, a.owns(0), "a still believes it owns the partition: it is the zombie")

	// The deadline passes; both timers fire. Then b writes again.
	eventually(t, "r-1 expired", func() bool {
		for _, e := range r.events(t) {
			if e.Subject == "r-1" && e.Type == approval.TypeRequestExpired {
				return true
			}
		}
		return false
	})
	time.Sleep(time.Second) // let the zombie's timer fire many times (every 50ms): what it writes is the point
	r.submit(t, "r-2", time.Hour)
	eventually(t, "b decides r-2", func() bool {
		for _, e := range r.events(t) {
			if e.Subject == "r-2" {
				return true
			}
		}
		return false
	})
	terminal := 0
	for _, e := range r.events(t) { // the chain links: checked by events
		if e.Subject == "r-1" && (e.Type == approval.TypeRequestExpired || e.Type == approval.TypeRequestApproved ||
			e.Type == approval.TypeRequestRejected || e.Type == approval.TypeRequestCancelled) {
			terminal++
		}
	}
	require.Equal(t, 1, terminal, "one terminal event for r-1")
}

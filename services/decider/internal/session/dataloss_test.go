package session_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/codec"
	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/test/systest"
)

// TestLostCommandsStopThePartition reproduces issue 13, item 4, on the
// commands topic. Commands were acknowledged but never decided (every
// decider was down), and then deleted (the commands topic keeps 7 days):
// the group's committed offset is below the log start. The decider that
// takes the partition over must not skip what was lost and decide what
// follows as if nothing happened: it stops deciding that partition (and
// only that one), and says so.
func TestLostCommandsStopThePartition(t *testing.T) {
	t.Parallel()
	r := newRigN(t, 2)
	a := r.startDecider(t, "a")
	eventually(t, "a owns both partitions", func() bool { return a.owns(0) && a.owns(1) })
	first := r.submit(t, r.ridIn(t, "first", 0), time.Hour)
	eventually(t, "the first command is decided", func() bool { return r.decided(t, 0, first) })
	eventually(t, "its offset is committed", func() bool { return r.committed(t, 0) == 1 })
	a.stop(t)

	// Two commands are acknowledged while no decider runs, and deleted
	// before one comes back; a third survives.
	lost := []string{r.submit(t, r.ridIn(t, "lost-a", 0), time.Hour), r.submit(t, r.ridIn(t, "lost-b", 0), time.Hour)}
	r.deleteRecords(t, r.topics.Commands, 0, r.end(t, r.topics.Commands, 0))
	survivor := r.submit(t, r.ridIn(t, "survivor", 0), time.Hour)
	other := r.submit(t, r.ridIn(t, "other", 1), time.Hour)

	b := r.startDecider(t, "b")
	eventually(t, "b decides the other partition", func() bool { return r.decided(t, 1, other) })
	time.Sleep(time.Second) // b polls partition 0 every 100ms meanwhile: what it does there is the point
	for _, id := range append(lost, survivor) {
		require.False(t, r.decided(t, 0, id), "b decided %s, past commands that were lost", id)
	}
	require.Equal(t, int64(1), r.committed(t, 0), "nothing is committed past the loss")
	requireStopped(t, b, 0, "deleted before they were decided")
}

// TestTruncatedCommandsStopThePartition: the leader of a commands
// partition moves, and the new leader's log ends before what the decider
// consumed there (a truncation, as after an unclean leader election; its
// answer to the client's epoch check is forged here). franz-go reports
// the data loss and would go on from the truncation point. The decider
// must stop the partition instead, and go on with the others.
func TestTruncatedCommandsStopThePartition(t *testing.T) {
	t.Parallel()
	r := newRigN(t, 2, 2)
	a := r.startDecider(t, "a")
	eventually(t, "a owns both partitions", func() bool { return a.owns(0) && a.owns(1) })
	for _, prefix := range []string{"first", "second"} {
		id := r.submit(t, r.ridIn(t, prefix, 0), time.Hour)
		eventually(t, "a decides "+id, func() bool { return r.decided(t, 0, id) })
	}
	eventually(t, "both offsets are committed", func() bool { return r.committed(t, 0) == 2 })

	var forged atomic.Int32
	r.cluster.ControlKey(int16(kmsg.OffsetForLeaderEpoch), func(req kmsg.Request) (kmsg.Response, error, bool) {
		r.cluster.KeepControl()
		q := req.(*kmsg.OffsetForLeaderEpochRequest)
		if len(q.Topics) != 1 || q.Topics[0].Topic != r.topics.Commands || len(q.Topics[0].Partitions) != 1 || q.Topics[0].Partitions[0].Partition != 0 {
			return nil, nil, false
		}
		forged.Add(1)
		resp := q.ResponseKind().(*kmsg.OffsetForLeaderEpochResponse)
		rt := kmsg.NewOffsetForLeaderEpochResponseTopic()
		rt.Topic = r.topics.Commands
		rp := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
		rp.Partition, rp.LeaderEpoch, rp.EndOffset = 0, q.Topics[0].Partitions[0].LeaderEpoch, 1 // the second command is gone
		rt.Partitions = append(rt.Partitions, rp)
		resp.Topics = append(resp.Topics, rt)
		return resp, nil, true
	})
	leader := r.cluster.LeaderFor(r.topics.Commands, 0)
	require.NoError(t, r.cluster.MoveTopicPartition(r.topics.Commands, 0, 1-leader))

	after := r.submit(t, r.ridIn(t, "after", 0), time.Hour)
	other := r.submit(t, r.ridIn(t, "other", 1), time.Hour)
	eventually(t, "a decides the other partition", func() bool { return r.decided(t, 1, other) })
	eventually(t, "the client checked the new leader's log", func() bool { return forged.Load() > 0 })
	time.Sleep(time.Second)
	require.False(t, r.decided(t, 0, after), "a decided past records that were lost")
	require.Equal(t, int64(2), r.committed(t, 0), "nothing is committed past the loss")
	requireStopped(t, a, 0, "lost records")
}

// TestAGapInTheEventsStopsOnlyThatPartition: a replica starts with an
// empty store on an events topic that lost records (deleted up to the
// middle of partition 0, past a seal). Its projection stops partition 0
// at the gap. The decider must neither extend the chain of partition 0 nor
// stop deciding the other partitions.
func TestAGapInTheEventsStopsOnlyThatPartition(t *testing.T) {
	t.Parallel()
	r := newRigN(t, 2)
	a := r.startDecider(t, "a")
	eventually(t, "a owns both partitions", func() bool { return a.owns(0) && a.owns(1) })
	for i := range 2 {
		id := r.submit(t, r.ridIn(t, "before-"+string(rune('a'+i)), 0), time.Hour)
		eventually(t, "a decides "+id, func() bool { return r.decided(t, 0, id) })
	}
	a.stop(t)
	log := r.log(t, 0)
	require.Len(t, log, 4, "two transactions of one event and a seal")
	r.deleteRecords(t, r.topics.Events, 0, log[2].offset) // the first transaction is gone

	b := r.startDecider(t, "b")
	eventually(t, "b's projection stops partition 0 at the gap", func() bool { return b.runner.Stopped()[0] != "" })
	after := r.submit(t, r.ridIn(t, "after", 0), time.Hour)
	other := r.submit(t, r.ridIn(t, "other", 1), time.Hour)
	eventually(t, "b decides the other partition", func() bool { return r.decided(t, 1, other) })
	time.Sleep(time.Second)
	require.False(t, r.decided(t, 0, after), "b extended the chain of partition 0 past a gap")
	require.Len(t, r.log(t, 0), 2, "partition 0 holds what survived, and nothing more")
	requireStopped(t, b, 0, "projection")
}

// TestDeciderDoesNotExtendAChainItsProjectionStopped: the owner of a
// partition is caught up and deciding when its projection meets a gap
// there (a validly sealed run that does not extend the head it holds:
// records are missing). From then on the head it would extend is not the
// head of the log. It must stop deciding that partition, and go on with
// the others.
func TestDeciderDoesNotExtendAChainItsProjectionStopped(t *testing.T) {
	t.Parallel()
	r := newRigN(t, 2)
	a := r.startDecider(t, "a")
	eventually(t, "a owns both partitions", func() bool { return a.owns(0) && a.owns(1) })
	first := r.submit(t, r.ridIn(t, "first", 0), time.Hour)
	eventually(t, "a decides the first command", func() bool { return r.decided(t, 0, first) })

	r.writeSealedRunAfterAGap(t, 0)
	eventually(t, "a's projection stops partition 0 at the gap", func() bool { return a.runner.Stopped()[0] != "" })

	after := r.submit(t, r.ridIn(t, "after", 0), time.Hour)
	other := r.submit(t, r.ridIn(t, "other", 1), time.Hour)
	eventually(t, "a decides the other partition", func() bool { return r.decided(t, 1, other) })
	time.Sleep(time.Second)
	require.False(t, r.decided(t, 0, after), "a extended the chain of partition 0 past a gap")
	requireStopped(t, a, 0, "projection")
}

// writeSealedRunAfterAGap writes, in a transaction, one event and a seal
// signed with the deciders' key over a run that extends a head no record
// of partition p has: to every reader, records are missing before it.
func (r *rig) writeSealedRunAfterAGap(t *testing.T, p int32) {
	t.Helper()
	now := time.Now().UTC()
	from := wire.Hash([]byte("a record that was lost"))
	chain := wire.NewChain(from)
	env, err := codec.EventEnvelope(approval.Event{RequestID: r.ridIn(t, "missing", p), CommandID: "lost-command", Actor: "service:billing",
		Time: now, Sequence: 2, Body: approval.RequestCancelled{}}, "assent/decider", from)
	require.NoError(t, err)
	event, err := chain.Next(env)
	require.NoError(t, err)
	sealEnv, err := wire.NewSeal(systest.DemoSigner(t), "assent/decider", r.topics.Events, p, from, chain.Head, 1, now)
	require.NoError(t, err)
	seal, err := chain.Next(sealEnv)
	require.NoError(t, err)

	cl, err := eventlog.NewClient(r.kafka, kgo.TransactionalID("restored-from-elsewhere"))
	require.NoError(t, err)
	defer cl.Close()
	require.NoError(t, cl.BeginTransaction())
	for _, rec := range []*kgo.Record{eventlog.RecordOf(r.topics.Events, []byte(env.Subject), event), eventlog.RecordOf(r.topics.Events, nil, seal)} {
		rec.Partition = p
		require.NoError(t, cl.ProduceSync(t.Context(), rec).FirstErr())
	}
	require.NoError(t, cl.EndTransaction(t.Context(), kgo.TryCommit))
}

// requireStopped requires the decider to have stopped deciding partition
// p, for a reason that mentions why.
func requireStopped(t *testing.T, d *decider, p int32, why string) {
	t.Helper()
	stopped := d.core.Stopped()
	require.Contains(t, stopped, p, "%s stopped deciding partition %d", d.name, p)
	require.Contains(t, stopped[p], why)
	t.Logf("%s: partition %d stopped: %s", d.name, p, stopped[p])
	require.Len(t, stopped, 1, "only partition %d is stopped", p)
}

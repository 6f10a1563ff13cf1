package session_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/assent-dev/assent/libs/eventlog"
)

// abandoned is a transaction that a decider began on events partitions
// and never ended: the decider was killed (-9) mid-transaction. Its
// transaction timeout is far longer than any test waits, so the partition
// stays open unless somebody fences the transactional id.
type abandoned struct {
	cl *kgo.Client
}

func (r *rig) abandon(t *testing.T, transactionalID string, parts ...int32) *abandoned {
	t.Helper()
	cl, err := eventlog.NewClient(r.kafka, kgo.TransactionalID(transactionalID), kgo.TransactionTimeout(10*time.Minute))
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	require.NoError(t, cl.BeginTransaction())
	for _, p := range parts {
		rec := &kgo.Record{Topic: r.topics.Events, Partition: p, Value: []byte("half a transaction")}
		require.NoError(t, cl.ProduceSync(t.Context(), rec).FirstErr())
	}
	ends, err := r.adm.ListCommittedOffsets(t.Context(), r.topics.Events)
	require.NoError(t, err)
	hws, err := r.adm.ListEndOffsets(t.Context(), r.topics.Events)
	require.NoError(t, err)
	for _, p := range parts {
		lso, _ := ends.Lookup(r.topics.Events, p)
		hw, _ := hws.Lookup(r.topics.Events, p)
		require.Less(t, lso.Offset, hw.Offset, "the transaction holds events partition %d open", p)
	}
	return &abandoned{cl: cl}
}

// end tries to end the abandoned transaction, as the killed decider
// would if it came back: a fenced transactional id cannot.
func (a *abandoned) end(t *testing.T, try kgo.TransactionEndTry) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	return a.cl.EndTransaction(ctx, try)
}

// TestFailoverFencesTheOpenTransactionOfADeciderThatLeft is issue 14,
// item 5: decider a dies with a transaction open on events partition 0,
// b is given the partition, and must not wait for the transaction to
// time out (the transaction timeout plus the coordinator's scan, up to
// 20s with the defaults; ten minutes here): a is no member of the group,
// so b fences a's transactional id, which aborts the transaction. a's
// records are never committed.
func TestFailoverFencesTheOpenTransactionOfADeciderThatLeft(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	dead := r.abandon(t, "assent-a", 0)
	began := time.Now()
	b := r.startDecider(t, "b")
	eventually(t, "b owns partition 0", func() bool { return b.owns(0) })
	t.Logf("b caught up partition 0 %s after it started", time.Since(began).Round(time.Millisecond))

	require.Error(t, dead.end(t, kgo.TryCommit), "a's transactional id is fenced: its transaction can never commit")
	r.submit(t, "r-1", time.Hour)
	eventually(t, "b decides r-1", func() bool {
		for _, e := range r.events(t) { // every committed record decodes and links: a's were aborted
			if e.Subject == "r-1" {
				return true
			}
		}
		return false
	})
}

// TestANewSessionAbortsWhatItsPredecessorLeftOpen: a decider killed
// mid-transaction and restarted (same instance id, so the same
// transactional id) must not wait for its own earlier incarnation's
// transaction: its session initializes its producer id first, which
// aborts it. Before, the id was initialized by the first transaction,
// which came only after the catch-up that waited for the old one.
func TestANewSessionAbortsWhatItsPredecessorLeftOpen(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	earlier := r.abandon(t, "assent-b", 0)
	b := r.startDecider(t, "b")
	eventually(t, "b owns partition 0", func() bool { return b.owns(0) })
	require.Error(t, earlier.end(t, kgo.TryCommit), "the earlier incarnation is fenced")
}

// TestFailoverLeavesAMembersTransactionAlone: a decider that is still a
// member of the group (it gave a partition up in a rebalance and is
// ending its transaction) is never fenced; the new owner waits for it.
func TestFailoverLeavesAMembersTransactionAlone(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	// c is a member of the group. It consumes another topic, so that b
	// alone is given commands partition 0.
	member, err := eventlog.NewClient(eventlog.Config{Brokers: r.kafka.Brokers, ClientID: "c"},
		kgo.ConsumerGroup("deciders"), kgo.ConsumeTopics(r.topics.Events), kgo.SessionTimeout(time.Second), kgo.HeartbeatInterval(100*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(member.Close)
	go func() {
		for member.PollFetches(t.Context()).Err0() == nil {
		}
	}()
	eventually(t, "c is a member of the group", func() bool {
		g, err := r.adm.DescribeGroups(t.Context(), "deciders")
		return err == nil && len(g["deciders"].Members) == 1
	})
	open := r.abandon(t, "assent-c", 0)
	b := r.startDecider(t, "b")
	time.Sleep(3 * time.Second) // six looks for the owner of the open transaction
	require.False(t, b.owns(0), "b waits for the member's transaction")
	require.NoError(t, open.end(t, kgo.TryAbort), "the member's transaction was not fenced: it can still end it")
	eventually(t, "b owns partition 0 once the member's transaction ended", func() bool { return b.owns(0) })
}

// TestASessionTimeoutTheBrokersRefuseStopsTheDecider: the deciders' short
// session (ASSENT_SESSION_TIMEOUT) needs the brokers'
// group.min.session.timeout.ms at or below it. A cluster that refuses it
// answers every join with INVALID_SESSION_TIMEOUT, which a new session
// cannot fix: the decider must stop with an error that says what to
// change, not log fetch errors for ever while deciding nothing.
func TestASessionTimeoutTheBrokersRefuseStopsTheDecider(t *testing.T) {
	t.Parallel()
	r := newRigWith(t, 1, kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(6*time.Second)) // Kafka's default minimum
	d := r.startDecider(t, "a")                                                             // asks for 1s
	select {
	case err := <-d.loopDone:
		d.loopDone <- err // for stop
		require.ErrorContains(t, err, "group.min.session.timeout.ms")
		require.ErrorContains(t, err, "ASSENT_SESSION_TIMEOUT")
	case <-time.After(20 * time.Second):
		t.Fatal("the decider kept running without a group session for 20s")
	}
}

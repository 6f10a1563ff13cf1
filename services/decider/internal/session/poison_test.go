package session_test

import (
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/assent-dev/assent/libs/approval"
)

// TestPoisonCommandDoesNotStallTheOthers reproduces issue 13, item 3. The
// decider's store holds a state it cannot decode for one request (a
// corrupt value; the same happens for any deterministic failure to decide
// one command). A vote on that request cannot be decided. It must not
// hold up the commands after it, in its own partition or in the others:
// it is quarantined (not decided, counted and logged, left in the
// commands topic to replay) and the rest are decided.
func TestPoisonCommandDoesNotStallTheOthers(t *testing.T) {
	t.Parallel()
	r := newRigN(t, 2)
	a := r.startDecider(t, "a")
	eventually(t, "a owns both partitions", func() bool { return a.owns(0) && a.owns(1) })

	bad, ok1 := r.ridIn(t, "bad", 0), r.ridIn(t, "ok1", 1)
	badSubmit, ok1Submit := r.submit(t, bad, time.Hour), r.submit(t, ok1, time.Hour)
	eventually(t, "both submits are decided and projected", func() bool {
		_, found, err := a.store.Get(bad)
		return err == nil && found && r.decided(t, 0, badSubmit) && r.decided(t, 1, ok1Submit)
	})
	// Corrupt the stored state of bad (the requests store keeps it under
	// "r/<request id>"); the store must now fail to read it.
	require.NoError(t, a.runner.DB().Set([]byte("r/"+bad), []byte("{not a state"), pebble.Sync))
	_, _, err := a.store.Get(bad)
	require.Error(t, err, "the state of %s does not decode", bad)

	poison := r.send(t, approval.Command{RequestID: bad, Actor: "user:alice@example.com", Body: approval.Vote{Decision: approval.Approve}})
	ok2, ok3 := r.ridIn(t, "ok2", 0), r.ridIn(t, "ok3", 1)
	ok2Submit, ok3Submit := r.submit(t, ok2, time.Hour), r.submit(t, ok3, time.Hour)
	eventually(t, "the commands after the poison are decided, in its partition and the other", func() bool {
		return r.decided(t, 0, ok2Submit) && r.decided(t, 1, ok3Submit)
	})
	require.False(t, r.decided(t, 0, poison), "the command that could not be decided wrote nothing")
	eventually(t, "the group committed past the poison", func() bool {
		return r.committed(t, 0) == r.end(t, r.topics.Commands, 0)
	})
	require.Equal(t, 1, a.quarantined(), "one command was quarantined")
	require.Empty(t, a.core.Stopped(), "a poison command stops no partition")
}

// TestRepeatedAbortsAreNotHidden: a failure that aborts every transaction
// (here the events topic refuses every record as too large, as a topic
// misconfigured below the size of an event would) must not be retried
// forever in silence: the loop replaces its session, and after
// maxFailedSessions in a row without a commit, Run returns the error.
func TestRepeatedAbortsAreNotHidden(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	_, err := r.adm.AlterTopicConfigs(t.Context(), []kadm.AlterConfig{{Name: "max.message.bytes", Value: ptr("64")}}, r.topics.Events)
	require.NoError(t, err)
	a := r.startDecider(t, "a")
	eventually(t, "a owns the partition", func() bool { return a.owns(0) })
	r.submit(t, "r-1", time.Hour)
	select {
	case err := <-a.loopDone:
		require.Error(t, err, "Run returns the failure")
		t.Logf("Run returned: %v", err)
	case <-time.After(90 * time.Second):
		t.Fatal("every transaction aborts, and Run still has not returned after 90s")
	}
	a.loopDone <- nil // for stop
}

func ptr[T any](v T) *T { return &v }

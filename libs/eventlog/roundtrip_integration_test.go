package eventlog_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/test/kafkatest"
)

// TestIntegrationReadCommittedRoundTrip writes a hash-chained run of events
// for one request, one of them in a transaction that aborts, and reads it
// back: a read_committed consumer sees every committed event, in order,
// with an unbroken chain, and never the aborted one, which a
// read_uncommitted consumer proves was written.
func TestIntegrationReadCommittedRoundTrip(t *testing.T) {
	t.Parallel()
	spec := kafkatest.NewTopics(t, 3)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	now := time.Now().UTC()
	subject := "req-" + wire.NewID(now)
	head := wire.GenesisHash
	seq := 0
	next := func(kind string) (*kgo.Record, wire.Envelope) {
		seq++
		env := wire.Envelope{
			ID:        wire.NewID(now.Add(time.Duration(seq) * time.Millisecond)),
			Source:    "assent/decider",
			Type:      "dev.assent.vote.recorded",
			Subject:   subject,
			Time:      now,
			Actor:     "system:decider",
			CommandID: wire.NewID(now),
			Sequence:  fmt.Sprint(seq),
			PrevHash:  head,
			Data:      json.RawMessage(fmt.Sprintf(`{"kind":%q}`, kind)),
		}
		r, err := eventlog.NewRecord(spec.Events, env)
		require.NoError(t, err)
		return r, env
	}
	var committed []string // ids a read_committed reader must see, in order

	plain := kafkatest.NewClient(t)
	for _, kind := range []string{"plain-1", "plain-2"} {
		r, env := next(kind)
		require.NoError(t, plain.ProduceSync(ctx, r).FirstErr())
		head = wire.Hash(r.Value)
		committed = append(committed, env.ID)
	}

	txn := kafkatest.NewClient(t, kgo.TransactionalID("test-"+wire.NewID(now)))
	require.NoError(t, txn.BeginTransaction())
	r, env := next("txn-committed")
	require.NoError(t, txn.ProduceSync(ctx, r).FirstErr())
	ok, err := endTxn(ctx, txn, kgo.TryCommit)
	require.NoError(t, err)
	require.True(t, ok, "commit")
	head = wire.Hash(r.Value)
	committed = append(committed, env.ID)

	require.NoError(t, txn.BeginTransaction())
	r, aborted := next("txn-aborted")
	require.NoError(t, txn.ProduceSync(ctx, r).FirstErr())
	_, err = endTxn(ctx, txn, kgo.TryAbort)
	require.NoError(t, err)
	seq-- // the head and the sequence roll back with the abort

	r, sentinel := next("after-abort")
	require.NoError(t, plain.ProduceSync(ctx, r).FirstErr())
	committed = append(committed, sentinel.ID)

	// read_committed, through eventlog.NewClient.
	reader := kafkatest.NewClient(t, kgo.ConsumeTopics(spec.Events), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var got []string
	chain := wire.GenesisHash
	for len(got) == 0 || got[len(got)-1] != sentinel.ID {
		fs := reader.PollFetches(ctx)
		require.NoError(t, fs.Err(), "polling read_committed until the sentinel arrives")
		for _, rec := range fs.Records() {
			env, err := eventlog.DecodeRecord(rec)
			require.NoError(t, err)
			require.Equal(t, chain, env.PrevHash, "chain broken at %s", env.ID)
			require.Equal(t, fmt.Sprint(len(got)+1), env.Sequence)
			chain = wire.Hash(rec.Value)
			got = append(got, env.ID)
		}
	}
	require.Equal(t, committed, got)
	require.NotContains(t, got, aborted.ID)

	// read_uncommitted, bypassing eventlog: the aborted record is there.
	raw, err := kgo.NewClient(append(kafkatest.Auth(t),
		kgo.ConsumeTopics(spec.Events),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadUncommitted()),
	)...)
	require.NoError(t, err)
	defer raw.Close()
	var all []string
	for len(all) == 0 || all[len(all)-1] != sentinel.ID {
		fs := raw.PollFetches(ctx)
		require.NoError(t, fs.Err(), "polling read_uncommitted until the sentinel arrives")
		for _, rec := range fs.Records() {
			env, err := eventlog.DecodeRecord(rec)
			require.NoError(t, err)
			all = append(all, env.ID)
		}
	}
	require.Contains(t, all, aborted.ID)
	require.Len(t, all, len(committed)+1)
}

// endTxn flushes and ends the transaction, as a GroupTransactSession does.
func endTxn(ctx context.Context, cl *kgo.Client, commit kgo.TransactionEndTry) (bool, error) {
	if commit == kgo.TryAbort {
		if err := cl.AbortBufferedRecords(ctx); err != nil {
			return false, err
		}
	} else if err := cl.Flush(ctx); err != nil {
		return false, err
	}
	if err := cl.EndTransaction(ctx, commit); err != nil {
		return false, err
	}
	return commit == kgo.TryCommit, nil
}

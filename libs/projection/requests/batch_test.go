package requests_test

import (
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/projection"
	"github.com/assent-dev/assent/libs/projection/requests"
	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/test/loggen"
	"github.com/assent-dev/assent/test/systest"
)

// generatedEvents is a generated log (every scenario of loggen, refusals
// included) as the runner hands it to a handler, partition by partition.
func generatedEvents(t *testing.T, parts int32, n int) [][]projection.Event {
	built, err := loggen.Build(loggen.Options{Topic: "events", Partitions: parts, Requests: n, Signer: systest.DemoSigner(t),
		SealEvery: 20, Start: t0, Step: time.Second})
	require.NoError(t, err)
	out := make([][]projection.Event, parts)
	for p, recs := range built {
		for off, rec := range recs {
			rec.Partition, rec.Offset = int32(p), int64(off)
			env, err := wire.DecodeRecord(eventlog.WireRecord(rec))
			require.NoError(t, err)
			out[p] = append(out[p], projection.Event{Partition: int32(p), Offset: int64(off), Value: rec.Value,
				Hash: wire.Hash(rec.Value), Envelope: env})
		}
	}
	return out
}

// TestApplyBatchEqualsApply: folding a log with ApplyBatch, in batches
// of any size that cut requests anywhere, leaves the store byte for byte
// as folding it event by event with Apply does, and calls OnEvent with
// the same states.
func TestApplyBatchEqualsApply(t *testing.T) {
	t.Parallel()
	const parts = 3
	log := generatedEvents(t, parts, 600)
	type call struct {
		offset        int64
		before, after string
	}
	open := func() (*pebble.DB, *requests.Store, *[]call) {
		db, err := pebble.Open(t.TempDir(), &pebble.Options{Logger: quiet{t}})
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, db.Close()) })
		s := &requests.Store{}
		s.Attach(db)
		var calls []call
		s.OnEvent = func(e *projection.Event, _ approval.Event, before, after approval.State) {
			calls = append(calls, call{e.Offset, before.RequestID + "/" + string(before.Status) + "/" + strconv.Itoa(before.Sequence),
				after.RequestID + "/" + string(after.Status) + "/" + strconv.Itoa(after.Sequence)})
		}
		return db, s, &calls
	}
	one, oneStore, oneCalls := open()
	many, manyStore, manyCalls := open()
	rnd := rand.New(rand.NewPCG(1, 2)) //nolint:gosec // G404: the same batch sizes every run, not a secret
	at := make([]int, parts)
	for round := 0; ; round++ {
		if round == 10 {
			// A store opened on what is there (a restart) reads every
			// state, where the one that saw the store empty knew which
			// were not there.
			manyStore = &requests.Store{OnEvent: manyStore.OnEvent}
			manyStore.Attach(many)
		}
		// A poll: a run of each partition, of any length.
		var poll []projection.Event
		for p := range parts {
			n := min(len(log[p])-at[p], rnd.IntN(40))
			poll = append(poll, log[p][at[p]:at[p]+n]...)
			at[p] += n
		}
		if len(poll) == 0 && at[0] == len(log[0]) && at[1] == len(log[1]) && at[2] == len(log[2]) {
			break
		}
		b := one.NewIndexedBatch()
		for i := range poll {
			e := poll[i]
			require.NoError(t, oneStore.Apply(b, &e))
		}
		require.NoError(t, b.Commit(pebble.NoSync))
		b = many.NewIndexedBatch()
		prepared := make([]projection.Event, len(poll))
		for i, e := range poll {
			if i%2 == 0 { // half of them prepared, as the runner prepares them
				e.Prepared = manyStore.Prepare(&e)
			}
			prepared[i] = e
		}
		require.NoError(t, manyStore.ApplyBatch(b, prepared))
		require.NoError(t, b.Commit(pebble.NoSync))
	}
	require.Zero(t, oneStore.Invalid.Load())
	require.Zero(t, manyStore.Invalid.Load())
	want, got := systest.PebbleDump(t, one), systest.PebbleDump(t, many)
	require.Greater(t, len(want), 600*3)
	require.Equal(t, len(want), len(got))
	for i := range want {
		require.Equal(t, string(want[i][0]), string(got[i][0]), "key %d", i)
		require.Equal(t, string(want[i][1]), string(got[i][1]), "value of %q", want[i][0])
	}
	require.Equal(t, *oneCalls, *manyCalls)
}

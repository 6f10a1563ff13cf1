package projection_test

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/auditindex"
	"github.com/assent-dev/assent/libs/projection"
	"github.com/assent-dev/assent/libs/projection/requests"
	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/test/systest"
)

// TestJoinedHandlersStoreWhatEachStoresAlone: the console's one store
// (the requests store and the audit index, joined) holds exactly what the
// two stores of each handler alone hold, the kept records once; a record
// the runner refuses reaches the index's Reject through the join and
// wakes whoever watches its request; and the index serves its rows from
// the records the runner kept.
//
// It also holds the plain batch (projection.PlainBatcher) to the indexed
// one: the stores of each handler alone are built with an indexed batch
// (joined with a handler that needs one), the joined store with a plain
// batch, once in three polls and once in one, where the refused record
// splits the batch and the index reads back what it wrote before it.
func TestJoinedHandlersStoreWhatEachStoresAlone(t *testing.T) {
	t.Parallel()
	const parts = 3
	log := sealedLog(t, "events", parts, 300)

	// A plain producer replays the partition's first event after its
	// first transaction: no seal covers it, so the runner refuses it.
	at := slices.IndexFunc(log[0], func(r wire.Record) bool { return r.Control }) + 1
	forged := wire.Record{Topic: "events", Partition: 0, Offset: int64(at), Key: log[0][0].Key, Value: log[0][0].Value, Headers: log[0][0].Headers}
	subject, err := wire.DecodeRecord(forged)
	require.NoError(t, err)
	p0 := slices.Insert(slices.Clone(log[0]), at, forged)
	for i := at + 1; i < len(p0); i++ {
		p0[i].Offset++
	}
	before := slices.Clone(p0[:at])
	for p := 1; p < parts; p++ {
		before = append(before, log[p]...)
	}

	open := func(h projection.Handler, attach ...interface{ Attach(*pebble.DB) }) *projection.Runner {
		r, err := projection.Open(projection.Config{Dir: t.TempDir(), Topic: "events", Partitions: parts, Handler: h, Keys: systest.DemoKeys(t)})
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, r.Close()) })
		for _, a := range attach {
			a.Attach(r.DB())
		}
		return r
	}
	// run applies the log in three polls: everything before the forged
	// record, the forged record alone, and the rest. woken is closed if a
	// watch of the forged record's request, registered after the first,
	// was woken by the second.
	run := func(r *projection.Runner) (woken bool) {
		_, err := r.ApplyRecords(before)
		require.NoError(t, err)
		ch, stop := r.Watch(subject.Subject)
		defer stop()
		_, err = r.ApplyRecords(p0[at : at+1])
		require.NoError(t, err)
		select {
		case <-ch:
			woken = true
		default:
		}
		_, err = r.ApplyRecords(p0[at+1:])
		require.NoError(t, err)
		return woken
	}

	reqAlone, idxAlone := &requests.Store{}, &auditindex.Index{}
	indexedReq, indexedIdx := projection.Join(reqAlone, readsTheBatch{}), projection.Join(idxAlone, readsTheBatch{})
	for _, h := range []projection.Handler{indexedReq, indexedIdx} {
		require.False(t, h.(projection.PlainBatcher).PlainBatch(), "a handler that reads the batch gets an indexed one")
	}
	rReq, rIdx := open(indexedReq, reqAlone), open(indexedIdx, idxAlone)
	run(rReq)
	run(rIdx)
	reqJ, idxJ := &requests.Store{}, &auditindex.Index{}
	joined := projection.Join(reqJ, idxJ)
	require.Equal(t, "join(requests/5,audit-index/3)", joined.(projection.Versioned).Version())
	require.True(t, joined.(projection.PlainBatcher).PlainBatch())
	rJ := open(joined, reqJ, idxJ)
	require.True(t, run(rJ), "a refused record about a request wakes the request's watchers")
	reqOne, idxOne := &requests.Store{}, &auditindex.Index{}
	rOne := open(projection.Join(reqOne, idxOne), reqOne, idxOne)
	_, err = rOne.ApplyRecords(slices.Concat(p0, log[1], log[2]))
	require.NoError(t, err)
	require.Equal(t, systest.PebbleDump(t, rJ.DB()), systest.PebbleDump(t, rOne.DB()), "one poll or three, the same store")

	require.Equal(t, map[string]int64{wire.KindUnauthenticated: 1, wire.KindInvalid: 0, wire.KindGap: 0}, rJ.Rejections())
	require.Equal(t, int64(1), idxAlone.Breaks.Load(), "the refused record is the index's one break")
	require.Equal(t, idxAlone.Breaks.Load(), idxJ.Breaks.Load())
	require.Zero(t, reqAlone.Invalid.Load())
	require.Zero(t, reqJ.Invalid.Load())

	// The joined store is the union of the two, key for key, but for the
	// store's identity, which names the layouts it holds.
	identity := []byte("\x00meta/cluster")
	union := map[string][]byte{}
	for _, db := range []*pebble.DB{rReq.DB(), rIdx.DB()} {
		for _, kv := range systest.PebbleDump(t, db) {
			if bytes.HasPrefix(kv[0], identity) {
				continue
			}
			if v, ok := union[string(kv[0])]; ok {
				require.Equal(t, v, kv[1], "both stores hold %q: the same value", kv[0])
			}
			union[string(kv[0])] = kv[1]
		}
	}
	got := map[string][]byte{}
	for _, kv := range systest.PebbleDump(t, rJ.DB()) {
		if !bytes.HasPrefix(kv[0], identity) {
			got[string(kv[0])] = kv[1]
		}
	}
	require.Greater(t, len(got), len(systest.PebbleDump(t, rReq.DB())), "the index's keys are there too")
	require.Equal(t, union, got)

	// The index serves its rows from the kept records, and lists the
	// refused one under its request.
	req, err := idxJ.Request(subject.Subject)
	require.NoError(t, err)
	require.Equal(t, "unauthenticated", req.Verification.Status)
	require.Len(t, req.Verification.Unauthenticated, 1)
	require.Equal(t, int64(at), req.Verification.Unauthenticated[0].Offset)
	require.Equal(t, []byte(log[0][0].Value), []byte(req.Events[0].Event))
	alone, err := idxAlone.Request(subject.Subject)
	require.NoError(t, err, "the index alone keeps the records it serves too")
	require.Equal(t, req, alone)
	hist, err := reqJ.History(subject.Subject)
	require.NoError(t, err)
	require.Len(t, hist, len(req.Events))
	for i, h := range hist {
		require.Equal(t, []byte(req.Events[i].Event), []byte(h.Value), "event %d", i)
	}
	var scanned int
	require.NoError(t, idxJ.Scan(1, func(row auditindex.Row, _ wire.Envelope) error {
		require.Equal(t, log[1][row.Offset].Value, []byte(row.Event), "partition 1 at %d", row.Offset)
		scanned++
		return nil
	}))
	require.Positive(t, scanned)
}

// readsTheBatch is a handler that reads the batch itself (it does
// nothing): joined with it, a handler gets an indexed batch.
type readsTheBatch struct{}

func (readsTheBatch) Apply(*pebble.Batch, *projection.Event) error { return nil }

// prepHandler records what Prepared each event brought it.
type prepHandler struct {
	name string
	got  []any
}

func (h *prepHandler) Apply(_ *pebble.Batch, e *projection.Event) error {
	h.got = append(h.got, e.Prepared)
	return nil
}

type preparing struct{ *prepHandler }

func (h preparing) Prepare(e *projection.Event) any { return fmt.Sprintf("%s@%d", h.name, e.Offset) }

// TestJoinGivesEachHandlerItsOwnPrepared: a joined handler's events carry,
// for each handler, what that handler's own Prepare made of them, and
// nothing for a handler that prepares nothing, whether they come one at a
// time or in a batch.
func TestJoinGivesEachHandlerItsOwnPrepared(t *testing.T) {
	t.Parallel()
	a, b, c := &prepHandler{name: "a"}, &prepHandler{name: "b"}, &prepHandler{name: "c"}
	j := projection.Join(preparing{a}, b, preparing{c})
	events := []projection.Event{{Offset: 7}, {Offset: 8}}
	for i := range events {
		events[i].Prepared = j.(projection.Preparer).Prepare(&events[i])
	}
	require.NoError(t, j.Apply(nil, &events[0]))
	require.NoError(t, j.(projection.BatchHandler).ApplyBatch(nil, events))
	require.Equal(t, []any{"a@7", "a@7", "a@8"}, a.got)
	require.Equal(t, []any{nil, nil, nil}, b.got)
	require.Equal(t, []any{"c@7", "c@7", "c@8"}, c.got)
	require.Equal(t, "join(unversioned,unversioned,unversioned)", j.(projection.Versioned).Version())
	_, keeps := j.(projection.RecordKeeper)
	require.True(t, keeps, "the join is a RecordKeeper type")
	require.False(t, j.(projection.RecordKeeper).KeepsRecords(), "none of them keeps records")
}

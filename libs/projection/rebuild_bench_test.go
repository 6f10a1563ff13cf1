package projection_test

import (
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/auditindex"
	"github.com/assent-dev/assent/libs/projection"
	"github.com/assent-dev/assent/libs/projection/requests"
	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/test/loggen"
	"github.com/assent-dev/assent/test/systest"
)

// sealedLog is a generated log as a read_committed consumer with the
// control records kept sees it (loggen.AsRead).
func sealedLog(t testing.TB, topic string, parts int32, requests int) [][]wire.Record {
	t.Helper()
	o := loggen.Options{Topic: topic, Partitions: parts, Requests: requests, Signer: systest.DemoSigner(t),
		SealEvery: 100, Start: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Step: 10 * time.Millisecond}
	built, err := loggen.Build(o)
	require.NoError(t, err)
	return loggen.AsRead(o, built)
}

// BenchmarkRebuildApply times the runner's application of a generated log
// to the requests store, without Kafka: records per second of CPU.
func BenchmarkRebuildApply(b *testing.B) {
	benchmarkRebuild(b, func() []projection.Handler { return []projection.Handler{&requests.Store{}} })
}

// BenchmarkRebuildApplyAuditIndex is BenchmarkRebuildApply for the
// auditor's and the console's audit index.
func BenchmarkRebuildApplyAuditIndex(b *testing.B) {
	benchmarkRebuild(b, func() []projection.Handler { return []projection.Handler{&auditindex.Index{}} })
}

// BenchmarkRebuildApplyConsole is BenchmarkRebuildApply for the
// console's one store: the requests store and the audit index, joined.
func BenchmarkRebuildApplyConsole(b *testing.B) {
	benchmarkRebuild(b, func() []projection.Handler { return []projection.Handler{&requests.Store{}, &auditindex.Index{}} })
}

// benchmarkRebuild rebuilds a store of the handlers stores returns (joined
// if there are several, as in the console).
func benchmarkRebuild(b *testing.B, stores func() []projection.Handler) {
	const parts = 12
	log := sealedLog(b, "events", parts, 20_000)
	total := 0
	for _, l := range log {
		total += len(l)
	}
	ps := loggen.Polls(log, projection.DefaultBatchRecords)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		hs := stores()
		h := hs[0]
		if len(hs) > 1 {
			h = projection.Join(hs...)
		}
		r, err := projection.Open(projection.Config{Dir: b.TempDir(), Topic: "events", Partitions: parts, Handler: h, Keys: systest.DemoKeys(b)})
		require.NoError(b, err)
		for _, store := range hs {
			store.(interface{ Attach(*pebble.DB) }).Attach(r.DB())
		}
		b.StartTimer()
		began, cpu := time.Now(), systest.CPUTime()
		require.NoError(b, r.ApplyPolls(ps))
		b.ReportMetric(float64(total)/time.Since(began).Seconds(), "records/s")
		b.ReportMetric(float64((systest.CPUTime()-cpu).Microseconds())/float64(total), "cpu-µs/record")
		b.StopTimer()
		for _, store := range hs {
			switch s := store.(type) {
			case *requests.Store:
				require.Zero(b, s.Invalid.Load())
			case *auditindex.Index:
				require.Zero(b, s.Breaks.Load())
			}
		}
		require.NoError(b, r.Close())
		b.StartTimer()
	}
}

// TestRebuildWritesLittlePerEvent is issue 14, item 6: catching up on a
// log, the requests store writes each request's state once per batch and
// only the index keys that end up changed, not the state, the history and
// every index key again at every event; the runner ingests the records
// themselves as tables instead of writing them through the WAL and the
// memtables; and a state names its policy's approver list instead of
// holding it. On a generated log (50 approvers a request, 3.5 events a
// request) that was 6,461 bytes written to Pebble's WAL per event, then
// 1,802, then 798 (records ingested); it is 380.
func TestRebuildWritesLittlePerEvent(t *testing.T) {
	t.Parallel()
	const parts = 4
	log := sealedLog(t, "events", parts, 3000)
	store := &requests.Store{}
	r, err := projection.Open(projection.Config{Dir: t.TempDir(), Topic: "events", Partitions: parts, Handler: store, Keys: systest.DemoKeys(t)})
	require.NoError(t, err)
	defer func() { require.NoError(t, r.Close()) }()
	store.Attach(r.DB())
	events := 0
	for _, poll := range loggen.Polls(log, projection.DefaultBatchRecords) {
		for _, rec := range poll {
			if !rec.Control {
				events++
			}
		}
		_, err := r.ApplyRecords(poll)
		require.NoError(t, err)
	}
	require.Zero(t, store.Invalid.Load())
	written := r.DB().Metrics().WAL.BytesIn
	perEvent := float64(written) / float64(events)
	t.Logf("%d events, %d bytes written: %.0f bytes an event", events, written, perEvent)
	require.Less(t, perEvent, 600.0)
}

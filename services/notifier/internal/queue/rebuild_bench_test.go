package queue_test

import (
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/projection"
	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/services/notifier/internal/queue"
	"github.com/assent-dev/assent/test/loggen"
	"github.com/assent-dev/assent/test/systest"
)

// sealedLog is a generated log as the runner reads it: each seal ends a
// transaction, whose marker follows it.
func sealedLog(t testing.TB, parts int32, requests int) [][]wire.Record {
	t.Helper()
	built, err := loggen.Build(loggen.Options{Topic: "events", Partitions: parts, Requests: requests, Signer: systest.DemoSigner(t),
		SealEvery: 100, Start: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Step: 10 * time.Millisecond})
	require.NoError(t, err)
	out := make([][]wire.Record, parts)
	for p, recs := range built {
		var off int64
		pid := int64(1000 + p)
		for _, r := range recs {
			r.Topic, r.Partition, r.Offset, r.ProducerID = "events", int32(p), off, pid
			w := eventlog.WireRecord(r)
			w.Transactional = true
			out[p] = append(out[p], w)
			off++
			if r.Key == nil { // a seal ends the transaction
				out[p] = append(out[p], wire.Record{Topic: "events", Partition: int32(p), Offset: off, Control: true, Transactional: true, ProducerID: pid})
				off++
			}
		}
	}
	return out
}

// polls cuts a log into polls of about n records, 500 a partition at a
// time, as the consumer fetches them.
func polls(log [][]wire.Record, n int) [][]wire.Record {
	var out [][]wire.Record
	at := make([]int, len(log))
	for {
		var poll []wire.Record
		for len(poll) < n {
			moved := false
			for p := range log {
				end := min(at[p]+500, len(log[p]))
				if at[p] < end {
					poll = append(poll, log[p][at[p]:end]...)
					at[p] = end
					moved = true
				}
			}
			if !moved {
				break
			}
		}
		if len(poll) == 0 {
			return out
		}
		out = append(out, poll)
	}
}

// BenchmarkFold is the fold of the notifier's store during a rebuild: a
// generated log of 20,000 requests (about 75,000 records), decoded as the
// runner decodes it, folded in batches of the runner's size and committed
// to Pebble on disk, "batch" through ApplyBatch (as the runner folds it
// now, each event prepared first), "one-by-one" through Apply (as it did
// before the store was a projection.BatchHandler). records/s is the rate
// of the fold alone: the runner's decoding and authentication are not in
// it.
//
//	go test -run '^$' -bench BenchmarkFold -benchtime 1x ./services/notifier/internal/queue/
func BenchmarkFold(b *testing.B) {
	const parts = 12
	log := sealedLog(b, parts, 20_000)
	total := 0
	for _, l := range log {
		total += len(l)
	}
	var batches [][]projection.Event
	for _, poll := range polls(log, projection.DefaultBatchRecords) {
		var events []projection.Event
		for _, rec := range poll {
			if rec.Control {
				continue
			}
			env, err := wire.DecodeRecord(rec)
			require.NoError(b, err)
			if env.Subject == "" {
				continue // a seal
			}
			events = append(events, projection.Event{Partition: rec.Partition, Offset: rec.Offset, Value: rec.Value, Hash: wire.Hash(rec.Value), Envelope: env})
		}
		batches = append(batches, events)
	}
	for _, mode := range []string{"batch", "one-by-one"} {
		b.Run(mode, func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				db, err := pebble.Open(b.TempDir(), &pebble.Options{Logger: quiet{b}, MemTableSize: 16 << 20})
				require.NoError(b, err)
				store := queue.New()
				store.Attach(db)
				b.StartTimer()
				began := time.Now()
				for _, events := range batches {
					batch := db.NewIndexedBatch()
					if mode == "batch" {
						for i := range events {
							events[i].Prepared = store.Prepare(&events[i])
						}
						require.NoError(b, store.ApplyBatch(batch, events))
					} else {
						for i := range events {
							events[i].Prepared = nil
							require.NoError(b, store.Apply(batch, &events[i]))
						}
					}
					require.NoError(b, batch.Commit(pebble.NoSync))
					require.NoError(b, batch.Close())
					store.Committed()
				}
				b.ReportMetric(float64(total)/time.Since(began).Seconds(), "records/s")
				b.StopTimer()
				require.Zero(b, store.Requests.Invalid.Load())
				require.NoError(b, db.Close())
				b.StartTimer()
			}
		})
	}
}

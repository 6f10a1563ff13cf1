package queue_test

import (
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/projection"
	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/services/notifier/internal/queue"
	"github.com/assent-dev/assent/test/loggen"
	"github.com/assent-dev/assent/test/systest"
)

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
	o := loggen.Options{Topic: "events", Partitions: parts, Requests: 20_000, Signer: systest.DemoSigner(b),
		SealEvery: 100, Start: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Step: 10 * time.Millisecond}
	built, err := loggen.Build(o)
	require.NoError(b, err)
	log := loggen.AsRead(o, built)
	total := 0
	for _, l := range log {
		total += len(l)
	}
	var batches [][]projection.Event
	for _, poll := range loggen.Polls(log, projection.DefaultBatchRecords) {
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

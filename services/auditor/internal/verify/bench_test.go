package verify

import (
	"crypto/ed25519"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/services/auditor/internal/replay"
	"github.com/assent-dev/assent/test/loggen"
	"github.com/assent-dev/assent/test/systest"
)

// BenchmarkChain times verify's work per record, without Kafka: one
// partition of a generated log, records marked as a committed transaction
// would deliver them.
func BenchmarkChain(b *testing.B) {
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		b.Fatal(err)
	}
	signer, err := wire.NewSigner("k", key)
	if err != nil {
		b.Fatal(err)
	}
	const topic = "assent.events.v1"
	log, err := loggen.Build(loggen.Options{Topic: topic, Partitions: 1, Requests: 6000, Signer: signer, SealEvery: 100,
		Start: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Step: 10 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	recs := log[0]
	for i, r := range recs {
		r.Offset = int64(i)
		r.Attrs = kgo.NewRecordAttrs(kgo.RecordAttrsOpts{Transactional: true})
		r.ProducerID = 1
	}
	keys := wire.NewKeyRing(map[string]ed25519.PublicKey{"k": signer.Public()})
	b.ReportAllocs()
	b.ResetTimer()
	cpu := systest.CPUTime()
	for range b.N {
		var n atomic.Int64
		c, err := newChain(topic, 0, keys, &n, *freshPart(), 0, replay.Rules{})
		if err != nil {
			b.Fatal(err)
		}
		for i := 0; i < len(recs); i += 500 {
			_ = c.Records(recs[i:min(i+500, len(recs))])
		}
		c.finish()
		if len(c.breaks) > 0 {
			b.Fatal(c.breaks[0])
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(recs)), "ns/record")
	b.ReportMetric(float64((systest.CPUTime()-cpu).Nanoseconds())/float64(b.N*len(recs)), "cpu-ns/record")
}

package projection_test

import (
	"testing"

	"github.com/assent-dev/assent/libs/codec"
	"github.com/assent-dev/assent/libs/wire"
)

func BenchmarkDecodeParts(b *testing.B) {
	log := sealedLog(b, "events", 1, 300)
	var recs []wire.Record
	for _, r := range log[0] {
		if !r.Control {
			recs = append(recs, r)
		}
	}
	b.Run("hash", func(b *testing.B) {
		for i := range b.N {
			_ = wire.Hash(recs[i%len(recs)].Value)
		}
	})
	b.Run("decoderecord", func(b *testing.B) {
		b.ReportAllocs()
		for i := range b.N {
			_, _ = wire.DecodeRecord(recs[i%len(recs)])
		}
	})
	envs := make([]wire.Envelope, len(recs))
	for i, r := range recs {
		envs[i], _ = wire.DecodeRecord(r)
	}
	b.Run("domainevent", func(b *testing.B) {
		b.ReportAllocs()
		for i := range b.N {
			env := envs[i%len(envs)]
			if env.Subject != "" {
				_, _ = codec.DomainEvent(env)
			}
		}
	})
}

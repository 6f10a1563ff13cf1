package wire_test

import (
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/assent-dev/assent/libs/wire"
)

// BenchmarkSealCost times what authentication adds to one decision, as
// scripts/bench --auth measures end to end: a transaction of two events
// (vote.recorded and request.approved) on one partition. "sign" is the
// decider's share (the seal signed and chained), "authenticate" a reader's
// (the two events held, the seal verified, the run applied); every reader
// of the partition pays it once. See docs/benchmarks.md.
func BenchmarkSealCost(b *testing.B) {
	key := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	s, err := wire.NewSigner("k", key)
	if err != nil {
		b.Fatal(err)
	}
	keys := wire.NewKeyRing(map[string]ed25519.PublicKey{"k": s.Public()})
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	// txn returns the items of one sealed transaction of two events.
	txn := func(chain *wire.Chain, off int64) []wire.Item {
		from := chain.Head
		var items []wire.Item
		add := func(env wire.Envelope) {
			v, err := chain.Next(env)
			if err != nil {
				b.Fatal(err)
			}
			env, err = wire.Unmarshal(v)
			if err != nil {
				b.Fatal(err)
			}
			items = append(items, wire.Item{Record: wire.Record{Topic: topic, Offset: off + int64(len(items)), Value: v,
				Transactional: true, ProducerID: 1}, Env: env, Hash: wire.Hash(v)})
		}
		for _, typ := range []string{"dev.assent.vote.recorded", "dev.assent.request.approved"} {
			add(wire.Envelope{ID: wire.NewID(now), Source: "assent/decider", Type: typ, Subject: "r-1", Time: now,
				Actor: "user:alice@example.com", CommandID: "c-1", Sequence: "1", Data: []byte(`{"voter":"user:alice@example.com","decision":"approve"}`)})
		}
		seal, err := wire.NewSeal(s, "assent/decider", topic, 0, from, chain.Head, 2, now)
		if err != nil {
			b.Fatal(err)
		}
		add(seal)
		return append(items, wire.Item{Record: wire.Record{Topic: topic, Offset: off + 3, Control: true, Transactional: true, ProducerID: 1}})
	}
	b.Run("sign", func(b *testing.B) {
		chain := wire.NewChain(wire.GenesisHash)
		for range b.N {
			env, err := wire.NewSeal(s, "assent/decider", topic, 0, wire.GenesisHash, chain.Head, 2, now)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := chain.Next(env); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("authenticate", func(b *testing.B) {
		chain := wire.NewChain(wire.GenesisHash)
		txns := make([][]wire.Item, 512)
		for i := range txns {
			txns[i] = txn(chain, int64(i*4))
		}
		b.ResetTimer()
		for i := 0; i < b.N; {
			a := wire.NewAuthenticator(keys, topic, 0, wire.GenesisHash)
			for _, t := range txns {
				if i == b.N {
					break
				}
				applied := 0
				for _, it := range t {
					res := a.Add(it, nil)
					if len(res.Rejected) > 0 || res.Gap != nil {
						b.Fatalf("rejected: %+v", res)
					}
					applied += len(res.Apply)
				}
				if applied != 3 {
					b.Fatalf("applied %d of 3", applied)
				}
				i++
			}
		}
	})
}

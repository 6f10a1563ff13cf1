package wire_test

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/wire"
)

// partitionLog writes one events partition as a decider would, and lets a
// test insert what an attacker would.
type partitionLog struct {
	t       *testing.T
	signer  *wire.Signer
	chain   *wire.Chain
	records []wire.Item
	now     time.Time
	seq     int
}

const topic = "assent.events.v1"

func newPartitionLog(t *testing.T, signer *wire.Signer) *partitionLog {
	return &partitionLog{t: t, signer: signer, chain: wire.NewChain(""), now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func signer(t *testing.T, id string, seed byte) *wire.Signer {
	t.Helper()
	key := make([]byte, ed25519.SeedSize)
	for i := range key {
		key[i] = seed + byte(i)
	}
	s, err := wire.NewSigner(id, ed25519.NewKeyFromSeed(key))
	require.NoError(t, err)
	return s
}

func (l *partitionLog) event(subject string) wire.Envelope {
	l.seq++
	l.now = l.now.Add(time.Millisecond)
	return wire.Envelope{ID: wire.NewID(l.now), Source: "assent/decider", Type: "dev.assent.vote.recorded", Subject: subject,
		Time: l.now, Actor: "user:alice@example.com", CommandID: fmt.Sprintf("c%d", l.seq), Sequence: "1",
		Data: json.RawMessage(`{}`)}
}

func (l *partitionLog) item(value []byte, transactional bool, producer int64) wire.Item {
	env, err := wire.Unmarshal(value)
	require.NoError(l.t, err)
	it := wire.Item{Record: wire.Record{Topic: topic, Partition: 0, Offset: int64(len(l.records)), Value: value,
		Transactional: transactional, ProducerID: producer}, Env: env, Hash: wire.Hash(value)}
	l.records = append(l.records, it)
	return it
}

// txn writes n events and their seal, as the decider (producer 1) does,
// then the commit marker.
func (l *partitionLog) txn(n int) {
	from := l.chain.Head
	for range n {
		value, err := l.chain.Next(l.event("r-1"))
		require.NoError(l.t, err)
		l.item(value, true, 1)
	}
	l.seal(l.signer, from, n)
	l.marker(1)
}

func (l *partitionLog) seal(s *wire.Signer, from string, n int) {
	l.now = l.now.Add(time.Millisecond)
	env, err := wire.NewSeal(s, "assent/decider", topic, 0, from, l.chain.Head, n, l.now)
	require.NoError(l.t, err)
	value, err := l.chain.Next(env)
	require.NoError(l.t, err)
	l.item(value, true, 1)
}

func (l *partitionLog) marker(producer int64) {
	l.records = append(l.records, wire.Item{Record: wire.Record{Topic: topic, Offset: int64(len(l.records)), Control: true,
		Transactional: true, ProducerID: producer}})
}

// forge appends a well-formed event that links to the current head, as an
// insider with a plain producer (transactional=false) or a transactional
// producer of its own would.
func (l *partitionLog) forge(transactional bool) {
	env := l.event("r-1")
	env.Type = "dev.assent.request.approved"
	env.PrevHash = l.chain.Head
	value, err := wire.Marshal(env)
	require.NoError(l.t, err)
	l.item(value, transactional, 66)
	if transactional {
		l.marker(66)
	}
}

// read feeds the whole partition to an authenticator and returns the
// offsets applied and rejected (with their kinds).
func read(t *testing.T, keys *wire.KeyRing, head string, items []wire.Item) (applied []int64, rejected map[int64]string, gap *wire.Rejection) {
	t.Helper()
	a := wire.NewAuthenticator(keys, topic, 0, head)
	rejected = map[int64]string{}
	for _, it := range items {
		res := a.Add(it, nil)
		for _, x := range res.Apply {
			applied = append(applied, x.Record.Offset)
		}
		for _, r := range res.Rejected {
			rejected[r.Record.Offset] = r.Kind
		}
		if res.Gap != nil {
			return applied, rejected, res.Gap
		}
	}
	return applied, rejected, nil
}

func TestAuthenticatorAppliesSealedRuns(t *testing.T) {
	t.Parallel()
	s := signer(t, "decider-1", 1)
	keys := wire.NewKeyRing(map[string]ed25519.PublicKey{"decider-1": s.Public()})
	l := newPartitionLog(t, s)
	l.txn(2) // 0, 1, seal 2, marker 3
	l.txn(1) // 4, seal 5, marker 6
	applied, rejected, gap := read(t, keys, wire.GenesisHash, l.records)
	require.Nil(t, gap)
	require.Empty(t, rejected)
	require.Equal(t, []int64{0, 1, 2, 4, 5}, applied)
}

func TestAuthenticatorRejectsForgeries(t *testing.T) {
	t.Parallel()
	s := signer(t, "decider-1", 1)
	mallory := signer(t, "mallory", 9)
	keys := wire.NewKeyRing(map[string]ed25519.PublicKey{"decider-1": s.Public()})
	for _, tc := range []struct {
		name   string
		write  func(l *partitionLog)
		reject map[int64]string
		apply  []int64
	}{
		{"plain producer", func(l *partitionLog) { l.txn(1); l.forge(false); l.txn(1) },
			map[int64]string{3: wire.KindUnauthenticated}, []int64{0, 1, 4, 5}},
		{"transactional producer with another id", func(l *partitionLog) { l.txn(1); l.forge(true); l.txn(1) },
			map[int64]string{3: wire.KindUnauthenticated}, []int64{0, 1, 5, 6}},
		{"seal signed by an unknown key", func(l *partitionLog) {
			l.txn(1)
			from := l.chain.Head
			defer func() { l.chain.Head = from; l.txn(1) }() // the decider goes on from its own head
			value, err := l.chain.Next(l.event("r-1"))
			require.NoError(t, err)
			l.item(value, true, 66)
			l.seal(mallory, from, 1)
			l.marker(66)
		}, map[int64]string{3: wire.KindUnauthenticated, 4: wire.KindUnauthenticated}, []int64{0, 1, 6, 7}},
		{"an old valid seal replayed at a later offset", func(l *partitionLog) {
			l.txn(1)
			old := l.records[0:2]
			l.txn(1)
			for _, it := range old { // copies of the first run and its seal
				l.item(it.Record.Value, true, 66)
			}
			l.marker(66)
		}, map[int64]string{6: wire.KindUnauthenticated, 7: wire.KindUnauthenticated}, []int64{0, 1, 3, 4}},
		{"a forged record inside the decider's transaction", func(l *partitionLog) {
			l.txn(1)
			from := l.chain.Head
			value, err := l.chain.Next(l.event("r-1"))
			require.NoError(t, err)
			l.item(value, true, 1)
			head := l.chain.Head
			l.forge(false) // a plain record lands between the decider's
			l.chain.Head = head
			value, err = l.chain.Next(l.event("r-1"))
			require.NoError(t, err)
			l.item(value, true, 1)
			l.seal(s, from, 2)
			l.marker(1)
		}, map[int64]string{4: wire.KindUnauthenticated}, []int64{0, 1, 3, 5, 6}},
		{"a run reordered", func(l *partitionLog) {
			l.txn(1)
			from := l.chain.Head
			a, err := l.chain.Next(l.event("r-1"))
			require.NoError(t, err)
			b, err := l.chain.Next(l.event("r-1"))
			require.NoError(t, err)
			l.item(b, true, 1) // written in the wrong order
			l.item(a, true, 1)
			l.seal(s, from, 2)
			l.marker(1)
		}, map[int64]string{3: wire.KindUnauthenticated, 4: wire.KindUnauthenticated, 5: wire.KindUnauthenticated}, []int64{0, 1}},
		{"a reordered pair", func(l *partitionLog) {
			l.txn(2)
			l.item(l.records[1].Record.Value, true, 66)
			l.item(l.records[0].Record.Value, true, 66)
			l.marker(66)
		}, map[int64]string{4: wire.KindUnauthenticated, 5: wire.KindUnauthenticated}, []int64{0, 1, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := newPartitionLog(t, s)
			tc.write(l)
			applied, rejected, gap := read(t, keys, wire.GenesisHash, l.records)
			require.Nil(t, gap)
			require.Equal(t, tc.reject, rejected)
			require.Equal(t, tc.apply, applied)
		})
	}
}

func TestAuthenticatorRejectsASealFromAnotherPartition(t *testing.T) {
	t.Parallel()
	s := signer(t, "decider-1", 1)
	keys := wire.NewKeyRing(map[string]ed25519.PublicKey{"decider-1": s.Public()})
	l := newPartitionLog(t, s)
	l.txn(1)
	// The same run, read as partition 3's: the seal names partition 0.
	a := wire.NewAuthenticator(keys, topic, 3, wire.GenesisHash)
	require.Empty(t, a.Add(l.records[0], nil).Rejected)
	res := a.Add(l.records[1], nil)
	require.Empty(t, res.Apply)
	require.Len(t, res.Rejected, 1)
	require.Contains(t, res.Rejected[0].Reason, "copied from another partition")
	res = a.Add(l.records[2], nil) // the commit marker
	require.Len(t, res.Rejected, 1, "the run is never covered")
}

func TestAuthenticatorReportsAGap(t *testing.T) {
	t.Parallel()
	s := signer(t, "decider-1", 1)
	keys := wire.NewKeyRing(map[string]ed25519.PublicKey{"decider-1": s.Public()})
	l := newPartitionLog(t, s)
	l.txn(1) // 0, 1, marker 2
	l.txn(1) // 3, 4, marker 5: lost
	l.txn(1) // 6, 7, marker 8
	lost := append(append([]wire.Item{}, l.records[:3]...), l.records[6:]...)
	applied, _, gap := read(t, keys, wire.GenesisHash, lost)
	require.Equal(t, []int64{0, 1}, applied)
	require.NotNil(t, gap)
	require.Equal(t, wire.KindGap, gap.Kind)
	require.Equal(t, int64(7), gap.Record.Offset)
}

func TestAuthenticatorBootstraps(t *testing.T) {
	t.Parallel()
	s := signer(t, "decider-1", 1)
	keys := wire.NewKeyRing(map[string]ed25519.PublicKey{"decider-1": s.Public()})
	l := newPartitionLog(t, s)
	l.txn(2)
	l.txn(1) // 4, seal 5, marker 6
	l.forge(false)
	l.txn(1) // 8, seal 9
	applied, rejected, gap := read(t, keys, "", l.records[4:])
	require.Nil(t, gap)
	require.Equal(t, []int64{4, 5, 8, 9}, applied)
	require.Equal(t, map[int64]string{7: wire.KindUnauthenticated}, rejected)
}

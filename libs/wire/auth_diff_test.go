package wire_test

import (
	"crypto/ed25519"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/wire"
)

// refAuth is the Authenticator as it was before its walk took the whole
// run without a map and it reused the array of Apply: the reference the
// faster one must agree with, record by record.
type refAuth struct {
	keys     *wire.KeyRing
	head     string
	lastSeal time.Time
	pending  []wire.Item
}

func (a *refAuth) add(it wire.Item) wire.Result {
	var res wire.Result
	switch {
	case it.Record.Control:
		kept := a.pending[:0]
		for _, p := range a.pending {
			if p.Record.ProducerID == it.Record.ProducerID {
				res.Rejected = append(res.Rejected, wire.Rejection{Item: p, Kind: wire.KindUnauthenticated,
					Reason: fmt.Sprintf("its transaction ended at offset %d without a seal covering it", it.Record.Offset)})
				continue
			}
			kept = append(kept, p)
		}
		a.pending = kept
		return res
	case !it.Record.Transactional:
		res.Rejected = append(res.Rejected, wire.Rejection{Item: it, Kind: wire.KindUnauthenticated,
			Reason: "written outside a Kafka transaction: only the deciders write events, and only in transactions"})
		return res
	case it.Env.Type == wire.TypeSeal:
		return a.seal(it)
	}
	a.pending = append(a.pending, it)
	return res
}

func (a *refAuth) seal(it wire.Item) wire.Result {
	var res wire.Result
	reject := func(kind, format string, args ...any) wire.Result {
		res.Rejected = append(res.Rejected, wire.Rejection{Item: it, Kind: kind, Reason: fmt.Sprintf(format, args...)})
		return res
	}
	s, err := wire.VerifySeal(a.keys, topic, 0, it.Env)
	if err != nil {
		return reject(wire.KindUnauthenticated, "%v", err)
	}
	if a.head != "" && s.From != a.head {
		if it.Env.Time.After(a.lastSeal) && !a.lastSeal.IsZero() {
			g := wire.Rejection{Item: it, Kind: wire.KindGap, Reason: fmt.Sprintf(
				"a valid seal extends %s, but the last authenticated record here is %s: records are missing (data loss)", s.From, a.head)}
			res.Gap = &g
			return res
		}
		return reject(wire.KindUnauthenticated, "the seal extends %s, not the authenticated head %s (an old seal replayed, or a copy)", s.From, a.head)
	}
	byHash := make(map[string]int, len(a.pending))
	for i, p := range a.pending {
		if _, dup := byHash[p.Hash]; !dup {
			byHash[p.Hash] = i
		}
	}
	var run []int
	for cur := s.Head; cur != s.From; {
		i, ok := byHash[cur]
		if !ok || len(run) > s.Count {
			return reject(wire.KindUnauthenticated, "the seal signs a run of %d records from %s to %s that is not in the log before it", s.Count, s.From, s.Head)
		}
		run = append(run, i)
		cur = a.pending[i].Env.PrevHash
	}
	if len(run) != s.Count {
		return reject(wire.KindUnauthenticated, "the seal signs %d records, %d link from %s to %s", s.Count, len(run), s.From, s.Head)
	}
	for j := 1; j < len(run); j++ {
		if run[j] > run[j-1] {
			return reject(wire.KindUnauthenticated, "the records the seal signs are not in the order it signed them (reordered)")
		}
	}
	covered := make(map[int]bool, len(run))
	for j := len(run) - 1; j >= 0; j-- {
		covered[run[j]] = true
		res.Apply = append(res.Apply, a.pending[run[j]])
	}
	for i, p := range a.pending {
		if !covered[i] {
			res.Rejected = append(res.Rejected, wire.Rejection{Item: p, Kind: wire.KindUnauthenticated,
				Reason: fmt.Sprintf("the seal at offset %d passes over it", it.Record.Offset)})
		}
	}
	res.Apply = append(res.Apply, it)
	a.pending = a.pending[:0]
	a.head = it.Hash
	a.lastSeal = it.Env.Time
	return res
}

// outcome is what a Result says, by offset.
func outcome(res wire.Result) string {
	out := ""
	for _, x := range res.Apply {
		out += fmt.Sprintf("apply %d; ", x.Record.Offset)
	}
	for _, r := range res.Rejected {
		out += fmt.Sprintf("reject %d %s %s; ", r.Record.Offset, r.Kind, r.Reason)
	}
	if res.Gap != nil {
		out += fmt.Sprintf("gap %d %s", res.Gap.Record.Offset, res.Gap.Reason)
	}
	return out
}

// The Authenticator decides every record of randomly tampered logs as the
// reference does: runs held twice, reordered, cut short, overtaken by
// copies of earlier records, and seals that sign other runs.
func TestAuthenticatorAgreesWithTheReference(t *testing.T) {
	t.Parallel()
	s := signer(t, "decider-1", 1)
	keys := wire.NewKeyRing(map[string]ed25519.PublicKey{"decider-1": s.Public()})
	for seed := range uint64(300) {
		rng := rand.New(rand.NewPCG(seed, 7)) //nolint:gosec // G404: seeded, so that a failing case replays; nothing secret
		l := newPartitionLog(t, s)
		for range 1 + rng.IntN(6) {
			n := 1 + rng.IntN(5)
			if rng.IntN(4) > 0 {
				l.txn(n)
				continue
			}
			// The decider's key signs a seal that is wrong: its count, or
			// the head it says the run extends.
			from := l.chain.Head
			for range n {
				value, err := l.chain.Next(l.event("r-1"))
				require.NoError(t, err)
				l.item(value, true, 1)
			}
			count := n
			switch rng.IntN(3) {
			case 0:
				count = n + 1
			case 1:
				count = max(n-1, 1)
			default:
				for from = ""; from == ""; { // an earlier record's hash (a marker has none)
					from = l.records[rng.IntN(len(l.records))].Hash
				}
			}
			l.seal(s, from, count)
			l.marker(1)
		}
		items := append([]wire.Item(nil), l.records...)
		for range 1 + rng.IntN(4) {
			i, j := rng.IntN(len(items)), rng.IntN(len(items))
			switch rng.IntN(5) {
			case 0: // a copy of an earlier record, before its own seal or after
				items = append(items[:j:j], append([]wire.Item{items[i]}, items[j:]...)...)
			case 1: // a record deleted
				items = append(items[:i:i], items[i+1:]...)
			case 2: // two records swapped
				items[i], items[j] = items[j], items[i]
			case 3: // a run written twice
				end := min(i+1+rng.IntN(4), len(items))
				items = append(items[:end:end], append(append([]wire.Item(nil), items[i:end]...), items[end:]...)...)
			default: // a record outside a transaction
				items[i].Record.Transactional = false
			}
		}
		for k := range items {
			items[k].Record.Offset = int64(k)
		}
		a := wire.NewAuthenticator(keys, topic, 0, wire.GenesisHash)
		ref := &refAuth{keys: keys, head: wire.GenesisHash}
		for k, it := range items {
			require.Equal(t, outcome(ref.add(it)), outcome(a.Add(it, nil)), "seed %d, record %d", seed, k)
		}
		require.Equal(t, len(ref.pending) > 0, a.FirstPending() >= 0, "seed %d", seed)
	}
}

package projection

import (
	"hash/maphash"
)

// absent knows, while it lasts, which keys fold reads are certainly not in
// the store: it holds a Bloom filter of every such key folded since the
// store held none of them (an empty store: a rebuild). A key the filter
// does not hold was never written, so reading it is skipped; a key it
// holds may be there, and is read. It only ever answers "absent" for
// certain, so a false positive costs a read and nothing else; and it
// holds keys that a wipe deleted since, which costs the same.
//
// It saves the read of every new request's state while the runner
// catches up, which Pebble answers slowly on a large store (see
// BatchReads), at about 10 bits a key.
type absent struct {
	seed   maphash.Seed
	layers []bloomLayer // each twice the size of the one before; adds go to the last
}

type bloomLayer struct {
	bits  []uint64
	n     int // keys added
	limit int // keys it holds at about 1% false positives
}

// bloomHashes is how many bits a key sets.
const bloomHashes = 7

func newAbsent() *absent {
	return &absent{seed: maphash.MakeSeed(), layers: []bloomLayer{newLayer(1 << 16)}}
}

func newLayer(limit int) bloomLayer {
	return bloomLayer{bits: make([]uint64, (limit*10+63)/64), limit: limit}
}

func (a *absent) hashes(key []byte) (uint64, uint64) {
	h := maphash.Bytes(a.seed, key)
	return h, h>>32 | h<<32 | 1
}

// add records a key written to the store.
func (a *absent) add(key []byte) {
	l := &a.layers[len(a.layers)-1]
	if l.n >= l.limit {
		a.layers = append(a.layers, newLayer(2*l.limit))
		l = &a.layers[len(a.layers)-1]
	}
	h1, h2 := a.hashes(key)
	m := uint64(len(l.bits) * 64)
	for i := range uint64(bloomHashes) {
		b := (h1 + i*h2) % m
		l.bits[b/64] |= 1 << (b % 64)
	}
	l.n++
}

// certainlyAbsent reports whether key was never added.
func (a *absent) certainlyAbsent(key []byte) bool {
	h1, h2 := a.hashes(key)
	for _, l := range a.layers {
		m := uint64(len(l.bits) * 64)
		found := true
		for i := range uint64(bloomHashes) {
			b := (h1 + i*h2) % m
			if l.bits[b/64]&(1<<(b%64)) == 0 {
				found = false
				break
			}
		}
		if found {
			return false
		}
	}
	return true
}

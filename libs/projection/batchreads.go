package projection

import (
	"bytes"
	"io"
	"slices"

	"github.com/cockroachdb/pebble/v2"
)

// BatchReads is how a BatchHandler reads the keys it folds while the
// runner catches up: a key it wrote into the runner's batch through the
// reader is read from the copy the reader kept (so the batch need not be
// indexed: see PlainBatcher), any other from the store as committed,
// through an iterator that consults the Bloom filters of every level. Pebble's Get (and so an
// indexed batch's) skips the filters of the last level, where most of a
// large store is, and reads a block there for every key the store does
// not hold, as every new request's keys are not during a rebuild: that
// was a sixth of the audit index's rebuild CPU time.
//
// It also knows, from a rebuild's start, which keys are certainly not in
// the store (a Bloom filter of every key written through it since the
// store held none with the prefixes it tracks), and answers those without
// reading at all.
//
// The zero value is ready. A handler keeps one, gets a BatchReader for
// each ApplyBatch with Reader, and calls Committed from its Committer.
// A handler that writes a tracked key other than through a BatchReader
// must call Forget first.
type BatchReads struct {
	batch   *pebble.Batch
	written map[string][]byte
	// absent, when the store held no tracked key at the first Reader,
	// knows the keys that are certainly not in it.
	absent     *absent
	freshKnown bool
}

// Reader returns the reader of batch b of store db. tracked are the key
// prefixes whose absence it learns (those read back as missing); they
// must be the same at every call.
func (r *BatchReads) Reader(b *pebble.Batch, db *pebble.DB, tracked ...string) *BatchReader {
	if r.batch != b || r.written == nil {
		// A new batch. (A batch Pebble recycles may come back at the same
		// address, which is why the handler must call Committed after
		// each batch: what was kept of the last one would be read as this
		// one's.)
		r.batch, r.written = b, map[string][]byte{}
	}
	if !r.freshKnown && db != nil {
		// A store with no tracked key yet (a rebuild): from now on,
		// r.absent knows every such key written.
		r.freshKnown = true
		if empty, err := noneWithPrefix(db, tracked...); err == nil && empty {
			r.absent = newAbsent()
		}
	}
	return &BatchReader{b: b, db: db, written: r.written, absent: r.absent}
}

// Committed lets go of the keys (and values) written into the batch the
// runner just committed (about 16 MB after a batch of 10,000 events).
func (r *BatchReads) Committed() { r.batch, r.written = nil, nil }

// Held is how many keys of the last batch it still keeps: none once that
// batch is committed.
func (r *BatchReads) Held() int { return len(r.written) }

// Forget gives up, for good, knowing which keys are absent: for a
// handler about to write a tracked key other than through a BatchReader.
func (r *BatchReads) Forget() { r.absent, r.freshKnown = nil, true }

// noneWithPrefix reports whether db holds no key with any of prefixes.
func noneWithPrefix(db *pebble.DB, prefixes ...string) (bool, error) {
	for _, p := range prefixes {
		it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte(p), UpperBound: PrefixEnd([]byte(p))})
		if err != nil {
			return false, err
		}
		found := it.First()
		if err := it.Close(); err != nil || found {
			return false, err
		}
	}
	return true, nil
}

// BatchReader reads and writes one batch for a BatchHandler (BatchReads).
// Close it when the handler is done with the batch.
type BatchReader struct {
	b       *pebble.Batch
	db      *pebble.DB
	absent  *absent           // nil, or what is certainly not in the store
	written map[string][]byte // the keys written into b through the reader, and their values
	it      *pebble.Iterator  // over the store as committed; made on first use
	err     error
}

// Get reads key as the batch would: what was set through the reader as
// it was set, anything else from the store (from the batch, which must
// then be indexed, if the reader has no store). The value is valid until
// the next Get and must not be changed.
func (l *BatchReader) Get(key []byte) ([]byte, io.Closer, error) {
	if v, ok := l.written[string(key)]; ok {
		return v, io.NopCloser(nil), nil
	}
	if l.db == nil {
		return l.b.Get(key)
	}
	if l.absent != nil && l.absent.certainlyAbsent(key) {
		return nil, nil, pebble.ErrNotFound
	}
	if l.it == nil && l.err == nil {
		l.it, l.err = l.db.NewIter(&pebble.IterOptions{UseL6Filters: true, KeyTypes: pebble.IterKeyTypePointsOnly})
	}
	if l.err != nil {
		return nil, nil, l.err
	}
	if !l.it.SeekPrefixGE(key) || !bytes.Equal(l.it.Key(), key) {
		if err := l.it.Error(); err != nil {
			return nil, nil, err
		}
		return nil, nil, pebble.ErrNotFound
	}
	v, err := l.it.ValueAndErr()
	if err != nil {
		return nil, nil, err
	}
	return v, io.NopCloser(nil), nil
}

// Set writes key into the batch, and keeps a copy of value to read it
// back.
func (l *BatchReader) Set(key, value []byte) error {
	l.written[string(key)] = slices.Clone(value)
	if l.absent != nil {
		l.absent.add(key)
	}
	return l.b.Set(key, value, nil)
}

// Batch is the batch the reader writes into.
func (l *BatchReader) Batch() *pebble.Batch { return l.b }

// Close lets go of the reader's iterator.
func (l *BatchReader) Close() {
	if l.it != nil {
		_ = l.it.Close() // read-only
	}
}

// PrefixEnd is the least key greater than every key with prefix (the
// upper bound of an iterator over the prefix), or nil if there is none.
func PrefixEnd(prefix []byte) []byte {
	end := slices.Clone(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

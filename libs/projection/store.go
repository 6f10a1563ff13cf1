package projection

import (
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/assent-dev/assent/libs/wire"
)

// The store keeps, per partition, where to resume reading and the
// authenticated chain head there, in the same batches as the handler's
// writes, so that after a crash nothing is applied twice and nothing is
// skipped.

func (r *Runner) loadOffsets() error {
	n := r.cfg.Partitions
	r.next, r.heads, r.headAt = make([]int64, n), make([]string, n), make([]int64, n)
	for p := range n {
		r.heads[p], r.headAt[p] = wire.GenesisHash, -1
		v, closer, err := r.db.Get(keyOffset(p))
		switch {
		case errors.Is(err, pebble.ErrNotFound):
			continue
		case err != nil:
			return fmt.Errorf("projection: read offset of partition %d: %w", p, err)
		}
		off, err := decodeInt64(v)
		_ = closer.Close()
		if err != nil {
			return err
		}
		r.next[p] = off
		h, closer, err := r.db.Get(keyHead(p))
		if err != nil {
			return fmt.Errorf("projection: read chain head of partition %d: %w", p, err)
		}
		r.heads[p] = string(h)
		_ = closer.Close()
		at, closer, err := r.db.Get(keyHeadAt(p))
		switch {
		case errors.Is(err, pebble.ErrNotFound): // a store written before head offsets were kept
		case err != nil:
			return fmt.Errorf("projection: read head offset of partition %d: %w", p, err)
		default:
			off, err := decodeInt64(at)
			_ = closer.Close()
			if err != nil {
				return err
			}
			r.headAt[p] = off
		}
	}
	return nil
}

// stage writes partition p's resume offset, its head and the head's
// offset into b.
func stage(b *pebble.Batch, p int32, resume int64, head string, headAt int64) error {
	if err := b.Set(keyOffset(p), encodeInt64(resume), nil); err != nil {
		return fmt.Errorf("projection: stage offset: %w", err)
	}
	if err := b.Set(keyHead(p), []byte(head), nil); err != nil {
		return fmt.Errorf("projection: stage head: %w", err)
	}
	if err := b.Set(keyHeadAt(p), encodeInt64(headAt), nil); err != nil {
		return fmt.Errorf("projection: stage head offset: %w", err)
	}
	return nil
}

// wipe deletes everything, the identity included.
func (r *Runner) wipe() error {
	if err := r.db.DeleteRange([]byte{}, []byte{0xff, 0xff, 0xff, 0xff}, pebble.Sync); err != nil {
		return fmt.Errorf("projection: wipe: %w", err)
	}
	r.applyMu.Lock()
	defer r.applyMu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	for p := range r.next {
		r.next[p], r.heads[p], r.headAt[p], r.stopped[p] = 0, wire.GenesisHash, -1, ""
	}
	r.dec = nil
	r.ready = false
	return nil
}

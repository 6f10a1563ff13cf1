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
	r.next, r.heads = make([]int64, n), make([]string, n)
	r.auth = make([]*wire.Authenticator, n)
	for p := range n {
		r.heads[p] = wire.GenesisHash
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
	}
	return nil
}

// authenticator returns partition p's authenticator, made from the stored
// head on first use. r.applyMu is held.
func (r *Runner) authenticator(p int32) *wire.Authenticator {
	if r.auth[p] == nil {
		r.mu.Lock()
		head := r.heads[p]
		r.mu.Unlock()
		r.auth[p] = wire.NewAuthenticator(r.cfg.Keys, r.cfg.Topic, p, head)
	}
	return r.auth[p]
}

// stage writes partition p's resume offset and head into b.
func stage(b *pebble.Batch, p int32, resume int64, head string) error {
	if err := b.Set(keyOffset(p), encodeInt64(resume), nil); err != nil {
		return fmt.Errorf("projection: stage offset: %w", err)
	}
	if err := b.Set(keyHead(p), []byte(head), nil); err != nil {
		return fmt.Errorf("projection: stage head: %w", err)
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
		r.next[p], r.heads[p], r.auth[p], r.stopped[p] = 0, wire.GenesisHash, nil, ""
	}
	r.ready = false
	return nil
}

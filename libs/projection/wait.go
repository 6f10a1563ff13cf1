package projection

import (
	"context"
	"runtime"
	"runtime/debug"
	"time"
	"weak"

	"github.com/cockroachdb/pebble/v2"
)

// watch is one waiter on a subject.
type watch struct{ ch chan struct{} }

func (r *Runner) updateReady() {
	if !r.becomeReady() {
		return
	}
	r.log.Info("projection caught up", "partitions", r.cfg.Partitions)
	r.settle()
}

// maxSettleFlushes bounds the flushes settle makes beyond the first.
const maxSettleFlushes = 8

// settle gives back, once caught up, what the catch-up held that steady
// state never needs again (docs/benchmarks.md, "Memory"). It runs in
// commit, with r.applyMu held and its batch closed, or before the consumer
// starts: never beside a commit.
func (r *Runner) settle() {
	// The catch-up's last memtables stay in memory until they fill, which
	// in steady state can take hours: the mutable one, and a large last
	// batch, which Pebble keeps as a memtable of its own (a batch of half
	// a memtable or more). Flushing them now turns them into the tables
	// they would become anyway and frees them.
	if err := r.db.Flush(); err != nil {
		r.log.Warn("flushing the store once caught up; its memtables stay in memory until they fill", "err", err)
	}
	// Pebble drops flushed memtables from its queue by reslicing it
	// (d.mu.mem.queue = d.mu.mem.queue[n:]): the array under it still
	// points to them until the queue next outgrows it, which one more
	// memtable in steady state may not do for hours. A memtable's arena is
	// freed when it is flushed, but a large batch's data is Go memory that
	// the batch, as a memtable, holds: 20 MB or so after a batch of 10,000
	// events. Each empty flush moves the queue one slot along its array,
	// so a few of them make it move to a new one. How many is Pebble's
	// business: flush until the last large batch is gone, within a bound.
	if r.lastBatch != (weak.Pointer[byte]{}) {
		runtime.GC()
		for i := 0; r.lastBatch.Value() != nil; i++ {
			if i == maxSettleFlushes {
				r.log.Warn("the data of the catch-up's last batch is still reachable once caught up", "flushes", i+1)
				break
			}
			if err := r.db.Flush(); err != nil {
				r.log.Warn("flushing the store once caught up", "err", err)
				break
			}
			runtime.GC()
		}
		r.lastBatch = weak.Pointer[byte]{}
	}
	// Catching up held polls, batches and fetches in memory: give it back
	// to the system now rather than over the next minutes (once: the
	// runner is never unready again until a wipe).
	debug.FreeOSMemory()
}

// largeData is a weak pointer to the data of a batch about to be
// committed, if it is large (Pebble keeps a batch's data of at most 1 MiB
// for its next batch, never a larger one), for settle.
func largeData(b *pebble.Batch) weak.Pointer[byte] {
	if repr := b.Repr(); cap(repr) > 1<<20 {
		return weak.Make(&repr[0])
	}
	return weak.Pointer[byte]{}
}

// becomeReady sets ready once everything captured at start is read, and
// reports whether it just did.
func (r *Runner) becomeReady() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ready || r.target == nil {
		return false
	}
	for p, t := range r.target {
		if r.next[p] < t {
			return false
		}
	}
	r.ready = true
	return true
}

// Ready reports whether everything committed before Run started has been
// read (and applied, where a valid seal covers it), and no partition was
// stopped at a gap since.
func (r *Runner) Ready() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.ready {
		return false
	}
	for _, why := range r.stopped {
		if why != "" {
			return false
		}
	}
	return true
}

// WaitReady waits until Ready or until ctx ends. It polls: readiness can
// turn true without a batch to wake a waiter.
func (r *Runner) WaitReady(ctx context.Context) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for !r.Ready() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// Next returns the next offset of partition p to read.
func (r *Runner) Next(p int32) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.next[p]
}

// Head returns the authenticated chain head of partition p: the hash of
// the last record a valid seal covered (a seal), or wire.GenesisHash.
func (r *Runner) Head(p int32) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.heads[p]
}

// WaitOffset waits until partition p has been read up to offset off
// (exclusive: Next(p) >= off). Offsets loaded by Open count only once Run
// has checked them against the log: a store ahead of a truncated or
// recreated log is wiped, and must not satisfy a waiter before that.
func (r *Runner) WaitOffset(ctx context.Context, p int32, off int64) error {
	for {
		r.mu.Lock()
		done, ch := r.target != nil && r.next[p] >= off, r.progress
		r.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// Watch returns a channel closed after the next batch that applies an
// event with this subject. Register before reading the store, then read,
// then wait: a batch in between still wakes the watcher. Call stop if you
// give up waiting; it costs O(1), and neither it nor Watch takes the lock
// that applying a batch needs.
func (r *Runner) Watch(subject string) (woken <-chan struct{}, stop func()) {
	w := &watch{ch: make(chan struct{})}
	r.wmu.Lock()
	set := r.watchers[subject]
	if set == nil {
		set = make(map[*watch]struct{})
		r.watchers[subject] = set
	}
	set[w] = struct{}{}
	r.wmu.Unlock()
	return w.ch, func() {
		r.wmu.Lock()
		defer r.wmu.Unlock()
		if set := r.watchers[subject]; set != nil {
			delete(set, w)
			if len(set) == 0 {
				delete(r.watchers, subject)
			}
		}
	}
}

// wake closes the watches of every subject a batch applied or rejected a
// record of, once it is committed. With nobody watching it costs one look at an empty map, not
// one per event: a watch registered after that look reads the store
// after the commit, and sees the batch.
func (r *Runner) wake(d *decoded) {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	if len(r.watchers) == 0 {
		return
	}
	wake := func(s string) {
		if s == "" {
			return
		}
		for w := range r.watchers[s] {
			close(w.ch)
		}
		delete(r.watchers, s)
	}
	for _, dp := range d.parts {
		for i := range dp.events {
			wake(dp.events[i].Envelope.Subject)
		}
		// A record about the subject the runner refused changes what a
		// Rejecter holds of it (the audit index lists it), so it wakes
		// the subject's watchers too.
		for i := range dp.rejects {
			wake(dp.rejects[i].rj.Env.Subject)
		}
	}
}

package projection

import (
	"context"
	"runtime/debug"
	"time"
)

// watch is one waiter on a subject.
type watch struct{ ch chan struct{} }

func (r *Runner) updateReady() {
	if !r.becomeReady() {
		return
	}
	r.log.Info("projection caught up", "partitions", r.cfg.Partitions)
	// The catch-up's last memtables stay in memory until they fill, which
	// in steady state can take hours: the mutable one, and a large last
	// batch, which Pebble keeps as a memtable of its own (a batch of half
	// a memtable or more). Flushing them now turns them into the tables
	// they would become anyway and frees them (docs/benchmarks.md,
	// "Memory").
	if err := r.db.Flush(); err != nil {
		r.log.Warn("flushing the store once caught up; its memtables stay in memory until they fill", "err", err)
	}
	// Catching up held polls, batches and fetches in memory that steady
	// state never needs again: give it back to the system now rather than
	// over the next minutes (once: the runner is never unready again
	// until a wipe).
	debug.FreeOSMemory()
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

// wake closes the watches of every subject a batch applied, once it is
// committed. With nobody watching it costs one look at an empty map, not
// one per event: a watch registered after that look reads the store
// after the commit, and sees the batch.
func (r *Runner) wake(d *decoded) {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	if len(r.watchers) == 0 {
		return
	}
	for _, dp := range d.parts {
		for i := range dp.events {
			s := dp.events[i].Envelope.Subject
			if s == "" {
				continue
			}
			for w := range r.watchers[s] {
				close(w.ch)
			}
			delete(r.watchers, s)
		}
	}
}

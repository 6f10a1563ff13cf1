package projection

import (
	"slices"
	"strings"

	"github.com/cockroachdb/pebble/v2"
)

// Join makes one Handler of several, so that one runner, one store and
// one read of the log serve them all: each record is fetched, hashed,
// authenticated and kept once, and every handler's writes for a poll land
// in the same batch, so that no reader sees one handler ahead of another.
// The console joins the requests store and the audit index this way; two
// runners did all of that twice and rebuilt at half the rate
// (docs/benchmarks.md, "Scale-out").
//
// The handlers must write disjoint keys (distinct key prefixes): they
// share the store. Each one keeps its own optional behaviour: the joined
// handler folds a batch with ApplyBatch where a handler has it and with
// Apply otherwise, gives each handler only what its own Prepare returned,
// and is a Committer, Rejecter, Preparer and RecordKeeper for those that
// are, and a PlainBatcher if all are. Its Version names every handler's layout in order, so that a
// change to any one of them rebuilds the store.
func Join(handlers ...Handler) Handler {
	j := &joined{hs: slices.Clone(handlers), preps: make([]Preparer, len(handlers))}
	for i, h := range handlers {
		j.preps[i], _ = h.(Preparer)
		j.anyPrep = j.anyPrep || j.preps[i] != nil
	}
	return j
}

type joined struct {
	hs      []Handler
	preps   []Preparer // by handler; nil where it prepares nothing
	anyPrep bool
}

// joinedPrep is what the joined Prepare returns: each handler's own.
type joinedPrep []any

// own returns events as handler i sees them, with what its own Prepare
// made of each, in buf (a copy of events, reused from one handler to the
// next). events is not changed.
func (j *joined) own(i int, events, buf []Event) []Event {
	if !j.anyPrep {
		return events
	}
	for k := range buf {
		buf[k].Prepared = nil
		if jp, ok := events[k].Prepared.(joinedPrep); ok {
			buf[k].Prepared = jp[i]
		}
	}
	return buf
}

func (j *joined) Apply(b *pebble.Batch, e *Event) error { return j.apply(b, []Event{*e}, false) }

func (j *joined) ApplyBatch(b *pebble.Batch, events []Event) error {
	return j.apply(b, events, true)
}

// apply gives events to each handler in turn: in one ApplyBatch call if
// batched and the handler has it, else one Apply at a time.
func (j *joined) apply(b *pebble.Batch, events []Event, batched bool) error {
	var buf []Event
	if j.anyPrep {
		buf = slices.Clone(events)
	}
	for i, h := range j.hs {
		evs := j.own(i, events, buf)
		if bh, ok := h.(BatchHandler); ok && batched {
			if err := bh.ApplyBatch(b, evs); err != nil {
				return err
			}
			continue
		}
		for k := range evs {
			if err := h.Apply(b, &evs[k]); err != nil {
				return err
			}
		}
	}
	return nil
}

func (j *joined) Prepare(e *Event) any {
	if !j.anyPrep {
		return nil
	}
	out := make(joinedPrep, len(j.hs))
	for i, p := range j.preps {
		if p != nil {
			out[i] = p.Prepare(e)
		}
	}
	return out
}

func (j *joined) Committed() {
	for _, h := range j.hs {
		if c, ok := h.(Committer); ok {
			c.Committed()
		}
	}
}

func (j *joined) Reject(b *pebble.Batch, r *Rejected) error {
	for _, h := range j.hs {
		if rj, ok := h.(Rejecter); ok {
			if err := rj.Reject(b, r); err != nil {
				return err
			}
		}
	}
	return nil
}

func (j *joined) KeepsRecords() bool {
	return slices.ContainsFunc(j.hs, func(h Handler) bool {
		k, ok := h.(RecordKeeper)
		return ok && k.KeepsRecords()
	})
}

// PlainBatch holds if every handler needs no index of the batch: one that
// reads the batch itself must have it.
func (j *joined) PlainBatch() bool {
	return !slices.ContainsFunc(j.hs, func(h Handler) bool {
		p, ok := h.(PlainBatcher)
		return !ok || !p.PlainBatch()
	})
}

func (j *joined) Version() string {
	vs := make([]string, len(j.hs))
	for i, h := range j.hs {
		vs[i] = "unversioned"
		if v, ok := h.(Versioned); ok {
			vs[i] = v.Version()
		}
	}
	return "join(" + strings.Join(vs, ",") + ")"
}

package requests

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/codec"
	"github.com/assent-dev/assent/libs/projection"
)

// Store folds request events into Pebble and answers queries about them.
// It is the projection.Handler; set DB once the runner has opened it.
type Store struct {
	db *pebble.DB
	// Invalid counts events that could not be folded (an unknown type, bad
	// data, a sequence out of order). It should read zero.
	Invalid atomic.Int64
	// OnEvent, if set, is called for every event folded, with the state
	// before and after (for metrics such as approval latency), as stored:
	// with the accepted outcomes and none of the refused ones (those are
	// kept apart, see Get).
	OnEvent func(e *projection.Event, ev approval.Event, before, after approval.State)

	// reads are ApplyBatch's reads of the batch it writes into and of the
	// store (state, refusal, refusal-of-command and approver list keys).
	reads projection.BatchReads
	// lists are the approver lists the store read or wrote (approvers.go).
	lists approverLists
}

// Committed lets go of what ApplyBatch kept of the batch the runner just
// committed (projection.Committer): the keys it wrote there, about 16 MB
// after a batch of 10,000 events, which would otherwise stay in memory
// until the next event.
func (s *Store) Committed() { s.reads.Committed() }

// Version is the layout of the store's keys and values (see the package
// documentation). The runner rebuilds a store written with another one.
func (*Store) Version() string { return "requests/5" }

// PlainBatch tells the runner that ApplyBatch reads the batch only
// through projection.BatchReads (projection.PlainBatcher). Apply reads b
// itself, and needs an indexed batch.
func (*Store) PlainBatch() bool { return true }

// KeepsRecords asks the runner to keep the log's records (a request's
// history is served byte for byte from them, as the chain hashed them):
// projection.RecordKeeper.
func (*Store) KeepsRecords() bool { return true }

// Attach gives the store the database to read from.
func (s *Store) Attach(db *pebble.DB) { s.db = db }

// Stored is one event as the history returns it.
type Stored struct {
	Partition int32           `json:"partition"`
	Offset    int64           `json:"offset"`
	Value     json.RawMessage `json:"event"`
}

func keyState(rid string) []byte { return append([]byte("r/"), rid...) }

// keyHistory orders a request's events by sequence, then by where they sit
// in the log, so that a repeated sequence (which Decide never writes, but
// the log may hold) keeps both events instead of overwriting one.
func keyHistory(rid string, seq int, p int32, off int64) []byte {
	k := historyPrefix(rid)
	k = binary.BigEndian.AppendUint64(k, uint64(seq))
	k = binary.BigEndian.AppendUint32(k, uint32(p))
	return binary.BigEndian.AppendUint64(k, uint64(off))
}

// historySuffix is the length of what keyHistory appends to the prefix.
const historySuffix = 8 + 4 + 8

func historyPrefix(rid string) []byte { return appendEscaped([]byte("h/"), rid) }

// appendEscaped appends s so that no escaped string is a prefix of another
// and order is kept: 0x00 becomes 0x00 0xff and the end is 0x00 0x01. A
// request id is whatever subject the log carries (the decider records a
// command.rejected even for a request id it refuses, "a/b" or one with a
// NUL included), so it cannot be trusted to leave a separator alone.
func appendEscaped(k []byte, s string) []byte {
	for i := range len(s) {
		k = append(k, s[i])
		if s[i] == 0x00 {
			k = append(k, 0xff)
		}
	}
	return append(k, 0x00, 0x01)
}

// keyRefusal is the n-th refusal recorded for a request (n from 1):
// refusals are kept apart from the state, one key each, so that recording
// one costs the same however many came before it, and Get reads only the
// latest approval.MaxRefusedOutcomes of them.
func keyRefusal(rid string, n int) []byte {
	return binary.BigEndian.AppendUint64(refusalPrefix(rid), uint64(n))
}

func refusalPrefix(rid string) []byte { return appendEscaped([]byte("f/"), rid) }

// keyRefusalOf finds the refusal of a command id: its value is the
// refusal's number n (keyRefusal), 8 bytes.
func keyRefusalOf(rid, commandID string) []byte {
	return append(appendEscaped([]byte("o/"), rid), commandID...)
}

// refusal is a refused command's outcome as keyRefusal stores it.
type refusal struct {
	CommandID string              `json:"id"`
	Code      approval.ReasonCode `json:"code"`
	Detail    string              `json:"detail,omitempty"`
}

func timerPrefix(p int32) []byte {
	return binary.BigEndian.AppendUint32([]byte("t/"), uint32(p))
}

func keyTimer(p int32, at time.Time, rid string) []byte {
	k := append(timerPrefix(p), '/')
	k = binary.BigEndian.AppendUint64(k, uint64(at.UnixNano()))
	return append(append(k, '/'), rid...)
}

// Index names for List.
const (
	IndexAll       = "all"
	IndexStatus    = "status"
	IndexRequester = "requester"
	IndexApprover  = "approver"
)

func indexPrefix(index, term string) []byte {
	return appendEscaped(fmt.Appendf(nil, "i/%s/", index), term)
}

func keyIndex(index, term string, created time.Time, rid string) []byte {
	k := indexPrefix(index, term)
	k = binary.BigEndian.AppendUint64(k, uint64(created.UnixNano()))
	return append(k, rid...)
}

// Apply folds one event: the projection.Handler. What it reads and
// writes does not grow with the request's history: the state it rewrites
// holds no refusals, and a refusal is a key of its own.
func (s *Store) Apply(b *pebble.Batch, e *projection.Event) error {
	// What Apply writes, s.reads does not learn: it gives up knowing what
	// is absent for good.
	s.reads.Forget()
	return s.fold(batchIO{b}, e, nil)
}

// foldIO is how fold reads what it folds and writes what it reads back:
// straight from and to the batch for Apply, through a lookup for
// ApplyBatch.
type foldIO interface {
	reader
	set(key, value []byte) error
	put(key []byte, v any) error
	batch() *pebble.Batch
	// hasList reports whether the approver list ref is known to be in
	// the batch or the store; addList records that it is.
	hasList(ref [32]byte) bool
	addList(ref [32]byte)
	// buffer is where a state may be encoded; keep gives it back.
	buffer() []byte
	keep(buf []byte)
}

// batchIO is the batch itself (an indexed batch reads its own writes).
type batchIO struct{ b *pebble.Batch }

func (w batchIO) Get(key []byte) ([]byte, io.Closer, error) { return w.b.Get(key) }
func (w batchIO) set(key, value []byte) error               { return w.b.Set(key, value, nil) }
func (w batchIO) put(key []byte, v any) error               { return putJSON(w.b, key, v) }
func (w batchIO) batch() *pebble.Batch                      { return w.b }
func (batchIO) hasList([32]byte) bool                       { return false }
func (batchIO) addList([32]byte)                            {}
func (batchIO) buffer() []byte                              { return nil }
func (batchIO) keep([]byte)                                 {}
func (l *lookup) batch() *pebble.Batch                      { return l.Batch() }

// ApplyBatch folds a run of events into b: the projection.BatchHandler
// the runner uses. It leaves the store as Apply of each event in turn
// would (TestApplyBatchEqualsApply), but reads each request's state once
// per call and writes it, with the index keys that changed, once at the
// end, instead of decoding, encoding and re-indexing it at every event:
// while the runner catches up, most requests are submitted and decided
// within one batch, and their pending index keys are never written.
func (s *Store) ApplyBatch(b *pebble.Batch, events []projection.Event) error {
	held := make(map[string]*heldState)
	r := s.lookupIn(b)
	defer r.Close()
	for i := range events {
		if err := s.fold(r, &events[i], held); err != nil {
			return err
		}
	}
	for rid, h := range held {
		if !h.changed {
			continue
		}
		if err := s.putState(r, rid, h.now); err != nil {
			return err
		}
		if err := reindexFrom(b, h.basePart, h.p, h.base, h.now); err != nil {
			return err
		}
	}
	return nil
}

// lookupIn returns how ApplyBatch reads and writes b: through
// projection.BatchReads, which reads a key fold wrote into b from its own
// copy (so b need not be indexed: PlainBatch), and any other from the
// store as committed without reading the last level for a key not there
// (every new request's state while the runner catches up).
func (s *Store) lookupIn(b *pebble.Batch) *lookup {
	return &lookup{BatchReader: s.reads.Reader(b, s.db, "r/", "f/", "o/", "a/"), lists: map[[32]byte]struct{}{}}
}

// lookup is a projection.BatchReader that also encodes states.
type lookup struct {
	*projection.BatchReader
	enc   []byte                // where a state is encoded; the batch copies what it is given
	lists map[[32]byte]struct{} // approver lists found or written in this batch
}

func (l *lookup) set(key, value []byte) error { return l.Set(key, value) }

func (l *lookup) put(key []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("requests: encode %q: %w", key, err)
	}
	if err := l.set(key, raw); err != nil {
		return fmt.Errorf("requests: write %q: %w", key, err)
	}
	return nil
}

func (l *lookup) hasList(ref [32]byte) bool { _, ok := l.lists[ref]; return ok }
func (l *lookup) addList(ref [32]byte)      { l.lists[ref] = struct{}{} }
func (l *lookup) buffer() []byte            { return l.enc[:0] }

func (l *lookup) keep(buf []byte) {
	if cap(buf) <= 64<<10 {
		l.enc = buf[:0]
	}
}

// putState writes a request's state, and its approver list unless the
// batch or the store has it (approvers.go).
func (s *Store) putState(w foldIO, rid string, st approval.State) error {
	value, list, ref, err := s.lists.encodeState(w.buffer(), st)
	if err != nil {
		return fmt.Errorf("requests: encode %s: %w", rid, err)
	}
	if !w.hasList(ref) {
		_, closer, err := w.Get(keyApprovers(ref))
		switch {
		case errors.Is(err, pebble.ErrNotFound):
			if err := w.set(keyApprovers(ref), list); err != nil {
				return fmt.Errorf("requests: write approver list of %s: %w", rid, err)
			}
		case err != nil:
			return fmt.Errorf("requests: read approver list of %s: %w", rid, err)
		default:
			_ = closer.Close() // releases a read value
		}
		w.addList(ref)
	}
	if err := w.set(keyState(rid), value); err != nil {
		return fmt.Errorf("requests: write %s: %w", rid, err)
	}
	w.keep(value)
	return nil
}

// Prepare decodes an event's domain event ahead of ApplyBatch: the
// projection.Preparer. It reads nothing but the event.
func (*Store) Prepare(e *projection.Event) any {
	if e.Envelope.Subject == "" {
		return nil
	}
	ev, err := codec.DomainEvent(e.Envelope)
	return prepared{ev, err}
}

// prepared is what Prepare made of an event.
type prepared struct {
	ev  approval.Event
	err error
}

// heldState is a request's state as ApplyBatch folds it: base as stored
// before the call (whose index keys are in the store), now as folded.
type heldState struct {
	base, now   approval.State
	basePart, p int32 // the partitions base's and now's index keys are written with
	changed     bool
}

// fold folds one event. With held nil it reads the state from b and
// writes the new state and its index keys into b; with held set it keeps
// the state there for ApplyBatch to write.
func (s *Store) fold(r foldIO, e *projection.Event, held map[string]*heldState) error {
	b := r.batch()
	env := e.Envelope
	if env.Subject == "" {
		return nil // a log checkpoint belongs to the partition, not a request
	}
	var (
		ev  approval.Event
		err error
	)
	if pre, ok := e.Prepared.(prepared); ok {
		ev, err = pre.ev, pre.err
	} else {
		ev, err = codec.DomainEvent(env)
	}
	if err != nil {
		s.Invalid.Add(1)
		return nil
	}
	rid := env.Subject
	var (
		before approval.State
		h      *heldState
	)
	if held != nil {
		h = held[rid]
	}
	if h != nil {
		before = h.now
	} else {
		before, _, err = s.getState(r, rid)
		if err != nil {
			return err
		}
		if held != nil {
			h = &heldState{base: before, now: before, basePart: e.Partition, p: e.Partition}
			held[rid] = h
		}
	}
	if ev.Sequence != before.Sequence+1 {
		s.Invalid.Add(1) // a gap or a repeat: the auditor reports it; the fold keeps going
	}
	// The state as stored holds no refusals. The event is folded as the
	// whole state would fold it: with the refusals of the command ids it
	// names that the whole state still holds (the latest
	// MaxRefusedOutcomes), so that a repeat of one counts once.
	whole, heldRefusals, err := withHeld(r, before, ev)
	if err != nil {
		return err
	}
	after := approval.Evolve(whole, ev)
	if rej, ok := ev.Body.(approval.CommandRejected); ok {
		n, ok := heldRefusals[rej.CommandID]
		if !ok {
			n = after.Refusals // a new refusal: Evolve counted it
			if err := r.set(keyRefusalOf(rid, rej.CommandID), binary.BigEndian.AppendUint64(nil, uint64(n))); err != nil {
				return fmt.Errorf("requests: write refusal of %s: %w", rid, err)
			}
		}
		o := after.Outcomes[rej.CommandID]
		if err := r.put(keyRefusal(rid, n), refusal{CommandID: rej.CommandID, Code: o.Code, Detail: o.Detail}); err != nil {
			return err
		}
	}
	after = withoutRefused(after)
	if h != nil {
		h.now, h.p, h.changed = after, e.Partition, true
	} else {
		if err := s.putState(r, rid, after); err != nil {
			return err
		}
		if err := reindex(b, e.Partition, before, after); err != nil {
			return err
		}
	}
	// The key only: the runner keeps the record itself, byte for byte
	// (KeepsRecords).
	if err := b.Set(keyHistory(rid, ev.Sequence, e.Partition, e.Offset), nil, nil); err != nil {
		return fmt.Errorf("requests: write history of %s: %w", rid, err)
	}
	if s.OnEvent != nil {
		s.OnEvent(e, ev, before, after)
	}
	return nil
}

// withHeld returns st with the refusals of the command ids ev names put
// back, as the whole state would hold them: those among the latest
// MaxRefusedOutcomes. held gives each one's number (keyRefusal). st is
// left as it was.
func withHeld(r reader, st approval.State, ev approval.Event) (approval.State, map[string]int, error) {
	held := map[string]int{}
	if st.Refusals == 0 {
		return st, held, nil
	}
	ids := []string{ev.CommandID}
	if rej, ok := ev.Body.(approval.CommandRejected); ok && rej.CommandID != ev.CommandID {
		ids = append(ids, rej.CommandID)
	}
	whole := st
	for _, id := range ids {
		if _, ok := held[id]; ok || id == "" {
			continue
		}
		n, o, found, err := refusalOf(r, st.RequestID, id)
		if err != nil {
			return st, nil, err
		}
		if !found || n <= st.Refusals-approval.MaxRefusedOutcomes {
			continue // never refused, or forgotten by the whole state
		}
		if len(held) == 0 {
			whole.Outcomes = maps.Clone(st.Outcomes)
			if whole.Outcomes == nil {
				whole.Outcomes = map[string]approval.Outcome{}
			}
			whole.Refused = nil
		}
		whole.Outcomes[id] = o
		whole.Refused = append(whole.Refused, id)
		held[id] = n
	}
	return whole, held, nil
}

// withoutRefused is st as the store keeps it: without its refusals, which
// are keys of their own (keyRefusal).
func withoutRefused(st approval.State) approval.State {
	if len(st.Refused) == 0 {
		return st
	}
	st.Outcomes = maps.Clone(st.Outcomes) // Evolve's result may share it
	for _, id := range st.Refused {
		delete(st.Outcomes, id)
	}
	st.Refused = nil
	return st
}

// refusalOf returns the number and outcome of the refusal of command id.
func refusalOf(r reader, rid, id string) (int, approval.Outcome, bool, error) {
	v, closer, err := r.Get(keyRefusalOf(rid, id))
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, approval.Outcome{}, false, nil
	}
	if err != nil {
		return 0, approval.Outcome{}, false, fmt.Errorf("requests: read refusal of %s: %w", rid, err)
	}
	u, raw := uint64(0), fmt.Sprintf("%x", v)
	if len(v) == 8 {
		u = binary.BigEndian.Uint64(v)
	}
	_ = closer.Close() // releases a read value
	if u == 0 || u > math.MaxInt32 {
		return 0, approval.Outcome{}, false, fmt.Errorf("requests: refusal of %s: malformed number %s", rid, raw)
	}
	n := int(u)
	v, closer, err = r.Get(keyRefusal(rid, n))
	if err != nil {
		return 0, approval.Outcome{}, false, fmt.Errorf("requests: read refusal %d of %s: %w", n, rid, err)
	}
	defer func() { _ = closer.Close() }() // releases a read value
	var f refusal
	if err := json.Unmarshal(v, &f); err != nil {
		return 0, approval.Outcome{}, false, fmt.Errorf("requests: decode refusal %d of %s: %w", n, rid, err)
	}
	if f.CommandID != id {
		return 0, approval.Outcome{}, false, fmt.Errorf("requests: refusal %d of %s is of %q, not %q", n, rid, f.CommandID, id)
	}
	return n, approval.Outcome{Code: f.Code, Detail: f.Detail}, true, nil
}

// indexKeys are every derived key a state implies.
func indexKeys(p int32, st approval.State) [][]byte {
	if st.Status == approval.StatusNone {
		return nil
	}
	rid, at := st.RequestID, st.CreatedAt
	keys := [][]byte{
		keyIndex(IndexAll, "", at, rid),
		keyIndex(IndexStatus, string(st.Status), at, rid),
		keyIndex(IndexRequester, st.Requester, at, rid),
	}
	if st.Status == approval.StatusPending {
		keys = append(keys, keyTimer(p, st.Policy.ExpiresAt, rid))
		for _, a := range st.Policy.Approvers {
			if a != st.Requester && !st.HasVoted(a) {
				keys = append(keys, keyIndex(IndexApprover, a, at, rid))
			}
		}
	}
	return keys
}

func reindex(b *pebble.Batch, p int32, before, after approval.State) error {
	return reindexFrom(b, p, p, before, after)
}

// reindexFrom deletes the index keys of before (written with partition
// bp) that after (partition p) does not imply, and writes those it
// implies that before did not: a key both imply is in the store already.
func reindexFrom(b *pebble.Batch, bp, p int32, before, after approval.State) error {
	old, now := indexKeys(bp, before), indexKeys(p, after)
	had := make(map[string]struct{}, len(old))
	for _, k := range old {
		had[string(k)] = struct{}{}
	}
	has := make(map[string]struct{}, len(now))
	for _, k := range now {
		has[string(k)] = struct{}{}
	}
	for _, k := range old {
		if _, ok := has[string(k)]; !ok {
			if err := b.Delete(k, nil); err != nil {
				return fmt.Errorf("requests: unindex: %w", err)
			}
		}
	}
	for _, k := range now {
		if _, ok := had[string(k)]; ok {
			continue
		}
		if err := b.Set(k, nil, nil); err != nil {
			return fmt.Errorf("requests: index: %w", err)
		}
	}
	return nil
}

func putJSON(b *pebble.Batch, k []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("requests: encode %q: %w", k, err)
	}
	if err := b.Set(k, raw, nil); err != nil {
		return fmt.Errorf("requests: write %q: %w", k, err)
	}
	return nil
}

// reader is what Pebble's DB, batches and snapshots have in common.
type reader interface {
	Get(key []byte) ([]byte, io.Closer, error)
}

func (s *Store) getState(r reader, rid string) (approval.State, bool, error) {
	v, closer, err := r.Get(keyState(rid))
	if errors.Is(err, pebble.ErrNotFound) {
		return approval.State{}, false, nil
	}
	if err != nil {
		return approval.State{}, false, fmt.Errorf("requests: read %s: %w", rid, err)
	}
	defer func() { _ = closer.Close() }() // releases a read value
	st, err := s.lists.decodeState(r, v)
	if err != nil {
		return approval.State{}, false, fmt.Errorf("requests: decode %s: %w", rid, err)
	}
	return st, true, nil
}

// Get returns a request's state; found is false if no event names it.
// It equals a fresh fold of the request's events (I5): the latest
// MaxRefusedOutcomes refusals are read back into Outcomes and Refused,
// so reading a request costs the same however many refusals it had.
func (s *Store) Get(rid string) (st approval.State, found bool, err error) {
	snap := s.db.NewSnapshot()
	defer func() { _ = snap.Close() }() // read-only
	st, found, err = s.getState(snap, rid)
	if err != nil || st.Refusals == 0 {
		return st, found, err
	}
	prefix := refusalPrefix(rid)
	it, err := snap.NewIter(&pebble.IterOptions{
		LowerBound: keyRefusal(rid, max(1, st.Refusals-approval.MaxRefusedOutcomes+1)),
		UpperBound: keyRefusal(rid, st.Refusals+1),
	})
	if err != nil {
		return st, found, fmt.Errorf("requests: refusals of %s: %w", rid, err)
	}
	defer func() { _ = it.Close() }() // read-only; it.Error() reports a failed iteration
	if st.Outcomes == nil {
		st.Outcomes = map[string]approval.Outcome{}
	}
	for it.First(); it.Valid(); it.Next() {
		if len(it.Key()) != len(prefix)+8 {
			return st, found, fmt.Errorf("requests: refusals of %s: malformed key %q", rid, it.Key())
		}
		var f refusal
		if err := json.Unmarshal(it.Value(), &f); err != nil {
			return st, found, fmt.Errorf("requests: decode a refusal of %s: %w", rid, err)
		}
		st.Outcomes[f.CommandID] = approval.Outcome{Code: f.Code, Detail: f.Detail}
		st.Refused = append(st.Refused, f.CommandID)
	}
	return st, found, it.Error()
}

// Refusal returns the refusal of command id, a command about request rid,
// if it was refused: every refusal is kept, those the state has forgotten
// (beyond MaxRefusedOutcomes) too, so the decider can tell that a command
// id was decided however many refusals came after it (approval.Recall).
func (s *Store) Refusal(rid, commandID string) (approval.Outcome, bool, error) {
	_, o, found, err := refusalOf(s.db, rid, commandID)
	return o, found, err
}

// History returns a request's events in sequence order, as stored.
func (s *Store) History(rid string) ([]Stored, error) {
	prefix := historyPrefix(rid)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: projection.PrefixEnd(prefix)})
	if err != nil {
		return nil, fmt.Errorf("requests: history %s: %w", rid, err)
	}
	defer func() { _ = it.Close() }() // read-only; it.Error() reports a failed iteration
	var out []Stored
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		if len(k) != len(prefix)+historySuffix {
			return nil, fmt.Errorf("requests: history of %s: malformed key %q", rid, k)
		}
		where := k[len(prefix)+8:]
		out = append(out, Stored{
			Partition: int32(binary.BigEndian.Uint32(where)),
			Offset:    int64(binary.BigEndian.Uint64(where[4:])),
		})
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("requests: history %s: %w", rid, err)
	}
	for i := range out {
		v, found, err := projection.Record(s.db, out[i].Partition, out[i].Offset)
		if err != nil {
			return nil, err
		}
		if !found {
			return nil, fmt.Errorf("requests: history of %s: no record at %d@%d", rid, out[i].Partition, out[i].Offset)
		}
		out[i].Value = v
	}
	return out, nil
}

// Due returns the pending requests of partition p whose expiry is at or
// before now, oldest first, at most limit of them.
func (s *Store) Due(p int32, now time.Time, limit int) ([]string, error) {
	prefix := append(timerPrefix(p), '/')
	upper := binary.BigEndian.AppendUint64(slices.Clone(prefix), uint64(now.UnixNano())+1)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: upper})
	if err != nil {
		return nil, fmt.Errorf("requests: timers: %w", err)
	}
	defer func() { _ = it.Close() }() // read-only; it.Error() reports a failed iteration
	var out []string
	for it.First(); it.Valid() && len(out) < limit; it.Next() {
		out = append(out, string(it.Key()[len(prefix)+9:]))
	}
	return out, it.Error()
}

// Filter selects requests for List. Empty fields match everything.
type Filter struct {
	Status    approval.Status
	Requester string
	Approver  string // pending requests this principal may still vote on
	Limit     int    // default 50, at most 500
	Cursor    string // from the previous page's Next
}

// Page is one page of List.
type Page struct {
	// Items are the requests as stored: with their accepted outcomes but
	// without their refusals, which only Get reads back.
	Items []approval.State
	Next  string // empty on the last page
}

// List returns requests newest first.
func (s *Store) List(f Filter) (Page, error) {
	index, term := IndexAll, ""
	switch {
	case f.Approver != "":
		index, term = IndexApprover, f.Approver
	case f.Requester != "":
		index, term = IndexRequester, f.Requester
	case f.Status != "":
		index, term = IndexStatus, string(f.Status)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 50
	}
	limit = min(limit, 500)
	prefix := indexPrefix(index, term)
	upper := projection.PrefixEnd(prefix)
	if f.Cursor != "" {
		c, err := decodeCursor(f.Cursor)
		if err != nil || !bytes.HasPrefix(c, prefix) {
			return Page{}, ErrBadCursor
		}
		upper = c // exclusive: the cursor is the last key returned
	}
	snap := s.db.NewSnapshot()
	defer func() { _ = snap.Close() }() // read-only
	it, err := snap.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: upper})
	if err != nil {
		return Page{}, fmt.Errorf("requests: list: %w", err)
	}
	defer func() { _ = it.Close() }() // read-only; it.Error() reports a failed iteration
	var page Page
	for it.Last(); it.Valid(); it.Prev() {
		rid := string(it.Key()[len(prefix)+8:])
		st, found, err := s.getState(snap, rid)
		if err != nil {
			return Page{}, err
		}
		if !found || (f.Status != "" && st.Status != f.Status) || (f.Requester != "" && st.Requester != f.Requester) {
			continue
		}
		if len(page.Items) == limit {
			last := page.Items[len(page.Items)-1]
			page.Next = encodeCursor(keyIndex(index, term, last.CreatedAt, last.RequestID))
			break
		}
		page.Items = append(page.Items, st)
	}
	return page, it.Error()
}

// ErrBadCursor is returned by List for a cursor it did not issue.
var ErrBadCursor = errors.New("requests: the cursor is not valid for this query")

func encodeCursor(k []byte) string { return base64.RawURLEncoding.EncodeToString(k) }

func decodeCursor(c string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(c) }

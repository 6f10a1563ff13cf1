package requests

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	// before and after (for metrics such as approval latency).
	OnEvent func(e *projection.Event, ev approval.Event, before, after approval.State)
}

// Version is the layout of the store's keys and values (see the package
// documentation). The runner rebuilds a store written with another one.
func (*Store) Version() string { return "requests/2" }

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

// Apply folds one event: the projection.Handler.
func (s *Store) Apply(b *pebble.Batch, e *projection.Event) error {
	env := e.Envelope
	if env.Subject == "" {
		return nil // a log checkpoint belongs to the partition, not a request
	}
	ev, err := codec.DomainEvent(env)
	if err != nil {
		s.Invalid.Add(1)
		return nil
	}
	before, _, err := getState(b, env.Subject)
	if err != nil {
		return err
	}
	if ev.Sequence != before.Sequence+1 {
		s.Invalid.Add(1) // a gap or a repeat: the auditor reports it; the fold keeps going
	}
	after := approval.Evolve(before, ev)
	if err := putJSON(b, keyState(env.Subject), after); err != nil {
		return err
	}
	// The value is kept byte for byte: it is what the chain hashes, and
	// re-encoding it as JSON would escape <, > and & and change the bytes.
	if err := b.Set(keyHistory(env.Subject, ev.Sequence, e.Partition, e.Offset), e.Value, nil); err != nil {
		return fmt.Errorf("requests: write history of %s: %w", env.Subject, err)
	}
	if err := reindex(b, e.Partition, before, after); err != nil {
		return err
	}
	if s.OnEvent != nil {
		s.OnEvent(e, ev, before, after)
	}
	return nil
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
	old, now := indexKeys(p, before), indexKeys(p, after)
	for _, k := range old {
		if !slices.ContainsFunc(now, func(n []byte) bool { return bytes.Equal(n, k) }) {
			if err := b.Delete(k, nil); err != nil {
				return fmt.Errorf("requests: unindex: %w", err)
			}
		}
	}
	for _, k := range now {
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

func getState(r reader, rid string) (approval.State, bool, error) {
	v, closer, err := r.Get(keyState(rid))
	if errors.Is(err, pebble.ErrNotFound) {
		return approval.State{}, false, nil
	}
	if err != nil {
		return approval.State{}, false, fmt.Errorf("requests: read %s: %w", rid, err)
	}
	defer func() { _ = closer.Close() }() // releases a read value
	var st approval.State
	if err := json.Unmarshal(v, &st); err != nil {
		return approval.State{}, false, fmt.Errorf("requests: decode %s: %w", rid, err)
	}
	return st, true, nil
}

// Get returns a request's state; found is false if no event names it.
func (s *Store) Get(rid string) (st approval.State, found bool, err error) {
	return getState(s.db, rid)
}

// History returns a request's events in sequence order, as stored.
func (s *Store) History(rid string) ([]Stored, error) {
	prefix := historyPrefix(rid)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
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
			Value:     slices.Clone(it.Value()),
		})
	}
	return out, it.Error()
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
	upper := prefixEnd(prefix)
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
		st, found, err := getState(snap, rid)
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

func prefixEnd(prefix []byte) []byte {
	end := slices.Clone(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// Package auditindex is the audit service's projection: every event of the
// log, kept byte for byte in Pebble with indexes by request, by actor, by
// type and by time, and per request the verification status of its
// chain. It is a projection.Handler; the projection.Runner feeds it and
// keeps its offsets, so it can be deleted and rebuilt from the log.
//
// # Layout
//
//	ir/<request esc>/<p><off>               by request
//	ia/<actor esc>/<time:8><p><off>         by actor, then time
//	iy/<type esc>/<time:8><p><off>          by type, then time
//	it/<time:8><p><off>                     by time
//	s/<request>                             RequestStatus (JSON)
//	c/<p:4>                                 PartitionStatus (JSON)
//
// The record values themselves are kept by the runner (the index is a
// projection.RecordKeeper): ingested under everything else during a
// catch-up, so that no compaction rewrites them, and read back with
// projection.Record and projection.ScanRecords.
//
// Escaped terms (see appendEscaped) keep one term from being a prefix of
// another. Times are Unix nanoseconds, big-endian, so ranges are scans.
package auditindex

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/assent-dev/assent/libs/projection"
	"github.com/assent-dev/assent/libs/wire"
)

// Index is the handler and the queries. The runner hands it only records
// a valid seal covers (Apply) and tells it of every other one (Reject).
type Index struct {
	db *pebble.DB
	// Breaks counts chain, sequence and terminal breaks found while
	// projecting, and records the runner rejected; it should read zero.
	Breaks atomic.Int64
	// reads are the reads of request statuses while folding a batch.
	reads projection.BatchReads
}

// Committed lets go of the keys the last batch wrote (projection.Committer).
func (x *Index) Committed() { x.reads.Committed() }

// statuses reads and writes the request and partition statuses of batch
// b: every read of the batch goes through it (PlainBatch).
func (x *Index) statuses(b *pebble.Batch) *projection.BatchReader {
	return x.reads.Reader(b, x.db, "s/", "c/")
}

// PlainBatch tells the runner that the index reads its batch only
// through projection.BatchReads (projection.PlainBatcher).
func (*Index) PlainBatch() bool { return true }

// Version names the layout.
func (*Index) Version() string { return "audit-index/3" }

// KeepsRecords asks the runner to keep the log's records, which the
// queries return byte for byte (projection.RecordKeeper).
func (*Index) KeepsRecords() bool { return true }

// Attach gives the index the database to read.
func (x *Index) Attach(db *pebble.DB) { x.db = db }

// RequestStatus is what the index knows of one request's chain.
type RequestStatus struct {
	Events     int      `json:"events"`
	LastSeq    int      `json:"last_sequence"`
	Partition  int32    `json:"partition"`
	LastOffset int64    `json:"last_offset"`
	Terminal   string   `json:"terminal,omitempty"`
	Breaks     []string `json:"breaks,omitempty"`
	// Unauthenticated lists records about the request that no valid seal
	// covers: never applied, kept here for the auditor (the first 20).
	Unauthenticated []RejectedRecord `json:"unauthenticated,omitempty"`
}

// RejectedRecord is a record the runner did not apply, and why.
type RejectedRecord struct {
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	EventID   string `json:"event_id,omitempty"`
	Type      string `json:"type,omitempty"`
	Kind      string `json:"kind"`
	Reason    string `json:"reason"`
}

// PartitionStatus is what the index knows of one partition's chain.
type PartitionStatus struct {
	Records    int64     `json:"records"`
	Seals      int64     `json:"seals"`
	SealOffset int64     `json:"last_seal_offset"` // the last valid seal; -1 none
	SealTime   time.Time `json:"last_seal_time,omitzero"`
	KeyID      string    `json:"last_seal_key_id,omitempty"`
	Rejected   int64     `json:"rejected"`
	Breaks     []string  `json:"breaks,omitempty"` // the first 20
}

const maxListedBreaks = 20

func appendEscaped(k []byte, s string) []byte {
	for i := range len(s) {
		k = append(k, s[i])
		if s[i] == 0x00 {
			k = append(k, 0xff)
		}
	}
	return append(k, 0x00, 0x01)
}

func pos(k []byte, p int32, off int64) []byte {
	k = binary.BigEndian.AppendUint32(k, uint32(p))
	return binary.BigEndian.AppendUint64(k, uint64(off))
}

func timeKey(k []byte, t time.Time) []byte {
	return binary.BigEndian.AppendUint64(k, uint64(t.UnixNano()))
}

func keyStatus(rid string) []byte { return append([]byte("s/"), rid...) }
func keyPartition(p int32) []byte { return binary.BigEndian.AppendUint32([]byte("c/"), uint32(p)) }

func requestPrefix(rid string) []byte { return appendEscaped([]byte("ir/"), rid) }
func actorPrefix(a string) []byte     { return appendEscaped([]byte("ia/"), a) }
func typePrefix(t string) []byte      { return appendEscaped([]byte("iy/"), t) }
func timePrefix() []byte              { return []byte("it/") }

// Apply indexes one event: the projection.Handler.
func (x *Index) Apply(b *pebble.Batch, e *projection.Event) error {
	return x.ApplyBatch(b, []projection.Event{*e})
}

// ApplyBatch indexes a run of events: the projection.BatchHandler the
// runner uses. It reads each partition's and each request's status once
// per call, folds the events into them in memory and writes each once at
// the end, where one event at a time read, decoded, encoded and wrote
// both at every event (a rebuild spent most of its CPU time there). The
// store is left as Apply of each event in turn leaves it
// (TestApplyBatchEqualsApply).
func (x *Index) ApplyBatch(b *pebble.Batch, events []projection.Event) error {
	parts := map[int32]*PartitionStatus{}
	reqs := map[string]*RequestStatus{}
	st := x.statuses(b)
	defer st.Close()
	for i := range events {
		if err := x.index(b, st, &events[i], parts, reqs); err != nil {
			return err
		}
	}
	for p, ps := range parts {
		if err := putJSON(st, keyPartition(p), ps); err != nil {
			return err
		}
	}
	for rid, rs := range reqs {
		if err := putJSON(st, keyStatus(rid), rs); err != nil {
			return err
		}
	}
	return nil
}

// index indexes one event, with the statuses of this batch so far.
func (x *Index) index(b *pebble.Batch, st *projection.BatchReader, e *projection.Event, parts map[int32]*PartitionStatus, reqs map[string]*RequestStatus) error {
	env := e.Envelope
	at := env.Time
	for _, k := range [][]byte{
		pos(timeKey(timePrefix(), at), e.Partition, e.Offset),
		pos(timeKey(typePrefix(env.Type), at), e.Partition, e.Offset),
	} {
		if err := b.Set(k, nil, nil); err != nil {
			return fmt.Errorf("index: %w", err)
		}
	}
	if env.Actor != "" {
		if err := b.Set(pos(timeKey(actorPrefix(env.Actor), at), e.Partition, e.Offset), nil, nil); err != nil {
			return fmt.Errorf("index: %w", err)
		}
	}

	ps := parts[e.Partition]
	if ps == nil {
		read, err := x.partition(st, e.Partition)
		if err != nil {
			return err
		}
		ps = &read
		parts[e.Partition] = ps
	}
	ps.Records++
	linkOK := env.PrevHash == e.PrevHead
	if !linkOK {
		ps.addBreak(fmt.Sprintf("offset %d: prevhash %s is not the hash %s of the record before it", e.Offset, env.PrevHash, e.PrevHead))
		x.Breaks.Add(1)
	}
	if env.Type == wire.TypeSeal && env.Subject == "" {
		ps.Seals++
		if s, err := wire.DecodeSeal(env); err == nil { // the runner verified it
			ps.SealOffset, ps.SealTime, ps.KeyID = e.Offset, env.Time, s.KeyID
		}
	}
	if env.Subject == "" {
		return nil
	}

	if err := b.Set(pos(requestPrefix(env.Subject), e.Partition, e.Offset), nil, nil); err != nil {
		return fmt.Errorf("index: %w", err)
	}
	rs := reqs[env.Subject]
	if rs == nil {
		rs = &RequestStatus{}
		if err := getJSON(st, keyStatus(env.Subject), rs); err != nil && !errors.Is(err, pebble.ErrNotFound) {
			return err
		}
		reqs[env.Subject] = rs
	}
	rs.Events++
	rs.Partition, rs.LastOffset = e.Partition, e.Offset
	if !linkOK {
		rs.Breaks = append(rs.Breaks, fmt.Sprintf("offset %d: the chain link is broken", e.Offset))
	}
	// wire accepts only a canonical decimal sequence, or none: what
	// strconv.Atoi reads is what fmt.Sscan read here before.
	seq, err := strconv.Atoi(env.Sequence)
	if err != nil {
		seq = 0
	}
	if err != nil || seq != rs.LastSeq+1 {
		rs.Breaks = append(rs.Breaks, fmt.Sprintf("offset %d: sequence %q after %d", e.Offset, env.Sequence, rs.LastSeq))
		x.Breaks.Add(1)
	}
	rs.LastSeq = max(rs.LastSeq, seq)
	if terminal(env.Type) {
		if rs.Terminal != "" {
			rs.Breaks = append(rs.Breaks, fmt.Sprintf("offset %d: %s after %s", e.Offset, env.Type, rs.Terminal))
			x.Breaks.Add(1)
		} else {
			rs.Terminal = env.Type
		}
	}
	if len(rs.Breaks) > maxListedBreaks {
		rs.Breaks = rs.Breaks[:maxListedBreaks]
	}
	return nil
}

// Reject records a record the runner will not apply: the
// projection.Rejecter. It counts as a break, and is listed under its
// request (if it names one) as unauthenticated.
func (x *Index) Reject(b *pebble.Batch, r *projection.Rejected) error {
	x.Breaks.Add(1)
	st := x.statuses(b)
	defer st.Close()
	ps, err := x.partition(st, r.Partition)
	if err != nil {
		return err
	}
	ps.Rejected++
	ps.addBreak(fmt.Sprintf("offset %d: %s: %s", r.Offset, r.Kind, r.Reason))
	if err := putJSON(st, keyPartition(r.Partition), &ps); err != nil {
		return err
	}
	rid := r.Envelope.Subject
	if rid == "" {
		return nil
	}
	var rs RequestStatus
	if err := getJSON(st, keyStatus(rid), &rs); err != nil && !errors.Is(err, pebble.ErrNotFound) {
		return err
	}
	if rs.Events == 0 {
		rs.Partition, rs.LastOffset = r.Partition, -1
	}
	if len(rs.Unauthenticated) < maxListedBreaks {
		rs.Unauthenticated = append(rs.Unauthenticated, RejectedRecord{Partition: r.Partition, Offset: r.Offset,
			EventID: r.Envelope.ID, Type: r.Envelope.Type, Kind: r.Kind, Reason: r.Reason})
	}
	return putJSON(st, keyStatus(rid), &rs)
}

func (ps *PartitionStatus) addBreak(s string) {
	if len(ps.Breaks) < maxListedBreaks {
		ps.Breaks = append(ps.Breaks, s)
	}
}

func terminal(typ string) bool {
	switch typ {
	case "dev.assent.request.approved", "dev.assent.request.rejected", "dev.assent.request.expired", "dev.assent.request.cancelled":
		return true
	}
	return false
}

type reader interface {
	Get(key []byte) ([]byte, io.Closer, error)
}

func (x *Index) partition(r reader, p int32) (PartitionStatus, error) {
	ps := PartitionStatus{SealOffset: -1}
	if err := getJSON(r, keyPartition(p), &ps); err != nil && !errors.Is(err, pebble.ErrNotFound) {
		return ps, err
	}
	return ps, nil
}

func getJSON(r reader, k []byte, v any) error {
	raw, closer, err := r.Get(k)
	if err != nil {
		return err
	}
	defer closer.Close() //nolint:errcheck // a read
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("index: decode %q: %w", k, err)
	}
	return nil
}

// putJSON writes v as JSON at key k through st, which reads it back: the
// index reads its batch only through st (PlainBatch).
func putJSON(st *projection.BatchReader, k []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("index: encode: %w", err)
	}
	if err := st.Set(k, raw); err != nil {
		return fmt.Errorf("index: %w", err)
	}
	return nil
}

// Row is one event as the queries return it.
type Row struct {
	Partition int32           `json:"partition"`
	Offset    int64           `json:"offset"`
	Hash      string          `json:"hash"`
	Event     json.RawMessage `json:"event"`
}

// Query selects events for Events. Actor, then Type, picks the index; the
// other is a filter. Times bound the event time: [From, To).
type Query struct {
	Actor, Type string
	From, To    time.Time
	Cursor      string
	Limit       int
}

// ErrBadCursor is returned for a cursor Events did not issue.
var ErrBadCursor = errors.New("index: bad cursor")

// Events answers a query, in time order, with a cursor for the next page
// ("" at the end).
func (x *Index) Events(q Query) ([]Row, string, error) {
	if q.Limit <= 0 {
		q.Limit = 100
	}
	var prefix []byte
	filterType := ""
	switch {
	case q.Actor != "":
		prefix, filterType = actorPrefix(q.Actor), q.Type
	case q.Type != "":
		prefix = typePrefix(q.Type)
	default:
		prefix = timePrefix()
	}
	lower := append([]byte(nil), prefix...)
	if !q.From.IsZero() {
		lower = timeKey(lower, q.From)
	}
	upper := projection.PrefixEnd(prefix)
	if !q.To.IsZero() {
		upper = timeKey(append([]byte(nil), prefix...), q.To)
	}
	if q.Cursor != "" {
		c, err := base64.RawURLEncoding.DecodeString(q.Cursor)
		if err != nil || !bytes.HasPrefix(c, prefix) || len(c) != len(prefix)+8+12 {
			return nil, "", ErrBadCursor
		}
		lower = append(c, 0)
	}
	snap := x.db.NewSnapshot()
	defer snap.Close() //nolint:errcheck // a read
	it, err := snap.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, "", fmt.Errorf("index: %w", err)
	}
	defer it.Close() //nolint:errcheck // a read
	var rows []Row
	var last []byte
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if len(k) != len(prefix)+8+12 {
			continue
		}
		p := int32(binary.BigEndian.Uint32(k[len(prefix)+8:]))
		off := int64(binary.BigEndian.Uint64(k[len(prefix)+12:]))
		row, env, err := x.row(snap, p, off)
		if err != nil {
			return nil, "", err
		}
		last = append(last[:0], k...)
		if filterType != "" && env.Type != filterType {
			continue
		}
		rows = append(rows, row)
		if len(rows) == q.Limit {
			if it.Next() {
				return rows, base64.RawURLEncoding.EncodeToString(last), nil
			}
			break
		}
	}
	return rows, "", it.Error()
}

func (x *Index) row(r pebble.Reader, p int32, off int64) (Row, wire.Envelope, error) {
	v, found, err := projection.Record(r, p, off)
	if err != nil {
		return Row{}, wire.Envelope{}, fmt.Errorf("index: %w", err)
	}
	if !found {
		return Row{}, wire.Envelope{}, fmt.Errorf("index: event %d@%d is indexed but its record is not kept", p, off)
	}
	env, err := wire.Unmarshal(v)
	if err != nil {
		return Row{}, env, fmt.Errorf("index: event %d@%d: %w", p, off, err)
	}
	return Row{Partition: p, Offset: off, Hash: wire.Hash(v), Event: v}, env, nil
}

// Verification is the status of one request's chain.
type Verification struct {
	// Status is "verified" (every event was covered by a valid seal
	// before it was applied, and every link, sequence and terminal rule
	// holds), "unauthenticated" (that holds, but records about the request
	// that no valid seal covers were found, and not applied: see
	// Unauthenticated) or "broken".
	Status          string           `json:"status"`
	LastSealOffset  int64            `json:"last_seal_offset"`
	SealKeyID       string           `json:"seal_key_id,omitempty"`
	Breaks          []string         `json:"breaks,omitempty"`
	Unauthenticated []RejectedRecord `json:"unauthenticated,omitempty"`
}

// Request is everything the index holds on one request.
type Request struct {
	RequestID    string          `json:"request_id"`
	Partition    int32           `json:"partition"`
	Terminal     string          `json:"terminal,omitempty"`
	Verification Verification    `json:"verification"`
	Events       []Row           `json:"events"`
	Envelopes    []wire.Envelope `json:"-"`
}

// ErrNotFound is returned by Request for a request with no event.
var ErrNotFound = errors.New("index: no such request")

// Request returns a request's events and the verification status of its
// chain.
func (x *Index) Request(rid string) (Request, error) {
	snap := x.db.NewSnapshot()
	defer snap.Close() //nolint:errcheck // a read
	var rs RequestStatus
	if err := getJSON(snap, keyStatus(rid), &rs); err != nil {
		if errors.Is(err, pebble.ErrNotFound) {
			return Request{}, ErrNotFound
		}
		return Request{}, err
	}
	ps, err := x.partition(snap, rs.Partition)
	if err != nil {
		return Request{}, err
	}
	out := Request{RequestID: rid, Partition: rs.Partition, Terminal: rs.Terminal, Events: []Row{}}
	prefix := requestPrefix(rid)
	it, err := snap.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: projection.PrefixEnd(prefix)})
	if err != nil {
		return Request{}, fmt.Errorf("index: %w", err)
	}
	defer it.Close() //nolint:errcheck // a read
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if len(k) != len(prefix)+12 {
			continue
		}
		p := int32(binary.BigEndian.Uint32(k[len(prefix):]))
		off := int64(binary.BigEndian.Uint64(k[len(prefix)+4:]))
		row, env, err := x.row(snap, p, off)
		if err != nil {
			return Request{}, err
		}
		out.Events = append(out.Events, row)
		out.Envelopes = append(out.Envelopes, env)
	}
	v := Verification{LastSealOffset: ps.SealOffset, SealKeyID: ps.KeyID, Breaks: rs.Breaks, Unauthenticated: rs.Unauthenticated}
	switch {
	case len(rs.Breaks) > 0:
		v.Status = "broken"
	case len(rs.Unauthenticated) > 0:
		v.Status = "unauthenticated"
	default:
		v.Status = "verified"
	}
	out.Verification = v
	return out, it.Error()
}

package verify

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash/maphash"
	"math"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/eventjson"
	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/services/auditor/internal/replay"
)

// Kinds of Break.
const (
	KindFormat          = "format"                 // not a CloudEvent Assent could have written
	KindUnauthenticated = wire.KindUnauthenticated // no valid seal covers the record
	KindGap             = wire.KindGap             // a valid seal follows records that are missing
	KindSequence        = "sequence"               // a request's sequence has a gap or a repeat
	KindIllegal         = "illegal"                // not what approval.Decide produces from the commands before it (see package replay)
	KindTruncated       = "truncated"              // the log ends before what the saved state verified
	KindState           = "state"                  // the saved state no longer matches the log
)

// Break is one place where the log fails verification.
type Break struct {
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	EventID   string `json:"event_id,omitempty"`
	Kind      string `json:"kind"`
	Reason    string `json:"reason"`
}

func (b Break) String() string {
	id := b.EventID
	if id == "" {
		id = "-"
	}
	return fmt.Sprintf("partition %d offset %d event %s: %s: %s", b.Partition, b.Offset, id, b.Kind, b.Reason)
}

// maxBreaks bounds what one partition reports: a log rewritten from some
// point on breaks at every record, and the first few say where.
const maxBreaks = 100

// chain verifies one partition with a wire.Authenticator: a record counts
// only once a valid seal covers it, and one that no seal can cover any
// more is reported at once, with its offset. It is a logread.Sink: records
// arrive in offset order on one goroutine.
type chain struct {
	topic  string
	p      int32
	keys   *wire.KeyRing
	count  *atomic.Int64 // records seen, across partitions (progress)
	auth   *wire.Authenticator
	replay *replay.Replayer
	dec    eventjson.Decoder
	bodies bodies

	st      PartState // head, offsets, counters; saved at the end
	headSum [32]byte
	headID  []byte
	reqs    map[string]*ReqState
	recent  [256]*ReqState // see request
	expect  int64          // resuming: the offset of the saved head, which must be read again first (-1: not resuming)
	stopped bool           // a gap: nothing after it can be authenticated
	breaks  []Break
	dropped int
}

func newChain(topic string, p int32, keys *wire.KeyRing, count *atomic.Int64, st PartState, logStart int64, rules replay.Rules) (*chain, error) {
	c := &chain{topic: topic, p: p, keys: keys, count: count, st: st, reqs: st.Requests, expect: -1, replay: replay.New(rules)}
	if c.reqs == nil {
		c.reqs = map[string]*ReqState{}
	}
	for id, req := range c.reqs {
		req.id = id
	}
	c.st.Requests = nil
	if err := parseHash(c.st.Head, &c.headSum); err != nil {
		return nil, fmt.Errorf("verify: saved head of partition %d: %w", p, err)
	}
	c.headID = []byte(c.st.HeadID)
	head := c.st.Head
	if c.st.HeadOffset < 0 && logStart > 0 {
		head = "" // the partition starts later: trust the first complete seal
	}
	c.auth = wire.NewAuthenticator(keys, topic, p, head)
	if c.st.HeadOffset >= 0 {
		c.expect = c.st.HeadOffset
	}
	return c, nil
}

func parseHash(s string, dst *[32]byte) error {
	digits, ok := bytes.CutPrefix([]byte(s), []byte("sha256:"))
	if !ok || len(digits) != 64 {
		return fmt.Errorf("%q is not sha256: and 64 hex digits", s)
	}
	if _, err := hex.Decode(dst[:], digits); err != nil {
		return fmt.Errorf("%q is not sha256: and 64 hex digits", s)
	}
	return nil
}

func (c *chain) addBreak(off int64, id string, kind, format string, args ...any) {
	if len(c.breaks) >= maxBreaks {
		c.dropped++
		return
	}
	// A copy of the id: it may share a record's value (see view), which
	// a break would keep for the rest of the run.
	c.breaks = append(c.breaks, Break{Partition: c.p, Offset: off, EventID: strings.Clone(id), Kind: kind, Reason: fmt.Sprintf(format, args...)})
}

// Records verifies a batch.
func (c *chain) Records(recs []*kgo.Record) error {
	for _, r := range recs {
		c.record(r)
	}
	c.count.Add(int64(len(recs)))
	return nil
}

func hashString(sum [32]byte) string { return "sha256:" + hex.EncodeToString(sum[:]) }

func (c *chain) record(r *kgo.Record) {
	if c.stopped {
		return
	}
	if r.Attrs.IsControl() {
		c.result(c.auth.Add(wire.Item{Record: wireRecord(r)}, nil))
		c.dropBodies()
		return
	}
	sum := sha256.Sum256(r.Value)
	if c.expect >= 0 {
		// Resuming: the first record read must be the saved head, unchanged.
		want := c.expect
		c.expect = -1
		switch {
		case r.Offset != want:
			c.addBreak(want, string(c.headID), KindState, "the saved state ends on the record at offset %d (hash %s), which is no longer in the log (the next record is at offset %d): the log was rewritten after the last verification",
				want, hashString(c.headSum), r.Offset)
			c.stopped = true
		case sum != c.headSum:
			c.addBreak(r.Offset, string(c.headID), KindState, "the record at offset %d no longer hashes to the saved head %s (it hashes to %s): it was rewritten after the last verification",
				r.Offset, hashString(c.headSum), hashString(sum))
			c.stopped = true
		}
		return // verified last time; the chain goes on from it
	}
	c.st.Records++
	it := wire.Item{Record: wireRecord(r)}
	// The record is decoded once, envelope and data, by the fast decoder
	// when it is in the form the deciders write; else (a seal, an unusual
	// record) by the full decoders, which say what is wrong with it. The
	// Authenticator and the replay share the result.
	it.Hash = c.dec.HashString(&sum)
	env, body, ok := c.dec.Event(r)
	c.dec.Last = it.Hash
	var err error
	switch {
	case ok && body == nil: // a seal
		it.Env = env
	case ok:
		it.Env = env
		c.bodies.q = append(c.bodies.q, decodedBody{off: r.Offset, body: body})
	default:
		it.Env, err = eventlog.DecodeRecord(r)
	}
	c.result(c.auth.Add(it, err))
	c.dropBodies()
}

// wireRecord is eventlog.WireRecord without the headers, which only the
// decoders read.
func wireRecord(r *kgo.Record) wire.Record {
	return wire.Record{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r.Value,
		Control: r.Attrs.IsControl(), Transactional: r.Attrs.IsTransactional(), ProducerID: r.ProducerID}
}

// decodedBody is the data of the event at off, decoded with its envelope
// and held, like the record, until its seal comes.
type decodedBody struct {
	off  int64
	body approval.EventBody
}

// body returns the decoded data of the event at off, if the fast decoder
// decoded it. The events are applied in offset order, so what comes
// before off in the queue was rejected.
func (b *bodies) body(off int64) approval.EventBody {
	for b.head < len(b.q) && b.q[b.head].off < off {
		b.q[b.head] = decodedBody{}
		b.head++
	}
	if b.head < len(b.q) && b.q[b.head].off == off {
		d := b.q[b.head].body
		b.q[b.head] = decodedBody{}
		b.head++
		return d
	}
	return nil
}

// dropBodies drops the decoded data of records the Authenticator no
// longer holds: those before the first it holds.
func (c *chain) dropBodies() {
	first := c.auth.FirstPending()
	b := &c.bodies
	for b.head < len(b.q) && (first < 0 || b.q[b.head].off < first) {
		b.q[b.head] = decodedBody{}
		b.head++
	}
	switch {
	case b.head == len(b.q):
		b.q, b.head = b.q[:0], 0
	case b.head > 1024 && b.head > len(b.q)/2:
		n := copy(b.q, b.q[b.head:])
		clear(b.q[n:])
		b.q, b.head = b.q[:n], 0
	}
}

func (c *chain) result(res wire.Result) {
	for i := range res.Apply {
		x := &res.Apply[i] // an Item is large: not copied
		if x.Env.Type == wire.TypeSeal {
			c.st.Seals++
			c.st.SealOffset = x.Record.Offset
			if err := parseHash(x.Hash, &c.headSum); err == nil {
				c.st.HeadOffset, c.headID = x.Record.Offset, []byte(x.Env.ID)
			}
			continue
		}
		if x.Env.Subject == "" {
			c.addBreak(x.Record.Offset, x.Env.ID, KindFormat, "an event of type %s without a subject; only seals have none", x.Env.Type)
			continue
		}
		c.sequence(x)
	}
	for _, rj := range res.Rejected {
		kind := rj.Kind
		if kind == wire.KindInvalid {
			kind = KindFormat
		}
		c.addBreak(rj.Record.Offset, rj.Env.ID, kind, "%s", rj.Reason)
	}
	if res.Gap != nil {
		c.addBreak(res.Gap.Record.Offset, res.Gap.Env.ID, KindGap, "%s", res.Gap.Reason)
		c.stopped = true
	}
}

// request returns the state of request id, new if it has none yet.
// A request's events are close together in the log, so the last requests
// looked up are kept in a small table in front of the map, which holds
// every request of the partition (a lookup there is mostly cache misses).
func (c *chain) request(id string) *ReqState {
	slot := &c.recent[maphash.String(recentSeed, id)%uint64(len(c.recent))]
	if *slot != nil && (*slot).id == id {
		return *slot
	}
	req := c.reqs[id]
	if req == nil {
		// One allocation per request, not per event; a copy of the id,
		// which shares the record's value (see view).
		req = &ReqState{id: strings.Clone(id)}
		c.reqs[req.id] = req
	}
	*slot = req
	return req
}

// recentSeed seeds the hash of chain.recent.
var recentSeed = maphash.MakeSeed()

func (c *chain) sequence(x *wire.Item) {
	off, id, subject := x.Record.Offset, x.Env.ID, x.Env.Subject
	seq, err := strconv.ParseUint(x.Env.Sequence, 10, 64)
	if err != nil || seq == 0 || seq > math.MaxInt32 {
		c.addBreak(off, id, KindFormat, "sequence %q is not a number from 1", x.Env.Sequence)
		return
	}
	req := c.request(subject)
	if seq != req.Seq+1 {
		what := "a gap: events of the request are missing"
		if seq <= req.Seq {
			what = "a repeat or a reordering"
		}
		c.addBreak(off, id, KindSequence, "request %s: sequence %d follows sequence %d, %s", subject, seq, req.Seq, what)
		req.replay.Stop() // its state is not known any more
	}
	req.Seq = seq
	if isTerminal(x.Env.Type) && req.Terminal == "" {
		req.Terminal = x.Env.Type[len("dev.assent.request."):]
	}
	c.replayEvent(req, x, int(seq))
}

// replayEvent checks the event against the domain (package replay).
func (c *chain) replayEvent(req *ReqState, x *wire.Item, seq int) {
	body := c.bodies.body(x.Record.Offset)
	var err error
	if body == nil {
		body, err = c.bodies.decode(x.Env.Type, x.Env.Data)
	}
	if err != nil {
		c.addBreak(x.Record.Offset, x.Env.ID, KindFormat, "request %s: %v", x.Env.Subject, err)
		req.replay.Stop()
		return
	}
	it := replay.Item{Offset: x.Record.Offset, ID: x.Env.ID, Value: x.Record.Value, Event: approval.Event{
		RequestID: x.Env.Subject, CommandID: x.Env.CommandID, Actor: x.Env.Actor, Time: x.Env.Time, Sequence: seq, Body: body}}
	for _, f := range c.replay.Add(&req.replay, it) {
		c.addBreak(f.Offset, f.EventID, KindIllegal, "%s", f.Reason)
	}
}

// finish ends the partition: whatever still waits for its seal never gets
// one (the log ends at a stable offset), and a command whose events stop
// short of what Decide emits is illegal.
func (c *chain) finish() {
	c.result(c.auth.Flush())
	for _, req := range c.reqs {
		for _, f := range c.replay.Close(&req.replay) {
			c.addBreak(f.Offset, f.EventID, KindIllegal, "%s", f.Reason)
		}
		req.Pending = req.Pending[:0]
		for _, v := range req.replay.Pending() {
			req.Pending = append(req.Pending, v)
		}
	}
}

func isTerminal(typ string) bool {
	switch typ {
	case approval.TypeRequestApproved, approval.TypeRequestRejected, approval.TypeRequestExpired, approval.TypeRequestCancelled:
		return true
	}
	return false
}

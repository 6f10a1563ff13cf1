package verify

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/assent-dev/assent/libs/wire"
)

// Kinds of Break.
const (
	KindFormat     = "format"     // not a CloudEvent Assent could have written
	KindLink       = "link"       // prevhash names a record that is not the one before it
	KindAltered    = "altered"    // a record's bytes changed (a later checkpoint confirms nothing was removed)
	KindDeleted    = "deleted"    // records are missing before this one
	KindReordered  = "reordered"  // prevhash names another record of the partition
	KindCheckpoint = "checkpoint" // a checkpoint does not verify
	KindSequence   = "sequence"   // a request's sequence has a gap or a repeat
	KindTerminal   = "terminal"   // a terminal event after a terminal event
	KindTruncated  = "truncated"  // the log ends before what the saved state verified
	KindState      = "state"      // the saved state no longer matches the log
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

// window is how far back and ahead a broken link is looked for among the
// partition's records, to tell a reordering from an alteration.
const window = 64

type ringEntry struct {
	sum [32]byte
	off int64
	id  []byte
}

var terminalTypes = map[string]bool{
	"dev.assent.request.approved":  true,
	"dev.assent.request.rejected":  true,
	"dev.assent.request.expired":   true,
	"dev.assent.request.cancelled": true,
}

// chain verifies one partition. It is a logread.Sink: records arrive in
// offset order on one goroutine.
type chain struct {
	topic string
	p     int32
	keys  *wire.KeyRing
	count *atomic.Int64 // records seen, across partitions (progress)

	st       PartState // head, offsets, counters; saved at the end
	headSum  [32]byte
	headHex  [71]byte // "sha256:" and the hex of headSum, to compare with prevhash without allocating
	headID   []byte
	reqs     map[string]*ReqState
	expect   int64 // resuming: the offset of the saved head, which must be read again first (-1: not resuming)
	logStart int64

	ring    [window]ringEntry
	ringN   int
	pending *pendingLink
	breaks  []Break
	dropped int
}

// pendingLink is a broken link whose cause later records may tell.
type pendingLink struct {
	at      int // index in breaks
	target  [32]byte
	prevOff int64
	prevID  []byte
	prevSum [32]byte
	until   int64 // the last offset at which a later record is looked for (a reordering)
}

func newChain(topic string, p int32, keys *wire.KeyRing, count *atomic.Int64, st PartState, logStart int64) (*chain, error) {
	c := &chain{topic: topic, p: p, keys: keys, count: count, st: st, reqs: st.Requests, expect: -1, logStart: logStart}
	if c.reqs == nil {
		c.reqs = map[string]*ReqState{}
	}
	c.st.Requests = nil
	if err := parseHash(c.st.Head, &c.headSum); err != nil {
		return nil, fmt.Errorf("verify: saved head of partition %d: %w", p, err)
	}
	c.setHead(c.headSum, c.st.HeadOffset, []byte(c.st.HeadID))
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

func (c *chain) setHead(sum [32]byte, off int64, id []byte) {
	c.headSum, c.st.HeadOffset, c.headID = sum, off, id
	copy(c.headHex[:], "sha256:")
	hex.Encode(c.headHex[7:], sum[:])
}

func (c *chain) addBreak(off int64, id []byte, kind, format string, args ...any) int {
	if len(c.breaks) >= maxBreaks {
		c.dropped++
		return -1
	}
	c.breaks = append(c.breaks, Break{Partition: c.p, Offset: off, EventID: string(id), Kind: kind, Reason: fmt.Sprintf(format, args...)})
	return len(c.breaks) - 1
}

// Records verifies a batch.
func (c *chain) Records(recs []*kgo.Record) error {
	for _, r := range recs {
		c.record(r.Offset, r.Value)
	}
	c.count.Add(int64(len(recs)))
	return nil
}

func hashString(sum [32]byte) string { return "sha256:" + hex.EncodeToString(sum[:]) }

func (c *chain) record(off int64, v []byte) {
	sum := sha256.Sum256(v)
	if c.expect >= 0 {
		// Resuming: the first record read must be the saved head, unchanged.
		want := c.expect
		c.expect = -1
		switch {
		case off != want:
			c.addBreak(want, c.headID, KindState, "the saved state ends on the record at offset %d (hash %s), which is no longer in the log (the next record is at offset %d): the log was rewritten after the last verification",
				want, hashString(c.headSum), off)
		case sum != c.headSum:
			c.addBreak(off, c.headID, KindState, "the record at offset %d no longer hashes to the saved head %s (it hashes to %s): it was rewritten after the last verification",
				off, hashString(c.headSum), hashString(sum))
		default:
			return // verified last time; the chain goes on from it
		}
		// Start again from what is there, so that the rest is checked too.
		c.setHead(sum, off, nil)
		return
	}
	c.st.Records++
	f, err := scan(v)
	if err == nil && f.escaped {
		f, err = slowFields(v)
	}
	if err != nil {
		c.addBreak(off, nil, KindFormat, "the record is not a CloudEvents JSON object: %v", err)
		c.setHead(sum, off, nil)
		return
	}
	id := f.id
	var target [32]byte
	prevOff := c.st.HeadOffset
	if !bytes.Equal(f.prevhash, c.headHex[:]) {
		if err := parseHash(string(f.prevhash), &target); err != nil {
			c.addBreak(off, id, KindFormat, "prevhash: %v", err)
		} else {
			c.brokenLink(off, id, target, prevOff)
		}
	}
	if c.pending != nil && off <= c.pending.until && sum == c.pending.target {
		b := &c.breaks[c.pending.at]
		b.Kind = KindReordered
		b.Reason = fmt.Sprintf("its prevhash names the record at offset %d (id %s), which comes after it: records were reordered", off, id)
		c.pending = nil
	}
	c.ring[c.ringN%window] = ringEntry{sum: sum, off: off, id: id}
	c.ringN++

	typ := f.typ
	switch {
	case string(typ) == wire.TypeCheckpoint:
		c.checkpoint(off, id, v, prevOff)
	case len(f.subject) == 0:
		c.addBreak(off, id, KindFormat, "an event of type %s without a subject; only checkpoints have none", typ)
	default:
		c.sequence(off, id, typ, f)
	}
	c.setHead(sum, off, id)
}

// brokenLink reports a record whose prevhash is not the hash of the record
// before it, saying what the partition's neighbouring records tell.
func (c *chain) brokenLink(off int64, id []byte, target [32]byte, prevOff int64) {
	for i := range min(c.ringN, window) {
		e := c.ring[i]
		if e.sum == target {
			c.addBreak(off, id, KindReordered, "its prevhash names the record at offset %d (id %s), not the record before it at offset %d (id %s): records were reordered or inserted",
				e.off, e.id, prevOff, c.headID)
			return
		}
	}
	if prevOff < 0 && c.logStart > 0 {
		c.addBreak(off, id, KindDeleted, "the partition starts at offset %d and its first record links to %s, not to the genesis hash: the records before it were deleted",
			c.logStart, hashString(target))
		return
	}
	what := fmt.Sprintf("the record at offset %d (id %s)", prevOff, c.headID)
	if prevOff < 0 {
		what = "the genesis hash (this is the first record)"
	}
	at := c.addBreak(off, id, KindLink, "its prevhash %s is not the hash %s of %s: that record was altered, or records between them were deleted",
		hashString(target), hashString(c.headSum), what)
	if at >= 0 && prevOff >= 0 {
		c.pending = &pendingLink{at: at, target: target, prevOff: prevOff, prevID: c.headID, prevSum: c.headSum, until: off + window}
	}
}

func (c *chain) checkpoint(off int64, id []byte, v []byte, headOffset int64) {
	c.st.Checkpoints++
	env, err := wire.Unmarshal(v)
	if err != nil {
		c.addBreak(off, id, KindFormat, "checkpoint: %v", err)
		return
	}
	cp, err := wire.VerifyCheckpoint(c.keys, c.topic, c.p, headOffset, env)
	pend := c.pending
	if pend != nil && c.breaks[pend.at].Kind == KindLink {
		b := &c.breaks[pend.at]
		switch {
		case err == nil:
			// The head is where the signer saw it: nothing was removed
			// or added, so the record before the broken link changed.
			linkOff := b.Offset
			b.Offset, b.EventID, b.Kind = pend.prevOff, string(pend.prevID), KindAltered
			b.Reason = fmt.Sprintf("the record was altered: it hashes to %s, but the next record (offset %d) names %s, and the checkpoint at offset %d confirms no record was removed",
				hashString(pend.prevSum), linkOff, hashString(pend.target), off)
			c.pending = nil
		case cp.Offset > headOffset && cp.Head == env.PrevHash:
			b.Kind = KindDeleted
			b.Reason = fmt.Sprintf("%d record(s) were deleted just before this one: its prevhash names a record no longer in the log, and the checkpoint at offset %d signed offset %d for the record now at offset %d",
				cp.Offset-headOffset, off, cp.Offset, headOffset)
			c.pending = nil
		}
	}
	if err != nil {
		c.addBreak(off, id, KindCheckpoint, "%v", err)
		return
	}
	c.st.CheckpointOffset = off
}

func (c *chain) sequence(off int64, id []byte, typ []byte, f fields) {
	seq, err := strconv.ParseUint(string(f.sequence), 10, 64)
	if err != nil || seq == 0 {
		c.addBreak(off, id, KindFormat, "sequence %q is not a number from 1", f.sequence)
		return
	}
	req := c.reqs[string(f.subject)]
	if req == nil {
		req = &ReqState{} // one allocation per request, not per event
		c.reqs[string(f.subject)] = req
	}
	if seq != req.Seq+1 {
		what := "a gap: events of the request are missing"
		if seq <= req.Seq {
			what = "a repeat or a reordering"
		}
		c.addBreak(off, id, KindSequence, "request %s: sequence %d follows sequence %d, %s", f.subject, seq, req.Seq, what)
	}
	req.Seq = seq
	if terminalTypes[string(typ)] {
		if req.Terminal != "" {
			c.addBreak(off, id, KindTerminal, "request %s: %s after it was already decided (%s)", f.subject, typ, req.Terminal)
		} else {
			req.Terminal = string(typ[len("dev.assent.request."):])
		}
	}
}

// slowFields decodes an envelope that has escapes in its strings.
func slowFields(v []byte) (fields, error) {
	env, err := wire.Unmarshal(v)
	if err != nil {
		return fields{}, err
	}
	return fields{id: []byte(env.ID), typ: []byte(env.Type), subject: []byte(env.Subject),
		sequence: []byte(env.Sequence), prevhash: []byte(env.PrevHash)}, nil
}

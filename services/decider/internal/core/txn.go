package core

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/codec"
	"github.com/assent-dev/assent/libs/command"
	"github.com/assent-dev/assent/libs/wire"
)

// In is a command record as consumed.
type In struct {
	Topic     string // the commands topic
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte
	// Envelope decodes the record; the adapter passes its own decoder
	// (content-type header included), the tests theirs.
	Envelope  wire.Envelope
	DecodeErr error
}

// Out is a record to produce to the events topic, in order.
type Out struct {
	Partition int32
	Key       []byte // the request id; nil for a seal
	Value     []byte
	// RequestID names the request whose state this record advances; empty
	// for a seal.
	RequestID string
	Seal      bool
}

// Txn stages the effects of one transaction. Its methods other than
// Produced run on one goroutine; Produced may run on any.
type Txn struct {
	c      *Core
	now    time.Time
	out    []Out
	states map[string]approval.State
	// refused holds, per request, the refusals written and not yet
	// projected (see overlayEntry.refused).
	refused map[string]map[string]approval.Outcome
	heads   map[int32]string
	epochs  map[int32]uint64
	from    map[int32]string // the head each partition's run extends
	count   map[int32]int    // records in each partition's run
	parts   map[string]int32
	err     error
	events  int
	sealed  bool
	// quarantined counts the commands left undecided (see Command).
	quarantined int

	mu sync.Mutex
	// offsets, by the index in out, as the broker acknowledged them.
	offsets map[int]int64
}

// Begin starts a transaction decided at now.
func (c *Core) Begin(now time.Time) *Txn {
	return &Txn{
		c: c, now: now, states: map[string]approval.State{}, refused: map[string]map[string]approval.Outcome{},
		heads: map[int32]string{}, epochs: map[int32]uint64{},
		from: map[int32]string{}, count: map[int32]int{}, parts: map[string]int32{}, offsets: map[int]int64{},
	}
}

// Records returns what to produce, in order.
func (t *Txn) Records() []Out { return t.out }

// Events counts the event records staged (seals excluded).
func (t *Txn) Events() int { return t.events }

// Err is the first reason the transaction must abort, if any.
func (t *Txn) Err() error { return t.err }

func (t *Txn) fail(err error) { t.err = errors.Join(t.err, err) }

// Produced records that Records()[i] was written at offset off.
func (t *Txn) Produced(i int, off int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.offsets[i] = off
}

// head returns the chain head of p as staged in t, else as owned.
func (t *Txn) head(p int32) (string, uint64, bool) {
	if h, ok := t.heads[p]; ok {
		return h, t.epochs[p], true
	}
	c := t.c
	c.mu.Lock()
	defer c.mu.Unlock()
	pt, ok := c.owned[p]
	if !ok || !pt.caughtUp || pt.stopped != "" {
		return "", 0, false
	}
	return pt.head, pt.epoch, true
}

// Command decides one command record into the transaction.
//
// One command never holds up the others (issue 13, item 3): a command
// that cannot be decided here, because the state of its request cannot be
// read from the store or its events cannot be encoded, is quarantined: it
// stages nothing, Config.Quarantined hears of it, and the transaction goes
// on, so its offset commits with the others. Nothing is written for it,
// not even a command.rejected, because that too needs the request's state
// (its sequence, and whether the command id was already decided); the
// command stays in the commands topic to be replayed once the cause is
// fixed (docs/runbook.md#assentdecidercommandquarantined). What fails the
// whole transaction is only what concerns the partition, not the
// command: a partition that is not owned, not caught up, or stopped
// (ErrNotOwned).
func (t *Txn) Command(in In) {
	c := t.c
	rid := string(in.Key)
	if rid == "" {
		if c.cfg.Skipped != nil {
			c.cfg.Skipped("no_key", in)
		}
		return
	}
	if want := wire.Partition(in.Key, int(c.cfg.Partitions)); want != in.Partition {
		// Its events would belong to another decider's partition.
		if c.cfg.Skipped != nil {
			c.cfg.Skipped("misrouted", in)
		}
		return
	}
	if _, _, ok := t.head(in.Partition); !ok {
		t.fail(fmt.Errorf("%w: %d", ErrNotOwned, in.Partition))
		return
	}
	state, err := c.load(t, rid)
	if err != nil {
		t.quarantine(in, fmt.Errorf("core: load the state of %s: %w", rid, err))
		return
	}
	var dec approval.Decision
	typ := ""
	var commandTime time.Time
	// Each path names the command it decides, then asks whether that id
	// was decided already (the dedupe, I2; approval.Recall looks past the
	// refusals the state forgot), and only then decides it.
	var cmd approval.Command
	var refusal *approval.Refusal
	decide := func() approval.Decision { return approval.Decide(state, cmd, c.cfg.Policies(), t.now) }
	switch {
	case in.DecodeErr != nil:
		cmd = approval.Command{ID: recordID(in), RequestID: rid, Actor: approval.SystemDecider}
		detail := in.DecodeErr.Error()
		decide = func() approval.Decision {
			return approval.Refuse(state, cmd, "", &approval.Refusal{Code: approval.ReasonInvalid, Detail: detail}, t.now)
		}
	default:
		env := in.Envelope
		typ = env.Type
		var err error
		cmd, err = codec.DomainCommand(env)
		cmd.RequestID = rid
		switch {
		case c.authenticate(env, cmd, &refusal):
			// Not signed by a service that may speak for its actor: refused
			// before the domain sees it, and before the dedupe of the id it
			// claims (docs/architecture.md, "Authenticated commands"). The
			// refusal is recorded under the record's own id, not the
			// command id it claims: a forgery must not take the id of a
			// command its rightful author will send (ids are derived from
			// the intention, so they can be guessed), which would then be
			// deduped to the forgery's refusal, nor pass for a replay of a
			// command already decided.
			// Everything it claims is the forger's to choose: the detail
			// and the type are clipped, so that the refusal always fits in
			// an event.
			claimed := cmd
			cmd = approval.Command{ID: recordID(in), RequestID: rid, Actor: approval.SystemDecider}
			refusal.Detail = clip(fmt.Sprintf("command %q by %q: %s", clip(claimed.ID, 160), clip(claimed.Actor, 160), refusal.Detail), maxDetail)
			typ := clip(env.Type, 160)
			decide = func() approval.Decision {
				d := approval.Refuse(state, cmd, typ, refusal, t.now)
				if c.cfg.Unauthenticated != nil && !d.Replayed {
					c.cfg.Unauthenticated(in, refusal.Detail)
				}
				return d
			}
		case errors.As(err, &refusal):
			if cmd.Actor == "" {
				cmd.Actor = approval.SystemDecider
			}
			decide = func() approval.Decision { return approval.Refuse(state, cmd, env.Type, refusal, t.now) }
		case err != nil:
			decide = func() approval.Decision {
				return approval.Refuse(state, cmd, env.Type, &approval.Refusal{Code: approval.ReasonInvalid, Detail: err.Error()}, t.now)
			}
		default:
			commandTime = env.Time
		}
	}
	o, seen, err := c.recall(t, rid, state, cmd.ID)
	if err != nil {
		t.quarantine(in, fmt.Errorf("core: look up command %s of %s: %w", cmd.ID, rid, err))
		return
	}
	if seen {
		dec = approval.Decision{Replayed: true, Refusal: o.Refusal()}
		commandTime = time.Time{}
	} else {
		dec = decide()
	}
	if err := t.write(in.Partition, state, dec.Events); err != nil {
		t.quarantine(in, err)
		return
	}
	if c.cfg.Observe != nil {
		c.cfg.Observe(typ, dec, commandTime)
	}
}

// authenticate sets *refusal and reports true when the command is not
// authenticated (command.Authenticate).
func (c *Core) authenticate(env wire.Envelope, cmd approval.Command, refusal **approval.Refusal) bool {
	*refusal = command.Authenticate(c.cfg.CommandKeys, env, cmd)
	return *refusal != nil
}

// maxDetail bounds the detail of an unauthenticated refusal.
const maxDetail = 1024

// clip cuts s to at most n bytes, on a rune boundary, marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("...")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// recordID names a command record by where it is, for a refusal that
// cannot, or must not, be recorded under the id the command claims.
func recordID(in In) string { return fmt.Sprintf("kafka:%s/%d/%d", in.Topic, in.Partition, in.Offset) }

// quarantine leaves a command undecided; see Command.
func (t *Txn) quarantine(in In, err error) {
	t.quarantined++
	if t.c.cfg.Quarantined != nil {
		t.c.cfg.Quarantined(in, err)
	}
}

// Quarantined counts the commands the transaction left undecided.
func (t *Txn) Quarantined() int { return t.quarantined }

// write stages a decision's events and the new state and head, or, if
// any event cannot be encoded, nothing at all.
func (t *Txn) write(p int32, state approval.State, events []approval.Event) error {
	if len(events) == 0 {
		return nil
	}
	head, epoch, ok := t.head(p)
	if !ok {
		t.fail(fmt.Errorf("%w: %d", ErrNotOwned, p))
		return nil
	}
	rid := events[0].RequestID
	chain := wire.NewChain(head)
	out := make([]Out, 0, len(events))
	for _, e := range events {
		env, err := codec.EventEnvelope(e, t.c.cfg.Source, chain.Head)
		if err != nil {
			return fmt.Errorf("core: encode an event of %s: %w", rid, err)
		}
		value, err := chain.Next(env)
		if err != nil {
			return fmt.Errorf("core: encode an event of %s: %w", rid, err)
		}
		state = approval.Evolve(state, e)
		if r, ok := e.Body.(approval.CommandRejected); ok && e.CommandID != "" {
			if t.refused[rid] == nil {
				t.refused[rid] = map[string]approval.Outcome{}
			}
			t.refused[rid][e.CommandID] = approval.Outcome{Code: r.Code, Detail: r.Detail}
		}
		out = append(out, Out{Partition: p, Key: []byte(rid), Value: value, RequestID: rid})
	}
	if _, ok := t.from[p]; !ok {
		t.from[p] = head
	}
	t.count[p] += len(out)
	t.events += len(out)
	t.out = append(t.out, out...)
	t.states[rid] = state
	t.parts[rid] = p
	t.heads[p] = chain.Head
	t.epochs[p] = epoch
	return nil
}

// Seal ends the run of records the transaction wrote to each partition
// with a seal that signs it (see wire.Seal): readers apply only what a
// valid seal covers. Call it once, after the last command.
func (t *Txn) Seal() {
	if t.sealed {
		t.fail(errors.New("core: the transaction is already sealed"))
		return
	}
	t.sealed = true
	if !sealing { // only in the assentbench_noauth benchmark build (seal_noauth.go)
		return
	}
	c := t.c
	parts := make([]int32, 0, len(t.count))
	for p := range t.count {
		parts = append(parts, p)
	}
	slices.Sort(parts)
	for _, p := range parts {
		env, err := wire.NewSeal(c.cfg.Signer, c.cfg.Source, c.cfg.Topic, p, t.from[p], t.heads[p], t.count[p], t.now)
		if err != nil {
			t.fail(err)
			return
		}
		chain := wire.NewChain(t.heads[p])
		value, err := chain.Next(env)
		if err != nil {
			t.fail(err)
			return
		}
		t.out = append(t.out, Out{Partition: p, Value: value, Seal: true})
		t.heads[p] = chain.Head
		if c.cfg.Sealed != nil {
			c.cfg.Sealed()
		}
	}
}

// Commit keeps the effects of a committed transaction, except on
// partitions reassigned since it staged them.
func (c *Core) Commit(t *Txn) {
	t.mu.Lock()
	lastOffset := map[string]int64{}
	for i, o := range t.out {
		if off, ok := t.offsets[i]; ok && !o.Seal {
			lastOffset[o.RequestID] = max(lastOffset[o.RequestID], off)
		}
	}
	t.mu.Unlock()

	c.mu.Lock()
	defer c.mu.Unlock()
	for p, h := range t.heads {
		if pt, ok := c.owned[p]; ok && pt.epoch == t.epochs[p] {
			pt.head = h
		}
	}
	for rid, s := range t.states {
		p := t.parts[rid]
		if pt, ok := c.owned[p]; ok && pt.epoch == t.epochs[p] {
			c.overlay[rid] = overlayEntry{state: s, refused: t.refused[rid], partition: p, offset: lastOffset[rid], epoch: pt.epoch}
		}
	}
	for rid, e := range c.overlay {
		if c.progress.Next(e.partition) > e.offset {
			delete(c.overlay, rid)
		}
	}
}

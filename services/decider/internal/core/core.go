package core

import (
	"errors"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/wire"
)

// Store is the decider's projection of the events topic: the folded state
// of every request, and the pending ones due to expire.
type Store interface {
	Get(rid string) (approval.State, bool, error)
	// Refusal finds a refusal the state no longer holds (beyond
	// approval.MaxRefusedOutcomes): see approval.Recall.
	Refusal(rid, commandID string) (approval.Outcome, bool, error)
	Due(p int32, now time.Time, limit int) ([]string, error)
}

// Progress tells how far the projection has applied each events partition.
type Progress interface {
	Next(p int32) int64
}

// Config configures a Core.
type Config struct {
	Topic      string // the events topic, which seals name
	Partitions int32  // of both topics
	Source     string // CloudEvents source of every event written
	Policies   func() approval.Policies
	// Signer signs the seal that ends every transaction's run of records
	// in a partition; required.
	Signer *wire.Signer
	// CommandKeys verify every command before it is decided: one not
	// signed by a published key that may speak for its actor is refused
	// unauthenticated (command.Authenticate). The timers' own commands
	// are signed with Signer, a decider key.
	CommandKeys wire.CommandKeys
	// DueLimit bounds the expiries looked up per partition per Expire.
	DueLimit int
	// Observe, if set, is called with every decision (for metrics).
	Observe func(commandType string, d approval.Decision, commandTime time.Time)
	// Skipped, if set, is called for a command record that names no
	// request or sits in the wrong partition, with the reason.
	Skipped func(reason string, in In)
	// Quarantined, if set, is called for a command that could not be
	// decided here (see Txn.Command): it is not decided, nothing is
	// written for it, and its offset commits with the others, so it must
	// be replayed from the commands topic once the cause is fixed.
	Quarantined func(in In, err error)
	// Unauthenticated, if set, is called for every command refused
	// because it is not authenticated (see CommandKeys), with why.
	Unauthenticated func(in In, why string)
	// Sealed, if set, is called for every seal staged.
	Sealed func()
}

// Core is the decider's state machine. Its methods are safe for concurrent
// use: the adapter's rebalance callbacks run on another goroutine than its
// transaction loop.
type Core struct {
	cfg      Config
	store    Store
	progress Progress

	mu      sync.Mutex
	owned   map[int32]*partition
	overlay map[string]overlayEntry
	epoch   uint64
	asked   map[string]time.Time // expiries asked for, by request, and when
}

type partition struct {
	epoch    uint64 // changes on every assignment, so stale effects are dropped
	caughtUp bool
	head     string // authenticated chain head of the events partition, once caught up
	// stopped says why nothing more of the partition is decided here
	// (records are missing: see Stop); "" while it is decided.
	stopped string
}

// overlayEntry is a state written by a committed transaction that the
// projection may not have applied yet.
type overlayEntry struct {
	state approval.State
	// refused holds the refusals written for the request and not yet
	// projected: the state may have forgotten some of them already, and
	// the store does not have them yet.
	refused   map[string]approval.Outcome
	partition int32
	offset    int64 // of the last event written for the request
	epoch     uint64
}

// New returns a Core that owns nothing yet.
func New(cfg Config, store Store, progress Progress) *Core {
	if cfg.DueLimit <= 0 {
		cfg.DueLimit = 500
	}
	return &Core{cfg: cfg, store: store, progress: progress, owned: map[int32]*partition{}, overlay: map[string]overlayEntry{}}
}

// Assign takes ownership of command partitions, each under a new epoch,
// not yet caught up.
func (c *Core) Assign(parts []int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range parts {
		c.epoch++
		c.owned[p] = &partition{epoch: c.epoch}
	}
}

// Revoke gives partitions up, with every overlay state written to them.
func (c *Core) Revoke(parts []int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	gone := map[int32]bool{}
	for _, p := range parts {
		delete(c.owned, p)
		gone[p] = true
	}
	for rid, e := range c.overlay {
		if gone[e.partition] {
			delete(c.overlay, rid)
		}
	}
}

// Forget drops every partition and every overlay state, after the adapter
// lost its session in an unknown state.
func (c *Core) Forget() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.owned)
	clear(c.overlay)
}

// Stop stops deciding an owned partition for good (until it is revoked):
// records are missing from it, in the commands topic (commands were lost
// before they were decided) or in the events topic (the head this core
// would extend is not the head of the log). Its commands are not decided,
// its expiries are not asked for, and a transaction that meets one of its
// commands fails (ErrNotOwned), so the adapter commits none of its offsets.
// It reports whether the partition was owned and not stopped yet.
func (c *Core) Stop(p int32, why string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	pt, ok := c.owned[p]
	if !ok || pt.stopped != "" {
		return false
	}
	pt.stopped = why
	return true
}

// Stopped lists the owned partitions that Stop stopped, with why.
func (c *Core) Stopped() map[int32]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[int32]string{}
	for p, pt := range c.owned {
		if pt.stopped != "" {
			out[p] = pt.stopped
		}
	}
	return out
}

// Claim is an owned partition at one epoch.
type Claim struct {
	Partition int32
	Epoch     uint64
}

// NotCaughtUp lists the owned partitions that must catch up before they
// are decided, sorted by partition; a stopped partition never will.
func (c *Core) NotCaughtUp() []Claim {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Claim
	for p, pt := range c.owned {
		if !pt.caughtUp && pt.stopped == "" {
			out = append(out, Claim{Partition: p, Epoch: pt.epoch})
		}
	}
	slices.SortFunc(out, func(a, b Claim) int { return int(a.Partition - b.Partition) })
	return out
}

// CaughtUp marks a claimed partition as caught up with head, the hash of
// the last record the projection authenticated there. It reports
// false, and changes nothing, if the partition is no longer owned under
// that claim's epoch: it was revoked, or revoked and assigned again, while
// the catch-up ran, and the head it read belongs to another owner's time.
func (c *Core) CaughtUp(cl Claim, head string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	pt, ok := c.owned[cl.Partition]
	if !ok || pt.epoch != cl.Epoch {
		return false
	}
	pt.caughtUp = true
	pt.head = head
	return true
}

// Owned lists the owned partitions and whether each is caught up.
func (c *Core) Owned() map[int32]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[int32]bool, len(c.owned))
	for p, pt := range c.owned {
		out[p] = pt.caughtUp
	}
	return out
}

// HeadOf returns the chain head of an owned, caught-up partition that is
// not stopped.
func (c *Core) HeadOf(p int32) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	pt, ok := c.owned[p]
	if !ok || !pt.caughtUp || pt.stopped != "" {
		return "", false
	}
	return pt.head, true
}

// ErrNotOwned fails a transaction that meets a command of a partition
// that is not owned, not caught up, or stopped: none of the transaction's
// offsets may commit. It passes (a rebalance, a partition stopped and
// paused by the adapter); any other error of a transaction is a failure
// that would repeat.
var ErrNotOwned = errors.New("core: partition is not owned, not caught up, or stopped")

// load returns the state of a request: staged in t, else written by an
// earlier transaction and not yet projected, else projected.
func (c *Core) load(t *Txn, rid string) (approval.State, error) {
	if s, ok := t.states[rid]; ok {
		return s, nil
	}
	c.mu.Lock()
	e, ok := c.overlay[rid]
	if ok && c.progress.Next(e.partition) > e.offset {
		delete(c.overlay, rid) // the projection has it now
		ok = false
	}
	c.mu.Unlock()
	if ok {
		if len(e.refused) > 0 {
			t.refused[rid] = maps.Clone(e.refused)
		}
		return e.state, nil
	}
	s, _, err := c.store.Get(rid)
	return s, err
}

// recall returns how command id of request rid was decided, if it was:
// the command-id dedupe (I2), which looks past the refusals the state has
// forgotten (approval.Recall) into the ones written but not yet projected,
// then the projection's store.
func (c *Core) recall(t *Txn, rid string, state approval.State, id string) (approval.Outcome, bool, error) {
	return approval.Recall(state, id, func(id string) (approval.Outcome, bool, error) {
		if o, ok := t.refused[rid][id]; ok {
			return o, true, nil
		}
		return c.store.Refusal(rid, id)
	})
}

// Package session is the decider's Kafka adapter: it runs a franz-go
// GroupTransactSession around the Kafka-free core (package core). Each
// poll of the commands topic becomes one transaction: catch up newly
// assigned partitions, hand the records to the core, produce what it
// returns, and commit the consumed offsets in the same transaction. If End
// reports that the transaction aborted, the core's Txn is dropped and the
// session rewinds the consumer, so the same commands are decided again.
package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/assent-dev/assent/libs/command"
	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/services/decider/internal/core"
)

// Projection is what the adapter needs of the decider's projection: to
// wait until a partition is applied up to an offset, and the authenticated
// chain head it then holds.
type Projection interface {
	WaitOffset(ctx context.Context, p int32, off int64) error
	Head(p int32) string
}

// Metrics receives what the adapter measures; nil fields are skipped.
type Metrics struct {
	Transaction func(result string, took time.Duration) // committed, aborted, error
	CatchUp     func(took time.Duration)
	Restart     func()
}

// Config configures the adapter.
type Config struct {
	Group           string
	TransactionalID string
	EventsTopic     string
	TxnTimeout      time.Duration
	SessionTTL      time.Duration
	ExpiryPeriod    time.Duration
	// Timers sends the expire commands of the core's timers to the
	// commands topic (a plain, non-transactional producer: a command is
	// only a request, decided by whoever owns the partition).
	Timers  command.Sender
	Logger  *slog.Logger
	Metrics Metrics
	Now     func() time.Time
}

// Loop runs transactional sessions over a core.
type Loop struct {
	cfg     Config
	core    *core.Core
	proj    Projection
	adm     *kadm.Client
	opts    []kgo.Opt
	revokes atomic.Uint64 // revocations seen, to say why a transaction aborted
	commits atomic.Int64
}

// New returns a Loop. opts are the client options of the transactional
// session (brokers, guarantees, the consumer group); New adds the
// rebalance callbacks that keep the core's ownership.
func New(cfg Config, c *core.Core, proj Projection, adm *kadm.Client, opts []kgo.Opt) *Loop {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	l := &Loop{cfg: cfg, core: c, proj: proj, adm: adm}
	l.opts = append(append([]kgo.Opt(nil), opts...),
		kgo.OnPartitionsAssigned(l.onAssigned),
		kgo.OnPartitionsRevoked(l.onRevoked),
		kgo.OnPartitionsLost(l.onRevoked),
	)
	return l
}

func (l *Loop) commandsOf(m map[string][]int32) []int32 {
	var out []int32
	for _, ps := range m {
		out = append(out, ps...)
	}
	return out
}

func (l *Loop) onAssigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	ps := l.commandsOf(assigned)
	l.core.Assign(ps)
	l.cfg.Logger.Info("partitions assigned", "partitions", ps)
}

func (l *Loop) onRevoked(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
	ps := l.commandsOf(revoked)
	l.revokes.Add(1)
	l.core.Revoke(ps)
	l.cfg.Logger.Info("partitions revoked", "partitions", ps)
}

// maxFailedSessions is how many sessions in a row may fail without
// committing a transaction before the decider gives up and exits (with a
// clear error, for a supervisor and a human to see).
const maxFailedSessions = 5

// Run runs transactional sessions until ctx ends. A session whose
// transaction cannot end (franz-go: "no returned error is retryable": a
// broker lost mid-commit, a timeout while paused past the transaction
// timeout) is closed and replaced by a new one with the same
// transactional id, as a restart would do but without leaving the group
// empty for a supervisor's delay. The new session's producer init fences
// whatever the old one left open, and every effect of the failed batch is
// dropped: ownership and the overlay are rebuilt from the projection on the
// next assignment.
func (l *Loop) Run(ctx context.Context) error {
	backoff, failed := 500*time.Millisecond, 0
	for {
		before := l.commits.Load()
		err := l.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		var fatal fatalError
		if errors.As(err, &fatal) {
			return err
		}
		if l.commits.Load() != before {
			failed, backoff = 0, 500*time.Millisecond
		}
		failed++
		l.core.Forget()
		if l.cfg.Metrics.Restart != nil {
			l.cfg.Metrics.Restart()
		}
		if failed >= maxFailedSessions {
			return fmt.Errorf("decider: %d transactional sessions in a row failed before committing anything (is another process using transactional id %q?): %w",
				failed, l.cfg.TransactionalID, err)
		}
		l.cfg.Logger.Warn("the transactional session failed; starting a new one", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// fatalError is a session error that a new session cannot fix.
type fatalError struct{ error }

func (e fatalError) Unwrap() error { return e.error }

// session runs one transactional session until it fails or ctx ends.
func (l *Loop) session(ctx context.Context) error {
	sess, err := kgo.NewGroupTransactSession(l.opts...)
	if err != nil {
		return fatalError{fmt.Errorf("transact session: %w", err)}
	}
	defer sess.Close()
	if err := eventlog.CheckClient(sess.Client()); err != nil {
		return fatalError{err}
	}
	l.cfg.Logger.Info("deciding", "group", l.cfg.Group, "transactional_id", l.cfg.TransactionalID)
	return l.loop(ctx, sess)
}

// loop polls and transacts until ctx ends. A transaction is begun only
// for records consumed: its offsets commit inside it, so the consumer
// group fences it (KIP-447). Nothing is ever written in a transaction that
// consumed nothing, which the group could not fence: timers send commands
// instead (see core.Timers).
func (l *Loop) loop(ctx context.Context, sess *kgo.GroupTransactSession) error {
	lastExpiry := time.Time{}
	for {
		pollCtx, cancel := context.WithTimeout(ctx, l.cfg.ExpiryPeriod)
		fetches := sess.PollRecords(pollCtx, 2000)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(fetches.Err0(), kgo.ErrClientClosed) {
			return errors.New("decider: kafka client closed")
		}
		fetches.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				l.cfg.Logger.Warn("fetch error", "topic", t, "partition", p, "err", err)
			}
		})
		records := fetches.Records()
		// Take over newly assigned partitions even when no command comes:
		// their timers need their state.
		l.catchUp(ctx)
		if time.Since(lastExpiry) >= l.cfg.ExpiryPeriod {
			lastExpiry = time.Now()
			l.timers(ctx)
		}
		if len(records) == 0 {
			continue
		}
		if err := l.transact(ctx, sess, records); err != nil {
			return err
		}
	}
}

// timers sends the expire commands that are due. A failure is logged and
// retried at the next period: the request stays pending meanwhile, and
// Decide refuses a vote that arrives after its deadline anyway (I4).
func (l *Loop) timers(ctx context.Context) {
	cmds, err := l.core.Timers(l.cfg.Now())
	if err != nil {
		l.cfg.Logger.Warn("cannot read due expiries", "err", err)
		return
	}
	if len(cmds) == 0 || l.cfg.Timers == nil {
		return
	}
	w := command.Writer{Source: command.SourceDecider, Sender: l.cfg.Timers}
	sctx, cancel := context.WithTimeout(ctx, l.cfg.ExpiryPeriod+5*time.Second)
	defer cancel()
	for _, c := range cmds {
		if err := w.Send(sctx, c); err != nil {
			l.cfg.Logger.Warn("cannot send an expire command; the timer asks again", "request", c.RequestID, "err", err)
			return
		}
		l.cfg.Logger.Debug("expiry asked", "request", c.RequestID)
	}
}

// transact runs one transaction: catch up new partitions, decide the
// records, seal what it wrote, commit.
func (l *Loop) transact(ctx context.Context, sess *kgo.GroupTransactSession, records []*kgo.Record) error {
	if err := sess.Begin(); err != nil {
		return fmt.Errorf("decider: begin transaction: %w", err)
	}
	began := time.Now()
	revokesAtBegin := l.revokes.Load()
	txn := l.core.Begin(l.cfg.Now())
	ok := l.catchUp(ctx)
	if ok {
		for _, rec := range records {
			txn.Command(in(rec))
		}
		txn.Seal()
	}
	if txn.Err() != nil {
		ok = false
		l.cfg.Logger.Warn("a decision failed; aborting", "err", txn.Err())
	}
	// Finish the transaction even when ctx ends (shutdown): an open
	// transaction would block the next owner's catch-up until it times out.
	endCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.cfg.TxnTimeout)
	defer cancel()
	if ok {
		ok = l.produce(endCtx, sess, txn)
	}
	try := kgo.TryCommit
	if !ok {
		try = kgo.TryAbort
	}
	committed, err := sess.End(endCtx, try)
	took := time.Since(began)
	if err != nil {
		l.observe("error", took)
		return fmt.Errorf("decider: end transaction: %w", err)
	}
	if !committed {
		l.observe("aborted", took)
		{
			cause := "a produce or catch-up failed"
			if l.revokes.Load() != revokesAtBegin {
				cause = "partitions were revoked (rebalance)"
			} else if ok {
				cause = "the group generation changed before the commit (fenced)"
			}
			l.cfg.Logger.Info("transaction aborted; the batch will be decided again", "records", len(records), "cause", cause)
		}
		return nil
	}
	l.observe("committed", took)
	l.commits.Add(1)
	l.core.Commit(txn)
	{
		l.cfg.Logger.Debug("transaction committed", "records", len(records), "events", txn.Events(), "first_offset", firstOffset(records),
			"took", took.String())
	}
	return nil
}

func (l *Loop) observe(result string, took time.Duration) {
	if l.cfg.Metrics.Transaction != nil {
		l.cfg.Metrics.Transaction(result, took)
	}
}

// produce writes the transaction's records and waits for them. It reports
// false if any failed: the transaction must then abort.
func (l *Loop) produce(ctx context.Context, sess *kgo.GroupTransactSession, txn *core.Txn) bool {
	var failed firstErr
	for i, o := range txn.Records() {
		rec := eventlog.RecordOf(l.cfg.EventsTopic, o.Key, o.Value)
		rec.Partition = o.Partition
		want := o.Partition
		sess.Produce(ctx, rec, func(r *kgo.Record, err error) {
			switch {
			case err != nil:
				failed.set(err)
			case r.Partition != want:
				failed.set(fmt.Errorf("decider: record landed in partition %d, not %d", r.Partition, want))
			default:
				txn.Produced(i, r.Offset)
			}
		})
	}
	if err := sess.Client().Flush(ctx); err != nil {
		l.cfg.Logger.Warn("flush failed; aborting", "err", err)
		return false
	}
	if err := failed.get(); err != nil {
		l.cfg.Logger.Warn("a produce failed; aborting", "err", err)
		return false
	}
	return true
}

// firstErr keeps the first error that the produce promises report; they
// run concurrently, one per record, and fail with errors of different
// types (an atomic.Value would panic on the second type).
type firstErr struct{ p atomic.Pointer[error] }

func (f *firstErr) set(err error) { f.p.CompareAndSwap(nil, &err) }

func (f *firstErr) get() error {
	if p := f.p.Load(); p != nil {
		return *p
	}
	return nil
}

func in(rec *kgo.Record) core.In {
	env, err := eventlog.DecodeRecord(rec)
	return core.In{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset, Key: rec.Key, Value: rec.Value, Envelope: env, DecodeErr: err}
}

// catchUp makes sure every owned partition is caught up before any of its
// commands is decided. It reports false when it could not.
func (l *Loop) catchUp(ctx context.Context) bool {
	need := l.core.NotCaughtUp()
	if len(need) == 0 {
		return true
	}
	began := time.Now()
	cctx, cancel := context.WithTimeout(ctx, l.cfg.TxnTimeout+l.cfg.SessionTTL+10*time.Second)
	defer cancel()
	parts := make([]int32, len(need))
	for i, c := range need {
		parts[i] = c.Partition
	}
	ends, err := l.stableEnds(cctx, parts)
	if err != nil {
		l.cfg.Logger.Warn("cannot catch up yet", "partitions", parts, "err", err)
		return false
	}
	for _, p := range parts {
		if err := l.proj.WaitOffset(cctx, p, ends[p]); err != nil {
			l.cfg.Logger.Warn("projection did not catch up", "partition", p, "err", err)
			return false
		}
	}
	var done, stale []int32
	for _, c := range need {
		if l.core.CaughtUp(c, l.proj.Head(c.Partition)) {
			done = append(done, c.Partition)
		} else {
			stale = append(stale, c.Partition)
		}
	}
	if l.cfg.Metrics.CatchUp != nil {
		l.cfg.Metrics.CatchUp(time.Since(began))
	}
	l.cfg.Logger.Info("caught up", "partitions", done, "took", time.Since(began).String())
	if len(stale) > 0 {
		l.cfg.Logger.Info("reassigned while catching up; catching up again", "partitions", stale)
		return false
	}
	return true
}

// stableEnds waits until no transaction is open on the given events
// partitions (the last stable offset equals the high watermark) and
// returns those end offsets.
func (l *Loop) stableEnds(ctx context.Context, parts []int32) (map[int32]int64, error) {
	topic := l.cfg.EventsTopic
	for {
		hw, err := l.adm.ListEndOffsets(ctx, topic)
		if err != nil {
			return nil, err
		}
		lso, err := l.adm.ListCommittedOffsets(ctx, topic)
		if err != nil {
			return nil, err
		}
		out := map[int32]int64{}
		open := false
		for _, p := range parts {
			h, ok1 := hw.Lookup(topic, p)
			s, ok2 := lso.Lookup(topic, p)
			if !ok1 || !ok2 || h.Err != nil || s.Err != nil {
				return nil, fmt.Errorf("no end offset for %s/%d", topic, p)
			}
			if s.Offset != h.Offset {
				open = true
			}
			out[p] = s.Offset
		}
		if !open {
			return out, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("another producer still has a transaction open: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func firstOffset(records []*kgo.Record) string {
	if len(records) == 0 {
		return ""
	}
	return fmt.Sprintf("%d@%d", records[0].Partition, records[0].Offset)
}

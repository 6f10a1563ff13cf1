// Package session is the decider's Kafka adapter: it runs a franz-go
// GroupTransactSession around the Kafka-free core (package core). Each
// poll of the commands topic becomes one transaction: catch up newly
// assigned partitions, hand the records to the core, produce what it
// returns, and commit the consumed offsets in the same transaction. If End
// reports that the transaction aborted, the core's Txn is dropped and the
// session rewinds the consumer, so the same commands are decided again.
//
// Records that go missing are never skipped (issue 13, item 4): a
// partition whose commands were lost before they were decided (the
// client reports data loss, or an offset below the log start), or whose
// events partition the projection stopped reading at a gap, is stopped in
// the core and paused here, and decided no more until it is revoked; the
// other partitions go on. Failures that would repeat are not retried in
// silence: a command that cannot be decided is quarantined by the core,
// and a transaction that fails for another reason, or aborts too many
// times in a row, ends the session (see Run).
package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.opentelemetry.io/otel/trace"

	"github.com/assent-dev/assent/libs/command"
	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/services/decider/internal/core"
)

// Projection is what the adapter needs of the decider's projection: to
// wait until a partition is applied up to an offset, the authenticated
// chain head it then holds, and the partitions it stopped reading because
// records are missing (whose head is not the log's).
type Projection interface {
	WaitOffset(ctx context.Context, p int32, off int64) error
	Head(p int32) string
	Stopped() map[int32]string
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
	CommandsTopic   string // the topic the session consumes; its stopped partitions are paused
	EventsTopic     string
	TxnTimeout      time.Duration
	SessionTTL      time.Duration
	ExpiryPeriod    time.Duration
	// InstanceID, if set, makes the decider a static member of the group
	// (KIP-345) under this id, unique per replica. When the group's
	// coordinator moves (a broker lost), the new coordinator loads the
	// group as it was last written; a dynamic member whose id it does not
	// know rejoins under a new one, and the rebalance then waits for the
	// old ids' sessions to expire. A static member takes its old place at
	// once. A static member does not leave the group when its client
	// closes, so Run leaves it (LeaveGroup by instance id) when it stops.
	InstanceID string
	// PeerClientID maps a transactional id to the client id its decider
	// joins the group with, and says whether the id is a decider's at all.
	// With it, a decider given a partition whose events partition a
	// departed decider left a transaction open on fences that decider's
	// transactional id instead of waiting for the transaction to time out
	// (fenceAbandoned). Nil: it waits.
	PeerClientID func(transactionalID string) (clientID string, ok bool)
	// Timers sends the expire commands of the core's timers to the
	// commands topic (a plain, non-transactional producer: a command is
	// only a request, decided by whoever owns the partition).
	Timers  command.Sender
	Logger  *slog.Logger
	Metrics Metrics
	Now     func() time.Time
	// Tracer, if set, records for each command record that carries a W3C
	// trace context in its headers the spans tracing.SpanFetch,
	// tracing.SpanDecide and tracing.SpanCommit, and puts the commit
	// span's trace context in the headers of the event records written
	// for its request (docs/architecture.md, "Tracing"). Nil: no spans,
	// and the headers are not read.
	Tracer trace.Tracer
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
	aborts  int // transactions aborted in a row in this session (see maxAbortsInARow); on the loop's goroutine
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
		// Never skip records: an offset out of range (the committed offset
		// fell below the log start, the log was truncated) is reported,
		// not answered by a silent reset to the log start, which is what
		// franz-go does otherwise for a committed offset below it. A group
		// with no committed offset starts at the beginning, as before.
		kgo.ConsumeResetOffset(kgo.NoResetOffset()),
		kgo.ConsumeStartOffset(kgo.NewOffset().AtStart()),
		kgo.OnPartitionsAssigned(l.onAssigned),
		kgo.OnPartitionsRevoked(l.onRevoked),
		kgo.OnPartitionsLost(l.onRevoked),
	)
	if cfg.InstanceID != "" {
		l.opts = append(l.opts, kgo.InstanceID(cfg.InstanceID))
	}
	return l
}

func (l *Loop) commandsOf(m map[string][]int32) []int32 {
	var out []int32
	for _, ps := range m {
		out = append(out, ps...)
	}
	return out
}

func (l *Loop) onAssigned(ctx context.Context, cl *kgo.Client, assigned map[string][]int32) {
	ps := l.commandsOf(assigned)
	l.core.Assign(ps)
	l.cfg.Logger.Info("partitions assigned", "partitions", ps)
	if len(ps) > 0 {
		// Fence what a departed owner left open now, while the loop
		// finishes the transaction in hand: the catch-up of these
		// partitions then finds them stable (fenceAbandoned).
		go l.fenceAbandoned(ctx, cl, ps)
	}
}

func (l *Loop) onRevoked(_ context.Context, cl *kgo.Client, revoked map[string][]int32) {
	ps := l.commandsOf(revoked)
	l.revokes.Add(1)
	l.core.Revoke(ps)
	// A stopped partition was paused; if the group gives it back, its
	// fetch finds out again whether records are missing.
	cl.ResumeFetchPartitions(revoked)
	l.cfg.Logger.Info("partitions revoked", "partitions", ps)
}

// maxFailedSessions is how many sessions in a row may fail without
// committing a transaction before the decider gives up and exits (with a
// clear error, for a supervisor and a human to see).
const maxFailedSessions = 5

// maxAbortsInARow is how many transactions in a row may abort, for a
// reason other than a rebalance, before the session is counted as failed
// and replaced (a partition stopped for missing records aborts one): a
// failure that aborts every transaction (a produce the events topic always
// refuses, say) is not retried forever in silence, and after
// maxFailedSessions such sessions the decider exits.
const maxAbortsInARow = 10

// Run runs transactional sessions until ctx ends. A session whose
// transaction cannot end (franz-go: "no returned error is retryable": a
// broker lost mid-commit, a timeout while paused past the transaction
// timeout) is closed and replaced by a new one with the same
// transactional id, as a restart would do but without leaving the group
// empty for a supervisor's delay. The new session's producer init fences
// whatever the old one left open, and every effect of the failed batch is
// dropped: ownership and the overlay are rebuilt from the projection on the
// next assignment.
//
// Before the first session, Run waits until the projection has applied
// everything committed to the events topic before it started, except the
// partitions it stopped reading (whose commands will not be decided), so
// that one lost partition does not keep the replica from deciding the
// others.
func (l *Loop) Run(ctx context.Context) error {
	if l.cfg.CommandsTopic == "" || l.cfg.EventsTopic == "" {
		return errors.New("decider: the session needs its commands and events topics")
	}
	if err := l.waitProjected(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	backoff, failed := 500*time.Millisecond, 0
	for {
		before := l.commits.Load()
		err := l.session(ctx)
		if ctx.Err() != nil {
			l.leave()
			return nil
		}
		var fatal fatalError
		if errors.As(err, &fatal) {
			return err
		}
		if l.commits.Load() != before {
			failed, backoff = 0, 500*time.Millisecond
		}
		var away kafkaAway
		if !errors.As(err, &away) {
			failed++ // waiting for Kafka to come back is not a failure
		}
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

// leave takes a static member out of the group once its last session
// has closed, so that its partitions move to the other deciders at once
// rather than when its group session expires.
func (l *Loop) leave() {
	if l.cfg.InstanceID == "" || l.adm == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := l.adm.LeaveGroup(ctx, kadm.LeaveGroup(l.cfg.Group).InstanceIDs(l.cfg.InstanceID).Reason("decider stopping"))
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		l.cfg.Logger.Warn("could not leave the deciders' group; the other deciders take this one's partitions when its group session expires",
			"group", l.cfg.Group, "instance_id", l.cfg.InstanceID, "session", l.cfg.SessionTTL, "err", err)
		return
	}
	l.cfg.Logger.Info("left the deciders' group", "group", l.cfg.Group, "instance_id", l.cfg.InstanceID)
}

// fatalError is a session error that a new session cannot fix.
type fatalError struct{ error }

func (e fatalError) Unwrap() error { return e.error }

// kafkaAway is a session that could not start because Kafka did not
// answer: the next one waits for it as a session polling an absent Kafka
// would, without counting towards maxFailedSessions.
type kafkaAway struct{ error }

func (e kafkaAway) Unwrap() error { return e.error }

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
	if err := l.initProducer(ctx, sess); err != nil {
		return err
	}
	l.cfg.Logger.Info("deciding", "group", l.cfg.Group, "transactional_id", l.cfg.TransactionalID)
	l.aborts = 0
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
		fetched := time.Now()
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(fetches.Err0(), kgo.ErrClientClosed) {
			return errors.New("decider: kafka client closed")
		}
		lost := map[int32]string{}
		stopped := l.core.Stopped()
		var fatal error
		fetches.EachError(func(t string, p int32, err error) {
			switch {
			case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
			case errors.Is(err, kerr.InvalidSessionTimeout):
				// The brokers refuse the session timeout: a new session
				// would be refused again (docs/runbook.md).
				fatal = fmt.Errorf("decider: the brokers refuse the group session timeout %s: set ASSENT_SESSION_TIMEOUT within the brokers' group.min.session.timeout.ms and group.max.session.timeout.ms, or lower group.min.session.timeout.ms (docs/runbook.md#assentreplicadown): %w", l.cfg.SessionTTL, err)
			case recordsLost(err):
				if _, already := stopped[p]; !already {
					lost[p] = l.lostCommands(ctx, sess, t, p, err)
				}
			default:
				l.cfg.Logger.Warn("fetch error", "topic", t, "partition", p, "err", err)
			}
		})
		if fatal != nil {
			return fatalError{fatal}
		}
		l.stop(sess, lost)
		l.stopProjected(sess)
		records := fetches.Records()
		// Take over newly assigned partitions even when no command comes:
		// their timers need their state.
		l.catchUp(ctx, sess)
		if time.Since(lastExpiry) >= l.cfg.ExpiryPeriod {
			lastExpiry = time.Now()
			l.timers(ctx)
		}
		if len(records) == 0 {
			continue
		}
		if err := l.transact(ctx, sess, records, fetched); err != nil {
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
// records, seal what it wrote, commit. It returns an error, which ends the
// session, when the transaction failed in a way that would repeat: the
// core failed it for another reason than a partition it may not decide
// (core.ErrNotOwned), or maxAbortsInARow transactions in a row aborted.
func (l *Loop) transact(ctx context.Context, sess *kgo.GroupTransactSession, records []*kgo.Record, fetched time.Time) error {
	if err := sess.Begin(); err != nil {
		return fmt.Errorf("decider: begin transaction: %w", err)
	}
	began := time.Now()
	tr := l.traceFetched(ctx, records, fetched)
	revokesAtBegin := l.revokes.Load()
	txn := l.core.Begin(l.cfg.Now())
	ok := l.catchUp(ctx, sess)
	cause := "a catch-up failed"
	if ok {
		for _, rec := range records {
			txn.Command(in(rec))
		}
		txn.Seal()
	}
	txnErr := txn.Err()
	if txnErr != nil {
		ok = false
		cause = txnErr.Error()
		l.cfg.Logger.Warn("a decision failed; aborting", "err", txnErr)
	}
	tr.decided(began, time.Now())
	// Finish the transaction even when ctx ends (shutdown): an open
	// transaction would block the next owner's catch-up until it times out.
	endCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.cfg.TxnTimeout)
	defer cancel()
	if ok {
		if err := l.produce(endCtx, sess, txn, tr.headers); err != nil {
			ok, cause = false, err.Error()
		}
	}
	try := kgo.TryCommit
	if !ok {
		try = kgo.TryAbort
	}
	committed, err := sess.End(endCtx, try)
	took := time.Since(began)
	tr.ended(committed, err)
	if err != nil {
		l.observe("error", took)
		return fmt.Errorf("decider: end transaction: %w", err)
	}
	if !committed {
		l.observe("aborted", took)
		revoked := l.revokes.Load() != revokesAtBegin
		switch {
		case revoked:
			cause = "partitions were revoked (rebalance)"
		case ok:
			cause = "the group generation changed before the commit (fenced)"
		}
		l.cfg.Logger.Info("transaction aborted; the batch will be decided again", "records", len(records), "cause", cause)
		if txnErr != nil && !errors.Is(txnErr, core.ErrNotOwned) {
			return fmt.Errorf("decider: a transaction failed and would fail again: %w", txnErr)
		}
		if !revoked {
			l.aborts++
		}
		if l.aborts >= maxAbortsInARow {
			return fmt.Errorf("decider: %d transactions in a row aborted; the last because %s", l.aborts, cause)
		}
		return nil
	}
	l.aborts = 0
	l.observe("committed", took)
	l.commits.Add(1)
	l.core.Commit(txn)
	{
		l.cfg.Logger.Debug("transaction committed", "records", len(records), "events", txn.Events(), "quarantined", txn.Quarantined(),
			"first_offset", firstOffset(records), "took", took.String())
	}
	return nil
}

func (l *Loop) observe(result string, took time.Duration) {
	if l.cfg.Metrics.Transaction != nil {
		l.cfg.Metrics.Transaction(result, took)
	}
}

// produce writes the transaction's records and waits for them. It
// returns why if any failed: the transaction must then abort.
func (l *Loop) produce(ctx context.Context, sess *kgo.GroupTransactSession, txn *core.Txn, headers map[string][]kgo.RecordHeader) error {
	var failed firstErr
	for i, o := range txn.Records() {
		rec := eventlog.RecordOf(l.cfg.EventsTopic, o.Key, o.Value)
		rec.Partition = o.Partition
		if hs, ok := headers[o.RequestID]; ok && !o.Seal {
			// Beside the value, which the chain and the seal cover; never
			// in it (docs/architecture.md, "Tracing").
			rec.Headers = append(rec.Headers, hs...)
		}
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
		return fmt.Errorf("flush: %w", err)
	}
	if err := failed.get(); err != nil {
		l.cfg.Logger.Warn("a produce failed; aborting", "err", err)
		return fmt.Errorf("a produce failed: %w", err)
	}
	return nil
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
// commands is decided. It reports false when it could not. A partition
// whose events partition the projection stopped reading is stopped, not
// waited for: its head is not the log's, and the others must go on.
func (l *Loop) catchUp(ctx context.Context, sess *kgo.GroupTransactSession) bool {
	if len(l.core.NotCaughtUp()) == 0 {
		return true
	}
	l.stopProjected(sess)
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
	ends, err := l.stableEnds(cctx, sess.Client(), parts)
	if err != nil {
		l.cfg.Logger.Warn("cannot catch up yet", "partitions", parts, "err", err)
		return false
	}
	for _, p := range parts {
		err := waitApplied(cctx, l.proj, p, ends[p])
		var stopped stoppedError
		switch {
		case errors.As(err, &stopped):
			l.stop(sess, map[int32]string{p: stopped.why()})
		case err != nil:
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

// stoppedError is waitApplied's error for a partition the projection
// stopped reading.
type stoppedError struct {
	partition int32
	reason    string
}

func (e stoppedError) Error() string {
	return fmt.Sprintf("the projection stopped reading events partition %d: %s", e.partition, e.reason)
}

func (e stoppedError) why() string {
	return fmt.Sprintf("the projection stopped reading events partition %d, so the chain head it holds is not the log's: %s", e.partition, e.reason)
}

// waitApplied waits until the projection has applied events partition p
// up to off, and fails at once if it stopped reading p (records are
// missing there), before or after reaching off.
func waitApplied(ctx context.Context, proj Projection, p int32, off int64) error {
	for {
		if why := proj.Stopped()[p]; why != "" {
			return stoppedError{partition: p, reason: why}
		}
		// WaitOffset is not woken when a partition stops: look again
		// every 100ms.
		wctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		err := proj.WaitOffset(wctx, p, off)
		cancel()
		switch {
		case err == nil:
			if why := proj.Stopped()[p]; why != "" {
				return stoppedError{partition: p, reason: why}
			}
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		}
	}
}

// waitProjected waits until the projection has applied every partition of
// the events topic up to its last stable offset as of now, or stopped it.
func (l *Loop) waitProjected(ctx context.Context) error {
	var ends kadm.ListedOffsets
	for {
		var err error
		if ends, err = l.adm.ListCommittedOffsets(ctx, l.cfg.EventsTopic); err == nil && ends.Error() == nil {
			break
		}
		if err == nil {
			err = ends.Error()
		}
		l.cfg.Logger.Warn("cannot read the end of the events topic yet; retrying", "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	var waitErr error
	ends.Each(func(o kadm.ListedOffset) {
		if waitErr != nil {
			return
		}
		err := waitApplied(ctx, l.proj, o.Partition, o.Offset)
		var stopped stoppedError
		switch {
		case errors.As(err, &stopped):
			l.cfg.Logger.Error("its commands will not be decided here: "+stopped.Error(), "partition", o.Partition)
		case err != nil:
			waitErr = err
		}
	})
	return waitErr
}

// recordsLost reports whether a fetch error means records of the
// partition are gone before the group consumed them: data loss the
// client detected, or an offset out of range (below the log start, since
// retention deleted commands never decided; or past a truncated end).
func recordsLost(err error) bool {
	var loss *kgo.ErrDataLoss
	return errors.As(err, &loss) || errors.Is(err, kerr.OffsetOutOfRange)
}

// lostCommands says what was lost, as far as the error, the group's
// committed offset and the log start tell.
func (l *Loop) lostCommands(ctx context.Context, sess *kgo.GroupTransactSession, topic string, p int32, err error) string {
	var loss *kgo.ErrDataLoss
	if errors.As(err, &loss) {
		return fmt.Sprintf("lost records of %s/%d (the log was truncated): commands written there since would be skipped: %v", topic, p, err)
	}
	committed, ok := sess.Client().CommittedOffsets()[topic][p]
	if ok {
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if starts, lerr := l.adm.ListStartOffsets(lctx, topic); lerr == nil {
			if s, ok := starts.Lookup(topic, p); ok && s.Err == nil && s.Offset > committed.Offset {
				return fmt.Sprintf("commands %d to %d of %s/%d were deleted before they were decided (the group's committed offset is %d, the log starts at %d): %v",
					committed.Offset, s.Offset-1, topic, p, committed.Offset, s.Offset, err)
			}
		}
	}
	return fmt.Sprintf("lost records of %s/%d: the offset to read is out of range (records deleted, or the log truncated or recreated): %v", topic, p, err)
}

// stop stops deciding the given owned partitions (see core.Stop) and
// pauses their fetches, so that nothing past the loss is consumed.
func (l *Loop) stop(sess *kgo.GroupTransactSession, why map[int32]string) {
	if len(why) == 0 {
		return
	}
	var pause []int32
	for p, reason := range why {
		if l.core.Stop(p, reason) {
			l.cfg.Logger.Error("stopped deciding a partition: records are missing; see docs/runbook.md#assentdeciderpartitionstopped",
				"partition", p, "reason", reason)
		}
		if _, stopped := l.core.Stopped()[p]; stopped {
			pause = append(pause, p)
		}
	}
	if len(pause) > 0 {
		sess.Client().PauseFetchPartitions(map[string][]int32{l.cfg.CommandsTopic: pause})
	}
}

// stopProjected stops the owned partitions whose events partition the
// projection stopped reading.
func (l *Loop) stopProjected(sess *kgo.GroupTransactSession) {
	gone := l.proj.Stopped()
	if len(gone) == 0 {
		return
	}
	owned, stopped := l.core.Owned(), l.core.Stopped()
	why := map[int32]string{}
	for p, reason := range gone {
		if _, ok := owned[p]; ok && stopped[p] == "" {
			why[p] = stoppedError{partition: p, reason: reason}.why()
		}
	}
	l.stop(sess, why)
}

// stableEnds waits until no transaction is open on the given events
// partitions (the last stable offset equals the high watermark) and
// returns those end offsets. A transaction held open by a decider that
// left the group is fenced rather than waited for (fenceAbandoned),
// looked for at once and then every fenceProbe.
func (l *Loop) stableEnds(ctx context.Context, req kmsg.Requestor, parts []int32) (map[int32]int64, error) {
	topic := l.cfg.EventsTopic
	var probed time.Time
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
		var open []int32
		for _, p := range parts {
			h, ok1 := hw.Lookup(topic, p)
			s, ok2 := lso.Lookup(topic, p)
			if !ok1 || !ok2 || h.Err != nil || s.Err != nil {
				return nil, fmt.Errorf("no end offset for %s/%d", topic, p)
			}
			if s.Offset != h.Offset {
				open = append(open, p)
			}
			out[p] = s.Offset
		}
		if len(open) == 0 {
			return out, nil
		}
		if time.Since(probed) >= fenceProbe {
			probed = time.Now()
			if len(l.fenceAbandoned(ctx, req, open)) > 0 {
				continue // look again at once: the aborts are written
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("another producer still has a transaction open: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// fenceProbe is how often stableEnds looks for the owner of a
// transaction that keeps a partition open (four admin requests).
const fenceProbe = 500 * time.Millisecond

func firstOffset(records []*kgo.Record) string {
	if len(records) == 0 {
		return ""
	}
	return fmt.Sprintf("%d@%d", records[0].Partition, records[0].Offset)
}

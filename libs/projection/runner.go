package projection

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/wire"
)

// Event is one committed record of the events topic, as a handler sees it.
type Event struct {
	Partition int32
	Offset    int64
	Value     []byte // the exact record value, as hashed
	Hash      string // wire.Hash(Value)
	PrevHead  string // the partition's chain head before this record
	Envelope  wire.Envelope
}

// Handler applies events to a store. Apply writes into b, an indexed batch
// that also carries the runner's offsets; it must not commit it. An error
// stops the runner: return one only when the store itself failed, and
// count an event that makes no sense instead.
type Handler interface {
	Apply(b *pebble.Batch, e *Event) error
}

// Versioned is a Handler that names the layout of what it stores. The
// version is part of the store's identity: a handler whose keys or values
// changed meaning bumps it, and every existing store is wiped and rebuilt
// from the log instead of being read with the wrong layout.
type Versioned interface {
	Version() string
}

// Config configures a Runner.
type Config struct {
	Dir        string // the Pebble directory, created if missing
	Topic      string // the events topic
	Partitions int32  // expected partition count; the runner refuses another
	Kafka      eventlog.Config
	Handler    Handler
	Logger     *slog.Logger
	// Observe, if set, is called after each batch is durable.
	Observe func(BatchStats)
	// BatchRecords bounds the records (control records included) applied
	// in one batch; 0 means DefaultBatchRecords. Without a bound, a cold
	// rebuild would put everything the client has buffered (up to 50 MiB
	// a broker) into one indexed batch.
	BatchRecords int
}

// DefaultBatchRecords is the default of Config.BatchRecords.
const DefaultBatchRecords = 10_000

// BatchStats describes one applied batch.
type BatchStats struct {
	Records  int           // data records applied
	Invalid  int           // records that were not valid CloudEvents
	Duration time.Duration // from the end of the poll to the commit
}

// Runner keeps a Pebble store in step with the events topic.
type Runner struct {
	cfg Config
	db  *pebble.DB
	log *slog.Logger

	mu       sync.Mutex
	next     []int64  // per partition: the next offset to apply
	heads    []string // per partition: the hash of the last record applied
	tips     []tip    // per partition: where that record is
	target   []int64  // per partition: the end offsets captured at start
	ready    bool
	ends     []int64                    // per partition: the last stable offsets, read every lagPeriod
	progress chan struct{}              // closed and replaced after every batch
	watchers map[string][]chan struct{} // by subject, woken once
	metrics  atomic.Pointer[metrics]    // set by RegisterMetrics
}

// Open opens (or creates) the store. Call Run to bring it up to date.
func Open(cfg Config) (*Runner, error) {
	if cfg.Partitions <= 0 || cfg.Topic == "" || cfg.Handler == nil || cfg.Dir == "" {
		return nil, errors.New("projection: Dir, Topic, Partitions and Handler are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.BatchRecords <= 0 {
		cfg.BatchRecords = DefaultBatchRecords
	}
	log := cfg.Logger.With("component", "projection", "topic", cfg.Topic)
	db, err := pebble.Open(cfg.Dir, &pebble.Options{Logger: pebbleLogger{log.With("store", cfg.Dir)}})
	if err != nil {
		return nil, fmt.Errorf("projection: open %s: %w", cfg.Dir, err)
	}
	r := &Runner{
		cfg:      cfg,
		db:       db,
		log:      log,
		progress: make(chan struct{}),
		watchers: make(map[string][]chan struct{}),
	}
	if err := r.loadOffsets(); err != nil {
		_ = db.Close()
		return nil, err
	}
	return r, nil
}

// DB is the store, for the handler's queries. Reads see whole batches.
func (r *Runner) DB() *pebble.DB { return r.db }

// Close closes the store. Run must have returned.
func (r *Runner) Close() error { return r.db.Close() }

func (r *Runner) loadOffsets() error {
	n := r.cfg.Partitions
	r.next, r.heads, r.tips = make([]int64, n), make([]string, n), make([]tip, n)
	for p := range n {
		r.heads[p] = wire.GenesisHash
		r.tips[p] = tip{offset: -1}
		v, closer, err := r.db.Get(keyOffset(p))
		switch {
		case errors.Is(err, pebble.ErrNotFound):
			continue
		case err != nil:
			return fmt.Errorf("projection: read offset of partition %d: %w", p, err)
		}
		off, err := decodeInt64(v)
		_ = closer.Close()
		if err != nil {
			return err
		}
		r.next[p] = off
		h, closer, err := r.db.Get(keyHead(p))
		if err != nil {
			return fmt.Errorf("projection: read chain head of partition %d: %w", p, err)
		}
		r.heads[p] = string(h)
		_ = closer.Close()
		if v, closer, err := r.db.Get(keyTip(p)); err == nil {
			r.tips[p] = decodeTip(v)
			_ = closer.Close()
		} else if !errors.Is(err, pebble.ErrNotFound) {
			return fmt.Errorf("projection: read chain tip of partition %d: %w", p, err)
		}
	}
	return nil
}

// tip is where the chain head of a partition is: the offset of the last
// data record (-1 for none, or a store written before tips were kept) and
// whether it is a checkpoint.
type tip struct {
	offset     int64
	checkpoint bool
}

func (t tip) encode() []byte {
	b := encodeInt64(t.offset)
	if t.checkpoint {
		return append(b, 1)
	}
	return append(b, 0)
}

func decodeTip(b []byte) tip {
	if len(b) != 9 {
		return tip{offset: -1}
	}
	off, _ := decodeInt64(b[:8])
	return tip{offset: off, checkpoint: b[8] == 1}
}

// Run consumes the events topic until ctx ends. It returns nil when ctx is
// done, or the error that stopped it.
func (r *Runner) Run(ctx context.Context) error {
	opts, err := r.cfg.Kafka.Opts(kgo.KeepControlRecords())
	if err != nil {
		return err
	}
	adminClient, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("projection: kafka client: %w", err)
	}
	defer adminClient.Close()
	adm := kadm.NewClient(adminClient)
	go r.watchEnds(ctx, adm)

	for {
		if err := r.prepareRetrying(ctx, adm); err != nil {
			if ctx.Err() != nil {
				return nil // stopped while starting: not a failure
			}
			return err
		}
		err := r.consume(ctx)
		if !errors.Is(err, errLogReset) {
			return err
		}
		r.log.Warn("the events log went back behind the store; rebuilding from the start", "err", err)
		if err := r.wipe(); err != nil {
			return err
		}
	}
}

var errLogReset = errors.New("projection: the log is behind the store")

// lagPeriod is how often the last stable offsets are read for Lag.
const lagPeriod = 5 * time.Second

// watchEnds keeps the last stable offset of every partition fresh, for
// Lag. It reads the last stable offset, not the high watermark, because a
// transaction's commit marker makes the high watermark one ahead of what
// any read_committed consumer can ever apply.
func (r *Runner) watchEnds(ctx context.Context, adm *kadm.Client) {
	t := time.NewTicker(lagPeriod)
	defer t.Stop()
	for {
		lctx, cancel := context.WithTimeout(ctx, lagPeriod)
		stable, err := adm.ListCommittedOffsets(lctx, r.cfg.Topic)
		cancel()
		if err == nil {
			ends := make([]int64, r.cfg.Partitions)
			stable.Each(func(o kadm.ListedOffset) {
				if o.Err == nil && o.Partition >= 0 && o.Partition < r.cfg.Partitions {
					ends[o.Partition] = o.Offset
				}
			})
			r.mu.Lock()
			r.ends = ends
			r.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Lag is how many records of the events topic were committed but not yet
// applied, as of the last reading of the end offsets (every few seconds);
// -1 before the first reading.
func (r *Runner) Lag() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ends == nil {
		return -1
	}
	var lag int64
	for p, end := range r.ends {
		lag += max(0, end-r.next[p])
	}
	return lag
}

// Start-up retries errors that may pass, for a bounded time: a broker
// that has not yet heard of a new topic (briefly: a topic that is still
// missing after startupRetry is missing), or a broker restarting or
// partitioned away, whose partitions need a new leader (longer: that is
// what a replica restarting during a broker failure meets).
const (
	startupRetry       = 10 * time.Second
	startupRetryLeader = 60 * time.Second
)

// errNoLeader marks a partition without a reachable leader at start-up.
var errNoLeader = errors.New("no leader")

// permanentError is a prepare error that no retry can fix.
type permanentError struct{ error }

func (e permanentError) Unwrap() error { return e.error }

// prepareRetrying runs prepare until it succeeds, fails permanently, or
// has failed for startupRetry.
func (r *Runner) prepareRetrying(ctx context.Context, adm *kadm.Client) error {
	began := time.Now()
	for {
		err := r.prepare(ctx, adm)
		var perm permanentError
		limit := startupRetry
		if errors.Is(err, errNoLeader) {
			limit = startupRetryLeader
		}
		if err == nil || errors.As(err, &perm) || ctx.Err() != nil || time.Since(began) > limit {
			return err
		}
		r.log.Warn("projection: cannot start yet; retrying", "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// prepare checks that the store belongs to this cluster and topic, wipes it
// if not, and captures the end offsets that define readiness.
func (r *Runner) prepare(ctx context.Context, adm *kadm.Client) error {
	md, err := adm.Metadata(ctx, r.cfg.Topic)
	if err != nil {
		return fmt.Errorf("projection: metadata of %s: %w", r.cfg.Topic, err)
	}
	td, ok := md.Topics[r.cfg.Topic]
	if !ok {
		return fmt.Errorf("projection: topic %s is missing; provision it with assent-kafka provision", r.cfg.Topic)
	}
	if td.Err != nil {
		return fmt.Errorf("projection: topic %s is missing (%w); provision it with assent-kafka provision", r.cfg.Topic, td.Err)
	}
	if got := len(td.Partitions); got != int(r.cfg.Partitions) {
		return permanentError{fmt.Errorf("projection: %s has %d partitions, configured for %d; they must match", r.cfg.Topic, got, r.cfg.Partitions)}
	}
	identity := md.Cluster + "/" + td.ID.String()
	if v, ok := r.cfg.Handler.(Versioned); ok {
		identity += "/" + v.Version()
	}
	stored, closer, err := r.db.Get(keyCluster)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		stored = nil
	case err != nil:
		return fmt.Errorf("projection: read identity: %w", err)
	default:
		stored = append([]byte(nil), stored...)
		_ = closer.Close()
	}
	if stored != nil && string(stored) != identity {
		r.log.Warn("the store belongs to another cluster or topic incarnation; rebuilding", "stored", string(stored), "now", identity)
		if err := r.wipe(); err != nil {
			return err
		}
	}
	if err := r.db.Set(keyCluster, []byte(identity), pebble.Sync); err != nil {
		return fmt.Errorf("projection: write identity: %w", err)
	}

	ends, err := adm.ListEndOffsets(ctx, r.cfg.Topic)
	if err != nil {
		return fmt.Errorf("projection: end offsets of %s: %w: %w", r.cfg.Topic, errNoLeader, err)
	}
	stable, err := adm.ListCommittedOffsets(ctx, r.cfg.Topic)
	if err != nil {
		return fmt.Errorf("projection: stable offsets of %s: %w: %w", r.cfg.Topic, errNoLeader, err)
	}
	target := make([]int64, r.cfg.Partitions)
	ahead := false
	for p := range r.cfg.Partitions {
		end, ok := ends.Lookup(r.cfg.Topic, p)
		if !ok {
			return fmt.Errorf("projection: end offset of %s/%d: %w", r.cfg.Topic, p, errNoLeader)
		}
		if end.Err != nil {
			return fmt.Errorf("projection: end offset of %s/%d: %w (%w)", r.cfg.Topic, p, errNoLeader, end.Err)
		}
		if r.Next(p) > end.Offset {
			ahead = true
		}
		lso, ok := stable.Lookup(r.cfg.Topic, p)
		if !ok {
			return fmt.Errorf("projection: stable offset of %s/%d: not listed", r.cfg.Topic, p)
		}
		if lso.Err != nil {
			return fmt.Errorf("projection: stable offset of %s/%d: %w", r.cfg.Topic, p, lso.Err)
		}
		target[p] = lso.Offset
	}
	if ahead {
		r.log.Warn("the store is ahead of the log (topic truncated or recreated); rebuilding")
		if err := r.wipe(); err != nil {
			return err
		}
	}
	r.mu.Lock()
	r.target = target
	// The stored offsets are trusted from now on: wake WaitOffset, which
	// ignored them until the store was checked against the log.
	close(r.progress)
	r.progress = make(chan struct{})
	r.mu.Unlock()
	r.updateReady()
	return nil
}

// wipe deletes everything, the identity included.
func (r *Runner) wipe() error {
	if err := r.db.DeleteRange([]byte{}, []byte{0xff, 0xff, 0xff, 0xff}, pebble.Sync); err != nil {
		return fmt.Errorf("projection: wipe: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for p := range r.next {
		r.next[p], r.heads[p], r.tips[p] = 0, wire.GenesisHash, tip{offset: -1}
	}
	r.ready = false
	return nil
}

func (r *Runner) consume(ctx context.Context) error {
	start := make(map[int32]kgo.Offset, r.cfg.Partitions)
	for p := range r.cfg.Partitions {
		start[p] = kgo.NewOffset().At(r.Next(p))
	}
	opts, err := r.cfg.Kafka.Opts(
		kgo.KeepControlRecords(),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{r.cfg.Topic: start}),
		kgo.FetchMaxWait(time.Second),
	)
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("projection: kafka client: %w", err)
	}
	defer cl.Close()
	for {
		fetches := cl.PollRecords(ctx, r.cfg.BatchRecords)
		if ctx.Err() != nil {
			return nil
		}
		fetches.EachError(func(topic string, p int32, err error) {
			r.log.Warn("fetch error; franz-go retries", "partition", p, "err", err)
		})
		if err := r.apply(fetches); err != nil {
			return err
		}
	}
}

// apply writes one poll into one batch, then publishes it.
func (r *Runner) apply(fetches kgo.Fetches) error {
	began := time.Now()
	r.mu.Lock()
	next := append([]int64(nil), r.next...)
	heads := append([]string(nil), r.heads...)
	tips := append([]tip(nil), r.tips...)
	r.mu.Unlock()

	b := r.db.NewIndexedBatch()
	defer func() { _ = b.Close() }() // committed or abandoned: Close only recycles it
	touched := make(map[int32]bool)
	subjects := make(map[string]bool)
	stats := BatchStats{}
	var err error
	fetches.EachRecord(func(rec *kgo.Record) {
		if err != nil || rec.Topic != r.cfg.Topic {
			return
		}
		p := rec.Partition
		if p < 0 || p >= r.cfg.Partitions {
			err = fmt.Errorf("projection: record in partition %d of %s, configured for %d", p, r.cfg.Topic, r.cfg.Partitions)
			return
		}
		if rec.Offset < next[p] {
			err = fmt.Errorf("%w: partition %d offset %d < %d", errLogReset, p, rec.Offset, next[p])
			return
		}
		touched[p] = true
		next[p] = rec.Offset + 1
		if rec.Attrs.IsControl() {
			return
		}
		e := &Event{Partition: p, Offset: rec.Offset, Value: rec.Value, Hash: wire.Hash(rec.Value), PrevHead: heads[p]}
		heads[p] = e.Hash
		tips[p] = tip{offset: rec.Offset}
		env, decErr := eventlog.DecodeRecord(rec)
		if decErr != nil {
			stats.Invalid++
			r.log.Error("skipping a record that is not a valid Assent CloudEvent", "partition", p, "offset", rec.Offset, "err", decErr)
			return
		}
		e.Envelope = env
		tips[p].checkpoint = env.Type == wire.TypeCheckpoint && env.Subject == ""
		stats.Records++
		if env.Subject != "" {
			subjects[env.Subject] = true
		}
		if hErr := r.cfg.Handler.Apply(b, e); hErr != nil {
			err = fmt.Errorf("projection: apply %s/%d@%d: %w", r.cfg.Topic, p, rec.Offset, hErr)
		}
	})
	if err != nil {
		return err
	}
	if len(touched) == 0 {
		return nil
	}
	for p := range touched {
		if err := b.Set(keyOffset(p), encodeInt64(next[p]), nil); err != nil {
			return fmt.Errorf("projection: stage offset: %w", err)
		}
		if err := b.Set(keyHead(p), []byte(heads[p]), nil); err != nil {
			return fmt.Errorf("projection: stage head: %w", err)
		}
		if err := b.Set(keyTip(p), tips[p].encode(), nil); err != nil {
			return fmt.Errorf("projection: stage tip: %w", err)
		}
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("projection: commit batch: %w", err)
	}
	stats.Duration = time.Since(began)

	r.mu.Lock()
	r.next, r.heads, r.tips = next, heads, tips
	close(r.progress)
	r.progress = make(chan struct{})
	var wake []chan struct{}
	for s := range subjects {
		wake = append(wake, r.watchers[s]...)
		delete(r.watchers, s)
	}
	r.mu.Unlock()
	for _, ch := range wake {
		close(ch)
	}
	r.updateReady()
	if m := r.metrics.Load(); m != nil {
		m.observe(stats)
	}
	if r.cfg.Observe != nil {
		r.cfg.Observe(stats)
	}
	return nil
}

func (r *Runner) updateReady() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ready || r.target == nil {
		return
	}
	for p, t := range r.target {
		if r.next[p] < t {
			return
		}
	}
	r.ready = true
	r.log.Info("projection caught up", "partitions", len(r.target))
}

// Ready reports whether everything committed before Run started has been
// applied.
func (r *Runner) Ready() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ready
}

// WaitReady waits until Ready or until ctx ends. It polls: readiness can
// turn true without a batch to wake a waiter.
func (r *Runner) WaitReady(ctx context.Context) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for !r.Ready() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// Next returns the next offset of partition p to apply.
func (r *Runner) Next(p int32) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.next[p]
}

// Head returns the chain head of partition p: the hash of the last record
// applied, or wire.GenesisHash.
func (r *Runner) Head(p int32) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.heads[p]
}

// Tip returns where the chain head of partition p is: the offset of the
// last data record applied (-1 if there is none, or if the store was
// written before tips were kept and nothing was applied since), and
// whether that record is a checkpoint.
func (r *Runner) Tip(p int32) (offset int64, checkpoint bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.tips[p].offset, r.tips[p].checkpoint
}

// WaitOffset waits until partition p has been applied up to offset off
// (exclusive: Next(p) >= off). Offsets loaded by Open count only once Run
// has checked them against the log: a store ahead of a truncated or
// recreated log is wiped, and must not satisfy a waiter before that.
func (r *Runner) WaitOffset(ctx context.Context, p int32, off int64) error {
	for {
		r.mu.Lock()
		done, ch := r.target != nil && r.next[p] >= off, r.progress
		r.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// Watch returns a channel closed after the next batch that applies an
// event with this subject. Register before reading the store, then read,
// then wait: a batch in between still wakes the watcher. Call stop if you
// give up waiting.
func (r *Runner) Watch(subject string) (woken <-chan struct{}, stop func()) {
	ch := make(chan struct{})
	r.mu.Lock()
	r.watchers[subject] = append(r.watchers[subject], ch)
	r.mu.Unlock()
	return ch, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		list := r.watchers[subject]
		for i, c := range list {
			if c == ch {
				r.watchers[subject] = append(list[:i:i], list[i+1:]...)
				break
			}
		}
		if len(r.watchers[subject]) == 0 {
			delete(r.watchers, subject)
		}
	}
}

package projection

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
	"weak"

	"github.com/cockroachdb/pebble/v2"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"

	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/wire"
)

// Event is one authenticated record of the events topic, as a handler
// sees it.
type Event struct {
	Partition int32
	Offset    int64
	Value     []byte // the exact record value, as hashed
	Hash      string // wire.Hash(Value)
	PrevHead  string // the partition's authenticated head before this record
	Envelope  wire.Envelope
	// Prepared is what the handler's Prepare returned for this event, if
	// the handler is a Preparer.
	Prepared any
}

// Rejected is a record the runner will never apply: no valid seal covers
// it (wire.KindUnauthenticated), it is not an Assent CloudEvent
// (wire.KindInvalid), or it shows that records are missing (wire.KindGap).
type Rejected struct {
	Partition int32
	Offset    int64
	Envelope  wire.Envelope // zero when the record did not decode
	Kind      string
	Reason    string
}

// Handler applies events to a store. Apply writes into b, an indexed batch
// (a plain one for a PlainBatcher) that also carries the runner's
// offsets; it must not commit it. An error
// stops the runner: return one only when the store itself failed, and
// count an event that makes no sense instead.
type Handler interface {
	Apply(b *pebble.Batch, e *Event) error
}

// BatchHandler is a Handler that can also fold a run of events at once:
// the runner then gives it every event of a batch in one call (split only
// where a rejected record must be recorded in between, for a Rejecter),
// in offset order within each partition. ApplyBatch must leave the store
// as Apply of each event in turn would; it may hold what it reads in
// memory for the length of the call (docs/architecture.md, "Every reader
// builds its own state").
type BatchHandler interface {
	Handler
	ApplyBatch(b *pebble.Batch, events []Event) error
}

// Committer is a Handler that holds something for the length of a batch
// (what ApplyBatch wrote into it, say): the runner calls Committed once
// each batch it gave the handler is committed or dropped, and the handler
// lets go of it. Without it, what a handler keeps of the last batch of a
// catch-up stays in memory until the next event arrives.
type Committer interface {
	Committed()
}

// Preparer is a Handler with work to do on each event that needs no
// store, such as decoding its data: the runner calls Prepare for every
// event a valid seal covers before Apply or ApplyBatch, concurrently for
// events of different partitions and while it commits the previous batch,
// and puts what it returns in Event.Prepared. Prepare must not touch the
// store or anything Apply changes.
type Preparer interface {
	Prepare(e *Event) any
}

// Rejecter is a Handler that also records what the runner rejected (the
// audit service lists such records under their request).
type Rejecter interface {
	Reject(b *pebble.Batch, r *Rejected) error
}

// PlainBatcher is a BatchHandler that never reads the runner's batch
// itself, only through a BatchReader (BatchReads), which keeps a copy of
// what it writes: the runner then gives it a batch without an index, and
// Pebble does not insert every key written into a skiplist as it goes (a
// tenth of a rebuild's CPU time, docs/benchmarks.md, "Scale-out"). The
// runner calls only ApplyBatch and Reject for it, never Apply, and both
// must hold to this.
type PlainBatcher interface {
	BatchHandler
	PlainBatch() bool
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
	// Keys are the published decider keys: only records covered by a seal
	// signed with one of them are applied. Required by Run.
	Keys *wire.KeyRing
	// Observe, if set, is called after each batch is durable.
	Observe func(BatchStats)
	// Tracer, if set, records a tracing.SpanApply span for each trace
	// context that the event records of a batch carry in their headers, a
	// child of it (docs/architecture.md, "Tracing"). Nil: the headers are
	// not even read.
	Tracer trace.Tracer
	// BatchRecords bounds the records (control records included) applied
	// in one batch; 0 means DefaultBatchRecords. Without a bound, a cold
	// rebuild would put everything the client has buffered (up to 50 MiB
	// a broker) into one indexed batch.
	BatchRecords int
	// Bootstrap, if set, is what Bootstrap did before Open, for the
	// metrics (RegisterMetrics).
	Bootstrap *BootstrapReport
}

// DefaultBatchRecords is the default of Config.BatchRecords.
const DefaultBatchRecords = 10_000

// BatchStats describes one applied batch.
type BatchStats struct {
	Records  int           // data records applied
	Invalid  int           // records rejected (not authenticated, not CloudEvents)
	Duration time.Duration // from the end of the poll to the commit
}

// Runner keeps a Pebble store in step with the events topic. Its parts:
// the store of offsets and heads (store.go), the Kafka-free application of
// a batch of records through the authenticators (apply.go), the consumer
// (consume.go) and the waiters (wait.go).
type Runner struct {
	cfg  Config
	db   *pebble.DB
	opts *pebble.Options // the store's, for the tables of records it ingests
	log  *slog.Logger
	// keeper is set when the handler keeps the log's records (RecordKeeper).
	keeper bool
	// plain is set when the handler needs no index of its batch
	// (PlainBatcher).
	plain bool

	// applyMu serializes commits and guards dec; mu guards the published
	// progress below. Waiters only ever take mu, briefly.
	applyMu sync.Mutex
	dec     *decodeState // where decoding stands; nil until the first poll after Open or a wipe

	mu       sync.Mutex
	next     []int64  // per partition: the next offset to read (consumed)
	heads    []string // per partition: the authenticated head
	headAt   []int64  // per partition: the offset of the head's record; -1 for genesis or unknown
	target   []int64  // per partition: the end offsets captured at start
	ready    bool
	ends     []int64                        // per partition: the last stable offsets, read every lagPeriod
	stopped  []string                       // per partition: why it stopped ("" if it did not)
	progress chan struct{}                  // closed and replaced after every batch
	watchers map[string]map[*watch]struct{} // by subject, woken once; guarded by wmu
	wmu      sync.Mutex
	metrics  atomic.Pointer[metrics] // set by RegisterMetrics
	rejected [kinds]atomic.Int64     // records rejected, by kind
	hashes   fileHashes              // of the tables snapshots carry
	// lastBatch is the data of the last batch that Pebble took as a
	// memtable of its own, until the runner is ready (settle); guarded by
	// applyMu.
	lastBatch weak.Pointer[byte]
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
	// Tables of records a crash left before they were ingested.
	if err := os.RemoveAll(filepath.Join(cfg.Dir, ingestDir)); err != nil {
		return nil, fmt.Errorf("projection: %w", err)
	}
	opts := storeOptions(pebbleLogger{log.With("store", cfg.Dir)})
	db, err := pebble.Open(cfg.Dir, opts)
	if err != nil {
		return nil, fmt.Errorf("projection: open %s: %w", cfg.Dir, err)
	}
	opts.EnsureDefaults()
	plain, _ := cfg.Handler.(PlainBatcher)
	keeper, _ := cfg.Handler.(RecordKeeper)
	r := &Runner{
		cfg:      cfg,
		db:       db,
		opts:     opts,
		keeper:   keeper != nil && keeper.KeepsRecords(),
		plain:    plain != nil && plain.PlainBatch(),
		log:      log,
		progress: make(chan struct{}),
		watchers: make(map[string]map[*watch]struct{}),
		stopped:  make([]string, cfg.Partitions),
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

// Run consumes the events topic until ctx ends. It returns nil when ctx is
// done, or the error that stopped it. Every goroutine it starts has ended
// when it returns.
func (r *Runner) Run(ctx context.Context) error {
	if r.cfg.Keys.Len() == 0 {
		return errors.New("projection: no decider public keys (Config.Keys): nothing could be authenticated; set ASSENT_SEAL_KEYS_FILE")
	}
	adminClient, err := eventlog.NewClient(r.cfg.Kafka)
	if err != nil {
		return fmt.Errorf("projection: kafka client: %w", err)
	}
	defer adminClient.Close()
	adm := newAdmin(adminClient)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		r.watchEnds(gctx, adm)
		return nil
	})
	g.Go(func() error {
		for {
			if err := r.prepareRetrying(gctx, adm); err != nil {
				if gctx.Err() != nil {
					return nil // stopped while starting: not a failure
				}
				return err
			}
			err := r.consume(gctx)
			if !errors.Is(err, errLogReset) {
				return err
			}
			r.log.Warn("the events log went back behind the store; rebuilding from the start", "err", err)
			if err := r.wipe(); err != nil {
				return err
			}
		}
	})
	// An error of the consumer cancels gctx, which ends the reader of end
	// offsets; so does ctx.
	return g.Wait()
}

// errLogReset means the log is behind the store: the topic was truncated
// or recreated.
var errLogReset = errors.New("projection: the log is behind the store")

package projection

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/wire"
)

func newAdmin(cl *kgo.Client) *kadm.Client { return kadm.NewClient(cl) }

// lagPeriod is how often the last stable offsets are read for Lag.
const lagPeriod = 5 * time.Second

// watchEnds keeps the last stable offset of every partition fresh, for
// Lag, until ctx ends. It reads the last stable offset, not the high
// watermark, because a transaction's commit marker makes the high
// watermark one ahead of what any read_committed consumer can ever apply.
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
// read, as of the last reading of the end offsets (every few seconds); -1
// before the first reading.
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
	switch {
	case !ok:
		return fmt.Errorf("projection: topic %s is missing; provision it with assent-kafka provision", r.cfg.Topic)
	case td.Err != nil:
		return fmt.Errorf("projection: topic %s is missing (%w); provision it with assent-kafka provision", r.cfg.Topic, td.Err)
	}
	if got := int32(len(td.Partitions)); got != r.cfg.Partitions { //nolint:gosec // a partition count from metadata fits int32
		return permanentError{fmt.Errorf("projection: %s has %d partitions, configured for %d; they must match", r.cfg.Topic, got, r.cfg.Partitions)}
	}
	identity := identity(md.Cluster, td.ID.String(), r.cfg.Handler)
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
		r.log.Warn("the store belongs to another cluster or topic incarnation, or another layout; rebuilding", "stored", string(stored), "now", identity)
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
		switch {
		case !ok:
			return fmt.Errorf("projection: end offset of %s/%d: %w", r.cfg.Topic, p, errNoLeader)
		case end.Err != nil:
			return fmt.Errorf("projection: end offset of %s/%d: %w: %w", r.cfg.Topic, p, errNoLeader, end.Err)
		}
		if r.Next(p) > end.Offset {
			ahead = true
		}
		lso, ok := stable.Lookup(r.cfg.Topic, p)
		switch {
		case !ok:
			return fmt.Errorf("projection: no stable offset listed for %s/%d", r.cfg.Topic, p)
		case lso.Err != nil:
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

// consume reads every partition from where the store resumes, with
// read_committed and the transaction markers kept (the authenticator needs
// them to know a transaction ended), and applies each poll: it decodes a
// poll while the one before is committed (apply.go).
func (r *Runner) consume(ctx context.Context) error {
	start := make(map[int32]kgo.Offset, r.cfg.Partitions)
	for p := range r.cfg.Partitions {
		start[p] = kgo.NewOffset().At(r.Next(p))
	}
	cl, err := eventlog.NewClient(r.cfg.Kafka,
		kgo.KeepControlRecords(),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{r.cfg.Topic: start}),
		kgo.FetchMaxWait(time.Second),
		// Fetches large enough for a rebuild to read at the brokers' pace,
		// bounded so that what is buffered stays small: franz-go buffers a
		// fetch per broker, of at most fetchMaxBytes as stored, which is
		// compressed (the events compress about tenfold with zstd).
		kgo.FetchMaxBytes(fetchMaxBytes),
		kgo.FetchMaxPartitionBytes(fetchPartitionBytes),
		// An offset out of range is reported, never answered by a reset:
		// franz-go otherwise resumes at the log start, without a data loss
		// error, when the offset asked for is below it (records deleted
		// before this replica read them).
		kgo.ConsumeResetOffset(kgo.NoResetOffset()),
	)
	if err != nil {
		return fmt.Errorf("projection: kafka client: %w", err)
	}
	defer cl.Close()
	pause := func(stopped map[int32]string) {
		if len(stopped) == 0 {
			return
		}
		var ps []int32
		for p, why := range stopped {
			ps = append(ps, p)
			r.log.Error("stopped reading a partition of the events topic: records are missing; see docs/runbook.md#assentprojectionstopped",
				"partition", p, "reason", why)
		}
		cl.PauseFetchPartitions(map[string][]int32{r.cfg.Topic: ps})
	}
	pause(r.Stopped())
	r.applyMu.Lock()
	st := r.decodeState()
	r.applyMu.Unlock()
	st.stopPartitions(r.Stopped())

	return r.pipeline(ctx, st, func(ctx context.Context) ([]wire.Record, error) {
		fetches := cl.PollRecords(ctx, r.cfg.BatchRecords)
		if ctx.Err() != nil {
			return nil, nil
		}
		lost := map[int32]string{}
		fetches.EachError(func(topic string, p int32, err error) {
			// Data loss means records were skipped (the broker's log start
			// moved past what was asked for, or a truncation): never paper
			// over it. Anything else franz-go retries.
			var loss *kgo.ErrDataLoss
			if errors.As(err, &loss) {
				lost[p] = fmt.Sprintf("data loss reported by the client: %v", err)
				return
			}
			if errors.Is(err, kerr.OffsetOutOfRange) {
				at := int64(-1)
				if p >= 0 && p < r.cfg.Partitions {
					at = st.next[p]
				}
				lost[p] = fmt.Sprintf("offset %d is out of range (records before the log start were deleted, or the log was truncated): %v", at, err)
				return
			}
			r.log.Warn("fetch error; franz-go retries", "partition", p, "err", err)
		})
		if len(lost) > 0 {
			st.stopPartitions(lost)
			r.stop(lost)
			pause(lost)
		}
		recs := make([]wire.Record, 0, fetches.NumRecords())
		fetches.EachRecord(func(rec *kgo.Record) {
			if rec.Topic == r.cfg.Topic {
				recs = append(recs, eventlog.WireRecord(rec))
			}
		})
		return recs, nil
	}, pause)
}

// pipeline applies what poll returns until ctx ends or poll or a commit
// fails: it decodes each poll (in the calling goroutine, like poll) while
// another goroutine commits the one before. pause is told of the
// partitions a poll stopped at a gap.
func (r *Runner) pipeline(ctx context.Context, st *decodeState, poll func(context.Context) ([]wire.Record, error), pause func(map[int32]string)) error {
	g, gctx := errgroup.WithContext(ctx)
	// Unbuffered: the poller decodes the next poll while this one is
	// committed, and no further: two polls in memory at most.
	ready := make(chan *decoded)
	g.Go(func() error {
		for d := range ready {
			if err := r.commit(d); err != nil {
				return err
			}
		}
		return nil
	})
	g.Go(func() error {
		defer close(ready)
		for gctx.Err() == nil {
			recs, err := poll(gctx)
			if err != nil {
				return err
			}
			if len(recs) == 0 {
				continue
			}
			d, err := r.decode(st, recs)
			if err != nil {
				return err
			}
			pause(d.stopped)
			select {
			case ready <- d:
			case <-gctx.Done():
			}
		}
		return nil
	})
	return g.Wait()
}

// Fetch sizes of the consumer (see consume).
const (
	fetchMaxBytes       = 1 << 20
	fetchPartitionBytes = 512 << 10
)

// FetchLimits are the fetch sizes of the runner's consumer, for the other
// readers of the events topic that may read much of it at once (the
// consumer groups of the gateway and the notifier, which a new group
// starts at the log's start): franz-go's defaults buffer up to 50 MiB a
// broker as stored, which is compressed, about ten times that once the
// zstd batches are decompressed (docs/benchmarks.md, "Memory").
func FetchLimits() []kgo.Opt {
	return []kgo.Opt{kgo.FetchMaxBytes(fetchMaxBytes), kgo.FetchMaxPartitionBytes(fetchPartitionBytes)}
}

// stop marks partitions stopped for good (until an operator acts).
func (r *Runner) stop(why map[int32]string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for p, reason := range why {
		if p >= 0 && p < r.cfg.Partitions && r.stopped[p] == "" {
			r.stopped[p] = reason
			r.rejected[kindGap].Add(1)
		}
	}
}

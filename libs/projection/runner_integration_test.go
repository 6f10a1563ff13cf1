package projection_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/logadmin"
	"github.com/assent-dev/assent/libs/projection"
	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/test/kafkatest"
)

// checkApplied requires that the handler was given exactly the committed
// records, each with its exact value, hash and chain link, and that the
// runner's offsets and heads match the log.
func checkApplied(t *testing.T, rr *running, h *recorder, pr *producer, lso []int64) {
	t.Helper()
	got := h.applied()
	require.Len(t, got, len(pr.committed), "the handler saw every committed event once")
	for at, v := range pr.committed {
		e, ok := got[at]
		require.True(t, ok, "committed event %s was not applied", at)
		require.Equal(t, v, e.Value, "value of %s", at)
		require.Equal(t, wire.Hash(v), e.Hash, "hash of %s", at)
		require.Equal(t, e.Envelope.PrevHash, e.PrevHead, "chain link of %s", at)
	}
	for at := range pr.aborted {
		require.NotContains(t, got, at, "aborted event %s reached the handler", at)
	}
	for p, off := range lso {
		require.Equal(t, off, rr.Next(int32(p)), "Next(%d) is the last stable offset", p)
		want := wire.GenesisHash
		if last, ok := pr.last[int32(p)]; ok {
			want = wire.Hash(pr.committed[last])
			require.Greater(t, off, last.off+1, "partition %d: the commit marker after the last seal is counted", p)
		}
		require.Equal(t, want, rr.Head(int32(p)), "Head(%d) is the hash of the last committed record, a seal", p)
	}
}

// TestIntegrationRunnerAppliesCommittedOnce: events committed in several
// transactions across every partition, one transaction aborted, some
// produced before the runner starts and some while it runs, are applied
// exactly once, and the aborted ones never.
func TestIntegrationRunnerAppliesCommittedOnce(t *testing.T) {
	t.Parallel()
	const parts = 3
	spec := kafkatest.NewTopics(t, parts)
	adm := kafkatest.NewAdmin(t)
	subs := flat(subjects("req", parts, 3))
	pr := newProducer(t, spec.Events, parts)

	pr.txn(true, subs[:5]...)
	h := newRecorder(t)
	r := openRunner(t, t.TempDir(), spec.Events, parts, h, nil)
	reg := prometheus.NewRegistry()
	r.RegisterMetrics(reg, func() float64 { return 7 })
	rr := run(t, r)
	pr.txn(true, subs[5:]...)
	pr.txn(false, subs...) // every partition gets an aborted run
	pr.txn(true, subs[0], subs[4], subs[8])

	lso := stableOffsets(t, adm, spec.Events, parts)
	rr.waitOffsets(t, lso)
	require.True(t, rr.Ready())
	checkApplied(t, rr, h, pr, lso)

	// The partition's events, in order, form the chain the producer wrote.
	for p := range int32(parts) {
		head := wire.GenesisHash
		for _, e := range h.inOrder() {
			if e.Partition != p {
				continue
			}
			require.Equal(t, head, e.PrevHead, "PrevHead of %d@%d", e.Partition, e.Offset)
			head = e.Hash
		}
		require.Equal(t, head, rr.Head(p))
	}

	// Lag is measured against the last stable offsets, so the commit
	// markers do not leave it at one per partition.
	require.Eventually(t, func() bool { return rr.Lag() == 0 }, 3*projection.LagPeriod, 50*time.Millisecond, "lag %d", rr.Lag())

	// The metrics every service exports for its projection say the same.
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(fmt.Sprintf(`
# HELP assent_consistency_violations_total Records a projection did not apply (kind: unauthenticated, invalid, gap) or could not fold (fold), or other broken invariants it found (should read zero).
# TYPE assent_consistency_violations_total counter
assent_consistency_violations_total{kind="fold"} 7
assent_consistency_violations_total{kind="gap"} 0
assent_consistency_violations_total{kind="invalid"} 0
assent_consistency_violations_total{kind="unauthenticated"} 0
# HELP assent_projection_lag_records Committed event records not yet applied to this replica's projection (-1 before the first reading).
# TYPE assent_projection_lag_records gauge
assent_projection_lag_records 0
# HELP assent_projection_records_total Event records applied to the projection.
# TYPE assent_projection_records_total counter
assent_projection_records_total %d
`, len(pr.committed))), "assent_projection_records_total", "assent_projection_lag_records", "assent_consistency_violations_total"))
	require.Positive(t, gatherHistogramCount(t, reg, "assent_projection_apply_seconds"), "every applied batch is timed")
}

// gatherHistogramCount returns the sample count of the named histogram.
func gatherHistogramCount(t *testing.T, reg *prometheus.Registry, name string) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	t.Fatalf("%s is not registered", name)
	return 0
}

// TestIntegrationRunnerReadyAfterBacklog: a runner started on a log that
// already holds events is ready only once it has applied all of them, and
// a transaction still open when it starts does not hold readiness back.
func TestIntegrationRunnerReadyAfterBacklog(t *testing.T) {
	t.Parallel()
	const parts = 3
	spec := kafkatest.NewTopics(t, parts)
	adm := kafkatest.NewAdmin(t)
	subs := flat(subjects("req", parts, 10))
	pr := newProducer(t, spec.Events, parts)
	const rounds = 20
	for range rounds {
		pr.txn(true, subs...)
	}
	backlog := len(pr.committed)
	require.Equal(t, rounds*(len(subs)+parts), backlog, "every transaction wrote a seal per partition")
	lso := stableOffsets(t, adm, spec.Events, parts)

	// A transaction left open in partition 0: the runner cannot read past
	// it, and must not wait for it.
	open := kafkatest.NewClient(t, kgo.TransactionalID("projection-test-open-"+wire.NewID(time.Now())))
	require.NoError(t, open.BeginTransaction())
	env := wire.Envelope{ID: wire.NewID(time.Now()), Source: "assent/decider", Type: "dev.assent.vote.recorded",
		Subject: subjects("req", parts, 1)[0][0], Time: time.Now(), Sequence: "1000", PrevHash: pr.head(0)}
	openRec, err := eventlog.NewRecord(spec.Events, env)
	require.NoError(t, err)
	require.NoError(t, open.ProduceSync(t.Context(), openRec).FirstErr())
	require.Equal(t, int32(0), openRec.Partition)
	sealEnv, err := wire.NewSeal(pr.signer, "assent/decider", spec.Events, 0, pr.head(0), wire.Hash(openRec.Value), 1, time.Now())
	require.NoError(t, err)
	sealRec, err := eventlog.NewRecord(spec.Events, sealEnv)
	require.NoError(t, err)
	sealRec.Partition = 0
	require.NoError(t, open.ProduceSync(t.Context(), sealRec).FirstErr())

	h := newRecorder(t)
	type seen struct {
		applied int
		ready   bool
	}
	var (
		mu           sync.Mutex
		observations []seen
		r            *projection.Runner
	)
	r = openRunner(t, t.TempDir(), spec.Events, parts, h, func(projection.BatchStats) {
		mu.Lock()
		defer mu.Unlock()
		observations = append(observations, seen{h.count(), r.Ready()})
	}, 25) // small batches, so that readiness is observed between them
	require.False(t, r.Ready(), "not ready before Run")
	rr := run(t, r)
	eventually(t, "the runner to be ready", rr.Ready)
	require.Equal(t, backlog, h.count(), "ready means the backlog is applied")
	for p, off := range lso {
		require.Equal(t, off, rr.Next(int32(p)))
	}
	mu.Lock()
	require.GreaterOrEqual(t, len(observations), backlog/25, "the backlog took many batches")
	for _, o := range observations {
		require.Equal(t, o.applied >= backlog, o.ready, "after %d of %d events, ready is %v", o.applied, backlog, o.ready)
	}
	mu.Unlock()

	// Once the open transaction commits, its event follows.
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	defer cancel()
	require.NoError(t, open.EndTransaction(ctx, kgo.TryCommit))
	lso = stableOffsets(t, adm, spec.Events, parts)
	rr.waitOffsets(t, lso)
	require.Equal(t, backlog+2, h.count(), "the event and its seal")
	require.Contains(t, h.applied(), pos{0, openRec.Offset})
	require.Equal(t, wire.Hash(sealRec.Value), rr.Head(0))
}

// TestIntegrationRunnerRestart: stopping, closing and reopening the store,
// with new events (committed and aborted) in between, applies nothing
// twice and misses nothing; what the store holds matches the log.
func TestIntegrationRunnerRestart(t *testing.T) {
	t.Parallel()
	const parts = 3
	spec := kafkatest.NewTopics(t, parts)
	adm := kafkatest.NewAdmin(t)
	subs := flat(subjects("req", parts, 4))
	pr := newProducer(t, spec.Events, parts)
	h := newRecorder(t) // shared across runs: a repeat fails the test
	dir := t.TempDir()

	pr.txn(true, subs...)
	pr.txn(false, subs[:6]...)
	rr := run(t, openRunner(t, dir, spec.Events, parts, h, nil))
	lso := stableOffsets(t, adm, spec.Events, parts)
	rr.waitOffsets(t, lso)
	rr.stop(t)
	next, heads := make([]int64, parts), make([]string, parts)
	for p := range int32(parts) {
		next[p], heads[p] = rr.Next(p), rr.Head(p)
	}

	pr.txn(true, subs[3:]...)
	pr.txn(false, subs...)
	pr.txn(true, subs[:2]...)

	r := openRunner(t, dir, spec.Events, parts, h, nil)
	for p := range int32(parts) {
		require.Equal(t, next[p], r.Next(p), "Next(%d) survives a restart", p)
		require.Equal(t, heads[p], r.Head(p), "Head(%d) survives a restart", p)
	}
	rr = run(t, r)
	lso = stableOffsets(t, adm, spec.Events, parts)
	rr.waitOffsets(t, lso)
	checkApplied(t, rr, h, pr, lso)
	require.Equal(t, pr.committed, stored(t, rr.DB()), "the store holds exactly the committed events")
	rr.stop(t)

	// A restart with nothing new is ready at once and applies nothing.
	before := h.count()
	rr = run(t, openRunner(t, dir, spec.Events, parts, h, nil))
	eventually(t, "the runner to be ready", rr.Ready)
	require.Equal(t, before, h.count())
	checkApplied(t, rr, h, pr, lso)
}

// TestIntegrationRunnerWipesOnTopicRecreate: a store built from one
// incarnation of the events topic is wiped and rebuilt when the topic is
// deleted and created again under the same name, even though its offsets
// are not ahead of the new log.
func TestIntegrationRunnerWipesOnTopicRecreate(t *testing.T) {
	t.Parallel()
	const parts = 2
	spec := kafkatest.NewTopics(t, parts)
	adm := kafkatest.NewAdmin(t)
	subs := flat(subjects("req", parts, 3))
	dir := t.TempDir()

	old := newProducer(t, spec.Events, parts)
	old.txn(true, subs...)
	rr := run(t, openRunner(t, dir, spec.Events, parts, newRecorder(t), nil))
	rr.waitOffsets(t, stableOffsets(t, adm, spec.Events, parts))
	require.Equal(t, old.committed, stored(t, rr.DB()))
	rr.stop(t)

	ctx, cancel := context.WithTimeout(t.Context(), 2*waitLimit)
	defer cancel()
	md, err := adm.Metadata(ctx, spec.Events)
	require.NoError(t, err)
	oldID := md.Topics[spec.Events].ID
	configs := map[string]*string{}
	for k, v := range spec.Configs()[spec.Events] {
		configs[k] = kadm.StringPtr(v)
	}
	_, err = adm.DeleteTopic(ctx, spec.Events)
	require.NoError(t, err)
	eventually(t, "the topic to be created again", func() bool {
		_, err := adm.CreateTopic(ctx, parts, 3, configs, spec.Events)
		if errors.Is(err, kerr.TopicAlreadyExists) {
			return false // the old incarnation is still being deleted
		}
		require.NoError(t, err)
		return true
	})
	require.NoError(t, logadmin.PollReady(ctx, adm, 0, []string{spec.Events}, nil))
	eventually(t, "the new topic id to be known", func() bool {
		md, err := adm.Metadata(ctx, spec.Events)
		require.NoError(t, err)
		td := md.Topics[spec.Events]
		return td.Err == nil && td.ID != oldID && len(td.Partitions) == parts
	})

	// Twice as many events as before, so the stored offsets are behind the
	// new log, not ahead of it: only the identity can tell.
	fresh := newProducer(t, spec.Events, parts)
	fresh.txn(true, subs...)
	fresh.txn(true, subs...)
	lso := stableOffsets(t, adm, spec.Events, parts)

	h := newRecorder(t)
	rr = run(t, openRunner(t, dir, spec.Events, parts, h, nil))
	rr.waitOffsets(t, lso)
	checkApplied(t, rr, h, fresh, lso)
	for p := range int32(parts) {
		require.Contains(t, h.applied(), pos{p, 0}, "partition %d is read from offset 0 again", p)
	}
	require.Equal(t, fresh.committed, stored(t, rr.DB()), "the store holds only the new topic's events")
}

// TestIntegrationRunnerWipesWhenAheadOfLog: a store whose offsets are
// beyond the end of the log (as after a truncation) is wiped and rebuilt.
func TestIntegrationRunnerWipesWhenAheadOfLog(t *testing.T) {
	t.Parallel()
	const parts = 2
	spec := kafkatest.NewTopics(t, parts)
	adm := kafkatest.NewAdmin(t)
	subs := flat(subjects("req", parts, 2))
	dir := t.TempDir()
	pr := newProducer(t, spec.Events, parts)
	pr.txn(true, subs...)
	lso := stableOffsets(t, adm, spec.Events, parts)

	rr := run(t, openRunner(t, dir, spec.Events, parts, newRecorder(t), nil))
	rr.waitOffsets(t, lso)
	rr.stop(t)

	// Pretend partition 1 was applied far past the end, with a stray key.
	db, err := pebble.Open(dir, &pebble.Options{})
	require.NoError(t, err)
	require.NoError(t, db.Set(projection.KeyOffset(1), projection.EncodeInt64(lso[1]+100), pebble.Sync))
	require.NoError(t, db.Set(recordKey(1, lso[1]+99), []byte("stray"), pebble.Sync))
	require.NoError(t, db.Close())

	h := newRecorder(t)
	r := openRunner(t, dir, spec.Events, parts, h, nil)
	require.Equal(t, lso[1]+100, r.Next(1))
	done, cancel := context.WithCancel(t.Context())
	cancel()
	require.ErrorIs(t, r.WaitOffset(done, 1, lso[1]), context.Canceled,
		"the stale offset does not satisfy a waiter before Run has checked it")
	rr = run(t, r)
	rr.waitOffsets(t, lso)
	checkApplied(t, rr, h, pr, lso)
	require.Equal(t, pr.committed, stored(t, rr.DB()), "the stray key went with the wipe")
}

// TestIntegrationRunnerWatch: a watcher is woken by the batch that applies
// its subject, and the state is readable when it wakes; other subjects'
// watchers and stopped watchers are not woken.
func TestIntegrationRunnerWatch(t *testing.T) {
	t.Parallel()
	const parts = 3
	spec := kafkatest.NewTopics(t, parts)
	pr := newProducer(t, spec.Events, parts)
	rr := run(t, openRunner(t, t.TempDir(), spec.Events, parts, newRecorder(t), nil))
	eventually(t, "the runner to be ready", rr.Ready)

	const subject, other = "req-watched", "req-unrelated"
	woken, stop := rr.Watch(subject)
	defer stop()
	otherWoken, stopOther := rr.Watch(other)
	defer stopOther()
	stopped, stopStopped := rr.Watch(subject)
	stopStopped()

	_, closer, err := rr.DB().Get(subjectKey(subject))
	require.ErrorIs(t, err, pebble.ErrNotFound, "nothing is applied yet")
	if closer != nil {
		_ = closer.Close()
	}
	recs := pr.txn(true, subject)

	select {
	case <-woken:
	case <-time.After(waitLimit):
		t.Fatal("the watcher was not woken")
	}
	v, closer, err := rr.DB().Get(subjectKey(subject))
	require.NoError(t, err, "the event that woke the watcher is readable")
	require.Equal(t, recs[0].Value, v)
	require.NoError(t, closer.Close())
	require.GreaterOrEqual(t, rr.Next(recs[0].Partition), recs[0].Offset+1)

	select {
	case <-otherWoken:
		t.Fatal("a watcher of another subject was woken")
	case <-stopped:
		t.Fatal("a stopped watcher was woken")
	default:
	}

	// WaitOffset gives up with its context.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	require.ErrorIs(t, rr.WaitOffset(ctx, 0, 1<<40), context.Canceled)
}

// TestIntegrationRunnerRefusesPartitionMismatch: a runner configured for
// another partition count, or for a topic that does not exist, refuses to
// run, with an error that says why.
func TestIntegrationRunnerRefusesPartitionMismatch(t *testing.T) {
	t.Parallel()
	spec := kafkatest.NewTopics(t, 2)
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	defer cancel()

	for _, configured := range []int32{1, 3} {
		r := openRunner(t, t.TempDir(), spec.Events, configured, newRecorder(t), nil)
		err := r.Run(ctx)
		require.Error(t, err)
		require.ErrorContains(t, err, "has 2 partitions, configured for")
		require.ErrorContains(t, err, spec.Events)
		require.False(t, r.Ready())
		require.NoError(t, r.Close())
	}

	r := openRunner(t, t.TempDir(), spec.Events+".missing", 2, newRecorder(t), nil)
	err := r.Run(ctx)
	require.ErrorContains(t, err, "is missing")
	require.NoError(t, r.Close())
}

// TestIntegrationRunnerSkipsInvalidRecords: records that are not valid
// Assent CloudEvents are counted and skipped; the runner keeps going, the
// events after them apply, and the chain head still covers every record.
func TestIntegrationRunnerSkipsInvalidRecords(t *testing.T) {
	t.Parallel()
	const parts = 3
	spec := kafkatest.NewTopics(t, parts)
	adm := kafkatest.NewAdmin(t)
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	defer cancel()
	const subject = "req-after-garbage"
	p := wire.Partition([]byte(subject), parts)

	var (
		mu      sync.Mutex
		invalid int
	)
	h := newRecorder(t)
	rr := run(t, openRunner(t, t.TempDir(), spec.Events, parts, h, func(s projection.BatchStats) {
		mu.Lock()
		defer mu.Unlock()
		invalid += s.Invalid
	}))
	eventually(t, "the runner to be ready", rr.Ready)

	plain := kafkatest.NewClient(t)
	valid := wire.Envelope{ID: wire.NewID(time.Now()), Source: "assent/decider", Type: "dev.assent.vote.recorded",
		Subject: "req-someone-else", Time: time.Now()}
	wrongKey, err := eventlog.NewRecord(spec.Events, valid)
	require.NoError(t, err)
	wrongKey.Key = []byte(subject) // keyed by one request, about another
	garbage := []*kgo.Record{
		{Topic: spec.Events, Key: []byte(subject), Value: []byte("\x00not a cloud event")},
		{Topic: spec.Events, Key: []byte(subject), Value: []byte(`{"specversion":`),
			Headers: []kgo.RecordHeader{{Key: wire.HeaderContentType, Value: []byte(wire.ContentType)}}},
		wrongKey,
	}
	require.NoError(t, plain.ProduceSync(ctx, garbage...).FirstErr())
	for _, g := range garbage {
		require.Equal(t, p, g.Partition)
	}
	pr := newProducer(t, spec.Events, parts)
	// The deciders' chain runs through authenticated records only: the
	// garbage is not part of it.
	pr.txn(true, subject, subject)

	lso := stableOffsets(t, adm, spec.Events, parts)
	rr.waitOffsets(t, lso)
	select {
	case <-rr.exited:
		t.Fatalf("Run stopped: %v", rr.err)
	default:
	}
	checkApplied(t, rr, h, pr, lso)
	for _, g := range garbage {
		require.NotContains(t, h.applied(), pos{g.Partition, g.Offset})
	}
	mu.Lock()
	require.Equal(t, len(garbage), invalid)
	mu.Unlock()
}

// versioned is a recorder that names its layout.
type versioned struct {
	*recorder
	v string
}

func (h versioned) Version() string { return h.v }

// TestIntegrationRunnerWipesOnHandlerVersionChange: a store written by a
// handler with another layout is rebuilt; the same layout is kept.
func TestIntegrationRunnerWipesOnHandlerVersionChange(t *testing.T) {
	t.Parallel()
	const parts = 2
	spec := kafkatest.NewTopics(t, parts)
	adm := kafkatest.NewAdmin(t)
	pr := newProducer(t, spec.Events, parts)
	pr.txn(true, flat(subjects("req", parts, 2))...)
	lso := stableOffsets(t, adm, spec.Events, parts)
	dir := t.TempDir()

	for i, v := range []string{"", "v1", "v1", "v2"} {
		h := newRecorder(t)
		var handler projection.Handler = h
		if v != "" {
			handler = versioned{h, v}
		}
		rr := run(t, openRunner(t, dir, spec.Events, parts, handler, nil))
		rr.waitOffsets(t, lso)
		if i == 2 {
			require.Zero(t, h.count(), "the same version keeps the store")
		} else {
			checkApplied(t, rr, h, pr, lso)
		}
		require.Equal(t, pr.committed, stored(t, rr.DB()))
		rr.stop(t)
	}
}

// TestIntegrationRunnerStopsWhenRecordsWereDeleted: records of partition 0
// were deleted before a replica read them (the log start moved past the
// offset it resumes at). Neither a replica whose store is behind the new
// log start nor one with an empty store may resume at the log start as if
// nothing were missing (issue 13, item 4): each stops partition 0, is not
// ready, and applies partition 1 in full.
func TestIntegrationRunnerStopsWhenRecordsWereDeleted(t *testing.T) {
	t.Parallel()
	const parts = 2
	spec := kafkatest.NewTopics(t, parts)
	adm := kafkatest.NewAdmin(t)
	subs := flat(subjects("req", parts, 1))
	dir := t.TempDir()
	pr := newProducer(t, spec.Events, parts)
	pr.txn(true, subs...)
	rr := run(t, openRunner(t, dir, spec.Events, parts, newRecorder(t), nil))
	rr.waitOffsets(t, stableOffsets(t, adm, spec.Events, parts))
	rr.stop(t)

	pr.txn(true, subs...)
	var deleteTo int64 = -1
	for _, rec := range pr.txn(true, subs...) {
		if rec.Partition == 0 {
			deleteTo = rec.Offset
		}
	}
	require.Positive(t, deleteTo)
	lso := stableOffsets(t, adm, spec.Events, parts)
	var o kadm.Offsets
	o.Add(kadm.Offset{Topic: spec.Events, Partition: 0, At: deleteTo})
	resp, err := adm.DeleteRecords(t.Context(), o)
	require.NoError(t, err)
	require.NoError(t, resp.Error())

	for _, store := range []struct{ name, dir string }{{"behind the log start", dir}, {"empty", t.TempDir()}} {
		rr := run(t, openRunner(t, store.dir, spec.Events, parts, newRecorder(t), nil))
		eventually(t, "a replica with a store "+store.name+" to stop partition 0", func() bool { return rr.Stopped()[0] != "" })
		t.Logf("store %s: partition 0 stopped: %s", store.name, rr.Stopped()[0])
		ctx, cancel := rr.waitCtx(t)
		require.NoError(t, rr.WaitOffset(ctx, 1, lso[1]), "partition 1 is applied")
		cancel()
		require.False(t, rr.Ready(), "a replica that stopped a partition is not ready")
		require.Len(t, rr.Stopped(), 1)
		rr.stop(t)
	}
}

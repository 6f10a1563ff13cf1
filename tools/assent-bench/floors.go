package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/assent-dev/assent/libs/eventlog"
)

// The floors of issue 14, item 1, each measured at the latency run's
// offered rate, on the same cluster in the same run as Assent:
//   (a) an acks=all produce, then a read of that record;
//   (b) a one-record transaction (produce + commit), then a read_committed
//       read of it;
//   (c) the transactional consume->produce copy (copier, bench.go).
// Assent's decision is, at least, a command produced (a) and a transaction
// that decides it (b); the goals compare against their sum.

// Floor (b)'s transactional producers run one transaction at a time each,
// so it needs about rate x a transaction's latency of them, and a
// transaction's tail is long on a busy machine: it starts
// floorTxnProducers, each with its producer id and one transaction done
// before the measurement (opening them during it put SASL handshakes and
// InitProducerID into the samples: p99 3.1s against 0.33s, same cluster,
// 200/s for 5s). It opens more,
// up to floorTxnProducersMax, only when an arrival finds none free; past
// that, an arrival waits for a free one. Either way the cost is in that
// arrival's sample. An arrival takes the producer freed last (txnPool):
// the fewest producers stay busy, and the idle ones cost the brokers only
// their metadata refreshes.
const (
	floorTxnProducers    = 128
	floorTxnProducersMax = 192
)

// txnPool is floor (b)'s free producers, last in first out.
type txnPool struct {
	mu    sync.Mutex
	free  []*kgo.Client
	freed chan struct{} // a token for each put, for those waiting
}

func newTxnPool(n int) *txnPool { return &txnPool{freed: make(chan struct{}, n)} }

// take returns the producer freed last, or nil if none is free.
func (p *txnPool) take() *kgo.Client {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.free) == 0 {
		return nil
	}
	cl := p.free[len(p.free)-1]
	p.free = p.free[:len(p.free)-1]
	return cl
}

// wait returns a free producer once one is put back, or ctx's error.
func (p *txnPool) wait(ctx context.Context) (*kgo.Client, error) {
	for {
		if cl := p.take(); cl != nil {
			return cl, nil
		}
		select {
		case <-p.freed:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (p *txnPool) put(cl *kgo.Client) {
	p.mu.Lock()
	p.free = append(p.free, cl)
	p.mu.Unlock()
	select {
	case p.freed <- struct{}{}:
	default: // as many tokens as producers: a waiter finds one anyway
	}
}

// stampReader reads a topic (read_committed, from its end) whose record
// values are the send time in UnixNano. While recording, it keeps each
// record's latency; it closes a waiter registered under a record's key
// when that record arrives.
type stampReader struct {
	cl        *kgo.Client
	arrived   atomic.Int64
	recording atomic.Bool
	waiters   sync.Map // key -> chan struct{}
	mu        sync.Mutex
	lat       []time.Duration
	lastRead  time.Time // of the last latency recorded
}

func newStampReader(ctx context.Context, kcfg eventlog.Config, topic string) (*stampReader, error) {
	opts, err := kcfg.Opts(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()), kgo.FetchMaxWait(time.Second))
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	r := &stampReader{cl: cl}
	go func() {
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			now := time.Now()
			fs.EachRecord(func(rec *kgo.Record) {
				r.arrived.Add(1)
				if ch, ok := r.waiters.LoadAndDelete(string(rec.Key)); ok {
					close(ch.(chan struct{}))
				}
				if r.recording.Load() && len(rec.Value) == 8 {
					sent := time.Unix(0, int64(binary.BigEndian.Uint64(rec.Value))) //nolint:gosec // G115: the bits the sender wrote from UnixNano, read back
					r.mu.Lock()
					r.lat = append(r.lat, now.Sub(sent))
					r.lastRead = now
					r.mu.Unlock()
				}
			})
		}
	}()
	return r, nil
}

func (r *stampReader) close() { r.cl.Close() }

// take returns the latencies recorded so far and forgets them.
func (r *stampReader) take() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.lat
	r.lat = nil
	return l
}

// await registers key and returns a channel closed when it arrives.
func (r *stampReader) await(key string) chan struct{} {
	ch := make(chan struct{})
	r.waiters.Store(key, ch)
	return ch
}

func stamp() []byte { return binary.BigEndian.AppendUint64(nil, uint64(time.Now().UnixNano())) }

// warm sends until the reader has seen a record (the reader has its
// partitions, the path is open), bounded by 60s, then lets it settle.
func warm(ctx context.Context, r *stampReader, what string, send func(i int) error) error {
	deadline := time.Now().Add(60 * time.Second)
	for i := 0; r.arrived.Load() == 0; i++ {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("floor %s: nothing read in 60s", what)
		}
		if err := send(i); err != nil {
			return fmt.Errorf("floor %s: %w", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	return nil
}

// measureAt sends at cfg.rate for cfg.duration and returns the reader's
// latencies once every record sent has been read (bounded: 30s after the
// last send), so that the slowest are not left out.
// It also returns the rate achieved: records read over the time from the
// first send to the last read.
func measureAt(ctx context.Context, cfg config, r *stampReader, send func(i int) error) ([]time.Duration, float64, error) {
	_ = r.take()
	var sent atomic.Int64
	began := time.Now()
	r.recording.Store(true)
	err := paced(ctx, cfg.rate, cfg.duration, func(i int) error {
		if err := send(i); err != nil {
			return err
		}
		sent.Add(1)
		return nil
	})
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && ctx.Err() == nil; {
		r.mu.Lock()
		n := len(r.lat)
		r.mu.Unlock()
		if int64(n) >= sent.Load() {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.recording.Store(false)
	r.mu.Lock()
	last := r.lastRead
	r.mu.Unlock()
	lat := r.take()
	return lat, achievedRate(len(lat), last.Sub(began)), err
}

// achievedRate is n over span, 0 for no span.
func achievedRate(n int, span time.Duration) float64 {
	if span <= 0 {
		return 0
	}
	return float64(n) / span.Seconds()
}

// keptUp says a floor's run achieved at least 90% of the offered rate: if
// not, its samples are mostly queueing, and a goal against it means little.
func keptUp(achieved float64, offered int) bool { return achieved >= 0.9*float64(offered) }

// measureFloorA is floor (a): an acks=all produce, then a read of it.
func measureFloorA(ctx context.Context, kcfg eventlog.Config, cfg config, topic string) ([]time.Duration, float64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r, err := newStampReader(ctx, kcfg, topic)
	if err != nil {
		return nil, 0, err
	}
	defer r.close()
	prod, err := eventlog.NewClient(kcfg) // acks=all (eventlog.Config.Opts)
	if err != nil {
		return nil, 0, err
	}
	defer prod.Close()
	send := func(i int) error {
		return prod.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte(strconv.Itoa(i)), Value: stamp()}).FirstErr()
	}
	if err := warm(ctx, r, "(a)", send); err != nil {
		return nil, 0, err
	}
	return measureAt(ctx, cfg, r, send)
}

// measureFloorB is floor (b): a one-record transaction, produce and
// commit, then a read_committed read of it. The sample starts before the
// wait for a free transactional producer.
func measureFloorB(ctx context.Context, kcfg eventlog.Config, cfg config, topic, stampID string) ([]time.Duration, floorBInfo, error) {
	var info floorBInfo
	lat, rate, err := measureFloorBInto(ctx, kcfg, cfg, topic, stampID, &info)
	info.achieved = rate
	return lat, info, err
}

// floorBInfo explains floor (b)'s figure: how many transactional producers
// it used, and each transaction's produce+commit time alone (without the
// wait for a free producer, without the read).
type floorBInfo struct {
	producers int
	txn       []time.Duration
	achieved  float64
}

func measureFloorBInto(ctx context.Context, kcfg eventlog.Config, cfg config, topic, stampID string, info *floorBInfo) ([]time.Duration, float64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r, err := newStampReader(ctx, kcfg, topic)
	if err != nil {
		return nil, 0, err
	}
	defer r.close()
	pool := newTxnPool(floorTxnProducersMax)
	var mu sync.Mutex
	var all []*kgo.Client
	var txnMu sync.Mutex
	recordTxn := false
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		info.producers = len(all)
		for _, cl := range all {
			cl.Close()
		}
	}()
	// open makes another transactional producer, or returns nil at the
	// maximum.
	open := func() (*kgo.Client, error) {
		mu.Lock()
		defer mu.Unlock()
		if len(all) >= floorTxnProducersMax {
			return nil, nil
		}
		opts, err := kcfg.Opts(
			kgo.TransactionalID(fmt.Sprintf("assent-bench-onetxn-%s-%d", stampID, len(all))),
			kgo.TransactionTimeout(10*time.Second),
			kgo.ConcurrentTransactionsBackoff(txnBackoff()),
			kgo.MetadataMinAge(100*time.Millisecond), // as the deciders' (services/decider: metadataMinAge)
		)
		if err != nil {
			return nil, err
		}
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			return nil, err
		}
		all = append(all, cl)
		return cl, nil
	}
	for range floorTxnProducers {
		cl, err := open()
		if err != nil {
			return nil, 0, err
		}
		pool.put(cl)
	}
	txn := func(cl *kgo.Client, rec *kgo.Record) error {
		if err := cl.BeginTransaction(); err != nil {
			return err
		}
		perr := cl.ProduceSync(ctx, rec).FirstErr()
		commit := kgo.TryCommit
		if perr != nil {
			commit = kgo.TryAbort
		}
		if err := cl.EndTransaction(ctx, commit); err != nil {
			return errors.Join(perr, err)
		}
		return perr
	}
	send := func(i int) error {
		rec := &kgo.Record{Topic: topic, Key: []byte(strconv.Itoa(i)), Value: stamp()}
		cl := pool.take()
		if cl == nil {
			var err error
			if cl, err = open(); err != nil {
				return err
			}
			if cl == nil { // at the maximum: wait for a free one
				if cl, err = pool.wait(ctx); err != nil {
					return err
				}
			}
		}
		defer pool.put(cl)
		t0 := time.Now()
		err := txn(cl, rec)
		txnMu.Lock()
		if recordTxn && err == nil {
			info.txn = append(info.txn, time.Since(t0))
		}
		txnMu.Unlock()
		return err
	}
	// Every producer gets its producer id, and does one transaction,
	// before the measurement: all at once, each its own.
	warmErr := make(chan error, floorTxnProducers)
	for k := range floorTxnProducers {
		cl := pool.take()
		go func() {
			err := txn(cl, &kgo.Record{Topic: topic, Key: []byte("warm-" + strconv.Itoa(k)), Value: stamp()})
			pool.put(cl)
			warmErr <- err
		}()
	}
	for range floorTxnProducers {
		if err := <-warmErr; err != nil {
			return nil, 0, fmt.Errorf("floor (b): %w", err)
		}
	}
	if err := warm(ctx, r, "(b)", send); err != nil {
		return nil, 0, err
	}
	txnMu.Lock()
	recordTxn = true
	txnMu.Unlock()
	return measureAt(ctx, cfg, r, send)
}

// floorStats are a floor's percentiles for the table.
type floorStats struct {
	name     string
	p50, p99 time.Duration
	n        int
}

func statsOf(name string, lat []time.Duration) floorStats {
	return floorStats{name: name, p50: pct(lat, 50), p99: pct(lat, 99), n: len(slices.Clip(lat))}
}

// Package logread reads partitions of the events topic from given offsets
// up to the last stable offsets captured when the read starts, handing each
// partition's records, in order, to that partition's own goroutine. It is
// the auditor's one way to read the log: verify, export, state and the
// benchmark's bare read all go through it, so that they measure and see
// the same thing.
package logread

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/semaphore"

	"github.com/assent-dev/assent/libs/eventlog"
)

// Bounds are where a partition's read starts and ends.
type Bounds struct {
	Start int64 // the log start offset (the first offset still stored)
	End   int64 // the last stable offset: every committed record is below it
}

// Describe returns the bounds of every partition of topic, sorted by
// partition. A partition whose offsets cannot be listed is an error.
func Describe(ctx context.Context, adm *kadm.Client, topic string) (map[int32]Bounds, error) {
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("logread: start offsets of %s: %w", topic, err)
	}
	ends, err := adm.ListCommittedOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("logread: stable offsets of %s: %w", topic, err)
	}
	out := map[int32]Bounds{}
	var errs []error
	ends.Each(func(o kadm.ListedOffset) {
		if o.Topic != topic {
			return
		}
		if o.Err != nil {
			errs = append(errs, fmt.Errorf("partition %d: %w", o.Partition, o.Err))
			return
		}
		s, ok := starts.Lookup(topic, o.Partition)
		if !ok || s.Err != nil {
			errs = append(errs, fmt.Errorf("partition %d: no start offset", o.Partition))
			return
		}
		out[o.Partition] = Bounds{Start: s.Offset, End: o.Offset}
	})
	if len(errs) > 0 {
		return nil, fmt.Errorf("logread: %s: %w", topic, errors.Join(errs...))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("logread: topic %s not found; check ASSENT_EVENTS_TOPIC and the brokers", topic)
	}
	return out, nil
}

// Partitions returns the partitions of b in order.
func Partitions(b map[int32]Bounds) []int32 {
	ps := make([]int32, 0, len(b))
	for p := range b {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
	return ps
}

// Sink receives one partition's records in offset order, in batches, on a
// goroutine of its own. Control records (transaction markers) are passed
// on too: they tell that a transaction ended. The records must not be kept after Records returns unless
// copied (their values may be kept: franz-go allocates each).
type Sink interface {
	Records(recs []*kgo.Record) error
}

// MaxInFlight bounds the bytes of records (values, keys and recordOverhead
// each) that Read has handed to the sinks and they have not finished.
const MaxInFlight = 64 << 20

// maxChunk bounds the bytes of one hand-off to a sink. A partition's part
// of a fetch is cut into chunks of at most this, so that no partition
// holds the whole in-flight budget while the others wait for records:
// every sink has work while the reader waits for room, and the sinks run
// in parallel (one partition's records are checked in order, on one
// core).
const maxChunk = 1 << 20

// The fetch sizes: a partition's part of a fetch is at most
// fetchPartitionBytes of (compressed) batches, which decompress into
// several times as many bytes of records; franz-go holds one fetch per
// broker, decompressed, until it is polled. Smaller parts spread a fetch
// over more partitions, so more sinks have work at once, and bound what
// the reader holds (the default fetch sizes of 64 MiB, 8 MiB per
// partition, made verify hold over 2 GB and spend a third of its time in
// page faults).
const (
	fetchBytes          = 16 << 20
	fetchPartitionBytes = 1 << 20
)

// recordOverhead is what a *kgo.Record costs beyond its key and value.
const recordOverhead = 256

// Read reads each partition p in from, from offset from[p] up to (not
// including) to[p], handing the records to sinks[p]. It returns when every
// partition is read, a sink fails, or ctx ends. Records are read with
// read_committed; opts may add client options (fetch sizes).
func Read(ctx context.Context, cfg eventlog.Config, topic string, from, to map[int32]int64, sinks map[int32]Sink, opts ...kgo.Opt) error {
	start := map[int32]kgo.Offset{}
	for p, off := range from {
		if off < to[p] {
			start[p] = kgo.NewOffset().At(off)
		}
	}
	if len(start) == 0 {
		return nil
	}
	all := append([]kgo.Opt{
		kgo.KeepControlRecords(), // so that a partition visibly reaches its end offset
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: start}),
		kgo.FetchMaxBytes(fetchBytes),
		kgo.FetchMaxPartitionBytes(fetchPartitionBytes),
	}, opts...)
	cl, err := eventlog.NewClient(cfg, all...)
	if err != nil {
		return err
	}
	defer cl.Close()

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	type work struct {
		recs []*kgo.Record
		size int64
	}
	// The bytes handed to the sinks and not yet done are bounded: the
	// reader outruns the sinks, and the records it would hold otherwise
	// (up to the whole log) cost memory and garbage collection time.
	inFlight := semaphore.NewWeighted(MaxInFlight)
	chans := map[int32]chan work{}
	var wg sync.WaitGroup
	for p := range start {
		ch := make(chan work, 1024) // rarely full: the in-flight budget binds first
		chans[p] = ch
		wg.Add(1)
		go func() {
			defer wg.Done()
			for w := range ch {
				if ctx.Err() == nil { // else drain
					if err := sinks[p].Records(w.recs); err != nil {
						cancel(err)
					}
				}
				inFlight.Release(w.size)
			}
		}()
	}
	closeAll := func() {
		for _, ch := range chans {
			close(ch)
		}
		wg.Wait()
	}
	remaining := len(start)
	next := map[int32]int64{}
	for p, off := range from {
		next[p] = off
	}
	for remaining > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			break
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				ferr = errors.Join(ferr, fmt.Errorf("partition %d: %w", p, err))
			}
		})
		if ferr != nil {
			cancel(fmt.Errorf("logread: fetch %s: %w", topic, ferr))
			break
		}
		fs.EachPartition(func(fp kgo.FetchTopicPartition) {
			p := fp.Partition
			ch, ok := chans[p]
			if !ok || next[p] >= to[p] || len(fp.Records) == 0 {
				return
			}
			recs := fp.Records
			for k, r := range recs {
				if r.Offset >= to[p] {
					recs = recs[:k]
					break
				}
			}
			last := fp.Records[len(fp.Records)-1].Offset + 1
			next[p] = min(last, to[p])
			for len(recs) > 0 && ctx.Err() == nil {
				var size int64
				n := 0
				for n < len(recs) && (n == 0 || size < maxChunk) {
					size += int64(len(recs[n].Key)+len(recs[n].Value)) + recordOverhead
					n++
				}
				chunk := recs[:n:n]
				recs = recs[n:]
				size = min(size, MaxInFlight)
				if inFlight.Acquire(ctx, size) != nil {
					break
				}
				select {
				case ch <- work{chunk, size}:
				case <-ctx.Done():
					inFlight.Release(size)
				}
			}
			if next[p] >= to[p] {
				remaining--
			}
		})
	}
	closeAll()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

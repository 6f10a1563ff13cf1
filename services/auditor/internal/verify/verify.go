// Package verify checks the events topic as an auditor: that every record
// is covered by a valid seal signed with the published decider keys (the
// same wire.Authenticator every reader applies the log through), per
// request sequences without gaps, and that every event is what the domain
// produces from the commands before it (package replay: a replay of
// approval.Decide), so that even a leaked signing key cannot mint an
// illegal decision unnoticed. It reports each break with its partition,
// offset, event id and what failed (KindUnauthenticated at once for a
// record no seal can cover any more, KindGap where records are missing,
// KindIllegal where the domain would not have written the event), and it
// saves a State so that the next run verifies only what is new; a saved
// state that the log no longer matches is reported as tampering.
//
// Each partition is verified on its own goroutine as logread hands it
// records. Each record is decoded once, envelope and data together, and
// the chain check, the Authenticator and the replay share the result: by
// fastDecoder when it is in the form the deciders write, which returns
// exactly what eventlog.DecodeRecord and approval.DecodeEventBody return
// for it, else by those, which say what is wrong with it. So verify reads
// records by the rules every reader of the log applies.
package verify

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/services/auditor/internal/logread"
	"github.com/assent-dev/assent/services/auditor/internal/replay"
)

// Config is one verification run.
type Config struct {
	Kafka eventlog.Config
	Topic string
	// SignedTopic is the topic name that seals sign; "" means Topic. Set
	// it to verify a copy of the log (a mirror, a backup, a scratch
	// topic): the seals name the topic they were written to.
	SignedTopic string
	Keys        *wire.KeyRing
	// From is a saved state to continue from; nil verifies from the start.
	From *State
	// Rules are what the domain replay needs beyond the log: the admins,
	// who may cancel any request (see package replay).
	Rules replay.Rules
	// Progress, if set, is called every ProgressEvery with the records
	// read so far and the records to read (transaction markers included).
	Progress      func(done, total int64)
	ProgressEvery time.Duration
}

// Result is what a run found.
type Result struct {
	Partitions int
	Records    int64 // records verified in all runs, seals included
	Seals      int64 // seals verified in all runs
	NewRecords int64 // records verified in this run
	NewSeals   int64
	Requests   int
	Took       time.Duration
	Breaks     []Break
	Dropped    int    // breaks not listed (more than 100 in a partition)
	State      *State // the state to save: only when there is no break
	// UncheckedCancels counts cancels by someone other than the
	// requester that the replay could not check: Rules.Admins unknown.
	UncheckedCancels int64
}

// OK reports whether the log verified.
func (r Result) OK() bool { return len(r.Breaks) == 0 && r.Dropped == 0 }

// Run verifies the log.
func Run(ctx context.Context, cfg Config) (Result, error) {
	began := time.Now()
	if cfg.From != nil && cfg.From.Topic != cfg.Topic {
		return Result{}, fmt.Errorf("verify: the saved state is for topic %s, not %s: name that topic, or verify from the start without the state file", cfg.From.Topic, cfg.Topic)
	}
	admCl, err := eventlog.NewClient(cfg.Kafka)
	if err != nil {
		return Result{}, err
	}
	defer admCl.Close()
	bounds, err := logread.Describe(ctx, kadm.NewClient(admCl), cfg.Topic)
	if err != nil {
		return Result{}, err
	}

	var (
		res    = Result{Partitions: len(bounds)}
		count  atomic.Int64
		total  int64
		chains = map[int32]*chain{}
		from   = map[int32]int64{}
		to     = map[int32]int64{}
		sinks  = map[int32]logread.Sink{}
	)
	if cfg.From != nil {
		for k, ps := range cfg.From.Partitions {
			p, _ := strconv.ParseInt(k, 10, 32)
			if _, ok := bounds[int32(p)]; !ok {
				res.Breaks = append(res.Breaks, Break{Partition: int32(p), Offset: ps.HeadOffset, EventID: ps.HeadID, Kind: KindState,
					Reason: fmt.Sprintf("the saved state verified partition %d up to offset %d, but the topic has no such partition now", p, ps.HeadOffset)})
			}
		}
	}
	for _, p := range logread.Partitions(bounds) {
		b := bounds[p]
		ps := freshPart()
		if cfg.From != nil {
			if saved, ok := cfg.From.Partitions[strconv.Itoa(int(p))]; ok {
				ps = saved
			}
		}
		start := b.Start
		if ps.HeadOffset >= 0 {
			switch {
			case b.End <= ps.HeadOffset || b.End < ps.Next:
				res.Breaks = append(res.Breaks, Break{Partition: p, Offset: b.End, EventID: ps.HeadID, Kind: KindTruncated,
					Reason: fmt.Sprintf("the log now ends at offset %d, but the saved state verified it up to offset %d (record %s, hash %s): the tail was truncated or the topic replaced",
						b.End, ps.Next, ps.HeadID, ps.Head)})
				continue
			case ps.HeadOffset < b.Start:
				res.Breaks = append(res.Breaks, Break{Partition: p, Offset: b.Start, EventID: ps.HeadID, Kind: KindState,
					Reason: fmt.Sprintf("the partition now starts at offset %d, after the saved head at offset %d (record %s): records were deleted", b.Start, ps.HeadOffset, ps.HeadID)})
				continue
			}
			start = ps.HeadOffset // read the saved head again, to check it is unchanged
		}
		signed := cfg.SignedTopic
		if signed == "" {
			signed = cfg.Topic
		}
		c, err := newChain(signed, p, cfg.Keys, &count, *ps, b.Start, cfg.Rules)
		if err != nil {
			return Result{}, err
		}
		chains[p], sinks[p] = c, c
		from[p], to[p] = start, b.End
		total += b.End - start
	}

	if cfg.Progress != nil && cfg.ProgressEvery > 0 {
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			t := time.NewTicker(cfg.ProgressEvery)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					cfg.Progress(count.Load(), total)
				}
			}
		}()
	}
	if err := logread.Read(ctx, cfg.Kafka, cfg.Topic, from, to, sinks); err != nil {
		return Result{}, fmt.Errorf("verify: %w", err)
	}

	state := &State{Format: StateFormat, Topic: cfg.Topic, VerifiedAt: time.Now().UTC(), Partitions: map[string]*PartState{}}
	for _, p := range logread.Partitions(bounds) {
		c, ok := chains[p]
		if !ok {
			continue
		}
		if c.expect >= 0 {
			// The saved head was never read again: the partition ends
			// before it although its end offset is past it.
			c.addBreak(c.expect, string(c.headID), KindState, "the record at offset %d that the saved state ends on could not be read again", c.expect)
		}
		prev := int64(0)
		prevSeals := int64(0)
		if cfg.From != nil {
			if saved, ok := cfg.From.Partitions[strconv.Itoa(int(p))]; ok {
				prev, prevSeals = saved.Records, saved.Seals
			}
		}
		c.finish()
		res.UncheckedCancels += c.replay.UncheckedCancels
		ps := c.st
		ps.Head, ps.HeadID, ps.Next, ps.Requests = hashString(c.headSum), string(c.headID), to[p], c.reqs
		state.Partitions[strconv.Itoa(int(p))] = &ps
		res.Records += ps.Records
		res.Seals += ps.Seals
		res.NewRecords += ps.Records - prev
		res.NewSeals += ps.Seals - prevSeals
		res.Requests += len(c.reqs)
		res.Breaks = append(res.Breaks, c.breaks...)
		res.Dropped += c.dropped
	}
	sort.SliceStable(res.Breaks, func(i, j int) bool {
		a, b := res.Breaks[i], res.Breaks[j]
		if a.Partition != b.Partition {
			return a.Partition < b.Partition
		}
		return a.Offset < b.Offset
	})
	res.Took = time.Since(began)
	if res.OK() {
		res.State = state
	}
	return res, nil
}

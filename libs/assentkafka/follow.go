package assentkafka

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/codec"
	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/wire"
)

// watch is what a wait is waiting for.
type watch struct {
	rid       string
	partition int32
	from      int64 // the offset to read from; negative: the start of the partition
	// settled inspects the fold after each poll; atEnd says that the
	// reader has read everything committed to the partition so far.
	settled func(st approval.State, atEnd bool) (bool, error)
	// traced reports whether the fold shows a trace of the awaited
	// command. When it stays false at the end of the partition for
	// rescanAfter, a read from an offset starts again from the start. Nil
	// means never.
	traced func(st approval.State) bool
	// observe, if set, sees every event of the request as it is folded.
	// It is only used on reads from the start, which never restart.
	observe func(e approval.Event)
}

// follow folds the request's events from the partition until settled
// says so or ctx ends. A read from an offset that turns out not to see the
// whole request is done again from the start of the partition.
func (c *Client) follow(ctx context.Context, w watch) (approval.State, error) {
	if w.from >= 0 {
		st, rescan, err := c.read(ctx, w, w.from, false)
		if !rescan {
			return st, err
		}
	}
	start, err := c.listOffset(ctx, w.partition, c.adm.ListStartOffsets)
	if err != nil {
		if ctx.Err() != nil {
			return approval.State{}, pending(w.rid, ctx.Err())
		}
		return approval.State{}, err
	}
	st, _, err := c.read(ctx, w, start, true)
	return st, err
}

// read consumes the events partition from start with read_committed and
// folds the request's events. It reports rescan when, reading from an
// offset rather than the start (full), it cannot have the whole request:
// the first event it meets is not the request's first, or the awaited
// command leaves no trace.
func (c *Client) read(ctx context.Context, w watch, start int64, full bool) (st approval.State, rescan bool, err error) {
	cl, err := eventlog.NewClient(c.cfg,
		kgo.KeepControlRecords(), // their offsets count when deciding whether the end is reached
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
			c.topics.Events: {w.partition: kgo.NewOffset().At(start)},
		}))
	if err != nil {
		return st, false, fmt.Errorf("assentkafka: %w", err)
	}
	defer cl.Close()

	next := start
	var untracedSince time.Time
	// Only what a valid seal covers is folded. Read from the start, the
	// chain starts at the genesis hash; read from an offset, the first
	// complete seal is trusted (its signature and its run are checked).
	head := ""
	if full && start == 0 {
		head = wire.GenesisHash
	}
	auth := wire.NewAuthenticator(c.keys, c.topics.Events, w.partition, head)
	for {
		pctx, cancel := context.WithTimeout(ctx, idlePoll)
		fs := cl.PollFetches(pctx)
		cancel()
		if err := ctx.Err(); err != nil {
			return st, false, pending(w.rid, err)
		}
		var fetchErr error
		fs.EachError(func(_ string, _ int32, e error) {
			var ke *kerr.Error
			switch {
			case errors.Is(e, context.DeadlineExceeded), errors.Is(e, context.Canceled):
			case errors.As(e, &ke) && ke.Retriable:
			default:
				fetchErr = e
			}
		})
		if fetchErr != nil {
			return st, false, fmt.Errorf("assentkafka: read %s/%d: %w", c.topics.Events, w.partition, fetchErr)
		}

		gap, polled := false, 0
		fs.EachRecord(func(r *kgo.Record) {
			polled++
			if gap {
				return
			}
			next = r.Offset + 1
			it := wire.Item{Record: eventlog.WireRecord(r)}
			var derr error
			if !r.Attrs.IsControl() {
				it.Hash = wire.Hash(r.Value)
				it.Env, derr = eventlog.DecodeRecord(r)
			}
			for _, x := range auth.Add(it, derr).Apply {
				if gap || x.Env.Subject != w.rid {
					continue
				}
				e, err := codec.DomainEvent(x.Env)
				if err != nil || e.Sequence <= st.Sequence {
					continue
				}
				if e.Sequence != st.Sequence+1 && !full {
					gap = true // the request began before start
					continue
				}
				st = approval.Evolve(st, e)
				if w.observe != nil {
					w.observe(e)
				}
			}
		})
		if gap {
			return st, true, nil
		}

		atEnd := false
		if polled == 0 {
			if end, err := c.committedEnd(ctx, w.partition); err == nil && next >= end {
				atEnd = true
			}
		}
		if done, err := w.settled(st, atEnd); done {
			return st, false, err
		}
		if !full && w.traced != nil && atEnd && !w.traced(st) {
			if untracedSince.IsZero() {
				untracedSince = time.Now()
			} else if time.Since(untracedSince) >= c.rescanAfter {
				return st, true, nil
			}
		}
	}
}

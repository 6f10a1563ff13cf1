package delivery

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/projection"
)

// Consumer owns partitions of the events topic through a consumer group,
// and hands each consumed event's request to the engine once the
// projection has applied it.
type Consumer struct {
	Kafka  eventlog.Config
	Topic  string
	Group  string
	Engine *Engine
	Wait   Projection
	Logger *slog.Logger
	// OnAssigned, if set, is told about assignments (tests, logs).
	OnAssigned func(ps []int32)
}

// Run consumes until ctx ends; it leaves the group on the way out.
func (c *Consumer) Run(ctx context.Context) error {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	cl, err := eventlog.NewClient(c.Kafka, append(projection.FetchLimits(), // a new group reads the log from its start
		kgo.ConsumeTopics(c.Topic),
		kgo.ConsumerGroup(c.Group),
		// A dead replica's partitions move after 6s, as the gateway's do.
		kgo.SessionTimeout(6*time.Second),
		kgo.HeartbeatInterval(time.Second),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.OnPartitionsAssigned(c.assigned),
		kgo.OnPartitionsRevoked(c.revoked),
		kgo.OnPartitionsLost(c.lost),
	)...)
	if err != nil {
		return fmt.Errorf("delivery: %w", err)
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = cl.CommitMarkedOffsets(closeCtx)
		cl.CloseAllowingRebalance() // revokes: in-flight attempts end first
	}()
	for {
		fetches := cl.PollRecords(ctx, 1000)
		if ctx.Err() != nil {
			cl.AllowRebalance()
			return nil
		}
		fetches.EachError(func(t string, p int32, err error) {
			c.Logger.Warn("fetch error", "topic", t, "partition", p, "err", err)
		})
		var (
			wg     sync.WaitGroup
			mu     sync.Mutex
			rewind = map[int32]kgo.EpochOffset{}
		)
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			if len(fp.Records) == 0 {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				last := fp.Records[len(fp.Records)-1]
				wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
				err := c.Wait.WaitOffset(wctx, fp.Partition, last.Offset+1)
				cancel()
				if err == nil {
					seen := map[string]bool{}
					for _, r := range fp.Records {
						rid := string(r.Key)
						if rid == "" || seen[rid] {
							continue
						}
						seen[rid] = true
						if err = c.Engine.Wake(fp.Partition, rid); err != nil {
							break
						}
					}
				}
				if err != nil {
					// Not handed over: leave the offsets where they are and
					// read the records again.
					if ctx.Err() == nil {
						c.Logger.Warn("could not queue the deliveries of consumed events; reading them again", "partition", fp.Partition, "err", err)
					}
					first := fp.Records[0]
					mu.Lock()
					rewind[fp.Partition] = kgo.EpochOffset{Epoch: first.LeaderEpoch, Offset: first.Offset}
					mu.Unlock()
					return
				}
				cl.MarkCommitRecords(last)
			}()
		})
		wg.Wait()
		if len(rewind) > 0 && ctx.Err() == nil {
			cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{c.Topic: rewind})
		}
		if err := cl.CommitMarkedOffsets(ctx); err != nil && ctx.Err() == nil {
			c.Logger.Warn("could not commit offsets; the next owner reads those events again (their deliveries are in the projection either way)", "err", err)
		}
		cl.AllowRebalance()
	}
}

func (c *Consumer) assigned(ctx context.Context, cl *kgo.Client, m map[string][]int32) {
	ps := m[c.Topic]
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	listed, err := kadm.NewClient(cl).ListEndOffsets(lctx, c.Topic)
	for _, p := range ps {
		end := int64(math.MaxInt64)
		if err == nil {
			if o, ok := listed.Lookup(c.Topic, p); ok && o.Err == nil {
				end = o.Offset
			}
		}
		if end == math.MaxInt64 {
			end = 0 // unknown: scan what the projection has; the rescan and the consumed events do the rest
		}
		c.Engine.Assign(p, end)
	}
	c.Logger.Info("partitions assigned", "partitions", ps)
	if c.OnAssigned != nil {
		c.OnAssigned(ps)
	}
}

func (c *Consumer) revoked(ctx context.Context, cl *kgo.Client, m map[string][]int32) {
	ps := m[c.Topic]
	c.Engine.Revoke(ps)
	// Outcomes recorded here should be in the projection before the next
	// owner scans, or it delivers them again.
	c.Engine.WaitRecorded(c.Engine.RecordedIn(ps), 5*time.Second)
	if err := cl.CommitMarkedOffsets(ctx); err != nil {
		c.Logger.Warn("commit on revoke", "err", err)
	}
	c.Logger.Info("partitions revoked", "partitions", ps)
}

func (c *Consumer) lost(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	c.Engine.Revoke(m[c.Topic])
	c.Logger.Warn("partitions lost", "partitions", m[c.Topic])
}

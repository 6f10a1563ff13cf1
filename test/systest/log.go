package systest

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/codec"
	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/wire"
)

// Record is one committed record of the events topic.
type Record struct {
	Partition int32
	Offset    int64
	Value     []byte
	Envelope  wire.Envelope
	Event     approval.Event // zero Body for seals and undecodable events
	Err       error          // why the record could not be decoded, if it could not
	// Transactional and ProducerID say who wrote the record and how.
	Transactional bool
	ProducerID    int64
}

// ReadLog reads every committed record of topic, up to the last stable
// offsets at the time of the call.
func ReadLog(ctx context.Context, cfg eventlog.Config, topic string) ([]Record, error) {
	admCl, err := eventlog.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	defer admCl.Close()
	ends, err := kadm.NewClient(admCl).ListCommittedOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("systest: end offsets: %w", err)
	}
	want := map[int32]int64{}
	start := map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err == nil && o.Offset > 0 {
			want[o.Partition] = o.Offset
			start[o.Partition] = kgo.NewOffset().AtStart()
		}
	})
	if len(want) == 0 {
		return nil, nil
	}
	cl, err := eventlog.NewClient(cfg, kgo.KeepControlRecords(),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: start}))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	var out []Record
	next := map[int32]int64{}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	for !done(next, want) {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("systest: read %s: %w (read %v of %v)", topic, err, next, want)
		}
		fs.EachRecord(func(r *kgo.Record) {
			next[r.Partition] = r.Offset + 1
			if r.Attrs.IsControl() || r.Offset >= want[r.Partition] {
				return
			}
			rec := Record{Partition: r.Partition, Offset: r.Offset, Value: r.Value, Transactional: r.Attrs.IsTransactional(), ProducerID: r.ProducerID}
			rec.Envelope, rec.Err = eventlog.DecodeRecord(r)
			if rec.Err == nil && rec.Envelope.Subject != "" {
				rec.Event, rec.Err = codec.DomainEvent(rec.Envelope)
			}
			out = append(out, rec)
		})
	}
	return out, nil
}

func done(next, want map[int32]int64) bool {
	for p, w := range want {
		if next[p] < w {
			return false
		}
	}
	return true
}

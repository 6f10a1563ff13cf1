package loggen

import (
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/wire"
)

// AsRead is a built log (Build) as a read_committed consumer with the
// control records kept sees it: each partition's records on o.Topic with
// their offsets, each sealed run in a transaction of its partition's
// producer, ended by its commit marker.
func AsRead(o Options, built [][]*kgo.Record) [][]wire.Record {
	out := make([][]wire.Record, len(built))
	for p, recs := range built {
		var off int64
		pid := int64(1000 + p)
		for _, r := range recs {
			r.Topic, r.Partition, r.Offset, r.ProducerID = o.Topic, int32(p), off, pid
			w := eventlog.WireRecord(r)
			w.Transactional = true
			out[p] = append(out[p], w)
			off++
			if isSeal(r) { // a seal ends the transaction
				out[p] = append(out[p], wire.Record{Topic: o.Topic, Partition: int32(p), Offset: off, Control: true, Transactional: true, ProducerID: pid})
				off++
			}
		}
	}
	return out
}

// Polls interleaves a read log's partitions into polls of about n
// records, 500 a partition at a time, as a fetch of every partition
// would.
func Polls(log [][]wire.Record, n int) [][]wire.Record {
	var out [][]wire.Record
	at := make([]int, len(log))
	for {
		var poll []wire.Record
		for len(poll) < n {
			moved := false
			for p := range log {
				end := min(at[p]+500, len(log[p]))
				if at[p] < end {
					poll = append(poll, log[p][at[p]:end]...)
					at[p] = end
					moved = true
				}
			}
			if !moved {
				break
			}
		}
		if len(poll) == 0 {
			return out
		}
		out = append(out, poll)
	}
}

package eventlog

import (
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/assent-dev/assent/libs/wire"
)

// Partitioner returns the partitioner that NewClient installs.
//
// A keyed record goes to Partition(key, n), the partition a Java producer
// would choose, exactly like kgo.StickyKeyPartitioner(nil). An unkeyed record
// goes to its Record.Partition, like kgo.ManualPartitioner: on the events
// topic every record extends a per-partition hash chain, so a record without
// a request id (a checkpoint) must name its partition rather than land on a
// random one. A record is never moved to another partition because its own
// is unavailable; it waits, which keeps per-request order.
func Partitioner() kgo.Partitioner { return partitioner{} }

type partitioner struct{}

func (partitioner) ForTopic(string) kgo.TopicPartitioner { return topicPartitioner{} }

type topicPartitioner struct{}

func (topicPartitioner) RequiresConsistency(*kgo.Record) bool { return true }

func (topicPartitioner) Partition(r *kgo.Record, n int) int {
	if r.Key != nil {
		return int(wire.Partition(r.Key, n))
	}
	return int(r.Partition) // out of range fails the record in kgo
}

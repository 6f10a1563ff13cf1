package auditindex

import (
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/assent-dev/assent/libs/projection"
	"github.com/assent-dev/assent/libs/wire"
)

// Scan calls fn with every record of partition p the index holds, in
// offset order: the order in which `auditor export` prints a partition.
// It reads one snapshot, so a long scan sees no record applied after it
// began. An error from fn stops the scan and is returned.
func (x *Index) Scan(p int32, fn func(Row, wire.Envelope) error) error {
	prefix := binary.BigEndian.AppendUint32([]byte("e/"), uint32(p))
	snap := x.db.NewSnapshot()
	defer snap.Close() //nolint:errcheck // a read
	it, err := snap.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: projection.PrefixEnd(prefix)})
	if err != nil {
		return fmt.Errorf("index: %w", err)
	}
	defer it.Close() //nolint:errcheck // a read
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if len(k) != len(prefix)+8 {
			continue
		}
		off := int64(binary.BigEndian.Uint64(k[len(prefix):]))
		v := append([]byte(nil), it.Value()...)
		env, err := wire.Unmarshal(v)
		if err != nil {
			return fmt.Errorf("index: event %d@%d: %w", p, off, err)
		}
		if err := fn(Row{Partition: p, Offset: off, Hash: wire.Hash(v), Event: v}, env); err != nil {
			return err
		}
	}
	return it.Error()
}

// Partitions returns what the index knows of the chain of partitions 0 to
// n-1: records, checkpoints, the offset the last valid checkpoint signs,
// and the first breaks.
func (x *Index) Partitions(n int32) ([]PartitionStatus, error) {
	snap := x.db.NewSnapshot()
	defer snap.Close() //nolint:errcheck // a read
	out := make([]PartitionStatus, 0, n)
	for p := range n {
		ps, err := x.partition(snap, p)
		if err != nil {
			return nil, err
		}
		out = append(out, ps)
	}
	return out, nil
}

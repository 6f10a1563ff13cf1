package auditindex

import (
	"fmt"

	"github.com/assent-dev/assent/libs/projection"
	"github.com/assent-dev/assent/libs/wire"
)

// Scan calls fn with every record of partition p the index holds, in
// offset order: the order in which `auditor export` prints a partition.
// It reads one snapshot, so a long scan sees no record applied after it
// began. An error from fn stops the scan and is returned.
func (x *Index) Scan(p int32, fn func(Row, wire.Envelope) error) error {
	snap := x.db.NewSnapshot()
	defer snap.Close() //nolint:errcheck // a read
	return projection.ScanRecords(snap, p, func(off int64, v []byte) error {
		env, err := wire.Unmarshal(v)
		if err != nil {
			return fmt.Errorf("index: event %d@%d: %w", p, off, err)
		}
		return fn(Row{Partition: p, Offset: off, Hash: wire.Hash(v), Event: v}, env)
	})
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

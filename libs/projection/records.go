package projection

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// RecordKeeper is a Handler that needs the log's records as they are, byte
// for byte (the requests store serves a request's history from them): the
// runner keeps the value of every event it applies, at a key of its
// partition and offset, durable no later than the batch of the handler's
// writes (keepRecords), and Record reads it back.
//
// The runner keeps them, not the handler, because of where such keys can
// go in the store. A record's key only grows within its partition, and the
// keys sort after every handler's, so a catch-up's records are written as
// one table per partition and poll and ingested under everything else
// (keepRecords): Pebble never rewrites them in a compaction. Written
// through the batch among the handler's keys at random places, the records
// (60% of an api store's bytes) were rewritten once per level on their way
// down: half of a 10,000,000-record rebuild's CPU went to compactions
// (docs/benchmarks.md, "Scale-out").
type RecordKeeper interface {
	Handler
	KeepsRecords() bool
}

// recordPrefix starts the keys of kept records. 0xff sorts after any
// printable prefix a handler picks (as metaPrefix's 0x00 sorts before),
// so that an ingested table of records overlaps no table of the handler's
// keys, and the runner's wipe still covers it.
const recordPrefix = "\xffrec/"

func recordKey(p int32, off int64) []byte {
	k := make([]byte, 0, len(recordPrefix)+4+8)
	k = append(k, recordPrefix...)
	k = binary.BigEndian.AppendUint32(k, uint32(p))
	return binary.BigEndian.AppendUint64(k, uint64(off))
}

// Record returns a copy of the value of the record at offset off of
// partition p, as the runner of a RecordKeeper kept it; found is false if
// it holds none there.
func Record(r pebble.Reader, p int32, off int64) (value []byte, found bool, err error) {
	v, closer, err := r.Get(recordKey(p, off))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("projection: read record %d@%d: %w", p, off, err)
	}
	defer func() { _ = closer.Close() }()
	return slices.Clone(v), true, nil
}

// ScanRecords calls fn with the offset and value of every record of
// partition p kept in r, in offset order. value is a copy fn may keep. An
// error from fn stops the scan and is returned.
func ScanRecords(r pebble.Reader, p int32, fn func(off int64, value []byte) error) error {
	prefix := binary.BigEndian.AppendUint32([]byte(recordPrefix), uint32(p))
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: PrefixEnd(prefix)})
	if err != nil {
		return fmt.Errorf("projection: scan records of partition %d: %w", p, err)
	}
	defer it.Close() //nolint:errcheck // a read
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if len(k) != len(prefix)+8 {
			continue
		}
		if err := fn(int64(binary.BigEndian.Uint64(k[len(prefix):])), slices.Clone(it.Value())); err != nil {
			return err
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("projection: scan records of partition %d: %w", p, err)
	}
	return nil
}

// KeepRecords writes the value of each event into b, as the runner of a
// RecordKeeper does once it is ready. For tests of a RecordKeeper that
// apply events without a runner.
func KeepRecords(b *pebble.Batch, events []Event) error {
	for i := range events {
		e := &events[i]
		if err := b.Set(recordKey(e.Partition, e.Offset), e.Value, nil); err != nil {
			return fmt.Errorf("projection: keep record %d@%d: %w", e.Partition, e.Offset, err)
		}
	}
	return nil
}

// ingestDir is where the runner writes the tables it is about to ingest,
// inside the store's directory (Pebble ignores what it did not name).
const ingestDir = "ingest"

// keepRecords keeps the records of a batch's events. While the runner
// catches up (it is not ready yet), each partition's records are a table
// ingested now, before the batch that stages the partition's offset is
// committed; once it is ready, they go into b with the handler's writes (a
// table for each live poll would leave thousands of tiny files). A crash
// between the ingestion and the commit leaves records the store's offsets
// do not cover yet: the same records at the same keys are written again
// when their events are applied again, so nothing is kept twice or lost.
//
// A table is ingested at the lowest level where it overlaps nothing: while
// a store is built from the log, every partition's records arrive in
// offset order and no other key sorts among them, so that is the bottom
// level. Not one record may go through a batch then: a flushed memtable
// holding one would span the handler's keys and every partition's records
// up to it, and every later table in that span would land above it and be
// compacted like any other key. After a restart, what a live replica wrote
// through its batches is such a span: the tables of the catch-up that
// follows land higher where they overlap it.
func (r *Runner) keepRecords(b *pebble.Batch, parts []*decodedPart) error {
	r.mu.Lock()
	live := r.ready
	r.mu.Unlock()
	var paths []string
	defer func() {
		for _, path := range paths {
			_ = os.Remove(path)
		}
	}()
	for _, dp := range parts {
		if len(dp.events) == 0 {
			continue
		}
		if live {
			if err := KeepRecords(b, dp.events); err != nil {
				return err
			}
			continue
		}
		path, err := r.writeRecordTable(dp.events)
		if path != "" {
			paths = append(paths, path)
		}
		if err != nil {
			return err
		}
	}
	if len(paths) == 0 {
		return nil
	}
	if err := r.db.Ingest(context.Background(), paths); err != nil {
		return fmt.Errorf("projection: ingest %d tables of records: %w", len(paths), err)
	}
	return nil
}

// writeRecordTable writes the events' values, one partition's in offset
// order, as a table to ingest, and returns its path (also on error, for
// the caller to remove).
func (r *Runner) writeRecordTable(events []Event) (string, error) {
	dir := filepath.Join(r.cfg.Dir, ingestDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("projection: records: %w", err)
	}
	first := events[0]
	path := filepath.Join(dir, fmt.Sprintf("records-%d-%d.sst", first.Partition, first.Offset))
	f, err := vfs.Default.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return "", fmt.Errorf("projection: records: %w", err)
	}
	w := sstable.NewWriter(objstorageprovider.NewFileWritable(f), r.opts.MakeWriterOptions(len(r.opts.Levels)-1, r.db.TableFormat()))
	for i := range events {
		e := &events[i]
		if err := w.Set(recordKey(e.Partition, e.Offset), e.Value); err != nil {
			_ = w.Close()
			return path, fmt.Errorf("projection: write record %d@%d: %w", e.Partition, e.Offset, err)
		}
	}
	// Close syncs the file: Ingest requires it.
	if err := w.Close(); err != nil {
		return path, fmt.Errorf("projection: write records of partition %d: %w", first.Partition, err)
	}
	return path, nil
}

package projection

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
)

// storeOptions are the Pebble options of every projection store.
//
//   - Bloom filters on every level: folding an event reads its request's
//     state, which a rebuild finds missing for every new request; without
//     a filter each miss reads a data block of every level.
//   - Memtables of 16 MB instead of Pebble's 4 MB: fewer, larger flushes
//     leave less to compact while a rebuild writes, and two of them (what
//     Pebble holds at most) stay well inside a replica's memory budget.
//     (64 MB rebuilt faster still, but an idle replica keeps its memtable:
//     173 MB of RSS at 290,000 requests, over the 150 MB budget.)
//   - A base level of up to 256 MB instead of 64 MB: a store of a few GB
//     has a level fewer, and a rebuild, which writes every request's state
//     and history at random keys, rewrites each byte fewer times. Pebble's
//     compactions were half of a rebuild's CPU time; this took a
//     1,013,522-record rebuild of the api from 32.9 to 29.7 µs of CPU a
//     record (docs/benchmarks.md, "Scale-out"). Reads look at fewer
//     levels; a compaction into the base level is larger, and holds up to
//     about 256 MB more of disk while it runs.
//   - Up to two compactions at once, instead of one: Pebble starts the
//     second only when compactions fall behind, which a rebuild of a large
//     log does (writes stall while level 0 fills). A 10,103,347-record api
//     rebuild went from 39,219 to 44,367 records/s at the same CPU per
//     record; on 1,013,522 records, where compactions keep up, it changed
//     nothing. An idle or serving replica never falls behind.
//   - Level 0 compacted into the base level once it holds 8 tables' worth
//     instead of 4, and writes stopped at 24 instead of 12. A rebuild
//     writes at random keys, so every flushed table spans the whole key
//     range and each compaction from level 0 rewrites the base level
//     under it: twice the tables a compaction, half the rewriting. A
//     10,103,347-record api rebuild went from 37,231 to 56,221 records/s
//     (40.9 to 32.0 µs of CPU a record, docs/benchmarks.md, "Scale-out");
//     on 1,000,000 records, with the history's records in every compaction
//     then, it had changed nothing. A live replica's level 0 holds a few
//     small tables; reads look at up to twice as many while a rebuild
//     runs, each behind its Bloom filter.
func storeOptions(logger pebble.Logger) *pebble.Options {
	o := &pebble.Options{Logger: logger, MemTableSize: 16 << 20, LBaseMaxBytes: 256 << 20,
		CompactionConcurrencyRange: func() (lower, upper int) { return 1, 2 },
		L0CompactionThreshold:      8, L0StopWritesThreshold: 24}
	for i := range o.Levels {
		o.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	return o
}

// pebbleLogger sends Pebble's messages to the service's slog logger, so
// that they come out as JSON with everything else rather than as plain
// text on stderr. Pebble's informational messages (WAL replay, compaction
// notes) are debug noise to an operator; its errors are errors.
type pebbleLogger struct{ log *slog.Logger }

func (l pebbleLogger) Infof(format string, args ...any) {
	l.log.Debug(fmt.Sprintf(format, args...))
}

func (l pebbleLogger) Errorf(format string, args ...any) {
	l.log.Error(fmt.Sprintf(format, args...))
}

// Fatalf must not return: Pebble calls it when it cannot go on safely,
// and its default logger exits the process too.
func (l pebbleLogger) Fatalf(format string, args ...any) {
	l.log.Error(fmt.Sprintf(format, args...), "fatal", true)
	os.Exit(1)
}

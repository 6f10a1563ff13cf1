package daemon

import "runtime/debug"

// DefaultMemoryLimit is the Go runtime's soft memory limit that
// LimitMemory sets when GOMEMLIMIT is not: with the binary's mapped pages
// (about 30 MB) and Pebble's memtables and block cache (outside Go's
// heap, 15 to 25 MB a store once caught up), it keeps a caught-up
// service's RSS within the 150 MB of issue 14, item 8 (docs/benchmarks.md,
// "Memory").
const DefaultMemoryLimit = 96 << 20

// LimitMemory sets the Go runtime's soft memory limit (debug.SetMemoryLimit)
// to limit, unless GOMEMLIMIT is set, which the runtime already follows
// ("off" for none). It returns the limit in force (math.MaxInt64 for
// none). A service calls it once its projections have caught up, never
// before: a catch-up holds about 200 MB of live heap (polls in flight, the
// batch being committed), and a limit below that would make the collector
// run without end. After it, Go collects when its memory nears the limit
// instead of when the heap doubles (GOGC=100): a consumer group reading
// the log from its start holds about 50 MB live, and a heap twice that
// would exceed the goal. The limit is soft: a live heap above it is
// collected at most half the CPU's time, never refused.
func LimitMemory(getenv func(string) string, limit int64) int64 {
	if getenv("GOMEMLIMIT") != "" || limit <= 0 {
		return debug.SetMemoryLimit(-1) // reads it
	}
	debug.SetMemoryLimit(limit)
	return limit
}

package projection_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/projection"
	"github.com/assent-dev/assent/libs/projection/requests"
	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/test/loggen"
	"github.com/assent-dev/assent/test/systest"
)

// TestKeptRecordsAreTheLog: the runner of a RecordKeeper (the requests
// store) keeps every event's record byte for byte, whether it is catching
// up (a table of each partition's records of a poll, ingested under
// everything else), live (through the batch) or catching up after a
// restart on what it wrote live, and a request's history is served from
// them: the records of its events, in order, nothing missing and nothing
// else.
func TestKeptRecordsAreTheLog(t *testing.T) {
	t.Parallel()
	const (
		parts = 4
		reqs  = 1500
	)
	log := sealedLog(t, "events", parts, reqs)
	type at struct {
		p   int32
		off int64
	}
	want := map[string][]at{}
	values := map[at][]byte{}
	for p := range log {
		for _, rec := range log[p] {
			if rec.Control {
				continue
			}
			env, err := wire.DecodeRecord(rec)
			require.NoError(t, err)
			if env.Type == wire.TypeSeal {
				continue
			}
			want[env.Subject] = append(want[env.Subject], at{rec.Partition, rec.Offset})
			values[at{rec.Partition, rec.Offset}] = rec.Value
		}
	}
	require.Len(t, want, reqs)

	// A live poll: at most 20 records of each partition.
	var small [][]wire.Record
	for i := 0; ; i += 20 {
		var poll []wire.Record
		for p := range log {
			poll = append(poll, log[p][min(i, len(log[p])):min(i+20, len(log[p]))]...)
		}
		if len(poll) == 0 {
			break
		}
		small = append(small, poll)
	}
	for _, c := range []struct {
		name string
		// live polls are applied by a ready runner; catchUp ones by a
		// runner that is not.
		live, catchUp [][]wire.Record
		// restart: after the live polls, a new runner catches up on the
		// rest of the log, from where the store says it stands.
		restart bool
	}{
		{name: "catching up", catchUp: loggen.Polls(log, projection.DefaultBatchRecords)},
		{name: "catching up in small polls", catchUp: small},
		{name: "live", live: small},
		{name: "live, then a restart that catches up", live: small[:len(small)/2], restart: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			store := &requests.Store{}
			open := func() *projection.Runner {
				r, err := projection.Open(projection.Config{Dir: dir, Topic: "events", Partitions: parts, Handler: store, Keys: systest.DemoKeys(t)})
				require.NoError(t, err)
				store.Attach(r.DB())
				return r
			}
			r := open()
			if c.live != nil {
				r.MarkReady()
				for _, poll := range c.live {
					_, err := r.ApplyRecords(poll)
					require.NoError(t, err)
				}
				if c.restart {
					require.NoError(t, r.Close())
					r = open()
					rest := make([][]wire.Record, parts)
					for p := range log {
						rest[p] = log[p][r.Next(int32(p)):] // offsets start at 0, one a record
					}
					c.catchUp = loggen.Polls(rest, projection.DefaultBatchRecords)
				}
			}
			defer func() { require.NoError(t, r.Close()) }()
			for _, poll := range c.catchUp {
				_, err := r.ApplyRecords(poll)
				require.NoError(t, err)
			}
			require.Zero(t, store.Invalid.Load())
			for rid, events := range want {
				hist, err := store.History(rid)
				require.NoError(t, err)
				require.Len(t, hist, len(events), rid)
				for i, h := range hist {
					require.Equal(t, events[i], at{h.Partition, h.Offset}, rid)
					require.Equal(t, string(values[events[i]]), string(h.Value), rid)
				}
			}
			m := r.DB().Metrics()
			ingested := uint64(0)
			for l := range m.Levels {
				ingested += m.Levels[l].TablesIngested
			}
			switch {
			case c.catchUp == nil:
				require.Zero(t, ingested)
			case c.live == nil:
				// Each partition's records of each poll, one table each,
				// all at the bottom level, where no compaction rewrites
				// them.
				require.Positive(t, ingested)
				require.Equal(t, ingested, m.Levels[6].TablesIngested)
			default:
				require.Positive(t, ingested)
			}
		})
	}
}

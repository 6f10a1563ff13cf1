package projection

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"

	"github.com/cockroachdb/pebble/v2"

	"github.com/assent-dev/assent/libs/wire"
)

// Test hooks: the runner's own keys, so that a test can tamper with a
// closed store the way a truncated log would leave it.
var (
	KeyOffset   = keyOffset
	EncodeInt64 = encodeInt64
)

// MarkReady makes the runner ready, as Run does once it has caught up.
func (r *Runner) MarkReady() {
	r.mu.Lock()
	r.ready = true
	r.mu.Unlock()
}

// LagPeriod is how often the runner reads the end offsets for Lag.
const LagPeriod = lagPeriod

// ApplyRecords applies one poll's records, as consume does, without Kafka.
func (r *Runner) ApplyRecords(recs []wire.Record) (map[int32]string, error) { return r.apply(recs) }

// ApplyPolls applies polls as the consumer does (decoding one while the
// one before is committed), without Kafka.
func (r *Runner) ApplyPolls(polls [][]wire.Record) error {
	r.applyMu.Lock()
	st := r.decodeState()
	r.applyMu.Unlock()
	i := 0
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	return r.pipeline(ctx, st, func(context.Context) ([]wire.Record, error) {
		if i == len(polls) {
			cancel()
			return nil, nil
		}
		i++
		return polls[i-1], nil
	}, func(map[int32]string) {})
}

// Test hooks for snapshots.
var (
	KeyHead   = keyHead
	KeyHeadAt = keyHeadAt
)

// Reseal rewrites the manifest of a snapshot directory whose files a test
// changed: the files as they now are, and the marks the store now holds,
// so that only the checks against the log can find what changed.
func Reseal(dir string, partitions int32) error {
	raw, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if err != nil {
		return err
	}
	var m Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return err
	}
	db, err := pebble.Open(dir, &pebble.Options{ReadOnly: true, Logger: quietPebble{}})
	if err != nil {
		return err
	}
	meta, err := readMeta(db, partitions)
	_ = db.Close()
	if err != nil {
		return err
	}
	m.Identity, m.Partitions, m.Files = meta.identity, meta.marks, nil
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Name() == ManifestName || e.Name() == "LOCK" {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		sum, err := hashFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return err
		}
		m.Files = append(m.Files, SnapshotFile{Name: e.Name(), Size: info.Size(), SHA256: sum})
	}
	out, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, ManifestName), out, 0o600)
}

// CatchUpTo sets the end offsets the runner catches up to, as Run does
// with those it reads at start, so that ApplyPolls makes it ready without
// Kafka.
func (r *Runner) CatchUpTo(ends []int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.target = slices.Clone(ends)
}

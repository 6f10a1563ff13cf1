package projection

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/assent-dev/assent/libs/wire"
)

// A snapshot is a Pebble checkpoint of a projection store, with a
// manifest (docs/architecture.md, "Bootstrap from a snapshot"): the
// store's identity, where each partition resumes and its authenticated
// head there, and every file with its size and SHA-256. It is a directory
// holding manifest.json next to the files it lists, or the same layout
// under an HTTP(S) URL (a peer's SnapshotServer, or a copy in object
// storage).

// SnapshotFormat names the layout of a snapshot manifest.
const SnapshotFormat = "assent.projection.snapshot/1"

// ManifestName is the manifest's file name in a snapshot.
const ManifestName = "manifest.json"

// Manifest describes a snapshot.
type Manifest struct {
	Format     string          `json:"format"`
	ID         string          `json:"id"`
	Created    time.Time       `json:"created"`
	Identity   string          `json:"identity"` // cluster id, topic id, "sealed", handler layout
	Topic      string          `json:"topic"`
	Partitions []PartitionMark `json:"partitions"`
	Files      []SnapshotFile  `json:"files"`
}

// PartitionMark is where a snapshot's store stands in one partition.
type PartitionMark struct {
	Partition int32 `json:"partition"`
	// Next is the offset the runner resumes reading at.
	Next int64 `json:"next"`
	// Head is the authenticated chain head there: the hash of the last
	// record a valid seal covered (a seal), or the genesis hash.
	Head string `json:"head"`
	// HeadOffset is the offset of that seal; -1 with the genesis head.
	HeadOffset int64 `json:"head_offset"`
}

// SnapshotFile is one file of a snapshot.
type SnapshotFile struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"` // lowercase hex
}

// Bytes is the total size of the snapshot's files.
func (m *Manifest) Bytes() int64 {
	var n int64
	for _, f := range m.Files {
		n += f.Size
	}
	return n
}

// snapshotFileName is what a file of a Pebble checkpoint may be called:
// a plain name, never a path.
var snapshotFileName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// storeMeta is what a store says of itself: its identity and each
// partition's mark.
type storeMeta struct {
	identity string
	marks    []PartitionMark
}

// readMeta reads the runner's own keys from a store (or a checkpoint).
func readMeta(r interface {
	Get([]byte) ([]byte, io.Closer, error)
}, partitions int32) (storeMeta, error) {
	get := func(k []byte) ([]byte, bool, error) {
		v, closer, err := r.Get(k)
		if errors.Is(err, pebble.ErrNotFound) {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, err
		}
		out := append([]byte(nil), v...)
		_ = closer.Close() // releases a read value
		return out, true, nil
	}
	var m storeMeta
	id, ok, err := get(keyCluster)
	if err != nil {
		return m, fmt.Errorf("read identity: %w", err)
	}
	if !ok {
		return m, errors.New("the store has no identity (it never started)")
	}
	m.identity = string(id)
	for p := range partitions {
		mark := PartitionMark{Partition: p, Head: wire.GenesisHash, HeadOffset: -1}
		off, ok, err := get(keyOffset(p))
		if err != nil {
			return m, fmt.Errorf("read offset of partition %d: %w", p, err)
		}
		if ok {
			if mark.Next, err = decodeInt64(off); err != nil {
				return m, err
			}
			head, hok, err := get(keyHead(p))
			if err != nil || !hok {
				return m, fmt.Errorf("read head of partition %d: missing or %w", p, err)
			}
			mark.Head = string(head)
			at, aok, err := get(keyHeadAt(p))
			if err != nil {
				return m, fmt.Errorf("read head offset of partition %d: %w", p, err)
			}
			if aok {
				if mark.HeadOffset, err = decodeInt64(at); err != nil {
					return m, err
				}
			}
		}
		m.marks = append(m.marks, mark)
	}
	return m, nil
}

// fileHashes remembers the SHA-256 of files that never change once
// written (Pebble's tables), so that a new snapshot hashes only what is
// new since the last one. Keyed by the file's path and size.
type fileHashes struct {
	mu sync.Mutex
	m  map[string]string
}

func (h *fileHashes) get(key string) (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	v, ok := h.m[key]
	return v, ok
}

func (h *fileHashes) put(key, sum string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m == nil {
		h.m = map[string]string{}
	}
	h.m[key] = sum
}

// Snapshot writes a snapshot of the store to dir, which must not exist:
// a Pebble checkpoint (tables hard-linked, so it costs little disk until
// compactions replace them) and its manifest. No batch is committed while
// the checkpoint is taken, so the manifest's marks are exactly the
// store's.
func (r *Runner) Snapshot(dir string) (*Manifest, error) {
	r.applyMu.Lock()
	err := r.db.Checkpoint(dir, pebble.WithFlushedWAL())
	r.applyMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("projection: checkpoint: %w", err)
	}
	m, err := r.describeSnapshot(dir)
	if err != nil {
		_ = os.RemoveAll(dir) // the half-made snapshot is of no use
		return nil, err
	}
	return m, nil
}

// describeSnapshot reads a checkpoint's marks and files and writes its
// manifest.
func (r *Runner) describeSnapshot(dir string) (*Manifest, error) {
	db, err := pebble.Open(dir, &pebble.Options{ReadOnly: true, Logger: pebbleLogger{r.log.With("store", dir)}})
	if err != nil {
		return nil, fmt.Errorf("projection: open the checkpoint: %w", err)
	}
	meta, err := readMeta(db, r.cfg.Partitions)
	_ = db.Close() // read-only
	if err != nil {
		return nil, fmt.Errorf("projection: the checkpoint: %w", err)
	}
	m := &Manifest{Format: SnapshotFormat, ID: filepath.Base(dir), Created: time.Now().UTC(), Identity: meta.identity,
		Topic: r.cfg.Topic, Partitions: meta.marks}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("projection: list the checkpoint: %w", err)
	}
	for _, e := range entries {
		if e.Name() == "LOCK" {
			continue // the lock of the read-only open above: a new store makes its own
		}
		if !e.Type().IsRegular() || !snapshotFileName.MatchString(e.Name()) {
			return nil, fmt.Errorf("projection: the checkpoint holds %q, which a snapshot cannot carry", e.Name())
		}
		info, err := e.Info()
		if err != nil {
			return nil, err
		}
		f := SnapshotFile{Name: e.Name(), Size: info.Size()}
		key := fmt.Sprintf("%s/%d", e.Name(), f.Size)
		immutable := filepath.Ext(e.Name()) == ".sst" || filepath.Ext(e.Name()) == ".blob"
		if sum, ok := r.hashes.get(key); ok && immutable {
			f.SHA256 = sum
		} else {
			if f.SHA256, err = hashFile(filepath.Join(dir, e.Name())); err != nil {
				return nil, err
			}
			if immutable {
				r.hashes.put(key, f.SHA256)
			}
		}
		m.Files = append(m.Files, f)
	}
	raw, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, ManifestName), raw, 0o600); err != nil {
		return nil, fmt.Errorf("projection: write the manifest: %w", err)
	}
	return m, nil
}

func hashFile(path string) (string, error) {
	f, err := os.Open(path) //nolint:gosec // a file of the checkpoint this process just made
	if err != nil {
		return "", err
	}
	defer func() { _ = f.Close() }() // read-only
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("projection: hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

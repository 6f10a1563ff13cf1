package projection

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/assent-dev/assent/libs/wire"
)

// SnapshotServer serves a runner's snapshots to replicas that bootstrap
// from it (docs/architecture.md, "Bootstrap from a snapshot"), under a
// path prefix:
//
//	GET <prefix>/manifest.json     redirects to the latest snapshot's manifest
//	GET <prefix>/<id>/manifest.json
//	GET <prefix>/<id>/<file>       a file the manifest lists
//
// Every request needs the bearer token: a snapshot holds everything the
// store holds. It takes a snapshot once the runner is ready, then every
// Interval, and keeps only the latest, and a replaced one while it is
// being downloaded: until no request for it has come for retiredLinger.
type SnapshotServer struct {
	Runner   *Runner
	Dir      string        // where snapshots are written: a directory of their own on the store's file system
	Prefix   string        // the URL path prefix, e.g. "/snapshot"
	Token    string        // the bearer token every request must carry
	Interval time.Duration // how often a new snapshot is taken; 0 means 10 minutes

	mu      sync.Mutex
	latest  *servedSnapshot
	retired []*servedSnapshot // replaced, waiting for their downloads to end
}

type servedSnapshot struct {
	dir      string
	manifest *Manifest
	files    map[string]SnapshotFile
	users    int
	lastUsed time.Time // when it was replaced, or its last request ended
}

// retiredLinger is how long a replaced snapshot is kept after its last
// request: a download is one request a file, and the snapshot must not go
// between two of them.
const retiredLinger = 30 * time.Second

// Run takes snapshots until ctx ends, then deletes them all.
func (s *SnapshotServer) Run(ctx context.Context) error {
	if err := os.MkdirAll(s.Dir, 0o750); err != nil {
		return fmt.Errorf("projection: snapshot dir: %w", err)
	}
	// Snapshots left by an earlier process are not known to this one.
	if entries, err := os.ReadDir(s.Dir); err == nil {
		for _, e := range entries {
			_ = os.RemoveAll(filepath.Join(s.Dir, e.Name())) // best effort: stale snapshots
		}
	}
	defer s.removeAll()
	every := s.Interval
	if every <= 0 {
		every = 10 * time.Minute
	}
	if err := s.Runner.WaitReady(ctx); err != nil {
		return nil //nolint:nilerr // stopped before the store was ready: nothing to serve
	}
	for {
		if err := s.take(); err != nil {
			s.Runner.log.Error("taking a snapshot to serve failed; replicas bootstrap from the previous one, or rebuild from the log", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(every):
		}
	}
}

func (s *SnapshotServer) take() error {
	began := time.Now()
	dir := filepath.Join(s.Dir, time.Now().UTC().Format("20060102T150405.000000000Z")+"-"+wire.NewID(time.Now())[24:])
	m, err := s.Runner.Snapshot(dir)
	if err != nil {
		return err
	}
	snap := &servedSnapshot{dir: dir, manifest: m, files: map[string]SnapshotFile{}}
	for _, f := range m.Files {
		snap.files[f.Name] = f
	}
	s.mu.Lock()
	if s.latest != nil {
		s.latest.lastUsed = time.Now()
		s.retired = append(s.retired, s.latest)
	}
	s.latest = snap
	s.cleanLocked()
	s.mu.Unlock()
	s.Runner.log.Info("took a snapshot to serve", "id", m.ID, "bytes", m.Bytes(), "files", len(m.Files), "took", time.Since(began).Round(time.Millisecond))
	return nil
}

// cleanLocked deletes the retired snapshots nobody has asked for in
// retiredLinger. s.mu is held.
func (s *SnapshotServer) cleanLocked() {
	kept := s.retired[:0]
	for _, r := range s.retired {
		if r.users > 0 || time.Since(r.lastUsed) < retiredLinger {
			kept = append(kept, r)
			continue
		}
		_ = os.RemoveAll(r.dir) // best effort: a replaced snapshot
	}
	s.retired = kept
}

func (s *SnapshotServer) removeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.latest != nil {
		s.retired = append(s.retired, s.latest)
		s.latest = nil
	}
	for _, r := range s.retired {
		_ = os.RemoveAll(r.dir) // best effort: the process is stopping
	}
	s.retired = nil
}

// acquire finds a snapshot by id and counts a user of it.
func (s *SnapshotServer) acquire(id string) *servedSnapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range append([]*servedSnapshot{s.latest}, s.retired...) {
		if c != nil && c.manifest.ID == id {
			c.users++
			return c
		}
	}
	return nil
}

func (s *SnapshotServer) release(c *servedSnapshot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.users--
	c.lastUsed = time.Now()
	s.cleanLocked()
}

// ServeHTTP answers the paths described at SnapshotServer.
func (s *SnapshotServer) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if !s.authorized(req) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="assent-snapshot"`)
		http.Error(w, "a snapshot needs the snapshot token", http.StatusUnauthorized)
		return
	}
	rest, ok := strings.CutPrefix(req.URL.Path, strings.TrimSuffix(s.Prefix, "/")+"/")
	if !ok {
		http.NotFound(w, req)
		return
	}
	if rest == ManifestName {
		s.mu.Lock()
		latest := s.latest
		s.mu.Unlock()
		if latest == nil {
			w.Header().Set("Retry-After", "10")
			http.Error(w, "no snapshot yet: the store is not ready", http.StatusServiceUnavailable)
			return
		}
		http.Redirect(w, req, strings.TrimSuffix(s.Prefix, "/")+"/"+latest.manifest.ID+"/"+ManifestName, http.StatusTemporaryRedirect)
		return
	}
	id, name, ok := strings.Cut(rest, "/")
	if !ok || !snapshotFileName.MatchString(id) || !snapshotFileName.MatchString(name) {
		http.NotFound(w, req)
		return
	}
	snap := s.acquire(id)
	if snap == nil {
		http.Error(w, "no such snapshot (a newer one replaced it): start again from the manifest", http.StatusNotFound)
		return
	}
	defer s.release(snap)
	if name == ManifestName {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(snap.manifest) // a write error means the client went away
		return
	}
	if _, listed := snap.files[name]; !listed {
		http.NotFound(w, req)
		return
	}
	f, err := os.Open(filepath.Join(snap.dir, name)) //nolint:gosec // name is one the manifest lists, checked above
	if err != nil {
		http.Error(w, "the file is gone", http.StatusNotFound)
		return
	}
	defer func() { _ = f.Close() }() // read-only
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, req, name, time.Time{}, f)
}

func (s *SnapshotServer) authorized(req *http.Request) bool {
	got, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
	if !ok || s.Token == "" {
		return false
	}
	a, b := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(s.Token))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

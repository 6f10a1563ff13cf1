package projection_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/projection"
	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/test/kafkatest"
	"github.com/assent-dev/assent/test/systest"
)

// snapshotLog is a log of a few sealed transactions per partition and a
// runner that has applied all of it, with a snapshot of its store.
type snapshotLog struct {
	topic string
	pr    *producer
	subs  []string
	rr    *running
	h     *recorder
	snap  string // the snapshot directory
	lso   []int64
	m     projection.Manifest
}

const snapParts = 3

func newSnapshotLog(t *testing.T) *snapshotLog {
	t.Helper()
	spec := kafkatest.NewTopics(t, snapParts)
	adm := kafkatest.NewAdmin(t)
	sl := &snapshotLog{topic: spec.Events, pr: newProducer(t, spec.Events, snapParts), subs: flat(subjects("snap", snapParts, 4))}
	for i := range 6 {
		sl.pr.txn(i%3 != 2, sl.subs...) // every third transaction aborted
	}
	sl.lso = stableOffsets(t, adm, sl.topic, snapParts)
	sl.h = newRecorder(t)
	sl.rr = run(t, openRunner(t, t.TempDir(), sl.topic, snapParts, sl.h, nil))
	sl.rr.waitOffsets(t, sl.lso)
	sl.snap = filepath.Join(t.TempDir(), "snap")
	m, err := sl.rr.Snapshot(sl.snap)
	require.NoError(t, err)
	sl.m = *m
	for p, mark := range m.Partitions {
		require.Equal(t, sl.pr.head(int32(p)), mark.Head, "the snapshot's head is the log's")
		require.Equal(t, sl.lso[p], mark.Next, "nothing is pending at the end of committed transactions")
		require.Positive(t, mark.HeadOffset)
	}
	return sl
}

// bootstrapConfig bootstraps dir for sl's topic from source.
func (sl *snapshotLog) bootstrapConfig(t *testing.T, dir, source string) projection.BootstrapConfig {
	return projection.BootstrapConfig{Source: source, Dir: dir, Topic: sl.topic, Partitions: snapParts, Kafka: kafkaConfig(t),
		Keys: systest.DemoKeys(t), Handler: newRecorder(t), Timeout: 30 * time.Second}
}

// copyDir copies a snapshot directory, to tamper with the copy.
func copyDir(t *testing.T, from string) string {
	t.Helper()
	to := filepath.Join(t.TempDir(), "copy")
	require.NoError(t, os.MkdirAll(to, 0o750))
	entries, err := os.ReadDir(from)
	require.NoError(t, err)
	for _, e := range entries {
		raw, err := os.ReadFile(filepath.Join(from, e.Name()))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(to, e.Name()), raw, 0o600))
	}
	return to
}

// rebuildsFully opens and runs a runner on dir and checks that it applies
// the whole log, and nothing twice: what a replica does without a snapshot.
func (sl *snapshotLog) rebuildsFully(t *testing.T, dir string, rep projection.BootstrapReport) {
	t.Helper()
	h := newRecorder(t)
	reg := prometheus.NewRegistry()
	r, err := projection.Open(projection.Config{Dir: dir, Topic: sl.topic, Partitions: snapParts, Kafka: kafkaConfig(t), Handler: h,
		Keys: systest.DemoKeys(t), Bootstrap: &rep})
	require.NoError(t, err)
	r.RegisterMetrics(reg, nil)
	rr := run(t, r)
	rr.waitOffsets(t, sl.lso)
	require.Equal(t, len(sl.pr.committed), h.count(), "a replica that refused the snapshot rebuilds everything from the log")
	mfs, err := reg.Gather()
	require.NoError(t, err)
	found := false
	for _, mf := range mfs {
		if mf.GetName() != "assent_projection_snapshot_refused" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == rep.Refused {
				require.InDelta(t, 1, m.GetGauge().GetValue(), 0, "the refusal shows in the metric")
				found = true
			}
		}
	}
	require.True(t, found, "assent_projection_snapshot_refused{reason=%q}", rep.Refused)
}

// TestIntegrationBootstrapFromSnapshot: a new replica bootstrapped from a
// snapshot (a directory, and a peer's SnapshotServer over HTTP) resumes
// from the snapshot's offsets: it applies only what the log gained since,
// and ends with the store of a replica that read everything.
func TestIntegrationBootstrapFromSnapshot(t *testing.T) {
	t.Parallel()
	sl := newSnapshotLog(t)
	before := len(sl.pr.committed)
	for range 3 {
		sl.pr.txn(true, sl.subs...)
	}
	lso := stableOffsets(t, kafkatest.NewAdmin(t), sl.topic, snapParts)
	sl.rr.waitOffsets(t, lso)

	srv := &projection.SnapshotServer{Runner: sl.rr.Runner, Dir: filepath.Join(t.TempDir(), "served"), Prefix: "/snapshot", Token: "s3cret"}
	ctx, cancel := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() { served <- srv.Run(ctx) }()
	defer func() {
		cancel()
		require.NoError(t, <-served)
	}()
	mux := http.NewServeMux()
	mux.Handle("/snapshot/", srv)
	peer := httptest.NewServer(mux)
	defer peer.Close()

	for name, source := range map[string]string{"directory": sl.snap, "http": peer.URL + "/snapshot"} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "store")
			if name == "directory" {
				// An empty directory that cannot be replaced (a volume's
				// mount point) is filled instead.
				require.NoError(t, os.Mkdir(dir, 0o750))
			}
			cfg := sl.bootstrapConfig(t, dir, source)
			cfg.Token = srv.Token
			var rep projection.BootstrapReport
			eventually(t, "a snapshot to bootstrap from", func() bool {
				rep = projection.Bootstrap(t.Context(), cfg)
				return rep.Used || rep.Refused != projection.RefusedUnavailable || !strings.Contains(rep.Detail, "503")
			})
			require.True(t, rep.Used, "refused: %s: %s", rep.Refused, rep.Detail)
			require.Positive(t, rep.Bytes)
			h := newRecorder(t)
			rr := run(t, openRunner(t, dir, sl.topic, snapParts, h, nil))
			for p, mark := range rep.Marks {
				require.GreaterOrEqual(t, rr.Next(int32(p)), mark.Next, "resumes from the snapshot")
			}
			rr.waitOffsets(t, lso)
			eventually(t, "ready", rr.Ready)
			if name == "directory" {
				require.Equal(t, len(sl.pr.committed)-before, h.count(), "only what the log gained since the snapshot is applied")
			}
			require.Equal(t, stored(t, sl.rr.DB()), stored(t, rr.DB()), "the store is the one of a replica that read everything")
			for p := range int32(snapParts) {
				require.Equal(t, sl.rr.Head(p), rr.Head(p))
			}
		})
	}

	t.Run("newer snapshots taken during a download", func(t *testing.T) {
		// A peer that takes a snapshot every 20 ms still serves every file
		// of the one a replica began to download, between its requests
		// as during them.
		fast := &projection.SnapshotServer{Runner: sl.rr.Runner, Dir: filepath.Join(t.TempDir(), "fast"), Prefix: "/snapshot",
			Token: "s3cret", Interval: 20 * time.Millisecond}
		fctx, fcancel := context.WithCancel(t.Context())
		fastDone := make(chan error, 1)
		go func() { fastDone <- fast.Run(fctx) }()
		defer func() {
			fcancel()
			require.NoError(t, <-fastDone)
		}()
		fpeer := httptest.NewServer(fast)
		defer fpeer.Close()
		get := func(path string) *http.Response {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, fpeer.URL+path, nil)
			require.NoError(t, err)
			req.Header.Set("Authorization", "Bearer "+fast.Token)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			return resp
		}
		var m projection.Manifest
		eventually(t, "a snapshot", func() bool {
			resp := get("/snapshot/" + projection.ManifestName)
			defer func() { _ = resp.Body.Close() }()
			return resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&m) == nil
		})
		require.NotEmpty(t, m.Files)
		for _, f := range m.Files {
			time.Sleep(100 * time.Millisecond) // several newer snapshots are taken meanwhile
			resp := get("/snapshot/" + m.ID + "/" + f.Name)
			require.NoError(t, resp.Body.Close())
			require.Equal(t, http.StatusOK, resp.StatusCode, "%s of snapshot %s", f.Name, m.ID)
		}
	})

	t.Run("wrong token", func(t *testing.T) {
		cfg := sl.bootstrapConfig(t, filepath.Join(t.TempDir(), "store"), peer.URL+"/snapshot")
		cfg.Token = "guess"
		rep := projection.Bootstrap(t.Context(), cfg)
		require.False(t, rep.Used)
		require.Equal(t, projection.RefusedUnavailable, rep.Refused)
		require.Contains(t, rep.Detail, "401")
	})

	t.Run("existing store", func(t *testing.T) {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, "CURRENT"), []byte("x"), 0o600))
		rep := projection.Bootstrap(t.Context(), sl.bootstrapConfig(t, dir, sl.snap))
		require.False(t, rep.Used)
		require.Empty(t, rep.Refused)
		require.NotEmpty(t, rep.Skipped, "a store that exists is never replaced")
	})
}

// TestIntegrationBootstrapRefusesBadSnapshots: a snapshot is untrusted
// input. Each way it can be wrong is refused with its reason, the store's
// directory is left empty, and the replica rebuilds from the log.
func TestIntegrationBootstrapRefusesBadSnapshots(t *testing.T) {
	t.Parallel()
	sl := newSnapshotLog(t)
	other := kafkatest.NewTopics(t, snapParts)
	// tamperStore changes the snapshot's store and reseals its manifest, so
	// that only the checks against the log can tell.
	tamperStore := func(change func(b *pebble.Batch)) func(t *testing.T, dir string, cfg *projection.BootstrapConfig) {
		return func(t *testing.T, dir string, _ *projection.BootstrapConfig) {
			db, err := pebble.Open(dir, &pebble.Options{Logger: quietPebble{}})
			require.NoError(t, err)
			b := db.NewBatch()
			change(b)
			require.NoError(t, b.Commit(pebble.Sync))
			require.NoError(t, db.Close())
			require.NoError(t, projection.Reseal(dir, snapParts))
		}
	}
	// A data record of partition 1 that no seal is the head of: its own hash.
	var dataAt int64 = -1
	var dataHash string
	for at, v := range sl.pr.committed {
		if at.p == 1 && !strings.Contains(string(v), wire.TypeSeal) && (dataAt < 0 || at.off < dataAt) {
			dataAt, dataHash = at.off, wire.Hash(v)
		}
	}
	require.GreaterOrEqual(t, dataAt, int64(0))
	firstSeal := int64(-1)
	for at, v := range sl.pr.committed {
		if at.p == 2 && strings.Contains(string(v), wire.TypeSeal) && (firstSeal < 0 || at.off < firstSeal) {
			firstSeal = at.off
		}
	}
	for name, c := range map[string]struct {
		tamper func(t *testing.T, dir string, cfg *projection.BootstrapConfig)
		reason string
	}{
		"another topic incarnation": {func(t *testing.T, dir string, cfg *projection.BootstrapConfig) {
			cfg.Topic = other.Events // same partitions, another topic: the manifest's topic is rewritten to match
			raw, err := os.ReadFile(filepath.Join(dir, projection.ManifestName))
			require.NoError(t, err)
			var m projection.Manifest
			require.NoError(t, json.Unmarshal(raw, &m))
			m.Topic = other.Events
			raw, err = json.Marshal(m)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(filepath.Join(dir, projection.ManifestName), raw, 0o600))
		}, projection.RefusedIdentity},
		"forged head": {tamperStore(func(b *pebble.Batch) {
			require.NoError(t, b.Set(projection.KeyHead(1), []byte(wire.Hash([]byte("forged"))), nil))
		}), projection.RefusedHead},
		"head on a record no seal is": {tamperStore(func(b *pebble.Batch) {
			require.NoError(t, b.Set(projection.KeyHead(1), []byte(dataHash), nil))
			require.NoError(t, b.Set(projection.KeyHeadAt(1), projection.EncodeInt64(dataAt), nil))
		}), projection.RefusedHead},
		"resumes past seals it did not apply": {tamperStore(func(b *pebble.Batch) {
			// The head of partition 2 moved back to its first seal: the
			// store claims to resume at the end all the same.
			require.NoError(t, b.Set(projection.KeyHead(2), []byte(wire.Hash(sl.pr.committed[pos{2, firstSeal}])), nil))
			require.NoError(t, b.Set(projection.KeyHeadAt(2), projection.EncodeInt64(firstSeal), nil))
		}), projection.RefusedHead},
		"resumes beyond the log": {tamperStore(func(b *pebble.Batch) {
			require.NoError(t, b.Set(projection.KeyOffset(0), projection.EncodeInt64(sl.lso[0]+100), nil))
		}), projection.RefusedOffsets},
		"a corrupted file": {func(t *testing.T, dir string, _ *projection.BootstrapConfig) {
			largest := sl.m.Files[0]
			for _, f := range sl.m.Files {
				if f.Size > largest.Size {
					largest = f
				}
			}
			raw, err := os.ReadFile(filepath.Join(dir, largest.Name))
			require.NoError(t, err)
			raw[len(raw)/2] ^= 0xff
			require.NoError(t, os.WriteFile(filepath.Join(dir, largest.Name), raw, 0o600))
		}, projection.RefusedMalformed},
		"a truncated file": {func(t *testing.T, dir string, _ *projection.BootstrapConfig) {
			require.NoError(t, os.Truncate(filepath.Join(dir, sl.m.Files[0].Name), sl.m.Files[0].Size/2))
		}, projection.RefusedMalformed},
		"too large": {func(_ *testing.T, _ string, cfg *projection.BootstrapConfig) {
			cfg.MaxBytes = sl.m.Bytes() - 1
		}, projection.RefusedTooLarge},
		"a manifest with an unknown field": {func(t *testing.T, dir string, _ *projection.BootstrapConfig) {
			raw, err := os.ReadFile(filepath.Join(dir, projection.ManifestName))
			require.NoError(t, err)
			raw = []byte(strings.Replace(string(raw), "{", `{"extra":1,`, 1))
			require.NoError(t, os.WriteFile(filepath.Join(dir, projection.ManifestName), raw, 0o600))
		}, projection.RefusedMalformed},
		"a file name that is a path": {func(t *testing.T, dir string, _ *projection.BootstrapConfig) {
			raw, err := os.ReadFile(filepath.Join(dir, projection.ManifestName))
			require.NoError(t, err)
			raw = []byte(strings.Replace(string(raw), `"name": "`, `"name": "../`, 1))
			require.NoError(t, os.WriteFile(filepath.Join(dir, projection.ManifestName), raw, 0o600))
		}, projection.RefusedMalformed},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			snap := copyDir(t, sl.snap)
			dir := filepath.Join(t.TempDir(), "store")
			cfg := sl.bootstrapConfig(t, dir, snap)
			c.tamper(t, snap, &cfg)
			rep := projection.Bootstrap(t.Context(), cfg)
			require.False(t, rep.Used)
			require.Equal(t, c.reason, rep.Refused, "detail: %s", rep.Detail)
			t.Logf("refused (%s): %s", rep.Refused, rep.Detail)
			_, err := os.Stat(dir)
			require.True(t, os.IsNotExist(err), "nothing of the refused snapshot is left in the store's place")
			if cfg.Topic == sl.topic {
				sl.rebuildsFully(t, dir, rep)
			}
		})
	}
}

// TestIntegrationBootstrapTimesOut: a source that stops answering is
// given up at the timeout, and the replica rebuilds from the log.
func TestIntegrationBootstrapTimesOut(t *testing.T) {
	t.Parallel()
	sl := newSnapshotLog(t)
	raw, err := os.ReadFile(filepath.Join(sl.snap, projection.ManifestName))
	require.NoError(t, err)
	stall := make(chan struct{})
	defer close(stall)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, projection.ManifestName) {
			_, _ = w.Write(raw)
			return
		}
		w.WriteHeader(http.StatusOK) // and then nothing
		w.(http.Flusher).Flush()
		select {
		case <-stall:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	dir := filepath.Join(t.TempDir(), "store")
	cfg := sl.bootstrapConfig(t, dir, slow.URL)
	cfg.Timeout = 2 * time.Second
	began := time.Now()
	rep := projection.Bootstrap(t.Context(), cfg)
	require.Less(t, time.Since(began), 15*time.Second, "the timeout bounds the bootstrap")
	require.False(t, rep.Used)
	require.Equal(t, projection.RefusedTimeout, rep.Refused, "detail: %s", rep.Detail)
	sl.rebuildsFully(t, dir, rep)
}

// quietPebble drops Pebble's chatter in tests that open snapshots.
type quietPebble struct{}

func (quietPebble) Infof(string, ...any)              {}
func (quietPebble) Errorf(string, ...any)             {}
func (quietPebble) Fatalf(format string, args ...any) { panic(format) }

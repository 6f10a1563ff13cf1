package projection

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/wire"
)

// Defaults of BootstrapConfig.
const (
	DefaultBootstrapTimeout  = 10 * time.Minute
	DefaultBootstrapMaxBytes = 64 << 30
)

// Bounds on what a snapshot may make a replica read or hold, whatever its
// source says.
const (
	maxManifestBytes = 1 << 20
	maxSnapshotFiles = 100_000
	// maxTailRecords bounds the records read from Kafka per partition to
	// check a snapshot's head: those between the head's seal and where
	// the store resumes, normally a commit marker or two.
	maxTailRecords = 100_000
)

// Why a snapshot was refused: the reason label of
// assent_projection_snapshot_refused.
const (
	RefusedUnavailable = "unavailable" // the source did not answer, or not with a snapshot
	RefusedMalformed   = "malformed"   // the manifest or a file is not what it should be
	RefusedTooLarge    = "too_large"   // over BootstrapConfig.MaxBytes
	RefusedStore       = "store"       // the checkpoint does not open, or disagrees with its manifest
	RefusedIdentity    = "identity"    // another cluster, topic incarnation or handler layout
	RefusedOffsets     = "offsets"     // resumes outside the log (ahead of it, or before its start)
	RefusedHead        = "head"        // a chain head the authenticated log does not confirm
	RefusedTimeout     = "timeout"     // BootstrapConfig.Timeout ran out
)

// refusedReasons lists every reason, for the metric.
var refusedReasons = []string{RefusedUnavailable, RefusedMalformed, RefusedTooLarge, RefusedStore, RefusedIdentity,
	RefusedOffsets, RefusedHead, RefusedTimeout}

// BootstrapConfig configures Bootstrap. Dir, Topic, Partitions, Kafka,
// Keys and Handler are the runner's (see Config).
type BootstrapConfig struct {
	// Source is a directory or an http(s) URL holding manifest.json and
	// the files it lists (a peer's SnapshotServer prefix, or a copy of a
	// snapshot in object storage).
	Source string
	// Token is sent as a bearer token to an HTTP source.
	Token      string
	Dir        string
	Topic      string
	Partitions int32
	Kafka      eventlog.Config
	Keys       *wire.KeyRing
	Handler    Handler
	Logger     *slog.Logger
	// Timeout bounds the whole bootstrap (download and checks); 0 means
	// DefaultBootstrapTimeout. MaxBytes bounds the snapshot's size; 0
	// means DefaultBootstrapMaxBytes.
	Timeout  time.Duration
	MaxBytes int64
	// Client fetches from an HTTP source; nil means one with bounded
	// dial, TLS and response-header times.
	Client *http.Client
}

// BootstrapReport says what Bootstrap did; pass it to Config.Bootstrap so
// that the runner's metrics show it.
type BootstrapReport struct {
	Source  string // the source, without credentials or query
	Used    bool   // the store now is the snapshot
	Skipped string // why no snapshot was fetched (the store exists)
	Refused string // when one was fetched and refused: a Refused* reason
	Detail  string // what was wrong, for the log
	Bytes   int64
	Took    time.Duration
	Marks   []PartitionMark // of the snapshot used
}

// refusal is an error with the reason it refuses a snapshot for.
type refusal struct {
	reason string
	err    error
}

func (r *refusal) Error() string { return r.reason + ": " + r.err.Error() }

func refuse(reason, format string, args ...any) error {
	return &refusal{reason: reason, err: fmt.Errorf(format, args...)}
}

// Bootstrap makes a new replica's store from a snapshot, when Dir holds
// no store yet: it downloads the snapshot next to Dir, checks it (sizes
// and hashes against its manifest, the checkpoint's own marks against the
// manifest, its identity against the cluster and topic, and each
// partition's head against the authenticated log), and only then moves it
// to Dir. On any failure it logs why, leaves Dir as it was, and reports
// the refusal: the runner then rebuilds from the log, as without a
// snapshot. The runner opened on Dir afterwards resumes from the
// snapshot's offsets. See docs/architecture.md, "Bootstrap from a
// snapshot", for what the checks prove and what they cannot.
func Bootstrap(ctx context.Context, cfg BootstrapConfig) BootstrapReport {
	began := time.Now()
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "projection", "topic", cfg.Topic)
	rep := BootstrapReport{Source: redact(cfg.Source)}
	if entries, err := os.ReadDir(cfg.Dir); err == nil && len(entries) > 0 {
		rep.Skipped = "the store exists: it resumes from its own offsets"
		log.Info("not bootstrapping from a snapshot: the store exists", "dir", cfg.Dir)
		return rep
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultBootstrapTimeout
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultBootstrapMaxBytes
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	stage := cfg.Dir + ".bootstrap"
	_ = os.RemoveAll(stage) // best effort: what an earlier attempt left
	m, err := bootstrap(ctx, cfg, stage, &rep)
	rep.Took = time.Since(began)
	if err != nil {
		_ = os.RemoveAll(stage) // best effort: a refused snapshot is of no use
		var ref *refusal
		switch {
		case errors.As(err, &ref):
			rep.Refused, rep.Detail = ref.reason, ref.err.Error()
		case ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded):
			rep.Refused, rep.Detail = RefusedTimeout, fmt.Sprintf("not done within %s: %v", cfg.Timeout, err)
		default:
			rep.Refused, rep.Detail = RefusedUnavailable, err.Error()
		}
		if ref != nil && ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			rep.Refused = RefusedTimeout
		}
		log.Error("refused the snapshot; rebuilding the store from the log instead; see docs/runbook.md#assentprojectionsnapshotrefused",
			"source", rep.Source, "reason", rep.Refused, "detail", rep.Detail, "took", rep.Took.Round(time.Millisecond))
		return rep
	}
	rep.Used, rep.Marks = true, m.Partitions
	log.Info("bootstrapped the store from a snapshot; the runner resumes from its offsets", "source", rep.Source,
		"snapshot", m.ID, "created", m.Created, "bytes", rep.Bytes, "took", rep.Took.Round(time.Millisecond))
	return rep
}

// bootstrap fetches and checks a snapshot into stage, then moves it to
// cfg.Dir.
func bootstrap(ctx context.Context, cfg BootstrapConfig, stage string, rep *BootstrapReport) (*Manifest, error) {
	src, err := openSource(cfg)
	if err != nil {
		return nil, err
	}
	m, err := src.manifest(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkManifest(m, cfg); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(stage, 0o750); err != nil {
		return nil, fmt.Errorf("make %s: %w", stage, err)
	}
	if err := src.fetchAll(ctx, m, stage); err != nil {
		return nil, err
	}
	rep.Bytes = m.Bytes()
	if err := checkStore(stage, m, cfg.Partitions); err != nil {
		return nil, err
	}
	if err := checkAgainstLog(ctx, cfg, m); err != nil {
		return nil, err
	}
	if err := moveInto(stage, cfg.Dir); err != nil {
		return nil, fmt.Errorf("move the snapshot to %s: %w", cfg.Dir, err)
	}
	return m, nil
}

// moveInto makes dir the store in stage: a rename, or, when dir exists
// (empty: Bootstrap checked; a volume's mount point, say, which cannot be
// replaced), a rename of each file into it. Either way the files are the
// store's only once the last is in: Pebble's CURRENT marker goes last.
func moveInto(stage, dir string) error {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return os.Rename(stage, dir)
	}
	entries, err := os.ReadDir(stage)
	if err != nil {
		return err
	}
	var last []os.DirEntry
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "CURRENT") || strings.HasPrefix(e.Name(), "marker.") {
			last = append(last, e)
			continue
		}
		if err := os.Rename(filepath.Join(stage, e.Name()), filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	for _, e := range last {
		if err := os.Rename(filepath.Join(stage, e.Name()), filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return os.Remove(stage)
}

// redact is a source as it may be logged: no user, password or query
// (a presigned object storage URL carries its credentials there).
func redact(source string) string {
	u, err := url.Parse(source)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return source
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}

// checkManifest checks a manifest's shape and bounds, before anything is
// downloaded.
func checkManifest(m *Manifest, cfg BootstrapConfig) error {
	switch {
	case m.Format != SnapshotFormat:
		return refuse(RefusedMalformed, "format %q, want %q", m.Format, SnapshotFormat)
	case m.Topic != cfg.Topic:
		return refuse(RefusedIdentity, "a snapshot of topic %q, not %q", m.Topic, cfg.Topic)
	case len(m.Partitions) != int(cfg.Partitions):
		return refuse(RefusedIdentity, "a snapshot of %d partitions, configured for %d", len(m.Partitions), cfg.Partitions)
	case len(m.Files) == 0 || len(m.Files) > maxSnapshotFiles:
		return refuse(RefusedMalformed, "%d files listed (1 to %d)", len(m.Files), maxSnapshotFiles)
	}
	for i, mark := range m.Partitions {
		if mark.Partition != int32(i) {
			return refuse(RefusedMalformed, "partition %d listed in place %d", mark.Partition, i)
		}
	}
	seen := map[string]bool{}
	var total int64
	for _, f := range m.Files {
		sum, err := hex.DecodeString(f.SHA256)
		switch {
		case !snapshotFileName.MatchString(f.Name) || f.Name == ManifestName:
			return refuse(RefusedMalformed, "file name %q", f.Name)
		case seen[f.Name]:
			return refuse(RefusedMalformed, "file %q listed twice", f.Name)
		case f.Size < 0:
			return refuse(RefusedMalformed, "file %q has size %d", f.Name, f.Size)
		case err != nil || len(sum) != sha256.Size || f.SHA256 != strings.ToLower(f.SHA256):
			return refuse(RefusedMalformed, "file %q: sha256 %q is not 64 lowercase hex digits", f.Name, f.SHA256)
		}
		seen[f.Name] = true
		total += f.Size
		if total > cfg.MaxBytes || total < 0 {
			return refuse(RefusedTooLarge, "more than %d bytes (ASSENT_BOOTSTRAP_MAX_BYTES)", cfg.MaxBytes)
		}
	}
	return nil
}

// checkStore opens the downloaded checkpoint read-only and checks that
// its own marks, which the runner will resume from, are the manifest's.
func checkStore(dir string, m *Manifest, partitions int32) error {
	db, err := pebble.Open(dir, &pebble.Options{ReadOnly: true, Logger: quietPebble{}})
	if err != nil {
		return refuse(RefusedStore, "the checkpoint does not open as a Pebble store: %v", err)
	}
	meta, err := readMeta(db, partitions)
	_ = db.Close() // read-only
	if err != nil {
		return refuse(RefusedStore, "the checkpoint: %v", err)
	}
	if meta.identity != m.Identity {
		return refuse(RefusedStore, "the checkpoint's identity %q differs from its manifest's %q", meta.identity, m.Identity)
	}
	for p, mark := range meta.marks {
		if mark != m.Partitions[p] {
			return refuse(RefusedStore, "partition %d: the checkpoint stands at %+v, its manifest says %+v", p, mark, m.Partitions[p])
		}
	}
	return nil
}

// quietPebble drops Pebble's messages while it opens a checkpoint that
// may be anything.
type quietPebble struct{}

func (quietPebble) Infof(string, ...any)  {}
func (quietPebble) Errorf(string, ...any) {}
func (quietPebble) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...)) // Pebble must not go on; it never does for a read-only open
}

// checkAgainstLog checks a snapshot against the cluster and the log: the
// identity it was built for, that each partition resumes inside the log,
// and that the head it claims there is the hash of a seal of the log,
// authenticated with the published keys, after which nothing the
// authenticator would apply comes before the resume offset.
func checkAgainstLog(ctx context.Context, cfg BootstrapConfig, m *Manifest) error {
	cl, err := eventlog.NewClient(cfg.Kafka)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	md, err := adm.Metadata(ctx, cfg.Topic)
	if err != nil {
		return fmt.Errorf("metadata of %s: %w", cfg.Topic, err)
	}
	td, ok := md.Topics[cfg.Topic]
	if !ok || td.Err != nil {
		return fmt.Errorf("topic %s is missing", cfg.Topic)
	}
	if want := identity(md.Cluster, td.ID.String(), cfg.Handler); m.Identity != want {
		return refuse(RefusedIdentity, "the snapshot is of %q, this replica is of %q (another cluster, topic incarnation or handler layout)", m.Identity, want)
	}
	starts, err := adm.ListStartOffsets(ctx, cfg.Topic)
	if err != nil {
		return fmt.Errorf("start offsets of %s: %w", cfg.Topic, err)
	}
	stable, err := adm.ListCommittedOffsets(ctx, cfg.Topic)
	if err != nil {
		return fmt.Errorf("stable offsets of %s: %w", cfg.Topic, err)
	}
	from := map[int32]kgo.Offset{}
	for _, mark := range m.Partitions {
		p := mark.Partition
		start, ok1 := starts.Lookup(cfg.Topic, p)
		lso, ok2 := stable.Lookup(cfg.Topic, p)
		if !ok1 || !ok2 || start.Err != nil || lso.Err != nil {
			return fmt.Errorf("offsets of %s/%d not listed", cfg.Topic, p)
		}
		switch {
		case mark.Next > lso.Offset:
			return refuse(RefusedOffsets, "partition %d resumes at %d, beyond the log's last stable offset %d", p, mark.Next, lso.Offset)
		case mark.Next < start.Offset:
			return refuse(RefusedOffsets, "partition %d resumes at %d, before the log's start %d (records were deleted)", p, mark.Next, start.Offset)
		case mark.Head == wire.GenesisHash && mark.HeadOffset != -1, mark.Head != wire.GenesisHash && mark.HeadOffset < 0:
			return refuse(RefusedHead, "partition %d: head %s at offset %d", p, mark.Head, mark.HeadOffset)
		case mark.HeadOffset >= mark.Next:
			return refuse(RefusedHead, "partition %d: the head's offset %d is not before the resume offset %d", p, mark.HeadOffset, mark.Next)
		case mark.Next-max(mark.HeadOffset, 0) > maxTailRecords:
			return refuse(RefusedHead, "partition %d: %d records between the head and the resume offset (at most %d are checked)",
				p, mark.Next-max(mark.HeadOffset, 0), maxTailRecords)
		}
		if mark.Next > 0 {
			from[p] = kgo.NewOffset().At(max(mark.HeadOffset, 0))
		}
	}
	if len(from) == 0 {
		return nil
	}
	return checkHeads(ctx, cfg, m, from)
}

// checkHeads reads each partition from the snapshot's head to its resume
// offset and checks it (see checkAgainstLog).
func checkHeads(ctx context.Context, cfg BootstrapConfig, m *Manifest, from map[int32]kgo.Offset) error {
	cl, err := eventlog.NewClient(cfg.Kafka, kgo.KeepControlRecords(),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{cfg.Topic: from}),
		kgo.ConsumeResetOffset(kgo.NoResetOffset()), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	type state struct {
		mark PartitionMark
		auth *wire.Authenticator
		seen bool // the head's record
		done bool
	}
	parts := map[int32]*state{}
	for p := range from {
		mark := m.Partitions[p]
		parts[p] = &state{mark: mark, auth: wire.NewAuthenticator(cfg.Keys, cfg.Topic, p, mark.Head), seen: mark.HeadOffset < 0}
	}
	check := func(st *state, rec *kgo.Record) error {
		p, mark := rec.Partition, st.mark
		w := eventlog.WireRecord(rec)
		if !st.seen {
			if rec.Offset != mark.HeadOffset || w.Control || !w.Transactional {
				return refuse(RefusedHead, "partition %d: no committed record at the head's offset %d (the first is at %d)", p, mark.HeadOffset, rec.Offset)
			}
			if h := wire.Hash(rec.Value); h != mark.Head {
				return refuse(RefusedHead, "partition %d: the record at %d hashes to %s, the snapshot claims %s", p, rec.Offset, h, mark.Head)
			}
			env, err := wire.DecodeRecord(w)
			if err != nil || env.Type != wire.TypeSeal {
				return refuse(RefusedHead, "partition %d: the record at the head's offset %d is not a seal", p, rec.Offset)
			}
			if _, err := wire.VerifySeal(cfg.Keys, cfg.Topic, p, env); err != nil {
				return refuse(RefusedHead, "partition %d: the seal at %d does not authenticate: %v", p, rec.Offset, err)
			}
			st.seen = true
			return nil
		}
		it := wire.Item{Record: w}
		var decodeErr error
		if !w.Control {
			it.Hash = wire.Hash(w.Value)
			it.Env, decodeErr = wire.DecodeRecord(w)
		}
		res := st.auth.Add(it, decodeErr)
		if len(res.Apply) > 0 || res.Gap != nil {
			return refuse(RefusedHead, "partition %d: the log authenticates records at %d after the snapshot's head, before its resume offset %d: they would be skipped",
				p, rec.Offset, mark.Next)
		}
		return nil
	}
	left := len(parts)
	for left > 0 {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var firstErr error
		fetches.EachError(func(_ string, p int32, err error) {
			if firstErr == nil {
				firstErr = fmt.Errorf("partition %d: %w", p, err)
			}
		})
		if firstErr != nil {
			return refuse(RefusedHead, "reading the log at the snapshot's heads: %v", firstErr)
		}
		var failed error
		fetches.EachRecord(func(rec *kgo.Record) {
			st := parts[rec.Partition]
			if failed != nil || st == nil || st.done {
				return
			}
			if rec.Offset >= st.mark.Next {
				st.done = true
			} else if failed = check(st, rec); failed == nil && rec.Offset == st.mark.Next-1 {
				st.done = true
			}
			if st.done {
				if !st.seen {
					failed = refuse(RefusedHead, "partition %d: no committed record at the head's offset %d", rec.Partition, st.mark.HeadOffset)
				}
				left--
			}
		})
		if failed != nil {
			return failed
		}
	}
	return nil
}

// identity names what a store was built from: the cluster, the topic
// incarnation, authenticated records only, and the handler's layout.
func identity(cluster, topicID string, h Handler) string {
	id := cluster + "/" + topicID + "/sealed"
	if v, ok := h.(Versioned); ok {
		id += "/" + v.Version()
	}
	return id
}

// source is where a snapshot comes from.
type source interface {
	manifest(ctx context.Context) (*Manifest, error)
	fetchAll(ctx context.Context, m *Manifest, dir string) error
}

func openSource(cfg BootstrapConfig) (source, error) {
	if strings.HasPrefix(cfg.Source, "http://") || strings.HasPrefix(cfg.Source, "https://") {
		u, err := url.Parse(strings.TrimSuffix(cfg.Source, "/") + "/" + ManifestName)
		if err != nil {
			return nil, refuse(RefusedUnavailable, "source: %v", err)
		}
		cl := cfg.Client
		if cl == nil {
			cl = defaultSnapshotClient()
		}
		return &httpSource{cl: cl, manifestURL: u, token: cfg.Token}, nil
	}
	return dirSource(cfg.Source), nil
}

func defaultSnapshotClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: 30 * time.Second,
			IdleConnTimeout:       30 * time.Second,
		},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 {
				return errors.New("more than 3 redirects")
			}
			return nil
		},
	}
}

// decodeManifest decodes a manifest strictly.
func decodeManifest(r io.Reader) (*Manifest, error) {
	raw, err := io.ReadAll(io.LimitReader(r, maxManifestBytes+1))
	if err != nil {
		return nil, err
	}
	if len(raw) > maxManifestBytes {
		return nil, refuse(RefusedMalformed, "the manifest is larger than %d bytes", maxManifestBytes)
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, refuse(RefusedMalformed, "the manifest: %v", err)
	}
	if dec.More() {
		return nil, refuse(RefusedMalformed, "the manifest: trailing data")
	}
	return &m, nil
}

// copyChecked copies exactly f.Size bytes from r to dir/f.Name and checks
// their SHA-256.
func copyChecked(r io.Reader, f SnapshotFile, dir string) error {
	out, err := os.OpenFile(filepath.Join(dir, f.Name), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600) //nolint:gosec // a name checkManifest found plain, in the staging directory
	if err != nil {
		return err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(out, h), io.LimitReader(r, f.Size+1))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("file %s: %w", f.Name, err)
	}
	if n != f.Size {
		return refuse(RefusedMalformed, "file %s has %d bytes or more, the manifest says %d", f.Name, n, f.Size)
	}
	return checkSum(f, h.Sum(nil))
}

func checkSum(f SnapshotFile, sum []byte) error {
	if got := hex.EncodeToString(sum); got != f.SHA256 {
		return refuse(RefusedMalformed, "file %s has sha256 %s, the manifest says %s", f.Name, got, f.SHA256)
	}
	return nil
}

// fetchParallel runs fetch on every file, two at a time, and returns the
// first error.
func fetchParallel(ctx context.Context, files []SnapshotFile, fetch func(context.Context, SnapshotFile) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan SnapshotFile)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for range 2 {
		wg.Go(func() {
			for f := range work {
				if err := fetch(ctx, f); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					cancel()
				}
			}
		})
	}
	for _, f := range files {
		select {
		case work <- f:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(work)
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		first = ctx.Err()
	}
	return first
}

// dirSource is a snapshot in a directory.
type dirSource string

func (d dirSource) manifest(context.Context) (*Manifest, error) {
	f, err := os.Open(filepath.Join(string(d), ManifestName))
	if err != nil {
		return nil, refuse(RefusedUnavailable, "%v", err)
	}
	defer func() { _ = f.Close() }() // read-only
	return decodeManifest(f)
}

// fetchAll copies the files, or hard-links the tables (which Pebble never
// changes once written; the WAL and the MANIFEST it appends to are always
// copied), and checks each one.
func (d dirSource) fetchAll(ctx context.Context, m *Manifest, dir string) error {
	return fetchParallel(ctx, m.Files, func(ctx context.Context, f SnapshotFile) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		src := filepath.Join(string(d), f.Name)
		if ext := filepath.Ext(f.Name); ext == ".sst" || ext == ".blob" {
			if err := os.Link(src, filepath.Join(dir, f.Name)); err == nil {
				info, err := os.Stat(filepath.Join(dir, f.Name))
				if err != nil {
					return err
				}
				if info.Size() != f.Size {
					return refuse(RefusedMalformed, "file %s has %d bytes, the manifest says %d", f.Name, info.Size(), f.Size)
				}
				sum, err := hashFile(filepath.Join(dir, f.Name))
				if err != nil {
					return err
				}
				if sum != f.SHA256 {
					return refuse(RefusedMalformed, "file %s has sha256 %s, the manifest says %s", f.Name, sum, f.SHA256)
				}
				return nil
			}
		}
		in, err := os.Open(src) //nolint:gosec // a name the manifest lists, checked to be a plain file name
		if err != nil {
			return refuse(RefusedMalformed, "file %s: %v", f.Name, err)
		}
		defer func() { _ = in.Close() }() // read-only
		return copyChecked(in, f, dir)
	})
}

// httpSource is a snapshot under an HTTP(S) URL.
type httpSource struct {
	cl          *http.Client
	manifestURL *url.URL
	base        *url.URL // where the manifest was found, after redirects
	token       string
}

func (h *httpSource) get(ctx context.Context, u *url.URL) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	if h.token != "" {
		req.Header.Set("Authorization", "Bearer "+h.token)
	}
	resp, err := h.cl.Do(req)
	if err != nil {
		return nil, refuse(RefusedUnavailable, "GET %s: %v", redact(u.String()), err)
	}
	if resp.StatusCode != http.StatusOK {
		_ = resp.Body.Close() // the status says enough
		return nil, refuse(RefusedUnavailable, "GET %s: %s", redact(u.String()), resp.Status)
	}
	return resp, nil
}

func (h *httpSource) manifest(ctx context.Context) (*Manifest, error) {
	resp, err := h.get(ctx, h.manifestURL)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }() // read-only
	h.base = resp.Request.URL
	return decodeManifest(resp.Body)
}

func (h *httpSource) fetchAll(ctx context.Context, m *Manifest, dir string) error {
	return fetchParallel(ctx, m.Files, func(ctx context.Context, f SnapshotFile) error {
		resp, err := h.get(ctx, h.base.ResolveReference(&url.URL{Path: f.Name}))
		if err != nil {
			return err
		}
		defer func() { _ = resp.Body.Close() }() // read-only
		if resp.ContentLength >= 0 && resp.ContentLength != f.Size {
			return refuse(RefusedMalformed, "file %s is sent with %d bytes, the manifest says %d", f.Name, resp.ContentLength, f.Size)
		}
		return copyChecked(resp.Body, f, dir)
	})
}

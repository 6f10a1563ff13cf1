// Command rebuild-bench measures how fast a new api replica gets ready on
// a large events log (issue 14, item 6): it fills a scratch events topic
// (zstd-compressed) with a realistic sealed log (test/loggen), then, in
// the same run, times a bare franz-go read of it, an api replica that
// rebuilds its store from the log, and a second one that bootstraps from
// the first one's snapshot; it prints each figure beside its goal, with
// the api's memory after the rebuild. scripts/bench --rebuild runs it. It
// is a benchmark, not a test: a phase that fails says why and the others
// still run.
package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/logadmin"
	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/test/loggen"
)

// The goals of issue 14, item 6 (and item 8 for the memory).
const (
	goalRebuildRate = 50_000           // records/s
	goalBootstrap   = 60 * time.Second // on 10,000,000 events
	goalRSS         = 150 << 20        // bytes, at 1,000,000 requests
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "rebuild-bench:", err)
		os.Exit(1)
	}
}

type options struct {
	kafka      eventlog.Config
	bin, root  string
	events     int64
	partitions int32
	sealEvery  int
	keep       bool
	topic      string // an existing events topic (kept by an earlier run), instead of a new one
	keys       string // its keys file
	skipBoot   bool
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("rebuild-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	brokers := fs.String("brokers", getenv(eventlog.EnvBrokers), "comma-separated brokers (default $ASSENT_KAFKA_BROKERS)")
	bin := fs.String("bin", ".run/bin", "directory holding the api binary (scripts/bench builds it there)")
	root := fs.String("root", ".", "the repository (for the demo tokens and command key)")
	events := fs.Int64("events", 1_000_000, "records to generate (at least)")
	parts := fs.Int("partitions", 12, "partitions of the scratch topic")
	every := fs.Int("seal-every", 100, "events per sealed transaction")
	keep := fs.Bool("keep", false, "keep the scratch topics and the keys file (to run again with --topic and --keys)")
	topic := fs.String("topic", "", "measure an events topic kept by an earlier run (with --keys) instead of writing a new one")
	keys := fs.String("keys", "", "the published keys file of --topic")
	skipBoot := fs.Bool("skip-bootstrap", false, "skip the replica that bootstraps from a snapshot")
	if err := fs.Parse(args); err != nil {
		return err
	}
	seeds, err := eventlog.ParseBrokers(*brokers)
	if err != nil {
		return fmt.Errorf("--brokers: %w (scripts/kafka up prints them)", err)
	}
	if *parts < 1 || *parts > math.MaxInt16 {
		return fmt.Errorf("--partitions must be 1 to %d, got %d", math.MaxInt16, *parts)
	}
	if (*topic == "") != (*keys == "") {
		return errors.New("--topic and --keys go together")
	}
	scram, err := eventlog.SCRAMFromEnv(getenv)
	if err != nil {
		return err
	}
	o := options{kafka: eventlog.Config{Brokers: seeds, ClientID: "rebuild-bench", SCRAM: scram}, bin: *bin, root: *root,
		events: *events, partitions: int32(*parts), sealEvery: *every, keep: *keep, topic: *topic, keys: *keys, skipBoot: *skipBoot}
	b := &bench{o: o, out: stdout, errw: stderr}
	return b.run(ctx)
}

type bench struct {
	o         options
	out, errw io.Writer
	adm       *kadm.Client
	spec      eventlog.TopicSpec
	keysFile  string
	dir       string
	records   int64 // data records in the topic
	lines     []string
}

func (b *bench) say(format string, args ...any) {
	_, _ = fmt.Fprintf(b.errw, "rebuild-bench: "+format+"\n", args...)
}

// result adds a line to the summary, printed at the end, and prints it now.
func (b *bench) result(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	b.lines = append(b.lines, line)
	_, _ = fmt.Fprintln(b.out, line)
}

func met(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

func (b *bench) run(ctx context.Context) error {
	cl, err := eventlog.NewClient(b.o.kafka)
	if err != nil {
		return err
	}
	defer cl.Close()
	b.adm = kadm.NewClient(cl)
	if b.dir, err = os.MkdirTemp("", "rebuild-bench-"); err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(b.dir) }() // best effort: the stores are large
	err = b.prepareLog(ctx)
	defer b.cleanup(ctx)
	if err != nil {
		return err
	}
	bare, n, err := bareRead(ctx, b.o.kafka, b.spec.Events, b.records)
	if err != nil {
		b.result("bare franz-go read: failed: %v", err)
	} else {
		b.records = n // exact for a kept topic too
		b.result("bare franz-go read:   %d records in %s: %.0f records/s", b.records, bare.Round(time.Millisecond), float64(b.records)/bare.Seconds())
	}
	peer, err := b.rebuild(ctx, bare)
	if err != nil {
		b.result("api rebuild: failed: %v", err)
	}
	if peer != nil {
		defer peer.stop()
		if !b.o.skipBoot {
			if err := b.bootstrap(ctx, peer); err != nil {
				b.result("api bootstrap from a snapshot: failed: %v", err)
			}
		}
	}
	_, _ = fmt.Fprintf(b.out, "\nsummary (%d records, %d partitions; goals of issue 14, items 6 and 8):\n", b.records, b.spec.Partitions)
	for _, l := range b.lines {
		_, _ = fmt.Fprintln(b.out, "  "+l)
	}
	return nil
}

// prepareLog makes the scratch topics and writes the log, or finds a kept
// one.
func (b *bench) prepareLog(ctx context.Context) error {
	if b.o.topic != "" {
		b.spec = eventlog.TopicSpec{Events: b.o.topic, Commands: b.o.topic + ".commands", Partitions: b.o.partitions,
			ReplicationFactor: 3, MinInsyncReplicas: 2}
		b.keysFile = b.o.keys
		n, err := countRecords(ctx, b.adm, b.spec.Events)
		if err != nil {
			return err
		}
		b.records = n
		_, _ = fmt.Fprintf(b.out, "topic %s (kept): about %d records\n", b.spec.Events, n)
		return nil
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	name := "assent.rebuild-bench." + hex.EncodeToString(rnd[:])
	b.spec = eventlog.TopicSpec{Events: name + ".events", Commands: name + ".events.commands", Partitions: b.o.partitions,
		ReplicationFactor: 3, MinInsyncReplicas: 2}
	if _, err := logadmin.Provision(ctx, b.adm, b.spec); err != nil {
		return fmt.Errorf("provision %s: %w", name, err)
	}
	zstd := "zstd"
	if _, err := b.adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "compression.type", Value: &zstd}}, b.spec.Events); err != nil {
		return fmt.Errorf("compress %s with zstd: %w", b.spec.Events, err)
	}
	keysDir := b.dir
	if b.o.keep {
		var err error
		if keysDir, err = os.MkdirTemp("", "rebuild-bench-keys-"); err != nil {
			return err
		}
	}
	pub, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		return err
	}
	signer, err := wire.NewSigner("bench", key)
	if err != nil {
		return err
	}
	b.keysFile = filepath.Join(keysDir, "keys.json")
	raw, err := json.Marshal(wire.KeysFile{Format: wire.KeysFormat, Keys: []wire.PublicKey{
		{KeyID: "bench", Algorithm: wire.AlgorithmEd25519, PublicKey: base64.StdEncoding.EncodeToString(pub)}}})
	if err != nil {
		return err
	}
	if err := os.WriteFile(b.keysFile, raw, 0o600); err != nil {
		return err
	}
	requests := int(b.o.events*6/21) + 1000 // 3.5 events a request on average
	gopts := loggen.Options{Topic: b.spec.Events, Partitions: b.spec.Partitions, Requests: requests, Signer: signer,
		SealEvery: b.o.sealEvery, Start: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Step: 10 * time.Millisecond,
		ProducerOpts: []kgo.Opt{kgo.ProducerBatchCompression(kgo.ZstdCompression())}}
	_, _ = fmt.Fprintf(b.out, "topic %s: %d partitions, zstd, %d requests, a seal every %d events\n", b.spec.Events, b.spec.Partitions, requests, b.o.sealEvery)
	began := time.Now()
	last := time.Now()
	n, err := loggen.Stream(ctx, b.o.kafka, gopts, func(n int64) {
		if time.Since(last) > 10*time.Second {
			b.say("written %d records (%.0f/s)", n, float64(n)/time.Since(began).Seconds())
			last = time.Now()
		}
	})
	if err != nil {
		return err
	}
	b.records = n
	_, _ = fmt.Fprintf(b.out, "write: %d records in %s (%.0f/s)\n", n, time.Since(began).Round(time.Millisecond), float64(n)/time.Since(began).Seconds())
	return nil
}

// cleanup deletes the scratch topics unless they are kept.
func (b *bench) cleanup(ctx context.Context) {
	if b.o.topic != "" || b.spec.Events == "" {
		return
	}
	if b.o.keep {
		_, _ = fmt.Fprintf(b.out, "kept: --topic %s --keys %s\n", b.spec.Events, b.keysFile)
		return
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if _, err := b.adm.DeleteTopics(dctx, b.spec.Events, b.spec.Commands); err != nil {
		b.say("deleting %s: %v", b.spec.Events, err)
	}
}

// countRecords is the number of offsets of a topic (records, markers
// included): an estimate for a kept topic.
func countRecords(ctx context.Context, adm *kadm.Client, topic string) (int64, error) {
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return 0, err
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n, nil
}

// bareRead reads every partition to its last stable offset with
// franz-go, read_committed, counting records: the floor. The transaction
// markers are kept (and not counted), so that the end of each partition
// is seen: the record just before the last stable offset is always one
// a read_committed reader sees.
func bareRead(ctx context.Context, cfg eventlog.Config, topic string, want int64) (time.Duration, int64, error) {
	began := time.Now()
	cl, err := eventlog.NewClient(cfg, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.KeepControlRecords(), kgo.FetchMaxBytes(64<<20), kgo.FetchMaxPartitionBytes(8<<20))
	if err != nil {
		return 0, 0, err
	}
	defer cl.Close()
	lso, err := kadm.NewClient(cl).ListCommittedOffsets(ctx, topic)
	if err != nil {
		return 0, 0, err
	}
	left := map[int32]int64{} // the last offset to reach, by partition
	lso.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			left[o.Partition] = o.Offset - 1
		}
	})
	ctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	var n int64
	for len(left) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return 0, n, fmt.Errorf("bare read: %w after %d of %d records", ctx.Err(), n, want)
		}
		if err := fs.Err0(); err != nil {
			return 0, n, fmt.Errorf("bare read: %w", err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if !r.Attrs.IsControl() {
				n++
			}
			if end, ok := left[r.Partition]; ok && r.Offset >= end {
				delete(left, r.Partition)
			}
		})
	}
	return time.Since(began), n, nil
}

// api is an api replica process.
type api struct {
	cmd      *exec.Cmd
	base     string
	snapAddr string
	dataDir  string
	log      string
	began    time.Time
	exited   chan struct{} // closed once the process has exited
}

func (a *api) stop() {
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.exited:
	case <-time.After(30 * time.Second):
		_ = a.cmd.Process.Kill()
		<-a.exited
	}
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().String(), nil
}

// startAPI starts an api replica on an empty data directory.
func (b *bench) startAPI(name string, env ...string) (*api, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	snap, err := freeAddr()
	if err != nil {
		return nil, err
	}
	token := filepath.Join(b.dir, "snapshot.token")
	if err := os.WriteFile(token, []byte("rebuild-bench-snapshot-token\n"), 0o600); err != nil {
		return nil, err
	}
	a := &api{base: "http://" + addr, snapAddr: snap, dataDir: filepath.Join(b.dir, name), log: filepath.Join(b.dir, name+".log")}
	logf, err := os.Create(a.log)
	if err != nil {
		return nil, err
	}
	a.cmd = exec.Command(filepath.Join(b.o.bin, "api"))
	a.cmd.Env = append(os.Environ(), eventlog.EnvBrokers+"="+strings.Join(b.o.kafka.Brokers, ","),
		"ASSENT_HTTP_ADDR="+addr, "ASSENT_INSTANCE_ID=rebuild-bench-"+name, "ASSENT_DATA_DIR="+a.dataDir,
		"ASSENT_TOKENS_FILE="+filepath.Join(b.o.root, "infra/tokens/demo-tokens.yaml"),
		"ASSENT_SEAL_KEYS_FILE="+b.keysFile,
		"ASSENT_COMMAND_KEY_FILE="+filepath.Join(b.o.root, "infra/keys/demo-api.key.pem"), "ASSENT_COMMAND_KEY_ID=demo-api-2026-01",
		"ASSENT_PARTITIONS="+strconv.Itoa(int(b.spec.Partitions)),
		"ASSENT_COMMANDS_TOPIC="+b.spec.Commands, "ASSENT_EVENTS_TOPIC="+b.spec.Events,
		"ASSENT_SNAPSHOT_ADDR="+snap, "ASSENT_SNAPSHOT_TOKEN_FILE="+token, "ASSENT_SNAPSHOT_INTERVAL=24h")
	a.cmd.Env = append(a.cmd.Env, env...)
	a.cmd.Stdout, a.cmd.Stderr = logf, logf
	a.began = time.Now()
	if err := a.cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, fmt.Errorf("start %s (build it with scripts/bench, or pass --bin): %w", a.cmd.Path, err)
	}
	_ = logf.Close() // the child has it
	a.exited = make(chan struct{})
	go func() {
		_ = a.cmd.Wait() // its exit status is in its log
		close(a.exited)
	}()
	return a, nil
}

// waitReady waits until the replica answers /readyz with 200, and
// returns how long after its start that was.
func (b *bench) waitReady(ctx context.Context, a *api, what string) (time.Duration, error) {
	hc := &http.Client{Timeout: 5 * time.Second}
	last := time.Now()
	for {
		if resp, err := hc.Get(a.base + "/readyz"); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(a.began), nil
			}
		}
		if time.Since(last) > 10*time.Second {
			b.say("%s: not ready yet (%s; %s)", what, time.Since(a.began).Round(time.Second), progress(a))
			last = time.Now()
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-a.exited:
			return 0, fmt.Errorf("the replica exited; its log: %s", tailFile(a.log, 10))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Since(a.began) > 2*time.Hour {
			return 0, errors.New("not ready after 2 hours")
		}
	}
}

// progress reads the records applied from the metrics.
func progress(a *api) string {
	v := metric(a, "assent_projection_records_total")
	if v == "" {
		return "no metrics yet"
	}
	return v + " records applied"
}

func metric(a *api, sample string) string {
	hc := &http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Get(a.base + "/metrics")
	if err != nil {
		return ""
	}
	defer func() { _ = resp.Body.Close() }() // read-only
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 1<<16), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), sample+" "); ok {
			return v
		}
	}
	return ""
}

// procStats are a process's CPU time and memory, from /proc.
type procStats struct {
	cpu       time.Duration
	rss, peak int64 // bytes: VmRSS, VmHWM
}

func stats(pid int) (procStats, error) {
	var s procStats
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// Fields after the command, which is in parentheses: utime and stime
	// are the 14th and 15th fields, in clock ticks (100 a second on Linux).
	rest := string(raw[strings.LastIndexByte(string(raw), ')')+2:])
	f := strings.Fields(rest)
	if len(f) < 13 {
		return s, errors.New("short /proc stat")
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	s.cpu = time.Duration(ut+st) * 10 * time.Millisecond
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for line := range strings.Lines(string(status)) {
		k, v, _ := strings.Cut(line, ":")
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			s.rss = kb << 10
		case "VmHWM":
			s.peak = kb << 10
		}
	}
	return s, nil
}

func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

func mb(n int64) string { return fmt.Sprintf("%.0f MB", float64(n)/(1<<20)) }

// rebuild starts a replica on an empty store and times it to ready.
func (b *bench) rebuild(ctx context.Context, bare time.Duration) (*api, error) {
	a, err := b.startAPI("rebuild")
	if err != nil {
		return nil, err
	}
	b.say("rebuilding: an api replica on an empty store (log %s)", a.log)
	took, err := b.waitReady(ctx, a, "rebuild")
	if err != nil {
		a.stop()
		return nil, err
	}
	st, serr := stats(a.cmd.Process.Pid)
	applied := count(metric(a, "assent_projection_records_total"))
	rate := float64(b.records) / took.Seconds()
	line := fmt.Sprintf("api rebuild:          %d records in %s: %.0f records/s (process start to /readyz; %s applied)",
		b.records, took.Round(time.Millisecond), rate, applied)
	if bare > 0 {
		line += fmt.Sprintf("; %.0f%% of the bare read", 100*bare.Seconds()/took.Seconds())
	}
	b.result("%s", line)
	b.result("  goal >= %d records/s: %s", goalRebuildRate, met(rate >= goalRebuildRate))
	if serr == nil {
		b.result("  api CPU: %s (%.1f µs a record); store %s on disk", st.cpu.Round(time.Millisecond),
			float64(st.cpu.Microseconds())/float64(b.records), mb(dirSize(a.dataDir)))
		// The memory the catch-up held is given back once ready; read
		// again once that had time to happen.
		time.Sleep(10 * time.Second)
		settled, err := stats(a.cmd.Process.Pid)
		if err != nil {
			settled = st
		}
		requests := b.records * 6 / 21
		b.result("api memory after the rebuild (about %d requests): RSS %s at ready, %s 10 s later; peak %s; goal <= %s at 1,000,000 requests: %s",
			requests, mb(st.rss), mb(settled.rss), mb(settled.peak), mb(goalRSS), met(settled.rss <= goalRSS))
	}
	return a, nil
}

// bootstrap waits for the peer's snapshot, then starts a replica that
// bootstraps from it and times it to ready.
func (b *bench) bootstrap(ctx context.Context, peer *api) error {
	began := time.Now()
	hc := &http.Client{Timeout: 10 * time.Second}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+peer.snapAddr+"/snapshot/manifest.json", nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer rebuild-bench-snapshot-token")
		resp, err := hc.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Since(began) > 10*time.Minute {
			return fmt.Errorf("the peer served no snapshot within 10 minutes (a binary without snapshots? last: %w)", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	b.result("peer's snapshot:      %s", snapshotTook(peer.log))
	a, err := b.startAPI("bootstrap", "ASSENT_BOOTSTRAP_FROM=http://"+peer.snapAddr+"/snapshot")
	if err != nil {
		return err
	}
	defer a.stop()
	b.say("bootstrapping: an api replica from the peer's snapshot (log %s)", a.log)
	took, err := b.waitReady(ctx, a, "bootstrap")
	if err != nil {
		return err
	}
	used := metric(a, "assent_projection_bootstrapped") == "1"
	line := fmt.Sprintf("api bootstrap:        ready in %s (process start to /readyz, from a peer's snapshot over HTTP", took.Round(time.Millisecond))
	if used {
		line += fmt.Sprintf(", %s s of it fetching and checking it; %s records applied after it)",
			metric(a, "assent_projection_bootstrap_seconds"), count(metric(a, "assent_projection_records_total")))
	} else {
		line += "; it did NOT use the snapshot: it rebuilt from the log; see its log)"
	}
	b.result("%s", line)
	b.result("  goal < %s on 10,000,000 events (this log: %d records): %s", goalBootstrap, b.records, met(used && took < goalBootstrap))
	if st, err := stats(a.cmd.Process.Pid); err == nil {
		b.result("  bootstrapped api: RSS %s, peak %s; store %s on disk", mb(st.rss), mb(st.peak), mb(dirSize(a.dataDir)))
	}
	return nil
}

// count formats a sample of the metrics as an integer (Prometheus
// writes large ones with an exponent).
func count(sample string) string {
	f, err := strconv.ParseFloat(sample, 64)
	if err != nil {
		return sample
	}
	return strconv.FormatFloat(f, 'f', 0, 64)
}

// snapshotTook finds in a replica's log how long its snapshot took.
func snapshotTook(path string) string {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	for line := range strings.Lines(string(raw)) {
		var l struct {
			Msg   string          `json:"msg"`
			Took  json.RawMessage `json:"took"` // nanoseconds, or a duration as text
			Bytes int64           `json:"bytes"`
			Files int             `json:"files"`
		}
		if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "took a snapshot to serve" {
			took := strings.Trim(string(l.Took), `"`)
			if ns, err := strconv.ParseInt(took, 10, 64); err == nil {
				took = time.Duration(ns).Round(time.Millisecond).String()
			}
			return fmt.Sprintf("taken once ready, in %s (%s, %d files, each hashed)", took, mb(l.Bytes), l.Files)
		}
	}
	return "taken (its log does not say how long it took)"
}

func tailFile(path string, n int) string {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

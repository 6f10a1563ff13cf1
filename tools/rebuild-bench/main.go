// Command rebuild-bench measures how fast a new replica gets ready on a
// large events log (issue 14, item 6) and how much memory each service
// holds with that log in its store (item 8): it fills a scratch events
// topic (zstd-compressed) with a realistic sealed log (test/loggen), then,
// in the same run, times a bare franz-go read of it, then starts each
// service named by --services in turn (services.go), as its own Kafka
// principal, on an empty store, times it to /readyz and reads its memory
// at ready, 10 s and a minute later; after the api, a second api
// bootstraps from the first one's snapshot. It prints each figure beside
// its goal. scripts/bench --rebuild runs it. It is a benchmark, not a
// test: a phase that fails says why and the others still run.
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
	"github.com/assent-dev/assent/test/fakeoidc"
	"github.com/assent-dev/assent/test/loggen"
	"github.com/assent-dev/assent/test/slackfake"
	"github.com/assent-dev/assent/test/systest"
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
	services   []string // to measure, in serviceOrder
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
	svcs := fs.String("services", strings.Join(serviceOrder, ","),
		"the services to start on the log, one after the other, each rebuilding its store (the bootstrap needs the api)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	measured, err := parseServices(*svcs)
	if err != nil {
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
		events: *events, partitions: int32(*parts), sealEvery: *every, keep: *keep, topic: *topic, keys: *keys, skipBoot: *skipBoot,
		services: measured}
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
	rows      []memRow
	stamp     string // names the services' instances and groups
	granted   bool   // ACLs were granted on the scratch topics
	slack     *slackfake.Server
	oidc      *fakeoidc.Server
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
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	b.stamp = hex.EncodeToString(rnd[:])
	defer func() {
		if b.slack != nil {
			b.slack.Close()
		}
		if b.oidc != nil {
			_ = b.oidc.Shutdown()
		}
	}()
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
	if err := b.grant(ctx); err != nil {
		b.result("granting the services' ACLs on %s: %v", b.spec.Events, err)
	}
	// One service at a time: each has the machine's cores to itself, and
	// its store is deleted before the next one starts.
	for _, svc := range b.o.services {
		peer, err := b.measure(ctx, svc, bare)
		if err != nil {
			b.result("%s rebuild: failed: %v", svc, err)
		}
		if peer != nil {
			if !b.o.skipBoot {
				if err := b.bootstrap(ctx, peer); err != nil {
					b.result("api bootstrap from a snapshot: failed: %v", err)
				}
			}
			peer.stop()
			_ = os.RemoveAll(peer.dataDir)
		}
		if ctx.Err() != nil {
			break
		}
	}
	_, _ = fmt.Fprintf(b.out, "\nsummary (%d records, %d partitions; goals of issue 14, items 6 and 8):\n", b.records, b.spec.Partitions)
	for _, l := range b.lines {
		_, _ = fmt.Fprintln(b.out, "  "+l)
	}
	b.memoryTable()
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
	name := "assent.rebuild-bench." + b.stamp
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
	if b.spec.Events == "" {
		return
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	b.revoke(dctx)
	b.deleteGroups(dctx)
	if b.o.topic != "" {
		return
	}
	if b.o.keep {
		_, _ = fmt.Fprintf(b.out, "kept: --topic %s --keys %s\n", b.spec.Events, b.keysFile)
		return
	}
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

// proc is a service process.
type proc struct {
	svc      string // the service: api, decider, ...
	cmd      *exec.Cmd
	base     string
	snapAddr string // api only
	dataDir  string
	log      string
	began    time.Time
	exited   chan struct{} // closed once the process has exited
}

func (a *proc) stop() {
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.exited:
	case <-time.After(30 * time.Second):
		_ = a.cmd.Process.Kill()
		<-a.exited
	}
}

// startService starts a replica of svc, named name, on an empty data
// directory, as the service's own Kafka principal.
func (b *bench) startService(svc, name string, env ...string) (*proc, error) {
	addr, err := systest.UniqueAddr()
	if err != nil {
		return nil, err
	}
	a := &proc{svc: svc, base: "http://" + addr, dataDir: filepath.Join(b.dir, name), log: filepath.Join(b.dir, name+".log")}
	logf, err := os.Create(a.log)
	if err != nil {
		return nil, err
	}
	s := services[svc]
	a.cmd = exec.Command(filepath.Join(b.o.bin, s.bin), s.args...)
	a.cmd.Env = append(os.Environ(), eventlog.EnvBrokers+"="+strings.Join(b.o.kafka.Brokers, ","),
		"ASSENT_HTTP_ADDR="+addr, "ASSENT_INSTANCE_ID=rebuild-bench-"+name+"-"+b.stamp, "ASSENT_DATA_DIR="+a.dataDir,
		"ASSENT_SEAL_KEYS_FILE="+b.keysFile, "ASSENT_AUDIT_KEYS_FILE="+b.keysFile,
		"ASSENT_PARTITIONS="+strconv.Itoa(int(b.spec.Partitions)),
		"ASSENT_COMMANDS_TOPIC="+b.spec.Commands, "ASSENT_EVENTS_TOPIC="+b.spec.Events)
	a.cmd.Env = append(a.cmd.Env, b.credentials(s.role)...)
	envs, err := s.env(b, a)
	if err != nil {
		_ = logf.Close()
		return nil, err
	}
	a.cmd.Env = append(append(a.cmd.Env, envs...), env...)
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
func (b *bench) waitReady(ctx context.Context, a *proc, what string) (time.Duration, error) {
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
func progress(a *proc) string {
	v := applied(a)
	if v == "" {
		return "no metrics yet"
	}
	return v + " records applied"
}

// applied is the records the replica's projection applied (the sum over
// its runners, should a service run more than one).
func applied(a *proc) string {
	hc := &http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Get(a.base + "/metrics")
	if err != nil {
		return ""
	}
	defer func() { _ = resp.Body.Close() }() // read-only
	const name = "assent_projection_records_total"
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 1<<16), 1<<20)
	var n float64
	found := false
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+" ") && !strings.HasPrefix(line, name+"{") {
			continue
		}
		if i := strings.LastIndexByte(line, ' '); i > 0 {
			if f, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
				n += f
				found = true
			}
		}
	}
	if !found {
		return ""
	}
	return strconv.FormatFloat(n, 'f', 0, 64)
}

// metric is the first sample of the metrics whose line starts with
// sample (a name, with its labels if it has any).
func metric(a *proc, sample string) string {
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
	cpu        time.Duration
	rss, peak  int64 // bytes: VmRSS, VmHWM
	anon, file int64 // bytes: RssAnon, RssFile
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
		case "RssAnon":
			s.anon = kb << 10
		case "RssFile":
			s.file = kb << 10
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

// memRow is what one service measured, for the summary's table.
type memRow struct {
	svc                   string
	ready                 time.Duration
	failed                string
	ready0, later, minute procStats // at ready, 10 s and a minute later (VmHWM then: the peak)
	heapInuse, goSys      int64     // the Go runtime's, 10 s after ready (its metrics)
	store                 int64
}

// measure starts a replica of svc on an empty store, times it to ready
// and reads its memory at ready, 10 s and a minute later. It returns the replica,
// still running, for the api (whose snapshot the bootstrap copies); it
// stops the others and deletes their stores.
func (b *bench) measure(ctx context.Context, svc string, bare time.Duration) (*proc, error) {
	row := memRow{svc: svc}
	defer func() { b.rows = append(b.rows, row) }()
	a, err := b.startService(svc, svc)
	if err != nil {
		row.failed = err.Error()
		return nil, err
	}
	keep := false
	defer func() {
		if !keep {
			a.stop()
			_ = os.RemoveAll(a.dataDir) // the stores are large and the disk is not
		}
	}()
	b.say("rebuilding: a %s replica on an empty store (log %s)", svc, a.log)
	took, err := b.waitReady(ctx, a, svc+" rebuild")
	if err != nil {
		row.failed = err.Error()
		return nil, err
	}
	row.ready = took
	st, serr := stats(a.cmd.Process.Pid)
	done := applied(a)
	rate := float64(b.records) / took.Seconds()
	name := svc + " rebuild:"
	line := fmt.Sprintf("%-21s %d records in %s: %.0f records/s (process start to /readyz; %s applied)",
		name, b.records, took.Round(time.Millisecond), rate, done)
	if bare > 0 {
		line += fmt.Sprintf("; %.0f%% of the bare read", 100*bare.Seconds()/took.Seconds())
	}
	b.result("%s", line)
	if svc == "api" {
		b.result("  goal >= %d records/s: %s", goalRebuildRate, met(rate >= goalRebuildRate))
	}
	if serr != nil {
		row.failed = serr.Error()
		return nil, serr
	}
	row.ready0 = st
	row.store = dirSize(a.dataDir)
	b.result("  %s CPU: %s (%.1f µs a record); store %s on disk", svc, st.cpu.Round(time.Millisecond),
		float64(st.cpu.Microseconds())/float64(b.records), mb(row.store))
	// The memory the catch-up held is given back once ready; read
	// again once that had time to happen, and once more a minute after
	// ready (the gateway and the notifier start their consumer groups,
	// which read the log from its start, once ready).
	for i, at := range []time.Duration{10 * time.Second, time.Minute} {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-a.exited:
			row.failed = "exited after ready: " + tailFile(a.log, 5)
			return nil, errors.New(row.failed)
		case <-time.After(time.Until(a.began.Add(took + at))):
		}
		now, err := stats(a.cmd.Process.Pid)
		if err != nil {
			now = st
		}
		if i == 0 {
			row.later = now
			continue
		}
		row.minute = now
	}
	row.heapInuse = int64(num(metric(a, "go_memstats_heap_inuse_bytes")))
	row.goSys = int64(num(metric(a, "go_memstats_sys_bytes")))
	b.result("  %s memory (about %d requests): RSS %s at ready (%s), %s 10 s later (%s), %s a minute later (%s); peak %s; "+
		"a minute later: anonymous %s, file-backed %s, Go heap in use %s, Go runtime from the OS %s",
		svc, b.requests(), mb(st.rss), met(st.rss <= goalRSS), mb(row.later.rss), met(row.later.rss <= goalRSS),
		mb(row.minute.rss), met(row.minute.rss <= goalRSS),
		mb(row.minute.peak), mb(row.minute.anon), mb(row.minute.file), mb(row.heapInuse), mb(row.goSys))
	if svc == "api" {
		keep = true
		return a, nil
	}
	return nil, nil
}

// requests is about how many requests the log holds: loggen's 3.5
// events a request on average.
func (b *bench) requests() int64 { return b.records * 6 / 21 }

// num is a sample of the metrics as a number (0 if there is none).
func num(sample string) float64 {
	f, _ := strconv.ParseFloat(sample, 64)
	return f
}

// memoryTable prints each service's memory beside the goal.
func (b *bench) memoryTable() {
	if len(b.rows) == 0 {
		return
	}
	_, _ = fmt.Fprintf(b.out, "\nmemory of each service after rebuilding its store from the log (about %d requests; goal of issue 14, item 8: RSS <= %s at 1,000,000 requests, Pebble's block cache included):\n",
		b.requests(), mb(goalRSS))
	_, _ = fmt.Fprintf(b.out, "  %-14s %10s %17s %17s %17s %9s %9s %9s %9s\n", "service", "ready in", "RSS at ready", "RSS 10 s later",
		"RSS 1 min later", "peak", "Go heap", "Go sys", "store")
	for _, r := range b.rows {
		if r.failed != "" {
			_, _ = fmt.Fprintf(b.out, "  %-14s failed: %s\n", r.svc, firstLine(r.failed))
			continue
		}
		verdict := func(n int64) string {
			if n <= goalRSS {
				return mb(n) + " met"
			}
			return mb(n) + " NOT met"
		}
		_, _ = fmt.Fprintf(b.out, "  %-14s %10s %17s %17s %17s %9s %9s %9s %9s\n", r.svc, r.ready.Round(100*time.Millisecond),
			verdict(r.ready0.rss), verdict(r.later.rss), verdict(r.minute.rss), mb(r.minute.peak), mb(r.heapInuse), mb(r.goSys), mb(r.store))
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// bootstrap waits for the peer's snapshot, then starts a replica that
// bootstraps from it and times it to ready.
func (b *bench) bootstrap(ctx context.Context, peer *proc) error {
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
	a, err := b.startService("api", "bootstrap", "ASSENT_BOOTSTRAP_FROM=http://"+peer.snapAddr+"/snapshot")
	if err != nil {
		return err
	}
	defer func() {
		a.stop()
		_ = os.RemoveAll(a.dataDir)
	}()
	b.say("bootstrapping: an api replica from the peer's snapshot (log %s)", a.log)
	took, err := b.waitReady(ctx, a, "bootstrap")
	if err != nil {
		return err
	}
	used := metric(a, "assent_projection_bootstrapped") == "1"
	line := fmt.Sprintf("api bootstrap:        ready in %s (process start to /readyz, from a peer's snapshot over HTTP", took.Round(time.Millisecond))
	if used {
		line += fmt.Sprintf(", %s s of it fetching and checking it; %s records applied after it)",
			metric(a, "assent_projection_bootstrap_seconds"), applied(a))
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

package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/logadmin"
	"github.com/assent-dev/assent/test/otlptest"
	"github.com/assent-dev/assent/test/systest"
)

const usage = `usage: assent-bench [flags]

Measures, on one cluster and in one run:
  1. the bare-Kafka floors, each at --rate for --duration:
     (a) an acks=all produce, then a read of that record;
     (b) a one-record transaction (produce + commit), then a read_committed
         read of it (128 transactional producers, up to 192 as needed);
     (c) a franz-go transactional consume->produce copy between two scratch
         topics, then a read of the copy; also its throughput with
         concurrent synchronous producers;
  2. Assent: two deciders and two api replicas started from --bin, on fresh
     topics: end-to-end latency from the deciding vote's POST to a waiting
     requester's GET ?wait= returning the decision, at --rate; and
     sustained decisions per second through the API with concurrent clients;
  3. the capacity sweep (--sweep-step, 0 skips it): an open loop offers
     each of --sweep-rates for a step to floor (c) and to Assent (arrivals on
     a fixed schedule, never waiting for completions; at most
     --sweep-max-outstanding in flight, past that an arrival is shed), and
     prints achieved/s, p50 and p99 from the scheduled arrival, the knee
     (the first rate where p99 passes 1s; the sweep stops there) and the
     capacity (most achieved/s with p99 within 1s);
  4. the RSS of every service process after the runs;
and prints each Assent figure beside the floor as a ratio, with the goals
of issue 14: Assent p50 <= 2 x (floor b p50 + floor a p50), p99 <= 3 x
(floor b p99 + floor a p99), capacity >= 80% of floor (c)'s.

With --auth, instead: decision latency with and without authentication in
the same run. Two systems run side by side on the same cluster, each on its
own fresh topics: "with" is the production build from --bin; "without" is
the decider and api built with -tags assentbench_noauth (--noauth-bin),
whose decider writes no seals (no Ed25519 signature, no seal record in the
transaction) and whose readers (the api's and the deciders' projections)
apply records without wire.Authenticator (no holding until the seal, no
seal verification). SASL/SCRAM and the ACL checks stay on in both arms:
the cluster is one, and their cost is per connection and per request on
the brokers. Latency rounds alternate between the arms (A B B A ...) so
that machine noise falls on both; the "without" arm is the floor.

With --failover, instead: what a failure costs in decisions, on a cluster
of its own (three brokers and three dedicated KRaft controllers in network
namespaces, as the fault suite
runs them: root is needed) with two deciders and two api replicas under a
steady load of submits on every partition (--failover-rate). It kills -9
the decider that owns a partition (--decider-kills times, restarting it
after each) and prints the time from the kill to the survivor's first
decision on that partition; then it kills -9 one Kafka broker
(--broker-kills), cuts one off from the rest of the cluster
(--broker-partitions), each broker in turn, and kills -9 the active
controller (--controller-kills), and prints the longest gap between
decisions on all partitions in each fault's window. Each figure is beside its goal (issue
14: a decider's failover within 3 s; no gap over 5 s across all
partitions when one broker of three is lost). Every log, the brokers'
too, stays under --failover-out.

Flags:
`

type config struct {
	brokers    string
	bin        string
	root       string
	rate       int
	duration   time.Duration
	requests   int
	clients    int
	partitions int
	deciders   int
	// auth runs the authentication A/B instead (auth.go): --noauth-bin
	// holds the assentbench_noauth builds of the decider and the api.
	auth      bool
	noauthBin string
	rounds    int
	// The capacity sweep (openloop.go): --sweep-step 0 skips it.
	sweepStep           time.Duration
	sweepRatesFlag      string
	sweepRates          []int
	sweepMaxOutstanding int
	// failover runs the failover benchmark instead (failover.go).
	failover failoverConfig
	// hops adds the per-hop breakdown of the latency run (hops.go);
	// otlpURL is then the bench's own OTLP receiver, which the services it
	// starts export to.
	hops    bool
	otlpURL string
}

// sweepDrain is how long a sweep step's in-flight arrivals have to finish
// after its last arrival; those still running then count as incomplete.
const sweepDrain = 10 * time.Second

// floorTopics are the floors' scratch topics.
type floorTopics struct{ a, b, in, out, stamp string }

func defaults() config {
	return config{
		brokers: os.Getenv("ASSENT_KAFKA_BROKERS"), bin: ".run/bin", root: ".",
		rate: 200, duration: 20 * time.Second, requests: 10000, clients: 32, partitions: 12, deciders: 2, rounds: 8, hops: true,
		sweepStep: 10 * time.Second, sweepRatesFlag: "100,250,500,1000,2000,4000", sweepMaxOutstanding: 4000,
	}
}

func (c *config) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.brokers, "brokers", c.brokers, "Kafka brokers (default $ASSENT_KAFKA_BROKERS)")
	fs.StringVar(&c.bin, "bin", c.bin, "directory holding the api and decider binaries")
	fs.StringVar(&c.root, "root", c.root, "repository root (for the policy and tokens files)")
	fs.IntVar(&c.rate, "rate", c.rate, "steady decisions per second for the latency runs")
	fs.DurationVar(&c.duration, "duration", c.duration, "length of each latency and floor-throughput run")
	fs.IntVar(&c.requests, "requests", c.requests, "requests (each a submit and a deciding vote) in the throughput run")
	fs.IntVar(&c.clients, "clients", c.clients, "concurrent clients (and floor producers) in the throughput runs")
	fs.IntVar(&c.partitions, "partitions", c.partitions, "partitions of every topic")
	fs.IntVar(&c.deciders, "deciders", c.deciders, "decider replicas Assent runs with (each a group member with its own transactional id)")
	fs.BoolVar(&c.auth, "auth", c.auth, "measure decision latency with and without authentication, interleaved in one run (see above)")
	fs.StringVar(&c.noauthBin, "noauth-bin", c.noauthBin, "with --auth: directory holding the decider and api built with -tags assentbench_noauth (default <bin>/noauth)")
	fs.IntVar(&c.rounds, "rounds", c.rounds, "with --auth: rounds per arm, alternated ABBA; each round lasts --duration divided by --rounds")
	fs.DurationVar(&c.sweepStep, "sweep-step", c.sweepStep, "length of each step of the open-loop capacity sweep; 0 skips the sweep")
	fs.StringVar(&c.sweepRatesFlag, "sweep-rates", c.sweepRatesFlag, "decisions per second offered in the capacity sweep, ascending, comma-separated")
	fs.IntVar(&c.sweepMaxOutstanding, "sweep-max-outstanding", c.sweepMaxOutstanding, "in the sweep, most requests in flight at once on each side; an arrival past it is shed and counts over the bound")
	fs.BoolVar(&c.hops, "hops", c.hops, "per-hop breakdown of the latency run from OpenTelemetry traces (the services export to the bench's own OTLP receiver; only the latency run's votes are sampled); --hops=false runs without tracing")
	c.failover.flags(fs)
}

func run(ctx context.Context, cfg config, stdout, stderr io.Writer) error {
	say := func(format string, args ...any) { _, _ = fmt.Fprintf(stderr, "bench: "+format+"\n", args...) }
	if cfg.failover.on {
		return runFailover(ctx, cfg.failover, cfg.root, stdout, say)
	}
	brokers, err := eventlog.ParseBrokers(cfg.brokers)
	if err != nil || cfg.brokers == "" {
		return errors.New("no brokers: set ASSENT_KAFKA_BROKERS or --brokers (scripts/bench starts a cluster)")
	}
	if cfg.partitions < 1 || cfg.partitions > 10000 { // what the services accept in ASSENT_PARTITIONS
		return fmt.Errorf("--partitions must be 1 to 10000, got %d", cfg.partitions)
	}
	partitions := int32(cfg.partitions)
	if cfg.rate < 1 {
		return fmt.Errorf("--rate must be at least 1, got %d", cfg.rate)
	}
	if cfg.sweepRates, err = parseRates(cfg.sweepRatesFlag); err != nil {
		return err
	}
	if cfg.sweepStep < 0 || cfg.sweepStep > 10*time.Minute || cfg.sweepMaxOutstanding < 1 || cfg.sweepMaxOutstanding > 100000 {
		return errors.New("--sweep-step must be 0 to 10m and --sweep-max-outstanding 1 to 100000")
	}
	scram, err := eventlog.SCRAMFromEnv(os.Getenv)
	if err != nil {
		return err
	}
	kcfg := eventlog.Config{Brokers: brokers, ClientID: "assent-bench", SCRAM: scram}
	admCl, err := eventlog.NewClient(kcfg)
	if err != nil {
		return err
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	stamp := strconv.FormatInt(time.Now().Unix(), 10)
	if cfg.auth {
		return runAuth(ctx, cfg, partitions, adm, stamp, stdout, say)
	}

	// 1. The floors.
	ft := floorTopics{a: "bench." + stamp + ".floor-a", b: "bench." + stamp + ".floor-b",
		in: "bench." + stamp + ".floor-in", out: "bench." + stamp + ".floor-out", stamp: stamp}
	for _, pair := range [][2]string{{ft.a, ft.b}, {ft.in, ft.out}} {
		spec := eventlog.TopicSpec{Commands: pair[0], Events: pair[1], Partitions: partitions, ReplicationFactor: 3, MinInsyncReplicas: 2}
		if _, err := logadmin.Provision(ctx, adm, spec); err != nil {
			return fmt.Errorf("floor topics: %w", err)
		}
		defer deleteTopics(adm, pair[0], pair[1])
	}
	floor, err := measureFloor(ctx, kcfg, cfg, ft, say)
	if err != nil {
		return err
	}

	// 2. Assent.
	topics := eventlog.TopicSpec{Commands: "bench." + stamp + ".commands", Events: "bench." + stamp + ".events",
		Partitions: partitions, ReplicationFactor: 3, MinInsyncReplicas: 2}
	if _, err := logadmin.Provision(ctx, adm, topics); err != nil {
		return fmt.Errorf("assent topics: %w", err)
	}
	defer deleteTopics(adm, topics.Commands, topics.Events)
	var otlp *otlptest.Receiver
	if cfg.hops {
		if otlp, err = otlptest.Start(); err != nil {
			return err
		}
		defer func() { _ = otlp.Close() }()
		cfg.otlpURL = otlp.URL
	}
	procs, apis, err := startServices(ctx, cfg, cfg.bin, topics, stamp, say)
	defer func() {
		for _, p := range procs {
			p.stop()
		}
	}()
	if err != nil {
		return err
	}
	say("assent: warming up (the deciders' group settles, connections open)")
	if err := warmUp(ctx, apis); err != nil {
		return err
	}
	lat, traces, err := measureLatency(ctx, cfg, apis, say)
	if err != nil {
		return err
	}
	var hops []hopRow
	var traced int
	if otlp != nil {
		say("assent: collecting the latency run's traces")
		hops, traced = hopTable(awaitTimelines(ctx, otlp, traces), traces)
	}
	say("assent: throughput, %d requests with %d clients", cfg.requests, cfg.clients)
	tput, whole, err := measureThroughput(ctx, cfg, apis)
	if err != nil {
		return err
	}
	var assentSweep []stepResult
	if cfg.sweepStep > 0 {
		say("assent: capacity sweep, open loop, %s a step: %v/s", cfg.sweepStep, cfg.sweepRates)
		assentSweep = sweepAssent(ctx, cfg, apis, say)
	}

	p50f, p99f := pct(floor.latencies, 50), pct(floor.latencies, 99)
	p50, p99 := pct(lat, 50), pct(lat, 99)
	w := stdout
	_, _ = fmt.Fprintf(w, "\nAssent benchmark, %s, %d partitions, RF 3, min ISR 2, 3 brokers on 127.0.0.1\n", time.Now().UTC().Format(time.RFC3339), cfg.partitions)
	_, _ = fmt.Fprintf(w, "machine: %d CPUs, shared with other work (brokers, services and this bench on the same cores)\n", runtime.NumCPU())
	printFloors(w, cfg, floor, lat)
	if otlp != nil {
		printHops(w, hops, traced, len(traces), lat, otlp)
	}
	_, _ = fmt.Fprintf(w, "\n%-34s %14s %14s %8s  %s\n", "figure", "floor (c) copy", "Assent", "ratio", "goal")
	_, _ = fmt.Fprintf(w, "%-34s %14s %14s %8.2f  %s\n", "latency p50 (vote POST -> GET)", ms(p50f), ms(p50), ratio(p50, p50f), "")
	_, _ = fmt.Fprintf(w, "%-34s %14s %14s %8.2f  %s\n", "latency p99 (vote POST -> GET)", ms(p99f), ms(p99), ratio(p99, p99f), verdict(ratio(p99, p99f) <= 1.5, "<= 1.5x"))
	_, _ = fmt.Fprintf(w, "%-34s %12.0f/s %12.0f/s %8.2f  %s\n", "throughput, closed loop", floor.closedLoop, tput, tput/floor.closedLoop, verdict(tput/floor.closedLoop >= 0.5, ">= 0.5x"))
	_, _ = fmt.Fprintf(w, "%-34s %12.0f/s %12.0f/s %8.2f  %s\n", "throughput, open loop", floor.throughput, tput, tput/floor.throughput, verdict(tput/floor.throughput >= 0.5, ">= 0.5x"))
	_, _ = fmt.Fprintf(w, "%-34s %14s %12.0f/s\n", "whole requests (submit + vote)", "", whole)
	_, _ = fmt.Fprintf(w, `
latency samples: floor (c) %d, assent %d, at %d/s.
throughput: %d concurrent clients on each side. Assent: decisions per second,
each a deciding vote answered with its outcome (requests submitted first, not
timed). Floor, closed loop: each client produces a record and waits until it
has been copied (the same wait for the outcome an Assent client has). Floor,
open loop: producers wait only for Kafka's ack, not for the copy.
`, len(floor.latencies), len(lat), cfg.rate, cfg.clients)
	if s, v := accepted202.submits.Load(), accepted202.votes.Load(); s+v > 0 {
		_, _ = fmt.Fprintf(w, "answered 202 (durable, not decided within the API's write wait; each waited for\nits outcome and counted): %d submits, %d votes\n", s, v)
	}
	if cfg.sweepStep > 0 {
		printSweep(w, cfg, floor.sweep, assentSweep)
	}
	_, _ = fmt.Fprintf(w, "\nRSS after %d requests:\n", cfg.requests+len(lat))
	for _, p := range procs {
		_, _ = fmt.Fprintf(w, "  %-10s %6.1f MiB\n", p.name, float64(rss(p.cmd.Process.Pid))/1024)
	}
	return nil
}

func verdict(ok bool, goal string) string {
	if ok {
		return "met (" + goal + ")"
	}
	return "NOT met (" + goal + ")"
}

func ratio(a, b time.Duration) float64 { return float64(a) / float64(b) }

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

func pct(xs []time.Duration, p int) time.Duration {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(0, min(len(s)-1, i-1))]
}

func deleteTopics(adm *kadm.Client, topics ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _ = adm.DeleteTopics(ctx, topics...)
}

type floorResult struct {
	a, b       []time.Duration // floors (a) and (b) at cfg.rate (floors.go)
	bInfo      floorBInfo
	aRate      float64 // achieved rates of floors (a) and (c) at cfg.rate
	cRate      float64
	latencies  []time.Duration // floor (c), the copy, at cfg.rate
	throughput float64         // open loop: producers wait only for the ack
	closedLoop float64         // each client waits for its record to be copied
	sweep      []stepResult    // floor (c) in the capacity sweep
}

// clients runs n clients calling f in a loop for d and returns the calls
// completed per second.
func clients(n int, d time.Duration, f func(client, i int) error) (float64, error) {
	var done atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	began := time.Now()
	stop := began.Add(d)
	for c := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(stop); i++ {
				if err := f(c, i); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		return 0, e.(error)
	}
	return float64(done.Load()) / time.Since(began).Seconds(), nil
}

// measureFloor measures floors (a) and (b) (floors.go) at cfg.rate, then
// runs the transactional copier, floor (c), and measures it at cfg.rate,
// for throughput, and in the capacity sweep.
func measureFloor(ctx context.Context, kcfg eventlog.Config, cfg config, ft floorTopics, say func(string, ...any)) (floorResult, error) {
	var res floorResult
	var err error
	say("floor (a): acks=all produce -> read on %s at %d/s for %s", ft.a, cfg.rate, cfg.duration)
	if res.a, res.aRate, err = measureFloorA(ctx, kcfg, cfg, ft.a); err != nil {
		return res, err
	}
	say("floor (b): one-record transaction -> read_committed read on %s at %d/s for %s", ft.b, cfg.rate, cfg.duration)
	if res.b, res.bInfo, err = measureFloorB(ctx, kcfg, cfg, ft.b, ft.stamp); err != nil {
		return res, err
	}
	in, out := ft.in, ft.out
	say("floor (c): transactional copy %s -> %s", in, out)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	copyErr := make(chan error, 1)
	go func() { copyErr <- copier(ctx, kcfg, in, out) }()

	reader, err := newStampReader(ctx, kcfg, out)
	if err != nil {
		return res, err
	}
	defer reader.close()
	prod, err := eventlog.NewClient(kcfg)
	if err != nil {
		return res, err
	}
	defer prod.Close()
	send := func(i int) error {
		return prod.ProduceSync(ctx, &kgo.Record{Topic: in, Key: []byte(strconv.Itoa(i)), Value: stamp()}).FirstErr()
	}
	// Warm up: the copier joins its group and the reader its partitions.
	if err := warm(ctx, reader, "(c)", send); err != nil {
		return res, err
	}

	say("floor (c): latency at %d/s for %s", cfg.rate, cfg.duration)
	if res.latencies, res.cRate, err = measureAt(ctx, cfg, reader, send); err != nil {
		return res, err
	}

	say("floor (c): throughput with %d synchronous producers for %s (open loop)", cfg.clients, cfg.duration)
	res.throughput, err = clients(cfg.clients, cfg.duration, func(c, i int) error { return send(c*1_000_000 + i) })
	if err != nil {
		return res, err
	}
	// copied produces key and waits for its copy (or ctx).
	copied := func(ctx context.Context, key string) error {
		ch := reader.await(key)
		defer reader.waiters.Delete(key)
		if err := prod.ProduceSync(ctx, &kgo.Record{Topic: in, Key: []byte(key), Value: stamp()}).FirstErr(); err != nil {
			return err
		}
		select {
		case <-ch:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(30 * time.Second):
			return fmt.Errorf("floor: %s was not copied in 30s", key)
		}
	}
	say("floor (c): throughput with %d clients that each wait for their copy for %s (closed loop)", cfg.clients, cfg.duration)
	res.closedLoop, err = clients(cfg.clients, cfg.duration, func(c, i int) error {
		return copied(ctx, fmt.Sprintf("closed-%d-%d", c, i))
	})
	if err != nil {
		return res, err
	}
	if cfg.sweepStep > 0 {
		say("floor (c): capacity sweep, open loop, %s a step: %v/s", cfg.sweepStep, cfg.sweepRates)
		res.sweep = sweep(ctx, cfg.sweepRates, cfg.sweepStep, sweepDrain, cfg.sweepMaxOutstanding, nil,
			func(ctx context.Context, rate, i int) error { return copied(ctx, fmt.Sprintf("sweep-%d-%d", rate, i)) }, say)
	}
	cancel()
	if err := <-copyErr; err != nil && !errors.Is(err, context.Canceled) {
		return res, err
	}
	return res, nil
}

// copier is the floor: consume, produce a copy, commit offsets, all in one
// transaction per poll, exactly as the decider does minus the deciding.
func copier(ctx context.Context, kcfg eventlog.Config, in, out string) error {
	opts, err := kcfg.Opts(
		kgo.TransactionalID("assent-bench-copier-"+in),
		kgo.TransactionTimeout(10*time.Second),
		kgo.ConcurrentTransactionsBackoff(txnBackoff()),
		kgo.MetadataMinAge(100*time.Millisecond), // as the deciders' (services/decider: metadataMinAge)
		kgo.ConsumerGroup("assent-bench-"+in),
		kgo.ConsumeTopics(in),
		kgo.FetchMaxWait(time.Second),
	)
	if err != nil {
		return err
	}
	sess, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		return err
	}
	defer sess.Close()
	for {
		fs := sess.PollRecords(ctx, 2000)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		recs := fs.Records()
		if len(recs) == 0 {
			continue
		}
		if err := sess.Begin(); err != nil {
			return err
		}
		for _, r := range recs {
			sess.Produce(ctx, &kgo.Record{Topic: out, Key: r.Key, Value: r.Value, Partition: r.Partition}, nil)
		}
		if _, err := sess.End(ctx, kgo.TryCommit); err != nil {
			return err
		}
	}
}

// paced calls f at a steady rate for d, each call in its own goroutine,
// and waits for them. Call i is due at start + i/rate; a scheduler that
// falls behind (a busy machine) makes the due calls at once rather than
// dropping them, so exactly rate x d calls are made.
func paced(ctx context.Context, rate int, d time.Duration, f func(int) error) error {
	n := int(float64(rate) * d.Seconds())
	interval := time.Second / time.Duration(rate)
	var wg sync.WaitGroup
	var firstErr atomic.Value
	start := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for i := range n {
		if w := time.Until(start.Add(time.Duration(i) * interval)); w > 0 {
			timer.Reset(w)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-timer.C:
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(i); err != nil {
				firstErr.CompareAndSwap(nil, err)
			}
		}()
	}
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		return e.(error)
	}
	return nil
}

type proc struct {
	name string
	cmd  *exec.Cmd
	url  string
}

func (p *proc) stop() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
	}
}

func startServices(ctx context.Context, cfg config, bin string, topics eventlog.TopicSpec, stamp string, say func(string, ...any)) ([]*proc, []string, error) {
	dir, err := os.MkdirTemp("", "assent-bench-")
	if err != nil {
		return nil, nil, err
	}
	common := []string{
		"ASSENT_KAFKA_BROKERS=" + cfg.brokers, "ASSENT_COMMANDS_TOPIC=" + topics.Commands,
		"ASSENT_EVENTS_TOPIC=" + topics.Events, fmt.Sprintf("ASSENT_PARTITIONS=%d", cfg.partitions),
		"ASSENT_SEAL_KEYS_FILE=" + filepath.Join(cfg.root, "infra/keys/decider-keys.json"),
		"ASSENT_LOG_LEVEL=" + cmp.Or(os.Getenv("ASSENT_BENCH_LOG_LEVEL"), "warn"),
	}
	if cfg.otlpURL != "" {
		common = append(common, tracingEnv(cfg.otlpURL)...)
	}
	var procs []*proc
	var apis []string
	var svcs []string
	for range max(cfg.deciders, 1) {
		svcs = append(svcs, "decider")
	}
	svcs = append(svcs, "api", "api")
	n := map[string]int{}
	for _, svc := range svcs {
		n[svc]++
		name := fmt.Sprintf("%s-%d", svc, n[svc])
		port, err := systest.UniquePort()
		if err != nil {
			return procs, nil, err
		}
		env := append(slices.Clone(common),
			"ASSENT_INSTANCE_ID=bench-"+stamp+"-"+name,
			"ASSENT_DATA_DIR="+filepath.Join(dir, name),
			fmt.Sprintf("ASSENT_HTTP_ADDR=127.0.0.1:%d", port))
		if svc == "decider" {
			env = append(env, "ASSENT_DECIDER_GROUP=bench-"+stamp, "ASSENT_POLICY_FILE="+filepath.Join(cfg.root, "infra/policies/example.yaml"),
				// The demo key: the bench is a local tool, like scripts/up.
				"ASSENT_SIGNING_KEY_FILE="+filepath.Join(cfg.root, "infra/keys/demo-decider.key.pem"), "ASSENT_SIGNING_KEY_ID=demo-2026-01",
				"ASSENT_SERVICE_KEYS_FILE="+filepath.Join(cfg.root, "infra/keys/service-keys.json"))
		} else {
			env = append(env, "ASSENT_TOKENS_FILE="+filepath.Join(cfg.root, "infra/tokens/demo-tokens.yaml"),
				// The bench measures capacity, from one principal per
				// role: the per-principal limits would measure
				// themselves instead.
				"ASSENT_WRITE_RATE=0", "ASSENT_MAX_LONG_POLLS_PER_PRINCIPAL=4096",
				"ASSENT_COMMAND_KEY_FILE="+filepath.Join(cfg.root, "infra/keys/demo-api.key.pem"), "ASSENT_COMMAND_KEY_ID=demo-api-2026-01")
		}
		log, err := os.Create(filepath.Join(dir, name+".log"))
		if err != nil {
			return procs, nil, err
		}
		cmd := exec.Command(filepath.Join(bin, svc))
		cmd.Env = append(os.Environ(), env...)
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			return procs, nil, fmt.Errorf("start %s: %w", name, err)
		}
		p := &proc{name: name, cmd: cmd, url: fmt.Sprintf("http://127.0.0.1:%d", port)}
		procs = append(procs, p)
		if svc == "api" {
			apis = append(apis, p.url)
		}
	}
	say("services starting; logs in %s", dir)
	deadline := time.Now().Add(90 * time.Second)
	for _, p := range procs {
		for {
			resp, err := http.Get(p.url + "/readyz")
			if err == nil {
				_ = resp.Body.Close()
				if resp.StatusCode == 200 {
					break
				}
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				return procs, nil, fmt.Errorf("%s not ready after 90s; see %s", p.name, dir)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return procs, apis, nil
}

var (
	seq atomic.Int64
	// Answers of 202 (durable, not decided within the API's write wait).
	// Each is still a sample: the client waits for the outcome, as any
	// client must, and its latency is the time until the outcome is seen.
	accepted202 struct{ submits, votes atomic.Int64 }
)

// awaitPresent waits, after a submit answered 202, until the request is
// in the projection of the replica at index start: the vote's preflight
// reads it there. Bounded by the context and 30s.
func awaitPresent(ctx context.Context, c *systest.Client, start int, rid string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		r, err := c.Do(ctx, start, "GET", "/v1/requests/"+rid, nil, 1)
		if err == nil && r.Status == 200 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("submit %s answered 202 and the request was not there 30s later", rid)
}

// awaitDecided waits for the outcome of a vote answered 202.
func awaitDecided(ctx context.Context, c *systest.Client, start int, rid string) error {
	r, err := c.Do(ctx, start, "GET", "/v1/requests/"+rid+"?wait=30s", nil, 1)
	if err != nil {
		return fmt.Errorf("vote %s answered 202; waiting for its outcome: %w", rid, err)
	}
	if r.Body["status"] != "approved" {
		return fmt.Errorf("vote %s answered 202; 30s later the request is %v", rid, r.Body["status"])
	}
	return nil
}

func submitBody(rid string) map[string]any {
	return map[string]any{"request_id": rid, "reason": "bench",
		"action": map[string]any{"type": "deploy", "resource": "services/billing/api", "environment": "production"}}
}

// warmUp puts requests through one at a time until 20 in a row are
// decided within the API's write wait, so that the measured runs do not
// include the deciders' first rebalances.
func warmUp(ctx context.Context, apis []string) error {
	billing := &systest.Client{URLs: apis, Token: "demo-billing", HTTP: httpClient()}
	alice := &systest.Client{URLs: apis, Token: "demo-alice", HTTP: httpClient()}
	deadline := time.Now().Add(2 * time.Minute)
	for streak := 0; streak < 20; {
		if time.Now().After(deadline) {
			return errors.New("warm-up: the system did not settle in 2 minutes")
		}
		rid := fmt.Sprintf("warm-%d", seq.Add(1))
		r, err := billing.Do(ctx, 0, "POST", "/v1/requests", submitBody(rid), 1)
		if err == nil && r.Status == 201 {
			r, err = alice.Do(ctx, 1, "POST", "/v1/requests/"+rid+"/votes", map[string]any{"decision": "approve"}, 1)
		}
		if err != nil || r.Status != 200 {
			streak = 0
			continue
		}
		streak++
	}
	return nil
}

// measureLatency submits rate x duration requests (not timed), then, at a
// steady rate, parks a GET ?wait= on one replica and times from the
// deciding vote's POST on the other to the GET's answer.
//
// With cfg.otlpURL, each vote carries a sampled traceparent of its own;
// traces are their trace ids, for the per-hop breakdown (hops.go).
func measureLatency(ctx context.Context, cfg config, apis []string, say func(string, ...any)) (lat []time.Duration, traces []string, err error) {
	billing := &systest.Client{URLs: apis, Token: "demo-billing", HTTP: httpClient()}
	alice := &systest.Client{URLs: apis, Token: "demo-alice", HTTP: httpClient()}
	var mu sync.Mutex
	// The requests are submitted first, as in the sweep: the offered rate is
	// of deciding votes alone, as the floors' is of records alone (with a
	// submit beside each vote, Assent took twice the floors' load).
	stamp := time.Now().UnixNano()
	rid := func(i int) string { return fmt.Sprintf("lat-%d-%d", stamp, i) }
	n := int(float64(cfg.rate) * cfg.duration.Seconds())
	say("assent: submitting %d requests for the latency run (not timed)", n)
	if err := submitAll(ctx, cfg.clients, billing, alice, n, rid); err != nil {
		return nil, nil, err
	}
	say("assent: end-to-end latency at %d decisions/s for %s", cfg.rate, cfg.duration)
	err = paced(ctx, cfg.rate, cfg.duration, func(i int) error {
		rid := rid(i)
		got := make(chan time.Time, 1)
		waitErr := make(chan error, 1)
		go func() {
			r, err := billing.Do(ctx, 1, "GET", "/v1/requests/"+rid+"?wait=30s", nil, 1)
			got <- time.Now()
			if err == nil && r.Body["status"] != "approved" {
				err = fmt.Errorf("GET %s: status %v", rid, r.Body["status"])
			}
			waitErr <- err
		}()
		time.Sleep(50 * time.Millisecond) // let the GET park first
		voter, traceID := alice, ""
		if cfg.otlpURL != "" {
			v := *alice
			v.Header, traceID = newTraceparent()
			voter = &v
		}
		t0 := time.Now()
		r, err := voter.Do(ctx, 0, "POST", "/v1/requests/"+rid+"/votes", map[string]any{"decision": "approve"}, 1)
		if err != nil {
			return fmt.Errorf("vote %s at %s: %w\n%s", rid, t0.Format(time.RFC3339Nano), err, diagnose(ctx, apis, rid))
		}
		switch r.Status {
		case 200:
		case 202: // the sample is the time until the parked GET sees the outcome
			accepted202.votes.Add(1)
		default:
			return fmt.Errorf("vote %s at %s: %d %s\n%s", rid, t0.Format(time.RFC3339Nano), r.Status, r.Raw, diagnose(ctx, apis, rid))
		}
		t1 := <-got
		if err := <-waitErr; err != nil {
			return err
		}
		mu.Lock()
		lat = append(lat, t1.Sub(t0))
		if traceID != "" {
			traces = append(traces, traceID)
		}
		mu.Unlock()
		return nil
	})
	return lat, traces, err
}

// measureThroughput submits cfg.requests requests (not timed), then has
// cfg.clients clients cast the deciding votes as fast as the answers come:
// decisions per second. It also reports the rate of whole requests (submit
// and vote, both waited for) over the same clients.
func measureThroughput(ctx context.Context, cfg config, apis []string) (decisions, whole float64, err error) {
	billing := &systest.Client{URLs: apis, Token: "demo-billing", HTTP: httpClient()}
	alice := &systest.Client{URLs: apis, Token: "demo-alice", HTTP: httpClient()}
	stamp := time.Now().UnixNano()
	rid := func(i int) string { return fmt.Sprintf("tput-%d-%d", stamp, i) }
	var next atomic.Int64
	run := func(f func(c, i int) error) (float64, error) {
		next.Store(0)
		var wg sync.WaitGroup
		var firstErr atomic.Value
		began := time.Now()
		for c := range cfg.clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1))
					if i > cfg.requests || firstErr.Load() != nil {
						return
					}
					if err := f(c, i); err != nil {
						firstErr.CompareAndSwap(nil, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		if e := firstErr.Load(); e != nil {
			return 0, e.(error)
		}
		return float64(cfg.requests) / time.Since(began).Seconds(), nil
	}
	submit := func(c, i int) error {
		r, err := billing.Do(ctx, c, "POST", "/v1/requests", submitBody(rid(i)), 3)
		if err != nil {
			return fmt.Errorf("submit %s: %w", rid(i), err)
		}
		switch r.Status {
		case 201:
			return nil
		case 202:
			accepted202.submits.Add(1)
			return awaitPresent(ctx, alice, c+1, rid(i))
		}
		return fmt.Errorf("submit %s: %d %s", rid(i), r.Status, r.Raw)
	}
	vote := func(c, i int) error {
		r, err := alice.Do(ctx, c+1, "POST", "/v1/requests/"+rid(i)+"/votes", map[string]any{"decision": "approve"}, 3)
		if err != nil {
			return fmt.Errorf("vote %s: %w", rid(i), err)
		}
		switch r.Status {
		case 200:
			return nil
		case 202: // counted when its outcome is seen, as a client would
			accepted202.votes.Add(1)
			return awaitDecided(ctx, alice, c+1, rid(i))
		}
		return fmt.Errorf("vote %s: %d %s", rid(i), r.Status, r.Raw)
	}
	submits, err := run(submit)
	if err != nil {
		return 0, 0, err
	}
	decisions, err = run(vote)
	if err != nil {
		return 0, 0, err
	}
	// Whole requests: one submit and one vote each, back to back.
	whole = 1 / (1/submits + 1/decisions)
	return decisions, whole, nil
}

func httpClient() *http.Client {
	return &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 512}}
}

// rss returns a process's resident set in KiB.
func rss(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return 0
}

// diagnose shows what each api replica has of a request, for a run that
// failed.
func diagnose(ctx context.Context, apis []string, rid string) string {
	var b strings.Builder
	for i, u := range apis {
		c := &systest.Client{URLs: []string{u}, Token: "demo-billing"}
		r, err := c.Do(ctx, 0, "GET", "/v1/requests/"+rid+"/events", nil, 1)
		fmt.Fprintf(&b, "api-%d at %s: %v %d %s\n", i+1, time.Now().Format(time.RFC3339Nano), err, r.Status, r.Raw)
	}
	return b.String()
}

// txnBackoff is the copier's CONCURRENT_TRANSACTIONS backoff: the same
// setting as the deciders' (ASSENT_TXN_RETRY_BACKOFF), so the floor and
// Assent are tuned alike.
func txnBackoff() time.Duration {
	d, err := time.ParseDuration(os.Getenv("ASSENT_TXN_RETRY_BACKOFF"))
	if err != nil {
		return 20 * time.Millisecond
	}
	return d
}

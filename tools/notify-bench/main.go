// Command notify-bench measures the notifier: the latency from an event
// (its time in the log, when the decider appended it) to the webhook
// delivered to a real HTTPS receiver that verifies its signature, p50 and
// p99, beside the floor measured in the same run and interleaved sample by
// sample (a bare acks=all produce, read back by a consumer); and the
// deliveries per second per replica when a burst of requests is drained
// by two notifiers. With --outage D it also keeps the receiver down for D
// while requests keep coming, then measures how long the backlog takes to
// drain once it is back. It never aborts: a phase that fails prints why,
// and the others still run. scripts/bench --notify runs it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/codec"
	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/logadmin"
	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/test/notifyrig"
	"github.com/assent-dev/assent/test/systest"
)

const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" //nolint:gosec // a bench key (the specification's example)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		_, _ = fmt.Fprintln(os.Stderr, "notify-bench:", err)
	}
}

type bench struct {
	kcfg    eventlog.Config
	spec    eventlog.TopicSpec
	cl      *kgo.Client
	rx      *notifyrig.Receiver
	procs   []*exec.Cmd
	ports   []string
	stderr  io.Writer
	targets int
	keyEnv  []string     // the decider's ASSENT_SIGNING_KEY_FILE and _ID
	apiKey  *wire.Signer // the api's demo command key, which signs the submits
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("notify-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	brokers := fs.String("brokers", os.Getenv("ASSENT_KAFKA_BROKERS"), "comma-separated brokers (default $ASSENT_KAFKA_BROKERS)")
	bin := fs.String("bin", ".run/bin", "directory holding the decider and notifier binaries (scripts/bench builds them there)")
	samples := fs.Int("samples", 300, "measured latency samples (and as many floor samples)")
	rate := fs.Float64("rate", 20, "submissions per second during the latency phase")
	burst := fs.Int("burst", 1000, "requests submitted at once for the throughput phase (each to --targets webhooks)")
	targets := fs.Int("targets", 4, "webhook targets per request")
	outage := fs.Duration("outage", 0, "keep the receiver down this long while requests come (e.g. 10m), then time the drain; 0 skips it")
	keyFile := fs.String("signing-key", "infra/keys/demo-decider.key.pem", "the decider's seal key (the demo key: the bench's topics are scratch)")
	keyID := fs.String("signing-key-id", "demo-2026-01", "the id of --signing-key in the published keys")
	fs.Usage = func() {
		_, _ = fmt.Fprintln(stderr, "usage: notify-bench [--brokers B] [--bin DIR] [--samples N] [--rate R] [--burst N] [--targets N] [--outage D] [--signing-key F --signing-key-id ID]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if *brokers == "" {
		return errors.New("no brokers: set ASSENT_KAFKA_BROKERS or --brokers (scripts/kafka up prints them)")
	}
	scram, err := eventlog.SCRAMFromEnv(os.Getenv)
	if err != nil {
		return err
	}
	b := &bench{kcfg: eventlog.Config{Brokers: strings.Split(*brokers, ","), SCRAM: scram}, stderr: stderr, targets: max(1, *targets),
		keyEnv: []string{"ASSENT_SIGNING_KEY_FILE=" + *keyFile, "ASSENT_SIGNING_KEY_ID=" + *keyID}}
	stamp := time.Now().UTC().Format("20060102t150405")
	b.spec = eventlog.DefaultTopicSpec()
	b.spec.Commands, b.spec.Events = "bench.notify."+stamp+".commands", "bench.notify."+stamp+".events"
	if b.apiKey, err = wire.LoadSigner("demo-api-2026-01", "infra/keys/demo-api.key.pem"); err != nil {
		return fmt.Errorf("%w (run from the repository root, as scripts/bench does)", err)
	}
	if b.cl, err = eventlog.NewClient(b.kcfg); err != nil {
		return err
	}
	defer b.cl.Close()
	adm := kadm.NewClient(b.cl)
	floorTopic := "bench.notify." + stamp + ".floor"
	if _, err := logadmin.Provision(ctx, adm, b.spec); err != nil {
		return err
	}
	if _, err := adm.CreateTopic(ctx, 1, 3, map[string]*string{"min.insync.replicas": strp("2")}, floorTopic); err != nil {
		return err
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = adm.DeleteTopics(dctx, b.spec.Commands, b.spec.Events, floorTopic)
	}()
	horizon := max(time.Hour, 2**outage)
	if err := b.start(ctx, *bin, stamp, horizon); err != nil {
		return err
	}
	defer b.stop()

	_, _ = fmt.Fprintf(stdout, "\nNotifier: event to webhook delivered (3-node Kafka, acks=all, 2 notifier replicas, HTTPS receiver verifying signatures)\n")
	floor, lat, err := b.latency(ctx, floorTopic, *samples, *rate)
	if err != nil {
		_, _ = fmt.Fprintf(stdout, "  latency phase failed: %v\n", err)
	}
	if len(floor) > 0 && len(lat) > 0 {
		_, _ = fmt.Fprintf(stdout, "  %-44s %9s %9s %9s %7s\n", "", "p50", "p99", "max", "n")
		row := func(name string, xs []time.Duration) {
			slices.Sort(xs)
			_, _ = fmt.Fprintf(stdout, "  %-44s %9s %9s %9s %7d\n", name, ms(pct(xs, 50)), ms(pct(xs, 99)), ms(xs[len(xs)-1]), len(xs))
		}
		row("floor: acks=all produce -> read", floor)
		row("event -> webhook delivered", lat)
		_, _ = fmt.Fprintf(stdout, "  ratio delivered/floor: p50 %.1fx, p99 %.1fx\n", ratio(pct(lat, 50), pct(floor, 50)), ratio(pct(lat, 99), pct(floor, 99)))
	}

	if perReplica, total, took, err := b.throughput(ctx, *burst); err != nil {
		_, _ = fmt.Fprintf(stdout, "  throughput phase failed: %v\n", err)
	} else {
		_, _ = fmt.Fprintf(stdout, "\n  burst of %d requests x %d webhooks: %d deliveries drained in %s: %.0f/s in all\n", *burst, b.targets, total, took.Round(time.Millisecond), float64(total)/took.Seconds())
		for i, n := range perReplica {
			_, _ = fmt.Fprintf(stdout, "    notifier-%d: %.0f deliveries, %.0f/s\n", i+1, n, n/took.Seconds())
		}
		if len(floor) > 0 {
			slices.Sort(floor)
			_, _ = fmt.Fprintf(stdout, "    beside the floor: one acks=all produce->read every %s, %.0f/s one at a time\n", ms(pct(floor, 50)), 1/pct(floor, 50).Seconds())
		}
	}
	if *outage > 0 {
		n, drain, err := b.outage(ctx, *outage, *rate)
		if err != nil {
			_, _ = fmt.Fprintf(stdout, "  outage phase failed: %v\n", err)
		} else {
			_, _ = fmt.Fprintf(stdout, "\n  receiver down for %s while %d requests came (%d deliveries): all delivered, in order, %s after it came back\n", *outage, n, n*b.targets, drain.Round(time.Millisecond))
		}
	}
	return nil
}

func strp(s string) *string { return &s }

// start runs a decider and two notifiers on the scratch topics.
func (b *bench) start(ctx context.Context, bin, stamp string, horizon time.Duration) error {
	cert, pem, err := notifyrig.Cert()
	if err != nil {
		return err
	}
	if b.rx, err = notifyrig.NewReceiver(cert, secret, "/hook"); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "notify-bench-")
	if err != nil {
		return err
	}
	var pol, sec strings.Builder
	pol.WriteString("version: 1\npolicies:\n  - name: bench\n    match: {action: [deploy], environment: [production]}\n    approvers: {users: [alice@example.com, bob@example.com]}\n    min_approvals: 1\n    ttl: 1h\n    notify:\n")
	for i := range b.targets {
		_, _ = fmt.Fprintf(&pol, "      - webhook: %s/%d\n", b.rx.URL, i)
		_, _ = fmt.Fprintf(&sec, "%s/%d: %s\n", b.rx.URL, i, secret)
	}
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		_ = os.WriteFile(p, []byte(s), 0o600)
		return p
	}
	common := []string{"ASSENT_KAFKA_BROKERS=" + strings.Join(b.kcfg.Brokers, ","), "ASSENT_COMMANDS_TOPIC=" + b.spec.Commands,
		"ASSENT_EVENTS_TOPIC=" + b.spec.Events, "ASSENT_LOG_LEVEL=warn"}
	launch := func(name string, env ...string) error {
		addr, err := systest.UniqueAddr()
		if err != nil {
			return err
		}
		cmd := exec.CommandContext(ctx, filepath.Join(bin, strings.TrimRight(name, "0123456789")))
		cmd.Env = append(append(os.Environ(), common...), append(env, "ASSENT_HTTP_ADDR="+addr,
			"ASSENT_INSTANCE_ID="+name+"-"+stamp, "ASSENT_DATA_DIR="+filepath.Join(dir, name))...)
		cmd.Stderr = b.stderr
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start %s (build it with scripts/bench, or pass --bin): %w", name, err)
		}
		b.procs = append(b.procs, cmd)
		b.ports = append(b.ports, addr)
		return nil
	}
	if err := launch("decider", append(b.keyEnv, "ASSENT_POLICY_FILE="+write("policy.yaml", pol.String()), "ASSENT_DECIDER_GROUP=bench-dec-"+stamp)...); err != nil {
		return err
	}
	for _, n := range []string{"notifier1", "notifier2"} {
		if err := launch(n, "ASSENT_NOTIFIER_GROUP=bench-ntf-"+stamp, "ASSENT_NOTIFIER_SECRETS_FILE="+write("secrets.yaml", sec.String()),
			"ASSENT_NOTIFIER_CA_FILE="+write("ca.pem", string(pem)), "ASSENT_NOTIFIER_ALLOW_NETS=127.0.0.0/8",
			"ASSENT_NOTIFIER_HORIZON="+horizon.String(), "ASSENT_NOTIFIER_RETRY_MAX=10s",
			"ASSENT_NOTIFIER_TARGET_RATE=100000", "ASSENT_NOTIFIER_TARGET_CONCURRENCY=16",
			"ASSENT_COMMAND_KEY_FILE=infra/keys/demo-notifier.key.pem", "ASSENT_COMMAND_KEY_ID=demo-notifier-2026-01"); err != nil {
			return err
		}
	}
	for _, addr := range b.ports {
		if err := waitReady(ctx, "http://"+addr); err != nil {
			return err
		}
	}
	return nil
}

func (b *bench) stop() {
	for _, p := range b.procs {
		_ = p.Process.Signal(syscall.SIGTERM)
		_ = p.Wait()
	}
	if b.rx != nil {
		b.rx.Close()
	}
}

func (b *bench) submit(ctx context.Context, rid string) error {
	env, err := codec.CommandEnvelope(approval.Command{ID: wire.NewID(time.Now()), RequestID: rid, Actor: "user:dave@example.com", Time: time.Now().UTC(),
		Body: approval.Submit{Action: approval.Action{Type: "deploy", Resource: "services/bench", Environment: "production"}, Reason: "bench"}}, "assent/bench")
	if err != nil {
		return err
	}
	if env, err = wire.SignCommand(b.apiKey, env); err != nil { // dave's submit, as the api would sign it
		return err
	}
	return eventlog.Produce(ctx, b.cl, b.spec.Commands, env)
}

// delivered returns, per request, the first arrival at the receiver of
// each target's copy, and the event's time.
func (b *bench) arrivals() map[string][]notifyrig.Delivery {
	out := map[string][]notifyrig.Delivery{}
	for _, d := range b.rx.Accepted() {
		out[d.Subject] = append(out[d.Subject], d)
	}
	return out
}

var timeRE = regexp.MustCompile(`"time":"([^"]+)"`)

func eventTime(d notifyrig.Delivery) time.Time {
	m := timeRE.FindSubmatch(d.Body)
	if m == nil {
		return time.Time{}
	}
	t, _ := time.Parse(time.RFC3339Nano, string(m[1]))
	return t
}

func (b *bench) latency(ctx context.Context, floorTopic string, n int, rate float64) (floor, lat []time.Duration, err error) {
	// From the start: the floor topic is new, and an AtEnd resolved after
	// the first produce (the reader authenticates first) would skip it.
	reader, err := eventlog.NewClient(b.kcfg, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{floorTopic: {0: kgo.NewOffset().AtStart()}}))
	if err != nil {
		return nil, nil, err
	}
	defer reader.Close()
	_, _ = fmt.Fprintf(b.stderr, "notify-bench: %d latency samples at %.0f/s, interleaved with the floor\n", n, rate)
	var rids []string
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	warm := min(20, n/5)
	for i := range n + warm {
		began := time.Now()
		rec := &kgo.Record{Topic: floorTopic, Value: []byte(strconv.Itoa(i))}
		if err := b.cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
			return floor, lat, fmt.Errorf("floor produce: %w", err)
		}
		for got := false; !got; {
			fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			fs := reader.PollFetches(fctx)
			cancel()
			if ctx.Err() != nil {
				return floor, lat, ctx.Err()
			}
			fs.EachRecord(func(r *kgo.Record) { got = got || string(r.Value) == strconv.Itoa(i) })
			if fctx.Err() != nil && !got {
				return floor, lat, errors.New("the floor's record was not read back in 10s")
			}
		}
		if i >= warm {
			floor = append(floor, time.Since(began))
		}
		rid := wire.NewID(time.Now())
		if err := b.submit(ctx, rid); err != nil {
			return floor, lat, err
		}
		if i >= warm {
			rids = append(rids, rid)
		}
		<-tick.C
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		arr := b.arrivals()
		done := 0
		for _, rid := range rids {
			if len(arr[rid]) >= b.targets {
				done++
			}
		}
		if done == len(rids) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	arr := b.arrivals()
	for _, rid := range rids {
		for _, d := range arr[rid] {
			if at := eventTime(d); !at.IsZero() {
				lat = append(lat, d.At.Sub(at))
			}
		}
	}
	if len(lat) < len(rids)*b.targets {
		err = fmt.Errorf("%d of %d deliveries arrived within 60s", len(lat), len(rids)*b.targets)
	}
	return floor, lat, err
}

var seriesRE = regexp.MustCompile(`(?m)^assent_notifier_deliveries_total\{kind="webhook",outcome="delivered"\} ([0-9.e+]+)$`)

func (b *bench) delivered() []float64 {
	var out []float64
	for _, addr := range b.ports[1:] {
		v := 0.0
		if resp, err := http.Get("http://" + addr + "/metrics"); err == nil {
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if m := seriesRE.FindSubmatch(body); m != nil {
				v, _ = strconv.ParseFloat(string(m[1]), 64)
			}
		}
		out = append(out, v)
	}
	return out
}

func (b *bench) throughput(ctx context.Context, n int) (perReplica []float64, total int, took time.Duration, err error) {
	before := b.delivered()
	start := len(b.rx.Accepted())
	_, _ = fmt.Fprintf(b.stderr, "notify-bench: a burst of %d requests\n", n)
	began := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := b.submit(ctx, wire.NewID(time.Now())); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, 0, 0, err
	}
	want := n * b.targets
	deadline := time.Now().Add(10 * time.Minute)
	for len(b.rx.Accepted())-start < want {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, 0, 0, fmt.Errorf("%d of %d deliveries after 10 minutes", len(b.rx.Accepted())-start, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	took = time.Since(began)
	after := b.delivered()
	for i := range after {
		perReplica = append(perReplica, after[i]-before[i])
	}
	return perReplica, want, took, nil
}

func (b *bench) outage(ctx context.Context, d time.Duration, rate float64) (int, time.Duration, error) {
	_, _ = fmt.Fprintf(b.stderr, "notify-bench: the receiver goes down for %s\n", d)
	start := len(b.rx.Accepted())
	b.rx.Down()
	end := time.Now().Add(d)
	n := 0
	every := time.Duration(float64(time.Second) / min(rate, 5))
	for time.Now().Before(end) {
		if err := b.submit(ctx, wire.NewID(time.Now())); err != nil {
			return n, 0, err
		}
		n++
		select {
		case <-ctx.Done():
			return n, 0, ctx.Err()
		case <-time.After(every):
		}
	}
	if err := b.rx.Up(); err != nil {
		return n, 0, err
	}
	back := time.Now()
	for len(b.rx.Accepted())-start < n*b.targets {
		if time.Since(back) > 30*time.Minute || ctx.Err() != nil {
			return n, 0, fmt.Errorf("%d of %d delivered 30 minutes after the receiver came back", len(b.rx.Accepted())-start, n*b.targets)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return n, time.Since(back), nil
}

func waitReady(ctx context.Context, base string) error {
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(base + "/readyz"); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s did not become ready in 90s", base)
}

func pct(sorted []time.Duration, p int) time.Duration {
	return sorted[min(len(sorted)-1, max(0, (len(sorted)*p+99)/100-1))]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d.Microseconds())/1000) }

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

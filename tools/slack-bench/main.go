// Command slack-bench measures the Slack gateway's click-to-ack latency:
// from a signed interactivity request arriving to the 200 that Slack
// waits for, which the gateway sends only after Kafka has stored the vote
// command with acks=all. Next to it, in the same run and interleaved
// sample by sample, it measures the floor: a bare franz-go ProduceSync of
// the same command to the same topic. This machine is shared and noisy;
// only the ratio is stable. scripts/bench --slack runs it.
package main

import (
	"bytes"
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
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/codec"
	"github.com/assent-dev/assent/libs/command"
	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/logadmin"
	"github.com/assent-dev/assent/libs/slackport"
	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/test/slackfake"
	"github.com/assent-dev/assent/test/systest"
)

const secret = "bench-signing-secret"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "slack-bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("slack-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	brokers := fs.String("brokers", os.Getenv("ASSENT_KAFKA_BROKERS"), "comma-separated brokers (default $ASSENT_KAFKA_BROKERS)")
	bin := fs.String("bin", ".run/bin", "directory holding the slack-gateway binary (scripts/bench builds it there)")
	clicks := fs.Int("clicks", 2000, "measured clicks (and as many floor samples)")
	warmup := fs.Int("warmup", 200, "unmeasured clicks first")
	fs.Usage = func() {
		_, _ = fmt.Fprintln(stderr, "usage: slack-bench [--brokers B] [--bin DIR] [--clicks N] [--warmup N]")
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
	if *clicks < 10 || *warmup < 0 {
		return errors.New("--clicks must be at least 10")
	}
	scram, err := eventlog.SCRAMFromEnv(os.Getenv)
	if err != nil {
		return err
	}
	kcfg := eventlog.Config{Brokers: strings.Split(*brokers, ","), SCRAM: scram}
	spec := eventlog.DefaultTopicSpec()
	stamp := time.Now().UTC().Format("20060102t150405")
	spec.Commands, spec.Events = "bench.slack."+stamp+".commands", "bench.slack."+stamp+".events"

	cl, err := eventlog.NewClient(kcfg)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := logadmin.Provision(ctx, adm, spec); err != nil {
		return err
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = adm.DeleteTopics(dctx, spec.Commands, spec.Events)
	}()

	fake := slackfake.Start([]slackfake.User{{ID: "U0ALICE", Name: "alice", Email: "alice@example.com"}}, nil)
	defer fake.Close()
	dir, err := os.MkdirTemp("", "slack-bench-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }() // best effort: a temporary directory
	addr, err := systest.UniqueAddr()
	if err != nil {
		return err
	}
	// The gateway runs as its own process, as it does in production.
	gw := exec.CommandContext(ctx, filepath.Join(*bin, "slack-gateway"))
	gw.Env = append(os.Environ(),
		"ASSENT_KAFKA_BROKERS="+*brokers, "ASSENT_COMMANDS_TOPIC="+spec.Commands, "ASSENT_EVENTS_TOPIC="+spec.Events,
		"ASSENT_HTTP_ADDR="+addr, "ASSENT_INSTANCE_ID=slack-bench", "ASSENT_DATA_DIR="+filepath.Join(dir, "data"),
		"ASSENT_SLACK_GROUP=bench-"+stamp, "ASSENT_SLACK_BOT_TOKEN="+slackfake.Token, "ASSENT_SLACK_SIGNING_SECRET="+secret,
		"ASSENT_SLACK_API_URL="+fake.URL(), "ASSENT_SLACK_RATE_SCALE=1000", "ASSENT_LOG_LEVEL=warn",
		// The demo command key (run from the repository root, as scripts/bench does).
		"ASSENT_COMMAND_KEY_FILE=infra/keys/demo-slack-gateway.key.pem", "ASSENT_COMMAND_KEY_ID=demo-slack-gateway-2026-01")
	gw.Stderr = stderr
	if err := gw.Start(); err != nil {
		return fmt.Errorf("start the gateway (build it with scripts/bench, or pass --bin): %w", err)
	}
	defer func() {
		_ = gw.Process.Signal(syscall.SIGTERM)
		_ = gw.Wait()
	}()
	base := "http://" + addr
	if err := waitReady(ctx, base); err != nil {
		return err
	}

	_, _ = fmt.Fprintf(stderr, "slack-bench: %d warm-up and %d measured clicks, interleaved with bare produces, on %s\n", *warmup, *clicks, *brokers)
	hc := &http.Client{Timeout: 10 * time.Second}
	var floor, ack []time.Duration
	for i := range *warmup + *clicks {
		rid := wire.NewID(time.Now())
		// The floor: the same command, produced by a bare client.
		cmd := approval.Command{ID: command.SlackVoteID(rid, "T0", "U0ALICE", approval.Approve), RequestID: rid,
			Actor: "user:alice@example.com", Time: time.Now().UTC(), Body: approval.Vote{Decision: approval.Approve}}
		env, err := codec.CommandEnvelope(cmd, command.SourceSlackGateway)
		if err != nil {
			return err
		}
		rec, err := eventlog.NewRecord(spec.Commands, env)
		if err != nil {
			return err
		}
		began := time.Now()
		if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
			return fmt.Errorf("floor produce: %w", err)
		}
		f := time.Since(began)

		body := slackport.Click{Team: "T1", User: "U0ALICE", Channel: "C0", TriggerID: "t", ActionID: slackport.ActionApprove, RequestID: rid}.Body()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/slack/interactivity", bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header = slackport.Sign(secret, time.Now(), body)
		began = time.Now()
		resp, err := hc.Do(req)
		if err != nil {
			return fmt.Errorf("click: %w", err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		a := time.Since(began)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("click %d answered %s", i, resp.Status)
		}
		if i >= *warmup {
			floor, ack = append(floor, f), append(ack, a)
		}
		if (i+1)%500 == 0 {
			_, _ = fmt.Fprintf(stderr, "slack-bench: %d/%d\n", i+1, *warmup+*clicks)
		}
	}
	row := func(name string, xs []time.Duration) {
		slices.Sort(xs)
		_, _ = fmt.Fprintf(stdout, "  %-34s %9s %9s %9s %9s %7d\n", name, ms(pct(xs, 50)), ms(pct(xs, 90)), ms(pct(xs, 99)), ms(xs[len(xs)-1]), len(xs))
	}
	_, _ = fmt.Fprintf(stdout, "\nSlack click to ack (3-node Kafka, acks=all, one click at a time)\n")
	_, _ = fmt.Fprintf(stdout, "  %-34s %9s %9s %9s %9s %7s\n", "", "p50", "p90", "p99", "max", "n")
	row("floor: bare ProduceSync (acks=all)", floor)
	row("click to ack (verify+produce+200)", ack)
	_, _ = fmt.Fprintf(stdout, "  ratio click/floor: p50 %.2fx, p99 %.2fx\n", ratio(pct(ack, 50), pct(floor, 50)), ratio(pct(ack, 99), pct(floor, 99)))
	return nil
}

func waitReady(ctx context.Context, base string) error {
	deadline := time.Now().Add(60 * time.Second)
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
	return errors.New("the gateway did not become ready in 60s")
}

func pct(sorted []time.Duration, p int) time.Duration {
	return sorted[min(len(sorted)-1, (len(sorted)*p+99)/100-1)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d.Microseconds())/1000) }

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

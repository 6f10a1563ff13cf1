package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/assent-dev/assent/test/systest"
)

// Usage is printed by assent-chaos --help.
const Usage = `usage: assent-chaos [--duration D] [--faults LIST] [--quiet D] [--out DIR] [--clients N]

Runs Assent's fault-injection suite: its own three-node Kafka cluster, each
node in a network namespace on a private bridge (needs root), two deciders,
two api replicas, two Slack gateways and a fake Slack. Concurrent clients
submit, vote (approve, reject, duplicate, ineligible, self), cancel, click in
Slack, let requests expire and send requests that must be refused, while a
nemesis injects the faults in turn with quiet periods between them: among
them an insider who appends forged decisions with the Kafka admin's
credentials, a decider paused just before requests on its partitions are
due to expire, and a hostile client flooding one request with refused
votes. Then the whole log is read back with read_committed,
authenticated with the published decider keys, and checked: I1-I6, what
every client was told, each request's history with porcupine, views that
never go backwards, the security negatives, and that no forgery was ever
served.

Writes DIR/report.txt, DIR/report.json, DIR/history.jsonl and the logs of
every process under DIR. Exits 0 with no anomaly, 1 with anomalies, 2 when
the run could not be carried out.

Flags:
`

// Main runs the command line; it returns the exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	fs := flag.NewFlagSet("assent-chaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	duration := fs.Duration("duration", 0, "how long the workload runs, cycling through the faults (0: each fault once)")
	faults := fs.String("faults", "all", "comma-separated faults: "+fmt.Sprint(AllFaults))
	quiet := fs.Duration("quiet", 15*time.Second, "quiet period before the first fault and after each one")
	out := fs.String("out", "", "output directory (default .run/chaos-<time> in the repository)")
	clients := fs.Int("clients", 6, "concurrent clients")
	think := fs.Duration("think", 25*time.Millisecond, "pause between a client's operations (random, up to twice this)")
	tags := fs.String("decider-tags", "", "build the decider with these tags (assent_broken_dedupe: a deliberately broken build)")
	fs.Usage = func() {
		_, _ = fmt.Fprint(stderr, Usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, nil
		}
		return 2, err
	}
	list, err := ParseFaults(*faults)
	if err != nil {
		return 2, err
	}
	if *clients < 1 || *clients > 64 {
		return 2, fmt.Errorf("chaos: --clients must be 1 to 64, got %d", *clients)
	}
	if *duration < 0 || *quiet <= 0 || *think <= 0 {
		return 2, fmt.Errorf("chaos: --duration, --quiet and --think must be positive")
	}
	root := systest.RepoRoot()
	dir := *out
	if dir == "" {
		dir = filepath.Join(root, ".run", "chaos-"+time.Now().UTC().Format("20060102-150405"))
	}
	logf := func(format string, a ...any) {
		_, _ = fmt.Fprintf(stderr, "chaos: %s %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, a...))
	}
	r, err := Execute(ctx, Config{Root: root, Dir: dir, Duration: *duration, Faults: list, Quiet: *quiet,
		Clients: *clients, Think: *think, DeciderTags: *tags, Logf: logf})
	if err != nil {
		return 2, err
	}
	if err := r.Save(dir); err != nil {
		return 2, err
	}
	r.WriteReport(stdout)
	_, _ = fmt.Fprintf(stdout, "\nreport: %s\n", filepath.Join(dir, "report.txt"))
	if len(r.Verdict.Anomalies) > 0 {
		return 1, nil
	}
	return 0, nil
}

// Save writes the report, its JSON form and the history into dir.
func (r *Run) Save(dir string) error {
	f, err := os.Create(filepath.Join(dir, "report.txt"))
	if err != nil {
		return fmt.Errorf("chaos: %w", err)
	}
	r.WriteReport(f)
	if err := f.Close(); err != nil {
		return fmt.Errorf("chaos: %w", err)
	}
	by, total := Outcomes(r.Ops)
	j, err := json.MarshalIndent(map[string]any{
		"run": r, "operations": len(r.Ops), "outcomes": total, "by_kind": by,
		"anomalies": r.Verdict.Anomalies, "lin_checked": r.Verdict.LinChecked, "lin_timed_out": r.Verdict.LinTimedOut,
	}, "", "  ")
	if err != nil {
		return fmt.Errorf("chaos: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "report.json"), j, 0o600); err != nil {
		return fmt.Errorf("chaos: %w", err)
	}
	h, err := os.Create(filepath.Join(dir, "history.jsonl"))
	if err != nil {
		return fmt.Errorf("chaos: %w", err)
	}
	if err := WriteHistory(h, r.Ops); err != nil {
		return err
	}
	return h.Close()
}

// Package service is the auditor's command line: verify, export, state,
// serve and keygen. Main parses the arguments and runs one of them.
package service

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/assent-dev/assent/libs/daemon"
	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/policy"
	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/services/auditor/internal/export"
	"github.com/assent-dev/assent/services/auditor/internal/replay"
	"github.com/assent-dev/assent/services/auditor/internal/verify"
)

// ErrTampered is returned when verification finds a break; main exits 2.
var ErrTampered = errors.New("the log does not verify")

const usage = `usage: auditor <command> [flags]

Verifies, exports and queries Assent's audit trail, the events topic.

Commands:
  verify [--from-offsets FILE]   check every seal, hash link and per-request
                                 sequence, and replay the domain: every event must
                                 be what approval.Decide produces; exit 2 naming
                                 partition, offset, event and kind on any break
  export --from T --to T [--request ID] [--actor A] --format jsonl|csv
                                 stream events with partition, offset and hash
  state --request ID --at T      the request as it was at time T, by replay
  serve                          the HTTP query service (Pebble projection)
  keygen --key-id ID --out FILE  a new Ed25519 key (PKCS #8 PEM) for seals;
                                 prints its entry for the public keys file.
                                 With --principal P [--on-behalf], a service's
                                 command key: prints its entry for
                                 infra/keys/service-keys.json

Run "auditor <command> --help" for its flags.

Environment:
  ASSENT_KAFKA_BROKERS     comma-separated brokers (required)
  ASSENT_KAFKA_USER        Kafka user (SASL/SCRAM-SHA-512), with
  ASSENT_KAFKA_PASSWORD_FILE
                           the file holding its password
  ASSENT_EVENTS_TOPIC      default assent.events.v1
  ASSENT_PARTITIONS        partitions of the events topic (serve; default 12)
  ASSENT_AUDIT_KEYS_FILE   published public keys (default infra/keys/decider-keys.json)
  ASSENT_POLICY_FILE       verify: the deciders' policy file, whose admins may cancel
                           any request (unset: such cancels are counted, not checked)
  ASSENT_HTTP_ADDR         serve: listen address (default 127.0.0.1:8480)
  ASSENT_DATA_DIR          serve: Pebble directory (default .run/auditor-<instance>)
  ASSENT_INSTANCE_ID       serve: name of this replica
  ASSENT_LOG_LEVEL         serve: debug, info, warn, error (default info)

Exit status: 0 verified / done, 1 an error (bad flags, Kafka unreachable), 2 tampering found.
`

// Main runs the command in args.
func Main(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("a command is required\n\n%s", usage)
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "-h", "--help", "help":
		_, err := io.WriteString(stdout, usage)
		return err
	case "verify":
		return runVerify(ctx, rest, getenv, stdout, stderr)
	case "export":
		return runExport(ctx, rest, getenv, stdout)
	case "state":
		return runState(ctx, rest, getenv, stdout)
	case "serve":
		return runServe(ctx, rest, getenv, stdout)
	case "keygen":
		return runKeygen(rest, stdout)
	}
	return fmt.Errorf("unknown command %q\n\n%s", cmd, usage)
}

// common is what every command that reads the log needs.
type common struct {
	kafka eventlog.Config
	topic string
}

func loadCommon(getenv func(string) string, fs *flag.FlagSet) (*common, func() error) {
	c := &common{}
	fs.StringVar(&c.topic, "topic", "", "events topic (default $ASSENT_EVENTS_TOPIC or assent.events.v1)")
	return c, func() error {
		env := daemon.NewEnv(getenv)
		if c.topic == "" {
			c.topic = env.String("ASSENT_EVENTS_TOPIC", "assent.events.v1")
		}
		k, err := eventlog.ConfigFromEnv(getenv)
		env.Add(err)
		k.ClientID = "assent-auditor"
		c.kafka = k
		if err := env.Err(); err != nil {
			return fmt.Errorf("%w\n(auditor --help lists every setting)", err)
		}
		return nil
	}
}

func newFlags(name, synopsis string, w io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(w)
	fs.Usage = func() {
		_, _ = fmt.Fprintf(w, "usage: auditor %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags; a request for help is not an error.
func parse(fs *flag.FlagSet, args []string) (bool, error) {
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("%s: %w", fs.Name(), err)
	}
	if fs.NArg() > 0 {
		return false, fmt.Errorf("%s: unexpected argument %q (see --help)", fs.Name(), fs.Arg(0))
	}
	return false, nil
}

func keysFile(getenv func(string) string, flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if v := getenv("ASSENT_AUDIT_KEYS_FILE"); v != "" {
		return v
	}
	if v := getenv("ASSENT_SEAL_KEYS_FILE"); v != "" {
		return v
	}
	return "infra/keys/decider-keys.json"
}

func runVerify(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("verify", "verify [--from-offsets FILE] [--keys FILE] [--policies FILE] [--topic T] [--signed-topic T] [--json] [--quiet] [--cpuprofile FILE]", stderr)
	c, finish := loadCommon(getenv, fs)
	statePath := fs.String("from-offsets", "", "saved verification state: verify only what is new since it, and save the new state there when the log verifies")
	keys := fs.String("keys", "", "published public keys file (default $ASSENT_AUDIT_KEYS_FILE or infra/keys/decider-keys.json)")
	signed := fs.String("signed-topic", "", "the topic name the seals sign, when verifying a copy of the log (default: --topic)")
	policies := fs.String("policies", "", "the deciders' policy file: its admins may cancel any request (default $ASSENT_POLICY_FILE; none: cancels by others than the requester are counted, not checked)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	quiet := fs.Bool("quiet", false, "no progress lines")
	every := fs.Duration("progress", 2*time.Second, "interval between progress lines on stderr")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the run to this file (go tool pprof reads it)")
	if help, err := parse(fs, args); help || err != nil {
		return err
	}
	if err := finish(); err != nil {
		return err
	}
	if os.Getenv("GOGC") == "" {
		// Verify allocates much (each record's decoded event, the domain's
		// decisions) and keeps little: collecting half as often took 9%
		// less CPU on the audit benchmark's log, for ~200 MB more at its
		// peak (1M events). GOGC set by the operator wins.
		debug.SetGCPercent(200)
	}
	if *cpuProfile != "" {
		stop, err := startCPUProfile(*cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	ring, err := wire.LoadKeyRing(keysFile(getenv, *keys))
	if err != nil {
		return fmt.Errorf("%w; give the published public keys with --keys or ASSENT_AUDIT_KEYS_FILE", err)
	}
	var from *verify.State
	if *statePath != "" {
		if from, err = verify.LoadState(*statePath); err != nil {
			return err
		}
	}
	cfg := verify.Config{Kafka: c.kafka, Topic: c.topic, SignedTopic: *signed, Keys: ring, From: from}
	if *policies == "" {
		*policies = getenv("ASSENT_POLICY_FILE")
	}
	if *policies != "" {
		ps, err := policy.Load(*policies)
		if err != nil {
			return fmt.Errorf("verify: --policies: %w", err)
		}
		cfg.Rules = replay.Rules{Admins: ps.Admins, AdminsKnown: true}
	}
	if !*quiet {
		began := time.Now()
		cfg.ProgressEvery = *every
		cfg.Progress = func(done, total int64) {
			_, _ = fmt.Fprintf(stderr, "verify: %s\n", progressLine(done, total, time.Since(began)))
		}
	}
	res, err := verify.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if *asJSON {
		out := map[string]any{"ok": res.OK(), "partitions": res.Partitions, "records": res.Records, "new_records": res.NewRecords,
			"seals": res.Seals, "requests": res.Requests, "seconds": res.Took.Seconds(), "breaks": res.Breaks, "breaks_not_listed": res.Dropped,
			"unchecked_cancels": res.UncheckedCancels}
		if res.Breaks == nil {
			out["breaks"] = []verify.Break{}
		}
		if err := json.NewEncoder(stdout).Encode(out); err != nil {
			return err
		}
	} else {
		_, _ = fmt.Fprintf(stdout, "%s: %d events (%d new) in %d partitions, %d seals (%d new), %d requests, in %s (%.0f events/s)\n",
			c.topic, res.Records, res.NewRecords, res.Partitions, res.Seals, res.NewSeals, res.Requests,
			res.Took.Round(time.Millisecond), float64(res.NewRecords)/res.Took.Seconds())
		for _, b := range res.Breaks {
			_, _ = fmt.Fprintf(stdout, "BREAK %s\n", b)
		}
		if res.Dropped > 0 {
			_, _ = fmt.Fprintf(stdout, "... and %d more breaks not listed\n", res.Dropped)
		}
		if res.UncheckedCancels > 0 {
			_, _ = fmt.Fprintf(stdout, "%d cancels by someone other than the requester were not checked against the admins: give --policies FILE (the deciders' policy file)\n",
				res.UncheckedCancels)
		}
	}
	if !res.OK() {
		return fmt.Errorf("%w: %d breaks, the first at partition %d offset %d (%s); the saved state was not updated",
			ErrTampered, len(res.Breaks)+res.Dropped, res.Breaks[0].Partition, res.Breaks[0].Offset, res.Breaks[0].Kind)
	}
	if *statePath != "" {
		if err := res.State.Save(*statePath); err != nil {
			return err
		}
		if !*asJSON {
			_, _ = fmt.Fprintf(stdout, "verified; state saved to %s\n", *statePath)
		}
	} else if !*asJSON {
		_, _ = fmt.Fprintln(stdout, "verified")
	}
	return nil
}

// startCPUProfile profiles the process into path until stop is called.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path) //nolint:gosec // the auditor names the profile file
	if err != nil {
		return nil, fmt.Errorf("verify: --cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("verify: --cpuprofile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close() // best effort: a diagnostic file
	}, nil
}

func progressLine(done, total int64, took time.Duration) string {
	pct := 100.0
	if total > 0 {
		pct = 100 * float64(done) / float64(total)
	}
	rate := float64(done) / max(took.Seconds(), 1e-9)
	eta := "-"
	if rate > 0 && total > done {
		eta = (time.Duration(float64(total-done)/rate) * time.Second / time.Second).Round(time.Second).String()
	}
	const width = 30
	filled := min(width, int(pct*width/100))
	return fmt.Sprintf("[%s%s] %5.1f%% %d/%d records, %.0f/s, eta %s",
		strings.Repeat("#", filled), strings.Repeat(".", width-filled), pct, done, total, rate, eta)
}

func parseTimeFlag(name, v string, required bool) (time.Time, error) {
	if v == "" {
		if required {
			return time.Time{}, fmt.Errorf("--%s is required: an RFC 3339 time such as 2026-01-02T15:04:05Z", name)
		}
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return t, fmt.Errorf("--%s %q: use an RFC 3339 time such as 2026-01-02T15:04:05Z", name, v)
	}
	return t.UTC(), nil
}

func runExport(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := newFlags("export", "export --from T --to T [--request ID] [--actor A] --format jsonl|csv", stdout)
	c, finish := loadCommon(getenv, fs)
	fromS := fs.String("from", "", "first event time, RFC 3339, inclusive (required)")
	toS := fs.String("to", "", "last event time, RFC 3339, exclusive (required)")
	req := fs.String("request", "", "only this request")
	actor := fs.String("actor", "", "only this actor, e.g. user:alice@example.com")
	format := fs.String("format", "jsonl", "jsonl or csv")
	if help, err := parse(fs, args); help || err != nil {
		return err
	}
	from, err := parseTimeFlag("from", *fromS, true)
	if err != nil {
		return err
	}
	to, err := parseTimeFlag("to", *toS, true)
	if err != nil {
		return err
	}
	if !to.After(from) {
		return errors.New("export: --to must be after --from")
	}
	w, err := export.NewWriter(stdout, *format)
	if err != nil {
		return err
	}
	if err := finish(); err != nil {
		return err
	}
	ring, err := wire.LoadKeyRing(keysFile(getenv, ""))
	if err != nil {
		return fmt.Errorf("%w; give the published public keys with ASSENT_AUDIT_KEYS_FILE: only what they sign is exported", err)
	}
	err = export.Scan(ctx, c.kafka, c.topic, ring, export.Filter{From: from, To: to, Request: *req, Actor: *actor}, w.Write)
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	return err
}

func runState(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := newFlags("state", "state --request ID --at T", stdout)
	c, finish := loadCommon(getenv, fs)
	req := fs.String("request", "", "the request id (required)")
	atS := fs.String("at", "", "the time, RFC 3339 (required)")
	if help, err := parse(fs, args); help || err != nil {
		return err
	}
	if *req == "" {
		return errors.New("state: --request is required")
	}
	at, err := parseTimeFlag("at", *atS, true)
	if err != nil {
		return err
	}
	if err := finish(); err != nil {
		return err
	}
	ring, err := wire.LoadKeyRing(keysFile(getenv, ""))
	if err != nil {
		return fmt.Errorf("%w; give the published public keys with ASSENT_AUDIT_KEYS_FILE: only what they sign is replayed", err)
	}
	st, err := export.StateAt(ctx, c.kafka, c.topic, ring, *req, at)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(st)
}

func runKeygen(args []string, stdout io.Writer) error {
	fs := newFlags("keygen", "keygen --key-id ID --out FILE", stdout)
	id := fs.String("key-id", "", "the key id (required), e.g. prod-2026-07")
	out := fs.String("out", "", "where to write the private key, PKCS #8 PEM, mode 0600 (required; not overwritten)")
	principal := fs.String("principal", "", "a command key: the principal it speaks as, e.g. service:billing (prints a service-keys.json entry)")
	onBehalf := fs.Bool("on-behalf", false, "with --principal: the key may name other principals as actors (the api, the Slack gateway, the console)")
	if help, err := parse(fs, args); help || err != nil {
		return err
	}
	if *id == "" || *out == "" {
		return errors.New("keygen: --key-id and --out are required")
	}
	if *onBehalf && *principal == "" {
		return errors.New("keygen: --on-behalf is a role of a command key: give --principal too")
	}
	if *principal != "" && !wire.ValidServicePrincipal(*principal) {
		return fmt.Errorf("keygen: --principal %q: a command key speaks as a user: or service: principal", *principal)
	}
	pub, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	if _, err := wire.NewSigner(*id, key); err != nil {
		return err
	}
	pemBytes, err := wire.MarshalPrivateKeyPEM(key)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	if _, err := f.Write(pemBytes); err != nil {
		_ = f.Close()
		return fmt.Errorf("keygen: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	var entry any = wire.PublicKey{KeyID: *id, Algorithm: wire.AlgorithmEd25519, PublicKey: base64.StdEncoding.EncodeToString(pub), NotBefore: &now}
	if *principal != "" {
		k := wire.ServiceKey{KeyID: *id, Algorithm: wire.AlgorithmEd25519, PublicKey: base64.StdEncoding.EncodeToString(pub),
			Principal: *principal, NotBefore: &now}
		if *onBehalf {
			k.Roles = []string{wire.RoleOnBehalf}
		}
		entry = k
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(entry)
}

// Command audit-bench measures the auditor on a generated log, as an
// auditor would run it: it fills a scratch events topic with realistic
// hash-chained, checkpointed events (test/loggen), then, in the same run,
// times a bare franz-go read of the topic next to `auditor verify`, and the
// audit service (`auditor serve`) building its projection and answering an
// actor query. scripts/bench --audit runs it.
package main

import (
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
	"net/url"
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

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "audit-bench:", err)
		os.Exit(1)
	}
}

// options shape a run.
type options struct {
	kafka      eventlog.Config
	bin        string // holds the auditor binary
	events     int64  // at least this many records
	partitions int32
	sealEvery  int
	keep       bool // keep the scratch topic
	skipIndex  bool
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("audit-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	brokers := fs.String("brokers", getenv(eventlog.EnvBrokers), "comma-separated brokers (default $ASSENT_KAFKA_BROKERS)")
	bin := fs.String("bin", ".run/bin", "directory holding the auditor binary (scripts/bench builds it there)")
	events := fs.Int64("events", 1_000_000, "records to generate (at least)")
	parts := fs.Int("partitions", 12, "partitions of the scratch topic")
	every := fs.Int("seal-every", 100, "events per sealed transaction (a decider seals each transaction)")
	keep := fs.Bool("keep", false, "keep the scratch topic and its keys file (to run auditor verify on it again)")
	skip := fs.Bool("skip-index", false, "skip the audit service's projection and the actor query")
	if err := fs.Parse(args); err != nil {
		return err
	}
	seeds, err := eventlog.ParseBrokers(*brokers)
	if err != nil {
		return fmt.Errorf("--brokers: %w (scripts/kafka up prints them)", err)
	}
	if *parts < 1 || *parts > math.MaxInt32 {
		return fmt.Errorf("--partitions must be 1 to %d, got %d", math.MaxInt32, *parts)
	}
	scram, err := eventlog.SCRAMFromEnv(getenv)
	if err != nil {
		return err
	}
	o := options{kafka: eventlog.Config{Brokers: seeds, ClientID: "audit-bench", SCRAM: scram}, bin: *bin, events: *events,
		partitions: int32(*parts), sealEvery: *every, keep: *keep, skipIndex: *skip}
	return bench(ctx, o, stdout, stderr)
}

func bench(ctx context.Context, o options, out, errw io.Writer) error {
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	topic := "assent.audit-bench." + hex.EncodeToString(rnd[:])
	admCl, err := eventlog.NewClient(o.kafka)
	if err != nil {
		return err
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	retention := "-1"
	minISR := "2"
	if _, err := adm.CreateTopic(ctx, o.partitions, 3, map[string]*string{"retention.ms": &retention, "min.insync.replicas": &minISR}, topic); err != nil {
		return fmt.Errorf("create %s: %w", topic, err)
	}
	if !o.keep {
		defer func() {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			_, _ = adm.DeleteTopics(dctx, topic)
		}()
	}
	if err := logadmin.PollReady(ctx, adm, 0, []string{topic}, nil); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "audit-bench-")
	if err != nil {
		return err
	}
	if o.keep {
		// The published keys of the kept topic, to run auditor verify on it again.
		defer func() {
			_, _ = fmt.Fprintf(out, "kept: topic %s, keys file %s\n", topic, filepath.Join(dir, "keys.json"))
		}()
	} else {
		defer func() { _ = os.RemoveAll(dir) }() // best effort: a temporary directory
	}

	pub, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		return err
	}
	signer, err := wire.NewSigner("bench", key)
	if err != nil {
		return err
	}
	keysFile := filepath.Join(dir, "keys.json")
	keys, err := json.Marshal(wire.KeysFile{Format: wire.KeysFormat, Keys: []wire.PublicKey{
		{KeyID: "bench", Algorithm: wire.AlgorithmEd25519, PublicKey: base64.StdEncoding.EncodeToString(pub)}}})
	if err != nil {
		return err
	}
	if err := os.WriteFile(keysFile, keys, 0o600); err != nil {
		return err
	}

	// 3.5 events a request on average (loggen's six scenarios).
	requests := int(o.events*6/21) + 1000
	gopts := loggen.Options{Topic: topic, Partitions: o.partitions, Requests: requests, Signer: signer,
		SealEvery: o.sealEvery, Start: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Step: 10 * time.Millisecond}
	_, _ = fmt.Fprintf(out, "topic %s: %d partitions, %d requests, a seal every %d events\n", topic, o.partitions, requests, o.sealEvery)
	began := time.Now()
	n, err := loggen.Stream(ctx, o.kafka, gopts, func(n int64) {
		_, _ = fmt.Fprintf(errw, "audit-bench: written %d records (%.0f/s)\n", n, float64(n)/time.Since(began).Seconds())
	})
	if err != nil {
		return err
	}
	_, _ = fmt.Fprintf(out, "write: %d records in %s (%.0f/s)\n", n, time.Since(began).Round(time.Millisecond), float64(n)/time.Since(began).Seconds())

	bare1, err := bareRead(ctx, o.kafka, topic, n)
	if err != nil {
		return err
	}
	env := append(os.Environ(), eventlog.EnvBrokers+"="+strings.Join(o.kafka.Brokers, ","), "ASSENT_EVENTS_TOPIC="+topic,
		"ASSENT_AUDIT_KEYS_FILE="+keysFile, "ASSENT_PARTITIONS="+strconv.Itoa(int(o.partitions)))
	res, err := verify(ctx, o.bin, env, errw)
	if err != nil {
		return err
	}
	if !res.OK {
		return fmt.Errorf("the generated log does not verify: %s", res.Breaks)
	}
	if res.Records != n {
		return fmt.Errorf("verify saw %d records, %d were written", res.Records, n)
	}
	bare2, err := bareRead(ctx, o.kafka, topic, n)
	if err != nil {
		return err
	}
	bare := min(bare1, bare2)
	took := time.Duration(res.Seconds * float64(time.Second))
	bareRate := float64(n) / bare.Seconds()
	verifyRate := float64(n) / took.Seconds()
	_, _ = fmt.Fprintf(out, "bare franz-go read: %d records in %s (%.0f/s; runs %s and %s)\n", n, bare.Round(time.Millisecond), bareRate,
		bare1.Round(time.Millisecond), bare2.Round(time.Millisecond))
	_, _ = fmt.Fprintf(out, "verify:             %d records, %d seals, %d requests in %s (%.0f/s)\n", res.Records, res.Seals, res.Requests,
		took.Round(time.Millisecond), verifyRate)
	_, _ = fmt.Fprintf(out, "verify / bare read: %.2fx the time (%.0f%% of the bare read's throughput)\n", took.Seconds()/bare.Seconds(), 100*verifyRate/bareRate)
	if o.skipIndex {
		return nil
	}
	return actorQuery(ctx, o, env, dir, n, out, errw)
}

// verifyResult is what `auditor verify --json` prints.
type verifyResult struct {
	OK       bool            `json:"ok"`
	Records  int64           `json:"records"`
	Seals    int64           `json:"seals"`
	Requests int64           `json:"requests"`
	Seconds  float64         `json:"seconds"`
	Breaks   json.RawMessage `json:"breaks"`
}

func verify(ctx context.Context, bin string, env []string, errw io.Writer) (verifyResult, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "auditor"), "verify", "--json")
	cmd.Env, cmd.Stderr = env, errw
	raw, err := cmd.Output()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		return verifyResult{}, fmt.Errorf("run auditor verify (build it with scripts/bench, or pass --bin): %w", err)
	}
	var res verifyResult
	if jerr := json.Unmarshal(raw, &res); jerr != nil {
		if err != nil { // its exit status says more than the unparsable output
			return res, fmt.Errorf("auditor verify: %w; it printed %q", err, raw)
		}
		return res, fmt.Errorf("auditor verify: %w; it printed %q", jerr, raw)
	}
	return res, nil
}

// bareRead reads every partition to its end with franz-go, read_committed,
// counting records: the floor verify is measured against.
func bareRead(ctx context.Context, cfg eventlog.Config, topic string, want int64) (time.Duration, error) {
	began := time.Now()
	cl, err := eventlog.NewClient(cfg, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxBytes(64<<20), kgo.FetchMaxPartitionBytes(8<<20))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	var n int64
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	for n < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return 0, fmt.Errorf("bare read: %w after %d of %d records", ctx.Err(), n, want)
		}
		if err := fs.Err0(); err != nil && !errors.Is(err, context.Canceled) {
			return 0, fmt.Errorf("bare read: %w", err)
		}
		n += int64(fs.NumRecords())
	}
	return time.Since(began), nil
}

// actorQuery starts the audit service on the topic, times its projection
// until /readyz, and then the answer to "every event by this actor",
// paging through all of it over HTTP.
func actorQuery(ctx context.Context, o options, env []string, dir string, n int64, out, errw io.Writer) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	cmd := exec.CommandContext(ctx, filepath.Join(o.bin, "auditor"), "serve")
	cmd.Env = append(env, "ASSENT_HTTP_ADDR="+addr, "ASSENT_DATA_DIR="+filepath.Join(dir, "audit"), "ASSENT_INSTANCE_ID=audit-bench",
		"ASSENT_LOG_LEVEL=warn")
	cmd.Stderr = errw
	began := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start auditor serve: %w", err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	base := "http://" + addr
	hc := &http.Client{Timeout: 30 * time.Second}
	last := time.Now()
	for {
		if resp, err := hc.Get(base + "/readyz"); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Since(last) > 5*time.Second {
			_, _ = fmt.Fprintf(errw, "audit-bench: the audit service is projecting (%s)\n", time.Since(began).Round(time.Second))
			last = time.Now()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	build := time.Since(began)
	_, _ = fmt.Fprintf(out, "audit projection:   %d records indexed in %s (%.0f/s, process start included)\n", n, build.Round(time.Millisecond), float64(n)/build.Seconds())

	actor := loggen.Approvers[7]
	page := func(cursor string, limit int) (int, string, error) {
		q := url.Values{"actor": {actor}, "limit": {strconv.Itoa(limit)}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		resp, err := hc.Get(base + "/v1/audit/events?" + q.Encode())
		if err != nil {
			return 0, "", err
		}
		defer func() { _ = resp.Body.Close() }() // read-only
		var body struct {
			Events []json.RawMessage `json:"events"`
			Next   string            `json:"next_cursor"`
		}
		if resp.StatusCode != http.StatusOK {
			return 0, "", fmt.Errorf("actor query: %s", resp.Status)
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			return 0, "", err
		}
		return len(body.Events), body.Next, nil
	}
	qbegan := time.Now()
	total, cursor, err := page("", 100)
	if err != nil {
		return err
	}
	first := time.Since(qbegan)
	for cursor != "" {
		var k int
		if k, cursor, err = page(cursor, 1000); err != nil {
			return err
		}
		total += k
	}
	all := time.Since(qbegan)
	_, _ = fmt.Fprintf(out, "actor query %s: first page of 100 in %s; all %d events (pages of 1000) in %s\n",
		actor, first.Round(time.Microsecond), total, all.Round(time.Microsecond))
	if total == 0 {
		return errors.New("the actor query found nothing")
	}
	return nil
}

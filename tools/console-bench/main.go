// Command console-bench measures the console's inbox: the time to first
// byte of GET /inbox for an approver with N pending requests (10,000 by
// default), next to floors from the same server in the same run (GET
// /healthz, and a static file), sample by sample interleaved. It runs the
// real binaries: a decider decides N submits on scratch topics, a console
// replica projects them, and a person signs in through the demo OIDC
// provider (test/fakeoidc) for a real session. scripts/bench --console
// runs it.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptrace"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/command"
	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/logadmin"
	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/test/fakeoidc"
	"github.com/assent-dev/assent/test/systest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "console-bench:", err)
		os.Exit(1)
	}
}

type options struct {
	kafka    eventlog.Config
	bin      string
	root     string
	requests int
	samples  int
	keep     bool
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("console-bench", flag.ContinueOnError)
	brokers := fs.String("brokers", os.Getenv(eventlog.EnvBrokers), "comma-separated brokers (default $ASSENT_KAFKA_BROKERS)")
	bin := fs.String("bin", ".run/bin", "directory holding the decider and console binaries (scripts/bench builds them there)")
	root := fs.String("root", ".", "the repository (for infra/policies/example.yaml and infra/keys)")
	n := fs.Int("requests", 10_000, "pending requests in the approver's inbox")
	samples := fs.Int("samples", 500, "measurements of each page")
	keep := fs.Bool("keep", false, "keep the scratch topics")
	if err := fs.Parse(args); err != nil {
		return err
	}
	seeds, err := eventlog.ParseBrokers(*brokers)
	if err != nil {
		return fmt.Errorf("--brokers: %w (scripts/kafka up prints them)", err)
	}
	scram, err := eventlog.SCRAMFromEnv(os.Getenv)
	if err != nil {
		return err
	}
	o := options{kafka: eventlog.Config{Brokers: seeds, ClientID: "console-bench", SCRAM: scram}, bin: *bin, root: *root, requests: *n, samples: *samples, keep: *keep}
	return bench(ctx, o)
}

func say(format string, args ...any) { fmt.Fprintf(os.Stderr, "console-bench: "+format+"\n", args...) }

// start runs a binary until ctx ends; its output goes to logFile. The
// returned channel is closed if it exits.
func start(ctx context.Context, wg *sync.WaitGroup, bin, logFile string, env []string, args ...string) (<-chan struct{}, error) {
	f, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		return nil, err
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		_ = f.Close()
		close(exited)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-ctx.Done():
			_ = cmd.Process.Signal(syscall.SIGTERM)
			<-exited
		case <-exited:
		}
	}()
	return exited, nil
}

func waitReady(ctx context.Context, base string, d time.Duration, exited <-chan struct{}, logFile string) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/readyz", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(logFile)
			return fmt.Errorf("%s exited:\n%s", base, log)
		case <-ctx.Done():
			return fmt.Errorf("%s is not ready: %w", base, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func bench(ctx context.Context, o options) error {
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	base := "assent.console-bench." + hex.EncodeToString(rnd[:])
	spec := eventlog.TopicSpec{Commands: base + ".commands", Events: base + ".events", Partitions: 12, ReplicationFactor: 3, MinInsyncReplicas: 2}
	admCl, err := eventlog.NewClient(o.kafka)
	if err != nil {
		return err
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	if _, err := logadmin.Provision(ctx, adm, spec); err != nil {
		return err
	}
	if !o.keep {
		defer func() {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			_, _ = adm.DeleteTopics(dctx, spec.Commands, spec.Events)
		}()
	}
	dir, err := os.MkdirTemp("", "console-bench-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	pctx, stopProcs := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		stopProcs()
		wg.Wait()
	}()
	common := []string{
		"ASSENT_KAFKA_BROKERS=" + strings.Join(o.kafka.Brokers, ","), "ASSENT_PARTITIONS=12",
		"ASSENT_COMMANDS_TOPIC=" + spec.Commands, "ASSENT_EVENTS_TOPIC=" + spec.Events, "ASSENT_LOG_LEVEL=warn",
	}

	// 1. A decider, and N submits for carol's deploys: alice may vote on
	// every one (prod-deploy: sre and carol; the requester cannot vote).
	daddr, err := systest.UniqueAddr()
	if err != nil {
		return err
	}
	dlog := filepath.Join(dir, "decider.log")
	dexit, err := start(pctx, &wg, filepath.Join(o.bin, "decider"), dlog, append(common,
		"ASSENT_HTTP_ADDR="+daddr, "ASSENT_INSTANCE_ID=console-bench-decider-"+hex.EncodeToString(rnd[:]),
		"ASSENT_DATA_DIR="+filepath.Join(dir, "decider"), "ASSENT_DECIDER_GROUP="+base,
		"ASSENT_POLICY_FILE="+filepath.Join(o.root, "infra/policies/example.yaml"),
		"ASSENT_SIGNING_KEY_FILE="+filepath.Join(o.root, "infra/keys/demo-decider.key.pem"), "ASSENT_SIGNING_KEY_ID=demo-2026-01",
		"ASSENT_SERVICE_KEYS_FILE="+filepath.Join(o.root, "infra/keys/service-keys.json")))
	if err != nil {
		return err
	}
	if err := waitReady(ctx, "http://"+daddr, 2*time.Minute, dexit, dlog); err != nil {
		return err
	}
	cl, err := eventlog.NewClient(o.kafka)
	if err != nil {
		return err
	}
	defer cl.Close()
	// The submits are the api's: signed with its demo key (a local tool,
	// like scripts/up).
	apiKey, err := wire.LoadSigner("demo-api-2026-01", filepath.Join(o.root, "infra/keys/demo-api.key.pem"))
	if err != nil {
		return err
	}
	w := command.Writer{Source: command.SourceAPI, Sender: command.Kafka{Client: cl, Topic: spec.Commands, Signer: apiKey}}
	say("submitting %d requests", o.requests)
	began := time.Now()
	var next atomic.Int64
	var sendErr error
	var once sync.Once
	var swg sync.WaitGroup
	for range 32 {
		swg.Add(1)
		go func() {
			defer swg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(o.requests) {
					return
				}
				c := w.New(wire.NewID(time.Now()), fmt.Sprintf("bench-%06d", i), "user:carol@example.com", approval.Submit{
					Action: approval.Action{Type: "deploy", Resource: fmt.Sprintf("services/svc-%d", i%50), Environment: "production",
						Details: []byte(`{"version":"1.` + strconv.FormatInt(i, 10) + `.0"}`)},
					Reason: "bench request " + strconv.FormatInt(i, 10)})
				if err := w.Send(ctx, c); err != nil {
					once.Do(func() { sendErr = err })
					return
				}
			}
		}()
	}
	swg.Wait()
	if sendErr != nil {
		return sendErr
	}
	say("submitted in %s", time.Since(began).Round(time.Millisecond))

	// 2. The demo OIDC provider and one console replica.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	secret := hex.EncodeToString(rnd[:]) + "-bench-secret"
	idp, err := fakeoidc.Start(ln, "assent-console", secret, fakeoidc.DemoUsers())
	if err != nil {
		return err
	}
	defer func() { _ = idp.Shutdown() }()
	secretFile, keyFile := filepath.Join(dir, "secret"), filepath.Join(dir, "session-keys")
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	if err := os.WriteFile(secretFile, []byte(secret), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(keyFile, []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
		return err
	}
	caddr, err := systest.UniqueAddr()
	if err != nil {
		return err
	}
	console := "http://" + caddr
	began = time.Now()
	clog := filepath.Join(dir, "console.log")
	cexit, err := start(pctx, &wg, filepath.Join(o.bin, "console"), clog, append(common,
		"ASSENT_HTTP_ADDR="+caddr, "ASSENT_CONSOLE_PUBLIC_URL="+console, "ASSENT_INSTANCE_ID=console-bench-"+hex.EncodeToString(rnd[:]),
		"ASSENT_DATA_DIR="+filepath.Join(dir, "console"), "ASSENT_OIDC_ISSUER="+idp.Issuer(), "ASSENT_OIDC_CLIENT_ID=assent-console",
		"ASSENT_OIDC_CLIENT_SECRET_FILE="+secretFile, "ASSENT_CONSOLE_SESSION_KEY_FILE="+keyFile,
		"ASSENT_SEAL_KEYS_FILE="+filepath.Join(o.root, "infra/keys/decider-keys.json"),
		"ASSENT_COMMAND_KEY_FILE="+filepath.Join(o.root, "infra/keys/demo-console.key.pem"), "ASSENT_COMMAND_KEY_ID=demo-console-2026-01",
		"ASSENT_CONSOLE_RATE_LIMIT=10000"))
	if err != nil {
		return err
	}
	if err := waitReady(ctx, console, 2*time.Minute, cexit, clog); err != nil {
		return err
	}
	// Every submit decided and projected: N request.submitted records.
	if err := waitProjected(ctx, console, o.requests, 5*time.Minute); err != nil {
		return err
	}
	say("decided and projected in %s", time.Since(began).Round(time.Millisecond))

	c, err := signIn(ctx, console, "alice@example.com")
	if err != nil {
		return err
	}
	// The inbox holds all N, page by page, before anything is measured.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		n, err := countInbox(ctx, c, console)
		if err != nil {
			return err
		}
		if n == o.requests {
			say("alice's inbox holds %d pending requests", n)
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("alice's inbox holds %d pending requests, not %d", n, o.requests)
		}
		time.Sleep(500 * time.Millisecond)
	}

	// 3. Interleaved samples: inbox, /healthz, a static file.
	targets := []struct{ name, url string }{
		{"GET /inbox (10,000 pending; renders 50)", console + "/inbox"},
		{"GET /healthz (floor: no work)", console + "/healthz"},
		{"GET /static/console.css (floor: a static file)", console + "/static/console.css"},
	}
	if o.requests != 10_000 {
		targets[0].name = fmt.Sprintf("GET /inbox (%d pending; renders 50)", o.requests)
	}
	ttfb := make([][]time.Duration, len(targets))
	for range 20 { // warm up
		for _, tg := range targets {
			if _, err := measure(ctx, c, tg.url); err != nil {
				return err
			}
		}
	}
	for range o.samples {
		for i, tg := range targets {
			d, err := measure(ctx, c, tg.url)
			if err != nil {
				return err
			}
			ttfb[i] = append(ttfb[i], d)
		}
	}
	fmt.Printf("console inbox, time to first byte, %d samples each, interleaved, one keep-alive connection\n", o.samples)
	fmt.Printf("%-48s %10s %10s %10s %12s\n", "page", "p50", "p90", "p99", "p50 / floor")
	floor := pct(ttfb[1], 50)
	for i, tg := range targets {
		p50 := pct(ttfb[i], 50)
		fmt.Printf("%-48s %10s %10s %10s %11.1fx\n", tg.name, fmtDur(p50), fmtDur(pct(ttfb[i], 90)), fmtDur(pct(ttfb[i], 99)),
			float64(p50)/float64(floor))
	}
	return nil
}

var nextPage = regexp.MustCompile(`href="/inbox\?cursor=([A-Za-z0-9_-]+)"`)

// countInbox follows the inbox's pages to the end and counts the requests.
func countInbox(ctx context.Context, c *http.Client, console string) (int, error) {
	n, u := 0, console+"/inbox"
	for {
		page, err := get(ctx, c, u)
		if err != nil {
			return 0, err
		}
		n += strings.Count(page, `class="card"`)
		m := nextPage.FindStringSubmatch(page)
		if m == nil {
			return n, nil
		}
		u = console + "/inbox?cursor=" + m[1]
	}
}

func pct(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}

func fmtDur(d time.Duration) string { return fmt.Sprintf("%.3fms", float64(d.Microseconds())/1000) }

// waitProjected polls the console's metrics until its projection (the
// requests store and the audit index, one runner) has applied n records.
func waitProjected(ctx context.Context, console string, n int, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	prefix := `assent_projection_records_total `
	for {
		page, err := get(ctx, http.DefaultClient, console+"/metrics")
		if err == nil {
			for line := range strings.Lines(page) {
				if v, ok := strings.CutPrefix(strings.TrimSpace(line), prefix); ok {
					if f, err := strconv.ParseFloat(v, 64); err == nil && int(f) >= n {
						return nil
					}
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the console did not project %d requests: %w", n, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func get(ctx context.Context, c *http.Client, u string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return string(b), err
}

// measure returns the time from sending the request to its first byte,
// and reads the rest.
func measure(ctx context.Context, c *http.Client, u string) (time.Duration, error) {
	var first time.Time
	trace := &httptrace.ClientTrace{GotFirstResponseByte: func() { first = time.Now() }}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	began := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return first.Sub(began), nil
}

// signIn goes through the OIDC flow as a browser would (the demo
// provider's page, choosing email) and returns a client with the session.
func signIn(ctx context.Context, console, email string) (*http.Client, error) {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	step := func(method, u string, form url.Values) (string, error) {
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, err := http.NewRequestWithContext(ctx, method, u, body)
		if err != nil {
			return "", err
		}
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		resp, err := c.Do(req)
		if err != nil {
			return "", err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		loc := resp.Header.Get("Location")
		if loc == "" {
			return "", fmt.Errorf("%s %s: %s without a redirect", method, u, resp.Status)
		}
		return loc, nil
	}
	auth, err := step(http.MethodGet, console+"/auth/start?next=/inbox", nil)
	if err != nil {
		return nil, err
	}
	au, err := url.Parse(auth)
	if err != nil {
		return nil, err
	}
	form := au.Query()
	form.Set("login_as", email)
	au.RawQuery = ""
	cb, err := step(http.MethodPost, au.String(), form)
	if err != nil {
		return nil, err
	}
	if _, err := step(http.MethodGet, cb, nil); err != nil {
		return nil, err
	}
	return c, nil
}

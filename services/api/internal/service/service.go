// Package service wires the api service together: configuration, the
// tokens file, the Kafka client, the topic check, the request projection,
// the application and the HTTP edge, run as one errgroup until the
// context ends.
package service

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/assent-dev/assent/libs/command"

	"golang.org/x/sync/errgroup"

	"github.com/assent-dev/assent/libs/daemon"
	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/logadmin"
	"github.com/assent-dev/assent/libs/projection"
	"github.com/assent-dev/assent/libs/projection/requests"
	"github.com/assent-dev/assent/libs/tracing"
	"github.com/assent-dev/assent/services/api/internal/app"
	"github.com/assent-dev/assent/services/api/internal/auth"
	"github.com/assent-dev/assent/services/api/internal/config"
	"github.com/assent-dev/assent/services/api/internal/metrics"
	"github.com/assent-dev/assent/services/api/internal/ports"
)

// shutdownGrace is how long in-flight HTTP requests get to finish. Waits
// end at once on shutdown (writes answer 202, long polls what they have),
// so this only covers requests that are producing or reading.
const shutdownGrace = 10 * time.Second

// writeSlack is the time a write's answer gets, beyond its produce and
// its wait, to be written.
const writeSlack = 5 * time.Second

// Main runs the command line: the service, --help, or hash-token.
func Main(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "-h", "--help", "help":
			_, err := io.WriteString(stdout, config.Usage)
			return err
		case "hash-token":
			return hashToken(args[1:], stdin, stdout)
		default:
			return fmt.Errorf("unknown argument %q\n\n%s", args[0], config.Usage)
		}
	}
	cfg, err := config.Load(getenv)
	if err != nil {
		return fmt.Errorf("%w\n(api --help lists every setting)", err)
	}
	return Run(ctx, cfg, stdout)
}

// hashToken prints the tokens-file line for a token.
func hashToken(args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) != 1 {
		return errors.New("usage: api hash-token <token | ->")
	}
	token := args[0]
	if token == "-" {
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("hash-token: read standard input: %w", err)
		}
		token = strings.TrimRight(line, "\r\n")
	}
	if token == "" {
		return errors.New("hash-token: the token is empty")
	}
	_, err := fmt.Fprintf(stdout, "sha256: %s\n", auth.Hash(token))
	return err
}

// Run runs the api service with cfg until ctx ends.
func Run(ctx context.Context, cfg config.Config, stdout io.Writer) error {
	log := daemon.NewLogger(stdout, cfg.LogLevel, "api", cfg.Instance)
	tp, err := tracing.Setup(ctx, cfg.Tracing, "assent-api", cfg.Instance, log)
	if err != nil {
		return err
	}
	defer func() {
		if err := tp.Shutdown(ctx); err != nil {
			log.Warn("tracing: spans not flushed at shutdown", "err", err)
		}
	}()
	tokens, err := auth.Load(cfg.TokensFile)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(cfg.DataDir), 0o750); err != nil {
		return fmt.Errorf("api: data dir: %w", err)
	}

	cl, err := logadmin.Connect(ctx, cfg.Kafka, cfg.Topics)
	if err != nil {
		return err
	}
	defer cl.Close()

	reg := daemon.NewRegistry()
	tracing.RegisterMetrics(reg)
	store := &requests.Store{}
	var boot *projection.BootstrapReport
	if cfg.BootstrapFrom != "" {
		// A replica without a store starts from a snapshot when one checks
		// out, and rebuilds from the log otherwise (docs/architecture.md,
		// "Bootstrap from a snapshot").
		rep := projection.Bootstrap(ctx, projection.BootstrapConfig{
			Source: cfg.BootstrapFrom, Token: cfg.SnapshotToken, Dir: cfg.DataDir, Topic: cfg.Topics.Events,
			Partitions: cfg.Topics.Partitions, Kafka: cfg.Kafka, Keys: cfg.Keys, Handler: store, Logger: log,
			Timeout: cfg.BootstrapTimeout, MaxBytes: cfg.BootstrapMaxBytes,
		})
		boot = &rep
	}
	runner, err := projection.Open(projection.Config{
		Dir: cfg.DataDir, Topic: cfg.Topics.Events, Partitions: cfg.Topics.Partitions,
		Kafka: cfg.Kafka, Handler: store, Logger: log, Keys: cfg.Keys, Bootstrap: boot,
		// The hop from the decider's commit to this replica's store
		// (docs/architecture.md, "Tracing").
		Tracer: tp.Tracer(),
	})
	if err != nil {
		return err
	}
	defer func() {
		if err := runner.Close(); err != nil {
			log.Error("closing the projection", "err", err)
		}
	}()
	store.Attach(runner.DB())
	runner.RegisterMetrics(reg, func() float64 { return float64(store.Invalid.Load()) })
	m := metrics.New(reg, runner.Ready)
	store.OnEvent = m.OnEvent(runner.Ready)
	kafka := newKafkaWatch(cl.Ping, log)
	readsReady := func(context.Context) error {
		if !runner.Ready() {
			return errors.New("the projection is catching up with the event log")
		}
		return nil
	}
	writesReady := func(ctx context.Context) error {
		if err := readsReady(ctx); err != nil {
			return err
		}
		return kafka.Err()
	}
	metrics.RegisterWriteReady(reg, func() bool { return writesReady(ctx) == nil })

	g, gctx := errgroup.WithContext(ctx)
	a := app.New(app.Config{
		Sender:     command.Kafka{Client: cl, Topic: cfg.Topics.Commands, Signer: cfg.CommandKey, Tracer: tp.Tracer()},
		Projection: runner,
		Store:      store,
		WriteWait:  cfg.WriteWait,
		Done:       gctx.Done(),
		ObserveSend: func(d time.Duration, err error) {
			m.ObserveSend(d, err)
			if err != nil {
				kafka.Nudge() // is Kafka away? then the next writes need not wait to learn it
			}
		},
		ObserveWait: m.ObserveWait,
	})
	delivery := cfg.Kafka.RecordDeliveryTimeout
	if delivery <= 0 {
		delivery = eventlog.DefaultRecordDeliveryTimeout
	}
	h := ports.New(ports.Config{
		App: a, Tokens: tokens, Metrics: m, Registry: reg, Logger: log, MaxBody: cfg.MaxBody,
		// /readyz follows the projection alone: reads go on while Kafka
		// is away, and a load balancer should keep the replica for them
		// (docs/architecture.md, "Failure model"). Writes need Kafka too.
		Ready:      readsReady,
		WriteReady: writesReady,
		Writable:   kafka.Err,
		Limits: ports.Limits{
			WriteRate: float64(cfg.WriteRate), WriteBurst: cfg.WriteBurst,
			LongPolls: cfg.MaxLongPolls, LongPollsPerPrincipal: cfg.MaxLongPollsPerPrincipal,
		},
		// A write produces (up to the delivery timeout) and then waits
		// for its outcome (up to the write wait).
		WriteTimeout: delivery + cfg.WriteWait + writeSlack,
		Tracer:       tp.Tracer(),
	})

	ln := cfg.Listener
	if ln == nil {
		ln, err = net.Listen("tcp", cfg.HTTPAddr)
		if err != nil {
			return fmt.Errorf("api: listen on %s: %w (set ASSENT_HTTP_ADDR)", cfg.HTTPAddr, err)
		}
	}
	snapLn := cfg.SnapshotListener
	if snapLn == nil && cfg.SnapshotAddr != "" {
		snapLn, err = net.Listen("tcp", cfg.SnapshotAddr)
		if err != nil {
			_ = ln.Close() // not served yet
			return fmt.Errorf("api: listen on %s: %w (set ASSENT_SNAPSHOT_ADDR)", cfg.SnapshotAddr, err)
		}
	}
	log.Info("starting", "addr", ln.Addr().String(), "commands", cfg.Topics.Commands, "events", cfg.Topics.Events,
		"partitions", cfg.Topics.Partitions, "tokens", tokens.Len(), "data_dir", cfg.DataDir)
	g.Go(func() error { return daemon.ServeListener(gctx, ln, h, shutdownGrace) })
	if snapLn != nil {
		// Peers fetch snapshots on a listener of their own, off the
		// public API (docs/architecture.md, "Bootstrap from a snapshot").
		snaps := &projection.SnapshotServer{Runner: runner, Dir: cfg.DataDir + ".snapshots", Prefix: "/snapshot",
			Token: cfg.SnapshotToken, Interval: cfg.SnapshotInterval}
		mux := http.NewServeMux()
		mux.Handle("/snapshot/", snaps)
		log.Info("serving snapshots", "addr", snapLn.Addr().String(), "every", cfg.SnapshotInterval)
		g.Go(func() error { return snaps.Run(gctx) })
		g.Go(func() error { return daemon.ServeListener(gctx, snapLn, mux, shutdownGrace) })
	}
	g.Go(func() error { return runner.Run(gctx) })
	g.Go(func() error { return kafka.Run(gctx) })
	err = g.Wait()
	log.Info("stopped", "err", err)
	return err
}

// Package service wires the console together: configuration, the Kafka
// client and topic check, one projection of the events topic (the
// requests and the audit index, joined in one store), the live-update hub, the OIDC client, the command
// writer and the HTTP edge, run as one errgroup until the context ends.
package service

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/assent-dev/assent/libs/auditindex"
	"github.com/assent-dev/assent/libs/command"
	"github.com/assent-dev/assent/libs/daemon"
	"github.com/assent-dev/assent/libs/logadmin"
	"github.com/assent-dev/assent/libs/projection"
	"github.com/assent-dev/assent/libs/projection/requests"
	"github.com/assent-dev/assent/services/console/internal/config"
	"github.com/assent-dev/assent/services/console/internal/live"
	"github.com/assent-dev/assent/services/console/internal/oidc"
	"github.com/assent-dev/assent/services/console/internal/session"
	"github.com/assent-dev/assent/services/console/internal/web"
)

// shutdownGrace is how long in-flight requests get to finish; live
// streams end at once.
const shutdownGrace = 10 * time.Second

// Main runs the command line: the service, --help or session-key.
func Main(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "-h", "--help", "help":
			_, err := io.WriteString(stdout, config.Usage)
			return err
		case "session-key":
			_, err := fmt.Fprintln(stdout, hex.EncodeToString(session.NewSecret(32)))
			return err
		default:
			return fmt.Errorf("unknown argument %q\n\n%s", args[0], config.Usage)
		}
	}
	cfg, err := config.Load(getenv)
	if err != nil {
		return fmt.Errorf("%w\n(console --help lists every setting)", err)
	}
	return Run(ctx, cfg, stdout)
}

// Run runs the console with cfg until ctx ends.
func Run(ctx context.Context, cfg config.Config, stdout io.Writer) error {
	log := daemon.NewLogger(stdout, cfg.LogLevel, "console", cfg.Instance)
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return fmt.Errorf("console: data dir: %w", err)
	}
	jar, err := session.NewJar(cfg.SessionKeys, cfg.PublicURL.Scheme == "https", nil)
	if err != nil {
		return err
	}

	cl, err := logadmin.Connect(ctx, cfg.Kafka, cfg.Topics)
	if err != nil {
		return err
	}
	defer cl.Close()

	reg := daemon.NewRegistry()
	removeSplitStores(cfg.DataDir, log)
	// One runner and one store for both projections (projection.Join):
	// each record is read, authenticated and kept once, and a request's
	// state and its audit entries are committed in the same batch.
	store := &requests.Store{}
	idx := &auditindex.Index{}
	runner, err := projection.Open(projection.Config{
		Dir: filepath.Join(cfg.DataDir, storeDir), Topic: cfg.Topics.Events, Partitions: cfg.Topics.Partitions,
		Kafka: cfg.Kafka, Handler: projection.Join(store, idx), Logger: log, Keys: cfg.Keys,
	})
	if err != nil {
		return err
	}
	defer closeRunner(runner, log)
	store.Attach(runner.DB())
	idx.Attach(runner.DB())
	runner.RegisterMetrics(reg, func() float64 { return float64(store.Invalid.Load() + idx.Breaks.Load()) })

	hub := live.NewHub(runner)
	store.OnEvent = hub.OnEvent
	streams := live.NewLimit(cfg.MaxStreams, 16)
	m := web.NewMetrics(reg, streams.Open)

	redirect := *cfg.PublicURL
	redirect.Path = "/auth/callback"
	rp := oidc.New(oidc.Config{
		Issuer: cfg.OIDCIssuer, ClientID: cfg.OIDCClientID, ClientSecret: cfg.OIDCClientSecret,
		RedirectURL: redirect.String(), Scopes: cfg.OIDCScopes, GroupsClaim: cfg.OIDCGroupsClaim,
	})

	g, gctx := errgroup.WithContext(ctx)
	done := make(chan struct{})
	srv := web.New(web.Config{
		Jar: jar, SignIn: rp, Store: store, Projection: runner, Audit: idx,
		Hub: hub, Streams: streams,
		Sender:   command.Kafka{Client: cl, Topic: cfg.Topics.Commands, Signer: cfg.CommandKey},
		Policies: cfg.Policies, AuditorGroups: cfg.AuditorGroups, Partitions: cfg.Topics.Partitions,
		PublicURL: cfg.PublicURL, WriteWait: cfg.WriteWait, SessionTTL: cfg.SessionTTL, RateLimit: cfg.RateLimit,
		StreamLife: cfg.StreamLife, ExportMaxRows: cfg.ExportMaxRows, Logger: log, Registry: reg, Metrics: m, Done: done,
		Ready: func(ctx context.Context) error {
			if !runner.Ready() {
				return errors.New("the projection is catching up with the event log")
			}
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			if err := cl.Ping(pctx); err != nil {
				return fmt.Errorf("kafka is unreachable: %w", err)
			}
			return nil
		},
	})

	ln := cfg.Listener
	if ln == nil {
		ln, err = net.Listen("tcp", cfg.HTTPAddr)
		if err != nil {
			return fmt.Errorf("console: listen on %s: %w (set ASSENT_HTTP_ADDR)", cfg.HTTPAddr, err)
		}
	}
	// The client secret and the session keys are never logged.
	log.Info("starting", "addr", ln.Addr().String(), "public_url", cfg.PublicURL.String(), "issuer", cfg.OIDCIssuer,
		"client_id", cfg.OIDCClientID, "auditor_groups", cfg.AuditorGroups, "policy_file", cfg.PolicyFile,
		"admins", len(cfg.Policies.Admins), "session_keys", len(cfg.SessionKeys), "seal_keys", cfg.Keys.Len(), "events", cfg.Topics.Events,
		"commands", cfg.Topics.Commands, "data_dir", cfg.DataDir)
	g.Go(func() error {
		if err := rp.Discover(gctx); err != nil {
			log.Warn("the identity provider's discovery document cannot be read yet; sign-ins retry it", "err", err)
		}
		return nil
	})
	g.Go(func() error { return serve(gctx, ln, srv, done) })
	g.Go(func() error { return runner.Run(gctx) })
	g.Go(func() error { return hub.Run(gctx) })
	g.Go(func() error {
		// The store caught up: from now on Go collects near a bound, not at
		// twice the live heap (docs/benchmarks.md, "Memory").
		if runner.WaitReady(gctx) != nil {
			return nil
		}
		log.Info("memory limit", "bytes", daemon.LimitMemory(os.Getenv, daemon.DefaultMemoryLimit))
		return nil
	})
	err = g.Wait()
	log.Info("stopped", "err", err)
	return err
}

// serve runs the HTTP server until ctx ends. Unlike a plain API, the
// console keeps streams open: done is closed first, so that they end, and
// then in-flight pages get shutdownGrace.
func serve(ctx context.Context, ln net.Listener, h http.Handler, done chan struct{}) error {
	// daemon's bounds (forms are small; bodies are capped at 64 KiB), but
	// no server-wide write timeout: streams and exports are long. Pages
	// set their own write deadline (web.pageTimeout), streams one before
	// each write.
	t := daemon.DefaultTimeouts
	t.Write = 0
	srv := daemon.NewServer(h, t)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		close(done)
		return fmt.Errorf("console: serve: %w", err)
	case <-ctx.Done():
	}
	close(done)
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		return fmt.Errorf("console: shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// storeDir is the console's store under its data directory.
const storeDir = "store"

// removeSplitStores removes the two stores a console before one store
// kept (requests/ and audit/ under the data directory): what they held is
// rebuilt in storeDir from the log, and left alone they would take the
// disk space of a second copy for good. A directory is removed only if it
// is a Pebble store (it has Pebble's manifest marker); one that cannot be
// removed is logged and left, since it is only a cache.
func removeSplitStores(dataDir string, log *slog.Logger) {
	for _, name := range []string{"requests", "audit"} {
		dir := filepath.Join(dataDir, name)
		if m, err := filepath.Glob(filepath.Join(dir, "marker.manifest.*")); err != nil || len(m) == 0 {
			continue // not a Pebble store (or none at all)
		}
		if err := os.RemoveAll(dir); err != nil {
			log.Warn("could not remove a store of the older two-store layout; remove it by hand to free its disk space", "dir", dir, "err", err)
			continue
		}
		log.Info("removed a store of the older two-store layout; the console rebuilds its one store from the log", "dir", dir)
	}
}

func closeRunner(r *projection.Runner, log interface{ Error(string, ...any) }) {
	if err := r.Close(); err != nil {
		log.Error("closing a projection", "err", err)
	}
}

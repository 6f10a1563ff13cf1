// Package service wires the Slack gateway together: configuration, the
// Kafka client and topic check, the projection of the events topic, the
// Slack client, the inbound interactivity handler and the outbound
// notifier, run as one errgroup until the context ends.
package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/assent-dev/assent/libs/command"

	"github.com/labstack/echo/v4"
	"golang.org/x/sync/errgroup"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/daemon"
	"github.com/assent-dev/assent/libs/logadmin"
	"github.com/assent-dev/assent/libs/projection"
	"github.com/assent-dev/assent/libs/projection/requests"
	"github.com/assent-dev/assent/services/slack-gateway/internal/inbound"
	"github.com/assent-dev/assent/services/slack-gateway/internal/outbound"
	"github.com/assent-dev/assent/services/slack-gateway/internal/slackapi"
)

// shutdownGrace is how long in-flight Slack requests get to finish.
const shutdownGrace = 5 * time.Second

// Main runs the command line: the service or --help.
func Main(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "-h", "--help", "help":
			_, err := io.WriteString(stdout, Usage)
			return err
		default:
			return fmt.Errorf("unknown argument %q\n\n%s", args[0], Usage)
		}
	}
	cfg, err := Load(getenv)
	if err != nil {
		return fmt.Errorf("%w\n(slack-gateway --help lists every setting)", err)
	}
	return Run(ctx, cfg, stdout, nil)
}

// Run runs the gateway with cfg until ctx ends. ln, if not nil, is used
// instead of listening on cfg.HTTPAddr.
func Run(ctx context.Context, cfg Config, stdout io.Writer, ln net.Listener) error {
	log := daemon.NewLogger(stdout, cfg.LogLevel, "slack-gateway", cfg.Instance)
	if err := os.MkdirAll(filepath.Dir(cfg.DataDir), 0o750); err != nil {
		return fmt.Errorf("slack-gateway: data dir: %w", err)
	}
	cl, err := logadmin.Connect(ctx, cfg.Kafka, cfg.Topics)
	if err != nil {
		return err
	}
	defer cl.Close()

	reg := daemon.NewRegistry()
	store := &requests.Store{}
	runner, err := projection.Open(projection.Config{
		Dir: cfg.DataDir, Topic: cfg.Topics.Events, Partitions: cfg.Topics.Partitions,
		Kafka: cfg.Kafka, Handler: store, Logger: log, Keys: cfg.Keys,
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
	m := newMetrics(reg, runner.Ready)

	sl := slackapi.New(slackapi.Config{
		Token: cfg.BotToken, APIURL: cfg.SlackAPIURL, RateScale: cfg.RateScale, UserTTL: cfg.UserTTL,
		Observe: m.observeAPI,
	})
	snd := command.Kafka{Client: cl, Topic: cfg.Topics.Commands, Signer: cfg.CommandKey, Observe: func(took time.Duration, _ error) { m.send.Observe(took.Seconds()) }}
	view := requestsView{runner: runner, store: store}
	in := inbound.New(inbound.Config{
		Verifier: inbound.NewVerifier(cfg.SigningSecret, nil, 0),
		Sender:   snd, Slack: sl, Requests: view, Logger: log,
		AckTimeout: cfg.AckTimeout, MaxBody: cfg.MaxBody, Observe: m.observeClick,
	})
	defer in.Close()
	out := outbound.New(outbound.Config{
		Kafka: cfg.Kafka, Topic: cfg.Topics.Events, Group: cfg.Group,
		Slack: sl, Projection: view, Sender: snd, Logger: log,
		Observe: func(op string) { m.cards.WithLabelValues(op).Inc() },
	})

	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	in.Register(e)
	mux := http.NewServeMux()
	mux.Handle("/slack/", e)
	daemon.Probes{Registry: reg, Ready: func() error {
		if !runner.Ready() {
			return errors.New("the projection is catching up with the event log")
		}
		pingCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if err := cl.Ping(pingCtx); err != nil {
			return fmt.Errorf("kafka is unreachable: %w", err)
		}
		return nil
	}}.Register(mux)

	if ln == nil {
		ln, err = net.Listen("tcp", cfg.HTTPAddr)
		if err != nil {
			return fmt.Errorf("slack-gateway: listen on %s: %w (set ASSENT_HTTP_ADDR)", cfg.HTTPAddr, err)
		}
	}
	log.Info("starting", "addr", ln.Addr().String(), "slack_api", cfg.SlackAPIURL, "group", cfg.Group,
		"commands", cfg.Topics.Commands, "events", cfg.Topics.Events, "data_dir", cfg.DataDir)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return daemon.ServeListener(gctx, ln, mux, shutdownGrace) })
	g.Go(func() error { return runner.Run(gctx) })
	g.Go(func() error {
		// Cards are rendered from the projection: start once it has caught up.
		if runner.WaitReady(gctx) != nil {
			return nil
		}
		// Caught up: from now on Go collects near a bound, not at twice
		// the live heap (docs/benchmarks.md, "Memory").
		log.Info("memory limit", "bytes", daemon.LimitMemory(os.Getenv, daemon.DefaultMemoryLimit))
		return out.Run(gctx)
	})
	err = g.Wait()
	log.Info("stopped", "err", err)
	return err
}

// requestsView reads requests from the projection and waits on it.
type requestsView struct {
	runner *projection.Runner
	store  *requests.Store
}

func (v requestsView) Get(rid string) (approval.State, bool, error) { return v.store.Get(rid) }

func (v requestsView) WaitOffset(ctx context.Context, p int32, off int64) error {
	return v.runner.WaitOffset(ctx, p, off)
}

// Await waits until the command's outcome is in the projection.
func (v requestsView) Await(ctx context.Context, rid, commandID string) (approval.State, error) {
	st, timedOut, _, err := command.Await(ctx, v, rid, nil, nil, func(st approval.State) (bool, error) {
		known, _ := command.OutcomeOf(st, commandID)
		return known, nil
	})
	if err == nil && timedOut {
		err = ctx.Err()
	}
	return st, err
}

// Watch wakes after the next batch that applies an event about subject.
func (v requestsView) Watch(subject string) (<-chan struct{}, func()) { return v.runner.Watch(subject) }

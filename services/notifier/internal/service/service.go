// Package service wires the notifier together: configuration, the Kafka
// client and topic check, the projection (requests and deliveries), the
// webhook and email senders, the delivery engine and the consumer group
// that gives it its partitions, and the HTTP probes, metrics and replay
// endpoint, run as one errgroup until the context ends.
package service

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/command"
	"github.com/assent-dev/assent/libs/daemon"
	"github.com/assent-dev/assent/libs/logadmin"
	"github.com/assent-dev/assent/libs/projection"
	"github.com/assent-dev/assent/services/notifier/internal/delivery"
	"github.com/assent-dev/assent/services/notifier/internal/email"
	"github.com/assent-dev/assent/services/notifier/internal/queue"
	"github.com/assent-dev/assent/services/notifier/internal/webhook"
)

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
		return fmt.Errorf("%w\n(notifier --help lists every setting)", err)
	}
	return Run(ctx, cfg, stdout, nil)
}

// storeView joins the queue and the request store for the engine.
type storeView struct{ *queue.Store }

func (s storeView) Get(rid string) (approval.State, bool, error) { return s.Requests.Get(rid) }

// Run runs the notifier with cfg until ctx ends. ln, if not nil, is used
// instead of listening on cfg.HTTPAddr.
func Run(ctx context.Context, cfg Config, stdout io.Writer, ln net.Listener) error {
	log := daemon.NewLogger(stdout, cfg.LogLevel, "notifier", cfg.Instance)
	if err := os.MkdirAll(filepath.Dir(cfg.DataDir), 0o750); err != nil {
		return fmt.Errorf("notifier: data dir: %w", err)
	}
	secrets, err := webhook.LoadSecrets(cfg.SecretsFile)
	if err != nil {
		return err
	}
	cl, err := logadmin.Connect(ctx, cfg.Kafka, cfg.Topics)
	if err != nil {
		return err
	}
	defer cl.Close()

	reg := daemon.NewRegistry()
	store := queue.New()
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
	runner.RegisterMetrics(reg, func() float64 { return float64(store.Requests.Invalid.Load() + store.Invalid.Load()) })

	writer := command.Writer{Source: delivery.Source, Sender: command.Kafka{Client: cl, Topic: cfg.Topics.Commands, Signer: cfg.CommandKey}}
	var m *metrics
	eng := delivery.New(delivery.Config{
		Store: storeView{store}, Projection: runner, Writer: writer, Logger: log,
		Senders: map[approval.NotificationKind]delivery.Sender{
			approval.NotifyWebhook: webhook.New(webhook.Config{
				Secrets: secrets, Timeout: cfg.HTTPTimeout, AllowNets: cfg.AllowNets, RootCAs: cfg.RootCAs, MaxResponse: cfg.MaxResponse,
			}),
			approval.NotifyEmail: email.New(cfg.SMTP),
		},
		Horizon: cfg.Horizon, BaseBackoff: cfg.RetryBase, MaxBackoff: cfg.RetryMax,
		Concurrency: cfg.Concurrency, Rate: rate.Limit(cfg.Rate), Burst: max(1, int(cfg.Rate)),
		BreakerFailures: cfg.BreakerFailures, Since: cfg.Since,
		Observer: delivery.Observer{}, // set below, once the metrics know the engine
	})
	m = newMetrics(reg, eng, runner.Ready)
	eng.SetObserver(m.observer())
	consumer := &delivery.Consumer{Kafka: cfg.Kafka, Topic: cfg.Topics.Events, Group: cfg.Group, Engine: eng, Wait: runner, Logger: log}

	mux := http.NewServeMux()
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
	rp := &replays{token: cfg.AdminToken, store: store, writer: writer, log: log, m: m}
	mux.Handle("POST /v1/replays", http.MaxBytesHandler(rp, 16<<10))

	if ln == nil {
		ln, err = net.Listen("tcp", cfg.HTTPAddr)
		if err != nil {
			return fmt.Errorf("notifier: listen on %s: %w (set ASSENT_HTTP_ADDR)", cfg.HTTPAddr, err)
		}
	}
	log.Info("starting", "addr", ln.Addr().String(), "group", cfg.Group, "commands", cfg.Topics.Commands, "events", cfg.Topics.Events,
		"data_dir", cfg.DataDir, "smtp", cfg.SMTP.Host, "secrets_file", cfg.SecretsFile, "horizon", cfg.Horizon.String(),
		"allow_nets", fmt.Sprint(cfg.AllowNets), "replays", cfg.AdminToken != "")
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return daemon.ServeListener(gctx, ln, mux, shutdownGrace) })
	g.Go(func() error { return runner.Run(gctx) })
	g.Go(func() error { return eng.Run(gctx) })
	g.Go(func() error {
		// Deliveries are read from the projection: start once it caught up.
		if runner.WaitReady(gctx) != nil {
			return nil
		}
		// Caught up: from now on Go collects near a bound, not at twice
		// the live heap (docs/benchmarks.md, "Memory").
		log.Info("memory limit", "bytes", daemon.LimitMemory(os.Getenv, daemon.DefaultMemoryLimit))
		return consumer.Run(gctx)
	})
	err = g.Wait()
	log.Info("stopped", "err", err)
	return err
}

// replays is POST /v1/replays: an operator asks for a dead letter to be
// delivered again. The request is a record-notification command with the
// outcome replay, so the log says who asked (the reason) and when; every
// replica's projection then queues the delivery again, one generation
// later, and its partition's owner delivers it.
type replays struct {
	token  string
	store  *queue.Store
	writer command.Writer
	log    *slog.Logger
	m      *metrics
}

// ReplayRequest is the body of POST /v1/replays.
type ReplayRequest struct {
	Request string `json:"request"` // the request id
	Event   string `json:"event"`   // the event id (the webhook-id)
	Target  string `json:"target"`  // the URL or address, as the dead letter's channel names it
	Reason  string `json:"reason"`  // who asks, and why: recorded in the log
}

func (rp *replays) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	problem := func(status int, result, msg string) {
		rp.m.replays.WithLabelValues(result).Inc()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
	}
	if rp.token == "" {
		problem(http.StatusNotFound, "refused", "replays are off: set ASSENT_NOTIFIER_ADMIN_TOKEN_FILE")
		return
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(rp.token)) != 1 {
		problem(http.StatusUnauthorized, "unauthorized", "a bearer token is required")
		return
	}
	var req ReplayRequest
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || req.Request == "" || req.Event == "" || req.Target == "" {
		problem(http.StatusBadRequest, "refused", "want a JSON object with request, event, target and reason")
		return
	}
	st, found, err := rp.store.Requests.Get(req.Request)
	if err != nil {
		problem(http.StatusServiceUnavailable, "failed", "the projection could not be read")
		return
	}
	var dead *approval.NotificationRecorded
	for _, n := range st.DeadLetters() {
		if n.TS == req.Event && n.Channel == queue.ChannelOf(req.Target) {
			dead = &n
		}
	}
	if !found || dead == nil {
		problem(http.StatusNotFound, "refused", "no such dead letter: the request, event and target must name a delivery whose latest outcome is dead_letter")
		return
	}
	reason := strings.TrimSpace(req.Reason)
	if reason == "" {
		reason = "replay asked through the notifier's admin endpoint"
	}
	body := approval.RecordNotification{Kind: dead.Kind, Channel: dead.Channel, TS: dead.TS, Recipient: dead.Recipient,
		Outcome: approval.ReplayAsked, Reason: delivery.Truncate(reason, approval.MaxReasonLen), Generation: dead.Generation}
	cmd := rp.writer.New(delivery.ReplayID(req.Request, dead.Kind, dead.Channel, dead.TS, dead.Generation), req.Request, delivery.Actor, body)
	if err := command.Preflight(cmd); err != nil {
		problem(http.StatusUnprocessableEntity, "refused", err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	if err := rp.writer.Send(ctx, cmd); err != nil {
		problem(http.StatusServiceUnavailable, "failed", "the replay could not be made durable; try again")
		return
	}
	rp.log.Info("replay asked", "request", req.Request, "event", req.Event, "kind", dead.Kind, "generation", dead.Generation+1)
	rp.m.replays.WithLabelValues("accepted").Inc()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_ = json.NewEncoder(w).Encode(map[string]any{"command_id": cmd.ID, "generation": dead.Generation + 1})
}

package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	index "github.com/assent-dev/assent/libs/auditindex"
	"github.com/assent-dev/assent/libs/daemon"
	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/projection"
	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/services/auditor/internal/ports"
)

// ServeConfig configures the audit daemon.
type ServeConfig struct {
	Kafka    eventlog.Config
	Topics   eventlog.TopicSpec
	HTTPAddr string
	DataDir  string
	Instance string
	LogLevel string
	Keys     *wire.KeyRing
}

// LoadServeConfig reads the service's configuration from the environment.
func LoadServeConfig(getenv func(string) string, keysFlag string) (ServeConfig, error) {
	env := daemon.NewEnv(getenv)
	kafka, kerr := eventlog.ConfigFromEnv(getenv)
	topics, terr := eventlog.TopicSpecFromEnv(getenv)
	cfg := ServeConfig{Kafka: kafka, Topics: topics,
		HTTPAddr: env.String("ASSENT_HTTP_ADDR", "127.0.0.1:8480"),
		LogLevel: env.String("ASSENT_LOG_LEVEL", "info"),
	}
	cfg.Instance = env.Instance("auditor", cfg.HTTPAddr)
	cfg.DataDir = env.String("ASSENT_DATA_DIR", ".run/"+cfg.Instance)
	cfg.Kafka.ClientID = cfg.Instance
	ring, rerr := wire.LoadKeyRing(keysFile(getenv, keysFlag))
	cfg.Keys = ring
	env.Add(kerr, terr, rerr)
	return cfg, env.Err()
}

func runServe(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := newFlags("serve", "serve [--keys FILE]", stdout)
	keys := fs.String("keys", "", "published public keys file (default $ASSENT_AUDIT_KEYS_FILE or infra/keys/decider-keys.json)")
	if help, err := parse(fs, args); help || err != nil {
		return err
	}
	cfg, err := LoadServeConfig(getenv, *keys)
	if err != nil {
		return fmt.Errorf("%w\n(auditor --help lists every setting)", err)
	}
	return Serve(ctx, cfg, stdout, nil)
}

// Serve runs the audit service until ctx ends. If ready is not nil, it is
// called with the index once the store is open (tests query it directly).
func Serve(ctx context.Context, cfg ServeConfig, stdout io.Writer, ready func(*index.Index, *projection.Runner)) error {
	log := daemon.NewLogger(stdout, cfg.LogLevel, "auditor", cfg.Instance)
	if err := os.MkdirAll(filepath.Dir(cfg.DataDir), 0o750); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	idx := &index.Index{}
	runner, err := projection.Open(projection.Config{
		Dir: cfg.DataDir, Topic: cfg.Topics.Events, Partitions: cfg.Topics.Partitions,
		Kafka: cfg.Kafka, Handler: idx, Logger: log, Keys: cfg.Keys,
	})
	if err != nil {
		return err
	}
	defer runner.Close() //nolint:errcheck // after Run returned
	idx.Attach(runner.DB())
	reg := daemon.NewRegistry()
	// The breaks count as consistency violations too, the name every
	// reader uses, so one "should read zero" panel covers them all.
	breaks := func() float64 { return float64(idx.Breaks.Load()) }
	runner.RegisterMetrics(reg, breaks)
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "assent_auditor_verify_failures_total",
		Help: "Chain, checkpoint, sequence or terminal breaks the audit projection found since it started (should read zero).",
	}, breaks))
	h := ports.New(ports.Config{Index: idx, Registry: reg, Ready: func() error {
		if !runner.Ready() {
			return errors.New("projection catching up")
		}
		return nil
	}})
	if ready != nil {
		ready(idx, runner)
	}
	log.Info("serving", "addr", cfg.HTTPAddr, "topic", cfg.Topics.Events, "keys", cfg.Keys.Len())
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return runner.Run(gctx) })
	g.Go(func() error { return daemon.Serve(gctx, cfg.HTTPAddr, h, 5*time.Second) })
	err = g.Wait()
	log.Info("stopped", "err", err)
	return err
}

// Package service wires the Kafka health exporter together: configuration
// from the environment, a kadm client, the health reader and the HTTP
// probes, run as one errgroup until the context ends.
package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/assent-dev/assent/libs/daemon"
	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/services/kafka-health/internal/health"
)

// Usage is printed by --help and after a configuration error.
const Usage = `usage: kafka-health [--help]

The Kafka health exporter reads the cluster Assent runs on every period and
serves what it found as Prometheus metrics: brokers, partitions that are
under-replicated, under their min.insync.replicas or offline, the last
stable offset of each topic, and the lag of consumer groups. A scrape only
reads the last snapshot. Run one replica: the metrics describe the cluster,
not the replica.

Environment:
  ASSENT_KAFKA_BROKERS   comma-separated brokers (required)
  ASSENT_KAFKA_USER      Kafka user (SASL/SCRAM-SHA-512), with
  ASSENT_KAFKA_PASSWORD_FILE
                         the file holding its password
  ASSENT_HTTP_ADDR       /metrics, /healthz, /readyz (default 127.0.0.1:9308)
  ASSENT_HEALTH_TOPICS   comma-separated topics to report on (default every
                         topic, the internal ones included)
  ASSENT_HEALTH_GROUPS   comma-separated consumer groups whose lag to report
                         (default every group)
  ASSENT_HEALTH_PERIOD   how often to read the cluster (default 10s, at least 100ms)
  ASSENT_INSTANCE_ID     client id of this replica (default kafka-health-<host>-<port>)
  ASSENT_LOG_LEVEL       debug, info, warn, error (default info)
`

// Config is the exporter's configuration.
type Config struct {
	Kafka    eventlog.Config
	HTTPAddr string
	Topics   []string
	Groups   []string
	Period   time.Duration
	LogLevel string
	Instance string
}

// Load reads the configuration and reports every problem at once.
func Load(getenv func(string) string) (Config, error) {
	env := daemon.NewEnv(getenv)
	kafka, kerr := eventlog.ConfigFromEnv(getenv)
	env.Add(kerr)
	cfg := Config{
		Kafka:    kafka,
		HTTPAddr: env.String("ASSENT_HTTP_ADDR", "127.0.0.1:9308"),
		Topics:   splitList(env.String("ASSENT_HEALTH_TOPICS", "")),
		Groups:   splitList(env.String("ASSENT_HEALTH_GROUPS", "")),
		Period:   env.Duration("ASSENT_HEALTH_PERIOD", 10*time.Second),
		LogLevel: env.String("ASSENT_LOG_LEVEL", "info"),
	}
	if cfg.Period < 100*time.Millisecond {
		env.Problem("ASSENT_HEALTH_PERIOD=%s is too short: use 100ms or more (a read costs five requests to the cluster)", cfg.Period)
	}
	cfg.Instance = env.Instance("kafka-health", cfg.HTTPAddr)
	cfg.Kafka.ClientID = cfg.Instance
	return cfg, env.Err()
}

// Main parses the arguments and runs the exporter until ctx ends.
func Main(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	for _, a := range args {
		switch a {
		case "-h", "--help", "help":
			_, err := io.WriteString(stdout, Usage)
			return err
		default:
			return fmt.Errorf("unknown argument %q\n\n%s", a, Usage)
		}
	}
	cfg, err := Load(getenv)
	if err != nil {
		return fmt.Errorf("%w\n(kafka-health --help lists every setting)", err)
	}
	return Run(ctx, cfg, stdout)
}

// Run serves the cluster's health on /metrics, with /healthz and /readyz,
// until ctx ends.
func Run(ctx context.Context, cfg Config, stdout io.Writer) error {
	log := daemon.NewLogger(stdout, cfg.LogLevel, "kafka-health", cfg.Instance)
	cl, err := eventlog.NewClient(cfg.Kafka)
	if err != nil {
		return err
	}
	defer cl.Close()
	exp := health.New(cl, health.Config{Topics: cfg.Topics, Groups: cfg.Groups, Period: cfg.Period})
	reg := daemon.NewRegistry()
	if err := exp.Register(reg); err != nil {
		return fmt.Errorf("kafka-health: %w", err)
	}
	mux := http.NewServeMux()
	daemon.Probes{Registry: reg, Ready: func() error {
		snap, ok := exp.Snapshot()
		switch {
		case !ok:
			return errors.New("no successful read of the cluster yet")
		case time.Since(snap.Time) > 3*cfg.Period+5*time.Second:
			return fmt.Errorf("last successful read of the cluster was %s ago", time.Since(snap.Time).Round(time.Second))
		}
		return nil
	}}.Register(mux)
	log.Info("serving", "addr", cfg.HTTPAddr, "period", cfg.Period.String())
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return daemon.Serve(gctx, cfg.HTTPAddr, mux, 5*time.Second) })
	g.Go(func() error { return exp.Run(gctx) })
	return g.Wait()
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/command"
	"github.com/assent-dev/assent/libs/daemon"
	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/logadmin"
	"github.com/assent-dev/assent/libs/policy"
	"github.com/assent-dev/assent/libs/projection"
	"github.com/assent-dev/assent/libs/projection/requests"
	"github.com/assent-dev/assent/libs/tracing"
	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/services/decider/internal/core"
	"github.com/assent-dev/assent/services/decider/internal/session"
)

// Main parses the arguments and runs the decider until ctx ends.
func Main(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	for _, a := range args {
		switch a {
		case "-h", "--help", "help":
			_, err := io.WriteString(stdout, usage)
			return err
		default:
			return fmt.Errorf("unknown argument %q\n\n%s", a, usage)
		}
	}
	cfg, err := LoadConfig(getenv)
	if err != nil {
		return fmt.Errorf("%w\n(decider --help lists every setting)", err)
	}
	return Run(ctx, cfg, stdout)
}

// Run runs the decider with cfg until ctx ends.
func Run(ctx context.Context, cfg Config, stdout io.Writer) error {
	log := daemon.NewLogger(stdout, cfg.LogLevel, "decider", cfg.Instance)
	tp, err := tracing.Setup(ctx, cfg.Tracing, "assent-decider", cfg.Instance, log)
	if err != nil {
		return err
	}
	defer func() {
		if err := tp.Shutdown(ctx); err != nil {
			log.Warn("tracing: spans not flushed at shutdown", "err", err)
		}
	}()
	pols, err := policy.Load(cfg.PolicyFile)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(cfg.DataDir), 0o750); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}

	// franz-go's own log, when ASSENT_KAFKA_LOG_LEVEL asks for it, goes
	// where the decider's does.
	cfg.Kafka.Logger = log
	adminClient, err := logadmin.Connect(ctx, cfg.Kafka, cfg.Topics)
	if err != nil {
		return err
	}
	defer adminClient.Close()
	adm := kadm.NewClient(adminClient)

	log.Info("sealing every transaction", "key_id", cfg.Signer.KeyID(), "published_keys", cfg.Keys.Len())
	log.Info("deciding only signed commands", "service_keys", cfg.ServiceKeys.Len())
	reg := daemon.NewRegistry()
	tracing.RegisterMetrics(reg)
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
	m := newMetrics(reg)
	var commandLag atomic.Int64
	commandLag.Store(-1)
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "assent_decider_command_lag_records",
			Help: "Commands not yet decided: the decider group's lag on the commands topic (-1 before the first reading).",
		}, func() float64 { return float64(commandLag.Load()) }),
	)

	c := core.New(core.Config{
		Topic: cfg.Topics.Events, Partitions: cfg.Topics.Partitions, Source: Source,
		Policies: func() approval.Policies { return pols },
		Signer:   cfg.Signer,
		// A command is decided only if a published service key (or, for
		// the timers' expiries, a decider key) that may speak for its
		// actor signed it (docs/architecture.md, "Authenticated commands").
		CommandKeys: wire.CommandKeys{Services: cfg.ServiceKeys, Deciders: cfg.Keys},
		Observe: func(typ string, d approval.Decision, commandTime time.Time) {
			m.observeDecision(typ, d)
			if !commandTime.IsZero() && len(d.Events) > 0 {
				m.commandToEvent.Observe(time.Since(commandTime).Seconds())
			}
		},
		Skipped: func(reason string, in core.In) {
			m.skipped.WithLabelValues(reason).Inc()
			switch reason {
			case "misrouted":
				log.Error("skipping a command in the wrong partition; produce with Kafka's default (murmur2) partitioner",
					"partition", in.Partition, "offset", in.Offset, "request", string(in.Key))
			default:
				log.Error("skipping a command without a key: it names no request", "partition", in.Partition, "offset", in.Offset)
			}
		},
		Quarantined: func(in core.In, err error) {
			m.quarantined.Inc()
			log.Error("a command could not be decided and is left undecided: replay it once the cause is fixed; see docs/runbook.md#assentdecidercommandquarantined",
				"partition", in.Partition, "offset", in.Offset, "request", string(in.Key), "command_id", in.Envelope.CommandID, "err", err)
		},
		Unauthenticated: func(in core.In, why string) {
			m.unauthenticated.Inc()
			log.Warn("refused a command that is not authenticated: a producer without a published command key, or a forgery; see docs/runbook.md#assentunauthenticatedcommands",
				"partition", in.Partition, "offset", in.Offset, "request", string(in.Key), "source", in.Envelope.Source,
				"actor", in.Envelope.Actor, "key_id", in.Envelope.AuthKeyID, "why", why)
		},
		Sealed: m.seals.Inc,
	}, store, runner)
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "assent_decider_stopped_partitions",
		Help: "Commands partitions this replica owns and stopped deciding because records are missing, of the commands or of the events topic (must read 0).",
	}, func() float64 { return float64(len(c.Stopped())) }))
	opts, err := cfg.Kafka.Opts(
		kgo.TransactionalID(transactionalID(cfg)),
		kgo.TransactionTimeout(cfg.TxnTimeout),
		// Back-to-back transactions meet CONCURRENT_TRANSACTIONS until the
		// previous commit's markers are written; franz-go waits 20ms before
		// retrying, which a user waiting on a vote pays in full.
		kgo.ConcurrentTransactionsBackoff(cfg.TxnRetryBackoff),
		// With transaction.version 2 (Kafka 4) a partition joins the
		// transaction through the Produce itself, so the first produce
		// after a commit can meet CONCURRENT_TRANSACTIONS while the
		// broker still writes the commit's markers. franz-go retries that
		// batch only after a metadata refresh, and spaces refreshes
		// MetadataMinAge apart: 5s by default, which stalled every
		// decision under continuous load (issue 13.10).
		kgo.MetadataMinAge(metadataMinAge),
		kgo.RetryBackoffFn(eventlog.RetryBackoff(retryBackoffMax)),
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.Topics.Commands),
		kgo.SessionTimeout(cfg.SessionTTL),
		kgo.HeartbeatInterval(cfg.SessionTTL/6),
		kgo.FetchMaxWait(time.Second),
	)
	if err != nil {
		return err
	}
	loop := session.New(session.Config{
		Group: cfg.Group, InstanceID: cfg.Instance, TransactionalID: transactionalID(cfg), CommandsTopic: cfg.Topics.Commands, EventsTopic: cfg.Topics.Events,
		TxnTimeout: cfg.TxnTimeout, SessionTTL: cfg.SessionTTL, ExpiryPeriod: cfg.ExpiryPeriod, Logger: log,
		// A decider's transactional id is the prefix and its instance id,
		// which is also its client id in the group (LoadConfig): a
		// decider that left the group is fenced by the one that takes
		// its partitions over (docs/architecture.md, "Failover").
		PeerClientID: func(tid string) (string, bool) { return strings.CutPrefix(tid, logadmin.DeciderTxnPrefix) },
		// The timers ask for expiries with the plain (idempotent, acks=all)
		// client: a command is only a request, decided by the owner. The
		// seal key signs them, as system:decider.
		Timers: command.Kafka{Client: adminClient, Topic: cfg.Topics.Commands, Signer: cfg.Signer},
		Tracer: tp.Tracer(),
		Metrics: session.Metrics{
			Transaction: func(result string, took time.Duration) {
				m.txns.WithLabelValues(result).Inc()
				m.txnSeconds.Observe(took.Seconds())
			},
			CatchUp: func(took time.Duration) { m.catchUp.Observe(took.Seconds()) },
			Restart: m.sessionRestarts.Inc,
		},
	}, c, runner, adm, opts)

	mux := http.NewServeMux()
	daemon.Probes{Registry: reg, Ready: func() error { return ready(runner, c) }}.Register(mux)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return daemon.Serve(gctx, cfg.HTTPAddr, mux, 5*time.Second) })
	g.Go(func() error { return runner.Run(gctx) })
	g.Go(func() error { watchGroupLag(gctx, adm, cfg.Group, cfg.Topics.Commands, &commandLag); return nil })
	// Run decides only once the projection has what was committed before
	// it started (but for the partitions it stopped reading); partitions
	// assigned later are caught up one by one.
	g.Go(func() error { return loop.Run(gctx) })
	err = g.Wait()
	log.Info("stopped", "err", err)
	return err
}

// ready is the decider's readiness: its projection has caught up, and no
// partition is stopped for missing records, in the projection (its head is
// not the log's) or in the decider (commands were lost). A stopped
// partition is decided by no one until an operator acts (docs/runbook.md),
// while the replica goes on deciding its other partitions.
func ready(runner *projection.Runner, c *core.Core) error {
	var problems []string
	if st := runner.Stopped(); len(st) > 0 {
		problems = append(problems, fmt.Sprintf("the projection stopped reading events partitions %v: records are missing (docs/runbook.md#assentprojectionstopped)", slices.Sorted(maps.Keys(st))))
	} else if !runner.Ready() {
		problems = append(problems, "projection catching up")
	}
	if st := c.Stopped(); len(st) > 0 {
		problems = append(problems, fmt.Sprintf("deciding nothing of commands partitions %v: records are missing (docs/runbook.md#assentdeciderpartitionstopped)", slices.Sorted(maps.Keys(st))))
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// watchGroupLag reads the decider group's lag on the commands topic every
// few seconds. The commands topic is not transactional, so its high
// watermark is its last stable offset.
func watchGroupLag(ctx context.Context, adm *kadm.Client, group, topic string, out *atomic.Int64) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		lags, err := adm.Lag(lctx, group)
		cancel()
		if err == nil {
			var total int64
			lags.Each(func(l kadm.DescribedGroupLag) {
				for _, pl := range l.Lag[topic] {
					total += max(0, pl.Lag)
				}
			})
			out.Store(total)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// metadataMinAge is the least time between two metadata refreshes of the
// decider's client, and so the wait before a produce that met
// CONCURRENT_TRANSACTIONS is retried (Kafka's own clients back off 100ms).
// It also bounds the refreshes during a broker outage to ten a second.
const metadataMinAge = 100 * time.Millisecond

// retryBackoffMax caps the decider's backoff between retries at a
// quarter of eventlog.DefaultRetryBackoffMax. franz-go backs a group
// member off before each join after an error, and counts its errors
// across group sessions until one ends without an error, which a broker
// fault never gives: after a few faults every rejoin waited the full 1 s,
// and a broker lost cost each decider one to three such waits (the group's
// coordinator unreachable, then moved, then refusing an old member id:
// docs/benchmarks.md, "Failover"). Two deciders retrying four times a
// second load a coordinator that is moving no more than one client does
// at Kafka's 100ms first backoff.
const retryBackoffMax = 250 * time.Millisecond

// transactionalID names this replica's transactional producer: the
// prefix the deciders' ACLs grant, then its instance id (its client id).
func transactionalID(cfg Config) string { return logadmin.DeciderTxnPrefix + cfg.Instance }

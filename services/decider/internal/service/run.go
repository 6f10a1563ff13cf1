package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/daemon"
	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/policy"
	"github.com/assent-dev/assent/libs/projection"
	"github.com/assent-dev/assent/libs/projection/requests"
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
	pols, err := policy.Load(cfg.PolicyFile)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(cfg.DataDir), 0o755); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}

	adminClient, err := eventlog.Connect(ctx, cfg.Kafka, cfg.Topics)
	if err != nil {
		return err
	}
	defer adminClient.Close()
	adm := kadm.NewClient(adminClient)

	if cfg.Signer == nil {
		log.Warn("checkpoints disabled: set ASSENT_CHECKPOINT_KEY_FILE and ASSENT_CHECKPOINT_KEY_ID to sign the log (see infra/keys/README.md)")
	} else {
		log.Info("signing checkpoints", "key_id", cfg.Signer.KeyID(), "interval", cfg.CheckpointInterval.String())
	}
	reg := daemon.NewRegistry()
	store := &requests.Store{}
	runner, err := projection.Open(projection.Config{
		Dir: cfg.DataDir, Topic: cfg.Topics.Events, Partitions: cfg.Topics.Partitions,
		Kafka: cfg.Kafka, Handler: store, Logger: log,
	})
	if err != nil {
		return err
	}
	defer runner.Close()
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

	d := &Decider{
		cfg: cfg, log: log, runner: runner, store: store, metrics: m, now: time.Now,
		policies: func() approval.Policies { return pols },
		owned:    map[int32]*partition{}, overlay: map[string]overlayEntry{},
	}
	opts, err := cfg.Kafka.Opts(
		kgo.TransactionalID("assent-"+cfg.Instance),
		kgo.TransactionTimeout(cfg.TxnTimeout),
		// Back-to-back transactions meet CONCURRENT_TRANSACTIONS until the
		// previous commit's markers are written; franz-go waits 20ms before
		// retrying, which a user waiting on a vote pays in full.
		kgo.ConcurrentTransactionsBackoff(cfg.TxnRetryBackoff),
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.Topics.Commands),
		kgo.RequireStableFetchOffsets(),
		kgo.SessionTimeout(cfg.SessionTTL),
		kgo.HeartbeatInterval(cfg.SessionTTL/6),
		kgo.FetchMaxWait(time.Second),
		kgo.OnPartitionsAssigned(d.onAssigned),
		kgo.OnPartitionsRevoked(d.onRevoked),
		kgo.OnPartitionsLost(d.onRevoked),
	)
	if err != nil {
		return err
	}

	mux := http.NewServeMux()
	daemon.Probes{Registry: reg, Ready: func() error {
		if !runner.Ready() {
			return errors.New("projection catching up")
		}
		return nil
	}}.Register(mux)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return daemon.Serve(gctx, cfg.HTTPAddr, mux, 5*time.Second) })
	g.Go(func() error { return runner.Run(gctx) })
	g.Go(func() error { watchGroupLag(gctx, adm, cfg.Group, cfg.Topics.Commands, &commandLag); return nil })
	g.Go(func() error {
		// Decide only once the projection has what was committed before we
		// started; partitions assigned later are caught up one by one.
		if runner.WaitReady(gctx) != nil {
			return nil
		}
		return d.sessions(gctx, opts, adm)
	})
	err = g.Wait()
	log.Info("stopped", "err", err)
	return err
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

// maxFailedSessions is how many sessions in a row may fail without
// committing a transaction before the decider gives up and exits (with a
// clear error, for a supervisor and a human to see).
const maxFailedSessions = 5

// sessions runs transactional sessions until ctx ends. A session whose
// transaction cannot end (franz-go: "no returned error is retryable": a
// broker lost mid-commit, a timeout while paused past the transaction
// timeout) is closed and replaced by a new one with the same
// transactional id, as a restart would do but without leaving the group
// empty for a supervisor's delay. The new session's producer init fences
// whatever the old one left open, and every effect of the failed batch is
// dropped: ownership and the overlay are rebuilt from the projection on the
// next assignment.
func (d *Decider) sessions(ctx context.Context, opts []kgo.Opt, adm *kadm.Client) error {
	backoff, failed := 500*time.Millisecond, 0
	for {
		before := d.commits.Load()
		err := d.session(ctx, opts, adm)
		if ctx.Err() != nil {
			return nil
		}
		var fatal fatalError
		if errors.As(err, &fatal) {
			return err
		}
		if d.commits.Load() != before {
			failed, backoff = 0, 500*time.Millisecond
		}
		failed++
		d.forget()
		d.metrics.sessionRestarts.Inc()
		if failed >= maxFailedSessions {
			return fmt.Errorf("decider: %d transactional sessions in a row failed before committing anything (is another process using transactional id %q?): %w",
				failed, "assent-"+d.cfg.Instance, err)
		}
		d.log.Warn("the transactional session failed; starting a new one", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// fatalError is a session error that a new session cannot fix.
type fatalError struct{ error }

func (e fatalError) Unwrap() error { return e.error }

// session runs one transactional session until it fails or ctx ends.
func (d *Decider) session(ctx context.Context, opts []kgo.Opt, adm *kadm.Client) error {
	sess, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		return fatalError{fmt.Errorf("transact session: %w", err)}
	}
	defer sess.Close()
	if err := eventlog.CheckClient(sess.Client()); err != nil {
		return fatalError{err}
	}
	d.log.Info("deciding", "group", d.cfg.Group, "transactional_id", "assent-"+d.cfg.Instance)
	return d.loop(ctx, sess, adm)
}

// forget drops every partition and every state staged but not yet
// projected, after a session failed in an unknown state.
func (d *Decider) forget() {
	d.mu.Lock()
	defer d.mu.Unlock()
	clear(d.owned)
	clear(d.overlay)
}

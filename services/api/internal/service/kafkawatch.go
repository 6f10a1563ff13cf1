package service

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// kafkaWatch pings Kafka in the background, so that the api knows without
// a round trip whether it can send commands: while it cannot, writes are
// refused at once (503 writes_unavailable) instead of after a produce's
// delivery timeout, and /readyz?scope=write is 503, while reads go on from
// the projection (docs/architecture.md, "Failure model").
type kafkaWatch struct {
	ping     func(context.Context) error
	interval time.Duration // between pings
	timeout  time.Duration // of one ping
	// failures is how many pings in a row must fail before Kafka counts
	// as away, so that one slow answer does not refuse writes.
	failures int
	log      *slog.Logger

	nudge chan struct{}

	mu     sync.Mutex
	failed int   // pings failed in a row
	err    error // why Kafka is away; nil while it answers
	since  time.Time
}

func newKafkaWatch(ping func(context.Context) error, log *slog.Logger) *kafkaWatch {
	return &kafkaWatch{ping: ping, interval: time.Second, timeout: 2 * time.Second, failures: 2, log: log,
		nudge: make(chan struct{}, 1)}
}

// Err is nil while Kafka answers the replica's pings, or why it does not.
func (w *kafkaWatch) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Nudge asks for a ping now: a send just failed.
func (w *kafkaWatch) Nudge() {
	select {
	case w.nudge <- struct{}{}:
	default:
	}
}

// Run pings until ctx ends. franz-go's Ping does not give up on a request
// sent to a broker that never answers (a network partition) before the
// connection's read timeout, so Run does not wait for it: a ping without
// an answer within the timeout counts as failed, and no other ping starts
// while it is in flight (one goroutine at most).
func (w *kafkaWatch) Run(ctx context.Context) error {
	t := time.NewTicker(w.interval)
	defer t.Stop()
	var (
		inflight chan error // the ping in flight, if any
		sent     time.Time
	)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-w.nudge:
		}
		if inflight == nil {
			inflight, sent = make(chan error, 1), time.Now()
			go func(done chan<- error) { done <- w.ping(ctx) }(inflight)
		}
		wait := time.NewTimer(w.timeout - time.Since(sent))
		select {
		case <-ctx.Done():
			wait.Stop()
			return nil
		case err := <-inflight:
			inflight = nil
			w.observe(err)
		case <-wait.C:
			w.observe(fmt.Errorf("a ping has had no answer for %s", time.Since(sent).Round(time.Millisecond)))
		}
		wait.Stop()
	}
}

// observe records one ping's result.
func (w *kafkaWatch) observe(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := time.Now()
	if err == nil {
		if w.err != nil {
			w.log.Info("kafka answers again; writes resume", "away_for", now.Sub(w.since).Round(time.Millisecond).String())
		}
		w.failed, w.err = 0, nil
		return
	}
	w.failed++
	if w.failed < w.failures {
		return
	}
	if w.err == nil {
		w.since = now
		w.log.Warn("kafka does not answer; writes are refused with 503 writes_unavailable until it does, reads go on",
			"pings_failed", w.failed, "err", err)
	}
	w.err = fmt.Errorf("kafka has not answered its pings since %s: %w", w.since.UTC().Format(time.RFC3339), err)
}

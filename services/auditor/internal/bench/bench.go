// Package bench measures the auditor on a generated log: it fills a
// scratch events topic with realistic hash-chained, checkpointed events,
// then, in the same run, times a bare franz-go read of the topic next to
// verify, and the audit projection answering an actor query.
package bench

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/projection"
	"github.com/assent-dev/assent/services/auditor/internal/gen"
	"github.com/assent-dev/assent/services/auditor/internal/index"
	"github.com/assent-dev/assent/services/auditor/internal/verify"
)

// Options shape a run.
type Options struct {
	Kafka           eventlog.Config
	Events          int64 // at least this many records
	Partitions      int32
	CheckpointEvery int
	Keep            bool // keep the scratch topic
	SkipIndex       bool
	DataDir         string // for the projection; a temporary directory if empty
}

// Run runs the benchmark, printing figures to out and progress to errw.
func Run(ctx context.Context, o Options, out, errw io.Writer) error {
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	topic := "assent.audit-bench." + hex.EncodeToString(rnd[:])
	admCl, err := eventlog.NewClient(o.Kafka)
	if err != nil {
		return err
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	retention := "-1"
	minISR := "2"
	if _, err := adm.CreateTopic(ctx, o.Partitions, 3, map[string]*string{"retention.ms": &retention, "min.insync.replicas": &minISR}, topic); err != nil {
		return fmt.Errorf("bench: create %s: %w", topic, err)
	}
	if !o.Keep {
		defer func() {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			_, _ = adm.DeleteTopics(dctx, topic)
		}()
	}
	if err := eventlog.PollReady(ctx, adm, 0, []string{topic}, nil); err != nil {
		return err
	}

	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		return err
	}
	signer, err := eventlog.NewSigner("bench", key)
	if err != nil {
		return err
	}
	// 3.5 events a request on average (gen's six scenarios).
	requests := int(o.Events*6/21) + 1000
	gopts := gen.Options{Topic: topic, Partitions: o.Partitions, Requests: requests, Signer: signer,
		CheckpointEvery: o.CheckpointEvery, Start: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Step: 10 * time.Millisecond}
	fmt.Fprintf(out, "topic %s: %d partitions, %d requests, a checkpoint every %d records\n", topic, o.Partitions, requests, o.CheckpointEvery)
	began := time.Now()
	n, err := gen.Stream(ctx, o.Kafka, gopts, func(n int64) {
		fmt.Fprintf(errw, "bench: written %d records (%.0f/s)\n", n, float64(n)/time.Since(began).Seconds())
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "write: %d records in %s (%.0f/s)\n", n, time.Since(began).Round(time.Millisecond), float64(n)/time.Since(began).Seconds())

	bare1, err := bareRead(ctx, o.Kafka, topic, n)
	if err != nil {
		return err
	}
	ring := eventlog.NewKeyRing(map[string]ed25519.PublicKey{"bench": signer.Public()})
	res, err := verify.Run(ctx, verify.Config{Kafka: o.Kafka, Topic: topic, Keys: ring})
	if err != nil {
		return err
	}
	if !res.OK() {
		return fmt.Errorf("bench: the generated log does not verify: %v", res.Breaks[0])
	}
	if res.Records != n {
		return fmt.Errorf("bench: verify saw %d records, %d were written", res.Records, n)
	}
	bare2, err := bareRead(ctx, o.Kafka, topic, n)
	if err != nil {
		return err
	}
	bare := min(bare1, bare2)
	bareRate := float64(n) / bare.Seconds()
	verifyRate := float64(n) / res.Took.Seconds()
	fmt.Fprintf(out, "bare franz-go read: %d records in %s (%.0f/s; runs %s and %s)\n", n, bare.Round(time.Millisecond), bareRate,
		bare1.Round(time.Millisecond), bare2.Round(time.Millisecond))
	fmt.Fprintf(out, "verify:             %d records, %d checkpoints, %d requests in %s (%.0f/s)\n", res.Records, res.Checkpoints, res.Requests,
		res.Took.Round(time.Millisecond), verifyRate)
	fmt.Fprintf(out, "verify / bare read: %.2fx the time (%.0f%% of the bare read's throughput)\n", res.Took.Seconds()/bare.Seconds(), 100*verifyRate/bareRate)
	if o.SkipIndex {
		return nil
	}
	return actorQuery(ctx, o, topic, n, out, errw)
}

// bareRead reads every partition to its end with franz-go, read_committed,
// counting records: the floor verify is measured against.
func bareRead(ctx context.Context, cfg eventlog.Config, topic string, want int64) (time.Duration, error) {
	began := time.Now()
	cl, err := eventlog.NewClient(cfg, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxBytes(64<<20), kgo.FetchMaxPartitionBytes(8<<20))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	var n int64
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	for n < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return 0, fmt.Errorf("bench: bare read: %w after %d of %d records", ctx.Err(), n, want)
		}
		if err := fs.Err0(); err != nil && !errors.Is(err, context.Canceled) {
			return 0, fmt.Errorf("bench: bare read: %w", err)
		}
		n += int64(fs.NumRecords())
	}
	return time.Since(began), nil
}

// actorQuery builds the audit projection over the topic and times the
// answer to "every event by this actor", paging through all of it.
func actorQuery(ctx context.Context, o Options, topic string, n int64, out, errw io.Writer) error {
	dir := o.DataDir
	if dir == "" {
		d, err := os.MkdirTemp("", "audit-bench-*")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d) //nolint:errcheck // scratch
		dir = d
	}
	idx := &index.Index{Topic: topic}
	runner, err := projection.Open(projection.Config{Dir: dir, Topic: topic, Partitions: o.Partitions, Kafka: o.Kafka, Handler: idx,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return err
	}
	defer runner.Close() //nolint:errcheck // after Run
	idx.Attach(runner.DB())
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	began := time.Now()
	go func() { done <- runner.Run(rctx) }()
	for !runner.Ready() {
		select {
		case err := <-done:
			cancel()
			return fmt.Errorf("bench: projection stopped: %w", err)
		case <-time.After(2 * time.Second):
			fmt.Fprintf(errw, "bench: projecting, lag %d records\n", runner.Lag())
		}
	}
	build := time.Since(began)
	cancel()
	if err := <-done; err != nil {
		return err
	}
	fmt.Fprintf(out, "audit projection:   %d records indexed in %s (%.0f/s)\n", n, build.Round(time.Millisecond), float64(n)/build.Seconds())

	actor := gen.Approvers[7]
	qbegan := time.Now()
	rows, cursor, err := idx.Events(index.Query{Actor: actor, Limit: 100})
	if err != nil {
		return err
	}
	first := time.Since(qbegan)
	total := len(rows)
	for cursor != "" {
		rows, cursor, err = idx.Events(index.Query{Actor: actor, Cursor: cursor, Limit: 1000})
		if err != nil {
			return err
		}
		total += len(rows)
	}
	all := time.Since(qbegan)
	fmt.Fprintf(out, "actor query %s: first page of 100 in %s; all %d events (pages of 1000) in %s\n",
		actor, first.Round(time.Microsecond), total, all.Round(time.Microsecond))
	if total == 0 {
		return errors.New("bench: the actor query found nothing")
	}
	return nil
}

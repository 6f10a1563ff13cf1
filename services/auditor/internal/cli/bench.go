package cli

import (
	"context"
	"io"

	"github.com/assent-dev/assent/services/auditor/internal/bench"
)

func runBench(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("bench", "bench [--events N] [--partitions P] [--checkpoint-every K] [--keep] [--skip-index]", stderr)
	events := fs.Int64("events", 1_000_000, "records to generate (at least)")
	parts := fs.Int("partitions", 12, "partitions of the scratch topic")
	every := fs.Int("checkpoint-every", 1000, "records between signed checkpoints")
	keep := fs.Bool("keep", false, "keep the scratch topic")
	skip := fs.Bool("skip-index", false, "skip building the audit projection and the actor query")
	if help, err := parse(fs, args); help || err != nil {
		return err
	}
	c, finish := loadCommon(getenv, newFlags("bench", "", stderr))
	if err := finish(); err != nil {
		return err
	}
	return bench.Run(ctx, bench.Options{Kafka: c.kafka, Events: *events, Partitions: int32(*parts), CheckpointEvery: *every,
		Keep: *keep, SkipIndex: *skip}, stdout, stderr)
}

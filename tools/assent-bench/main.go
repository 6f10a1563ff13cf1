// Command assent-bench measures Assent against the bare-Kafka floor on the
// same cluster in the same run, and prints each figure beside the floor as
// a ratio. scripts/bench builds and runs it; see --help.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fs := flag.NewFlagSet("assent-bench", flag.ContinueOnError)
	cfg := defaults()
	cfg.flags(fs)
	fs.Usage = func() {
		_, _ = fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if err := run(ctx, cfg, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "assent-bench:", err)
		os.Exit(1)
	}
}

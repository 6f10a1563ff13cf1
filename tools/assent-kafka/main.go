// Command assent-kafka waits for, provisions, checks and describes the Kafka
// cluster and topics that Assent runs on. Run it with --help.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil:
	case errors.Is(err, errUsage):
		os.Exit(2) // the usage was printed already
	default:
		fmt.Fprintln(os.Stderr, "assent-kafka:", err)
		os.Exit(1)
	}
}

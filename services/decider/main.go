// Command decider turns commands into events: it consumes
// assent.commands.v1 as a consumer group, decides each command with the
// pure domain, and writes the events and the consumer offsets in one Kafka
// transaction. See README.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/assent-dev/assent/services/decider/internal/service"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := service.Main(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "decider:", err)
		os.Exit(1)
	}
}

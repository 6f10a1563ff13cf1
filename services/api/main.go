// Command api is Assent's HTTP API v1 for backend services: writes become
// commands on the commands topic, and reads and write outcomes come from
// the service's own projection of the events topic. See README.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/assent-dev/assent/services/api/internal/service"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "api:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return service.Main(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout)
}

// Command console is Assent's web console: people sign in through their
// company's OpenID Connect provider, approve from a live inbox, follow
// their requests and, as auditors, search, export and verify the log.
// See README.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/assent-dev/assent/services/console/internal/service"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "console:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return service.Main(ctx, os.Args[1:], os.Getenv, os.Stdout)
}

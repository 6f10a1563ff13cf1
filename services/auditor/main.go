// Command auditor verifies, exports and queries Assent's audit trail: the
// events topic, hash-chained and signed by checkpoints. See README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/assent-dev/assent/services/auditor/internal/service"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := service.Main(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "auditor:", err)
		if errors.Is(err, service.ErrTampered) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

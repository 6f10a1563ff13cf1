// Command slack-gateway lets approvers decide in Slack: it turns signed
// button clicks into vote commands and keeps the approval cards up to date
// from the event log. See README.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/assent-dev/assent/services/slack-gateway/internal/service"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := service.Main(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "slack-gateway:", err)
		os.Exit(1)
	}
}

// Command example is a backend service's deploy step that asks Assent
// for approval first, as a reader can run it against scripts/up:
//
//	scripts/up
//	go run ./libs/sdk/example                  # waits, printing a curl to approve it
//	go run ./libs/sdk/example -env qa          # refused: no policy matches
//
// It submits the request, prints how to approve it, waits for the
// decision, and deploys (prints that it would) only if it was approved.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	assent "github.com/assent-dev/assent/libs/sdk"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "example:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("example", flag.ContinueOnError)
	urls := fs.String("url", "http://127.0.0.1:8080,http://127.0.0.1:8081", "api base URLs, comma-separated")
	token := fs.String("token", "demo-billing", "bearer token of the service asking")
	resource := fs.String("resource", "services/billing/api", "what to deploy")
	env := fs.String("env", "production", "where to deploy it")
	version := fs.String("version", "1.4.2", "the version to deploy")
	timeout := fs.Duration("timeout", 10*time.Minute, "how long to wait for a decision")
	if err := fs.Parse(args); err != nil {
		return err
	}
	client, err := assent.New(strings.Split(*urls, ","), *token)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	req := assent.SubmitRequest{
		RequestID: assent.NewRequestID(), // chosen up front: every retry below is the same request
		Action: assent.Action{Type: "deploy", Resource: *resource, Environment: *env,
			Details: map[string]any{"version": *version}},
		Reason: fmt.Sprintf("deploy %s %s to %s", *resource, *version, *env),
	}
	// Submit first, so that the request exists before we print how to
	// approve it; RequestApproval below resubmits it (a no-op) and waits.
	if _, err := client.Submit(ctx, req); err != nil {
		return fmt.Errorf("not deploying: %w", err)
	}
	first := strings.Split(*urls, ",")[0]
	_, _ = fmt.Fprintf(out, "waiting for approval of %s (approve it with: curl -sS -X POST %s/v1/requests/%s/votes "+
		"-H 'Authorization: Bearer demo-alice' -H 'Content-Type: application/json' -d '{\"decision\":\"approve\"}')\n",
		req.RequestID, first, req.RequestID)

	d, err := client.RequestApproval(ctx, req)
	switch {
	case errors.Is(err, assent.ErrPending):
		return fmt.Errorf("no decision on %s in %s; not deploying (the request is still open)", req.RequestID, *timeout)
	case err != nil:
		return fmt.Errorf("not deploying: %w", err)
	case !d.Approved: // only Approved means go ahead
		return fmt.Errorf("not deploying: the request was %s by %v", d.Status, d.DecidedBy)
	}
	_, _ = fmt.Fprintf(out, "approved by %s; deploying %s %s to %s\n", strings.Join(d.DecidedBy, ", "), *resource, *version, *env)
	return nil
}

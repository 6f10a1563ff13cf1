// Command assent-chaos runs Assent's fault-injection suite: it starts its
// own Kafka cluster (three brokers, three controllers) in network namespaces and two replicas of
// every service, drives a workload through them while a nemesis injects
// faults, then reads the whole log back and checks it. See
// test/chaos/README.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/assent-dev/assent/test/chaos"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code, err := chaos.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "assent-chaos:", err)
	}
	os.Exit(code)
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"golang.org/x/sync/errgroup"

	"github.com/assent-dev/assent/libs/eventlog/kafkahealth"
	"github.com/assent-dev/assent/libs/service"
)

// setupExporter serves the cluster's health (kafkahealth) on /metrics, with
// /healthz and /readyz, until ctx ends.
func setupExporter(fs *flag.FlagSet) func(context.Context, *kadm.Client, []string, io.Writer) error {
	listen := fs.String("listen", "127.0.0.1:9308", "address of /metrics, /healthz and /readyz")
	topics := fs.String("topics", "", "comma-separated topics to report on (default every topic, internal ones included)")
	groups := fs.String("groups", "", "comma-separated consumer groups whose lag to report (default every group)")
	period := fs.Duration("period", 10*time.Second, "how often to read the cluster")
	return func(ctx context.Context, adm *kadm.Client, _ []string, stdout io.Writer) error {
		if *period < 100*time.Millisecond {
			return fmt.Errorf("--period %s is too short: use 100ms or more (a read costs five requests to the cluster)", *period)
		}
		cfg := kafkahealth.Config{Topics: splitList(*topics), Groups: splitList(*groups), Period: *period}
		exp := kafkahealth.New(adm, cfg)
		reg := service.NewRegistry()
		if err := exp.Register(reg); err != nil {
			return fmt.Errorf("exporter: %w", err)
		}
		mux := http.NewServeMux()
		service.Probes{Registry: reg, Ready: func() error {
			snap, ok := exp.Snapshot()
			switch {
			case !ok:
				return errors.New("no successful read of the cluster yet")
			case time.Since(snap.Time) > 3**period+5*time.Second:
				return fmt.Errorf("last successful read of the cluster was %s ago", time.Since(snap.Time).Round(time.Second))
			}
			return nil
		}}.Register(mux)
		fmt.Fprintf(stdout, "exporter: serving http://%s/metrics, reading the cluster every %s\n", *listen, *period)
		g, gctx := errgroup.WithContext(ctx)
		g.Go(func() error { return service.Serve(gctx, *listen, mux, 5*time.Second) })
		g.Go(func() error { return exp.Run(gctx) })
		return g.Wait()
	}
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/assent-dev/assent/test/chaos"
)

// The goals of issue 14 (items 5 and 9).
const (
	goalDeciderFailover = 3 * time.Second // kill -9 of a decider -> the survivor's first decision on its partition
	goalBrokerGap       = 5 * time.Second // one broker of three lost -> the longest gap on all partitions
)

type failoverConfig struct {
	on                                         bool
	deciderKills, brokerKills, brokerPartition int
	controllerKills                            int
	rate                                       int
	quiet                                      time.Duration
	out                                        string
	kafkaLog                                   string
	env                                        string
}

func (c *failoverConfig) flags(fs *flag.FlagSet) {
	fs.BoolVar(&c.on, "failover", false, "measure failover instead: decider kills, broker kills and broker partitions on a cluster of its own (see above; needs root)")
	fs.IntVar(&c.deciderKills, "decider-kills", 5, "with --failover: deciders killed, one at a time")
	fs.IntVar(&c.brokerKills, "broker-kills", 3, "with --failover: Kafka brokers killed, each in turn")
	fs.IntVar(&c.brokerPartition, "broker-partitions", 3, "with --failover: Kafka brokers cut off from the other brokers and the controllers, each in turn")
	fs.IntVar(&c.controllerKills, "controller-kills", 1, "with --failover: times the active KRaft controller is killed")
	fs.IntVar(&c.rate, "failover-rate", 60, "with --failover: steady submits per second over all partitions")
	fs.DurationVar(&c.quiet, "failover-quiet", 10*time.Second, "with --failover: quiet period before each fault and after it heals")
	fs.StringVar(&c.out, "failover-out", "", "with --failover: where the logs and failover.json go (default .run/failover-<time>)")
	fs.StringVar(&c.kafkaLog, "kafka-log-level", "info", "with --failover: the deciders' and api replicas' ASSENT_KAFKA_LOG_LEVEL (franz-go's log, in services/*.log)")
	fs.StringVar(&c.env, "decider-env", "", "with --failover: more decider environment, comma-separated NAME=value (e.g. ASSENT_SESSION_TIMEOUT=6s)")
}

func runFailover(ctx context.Context, cfg failoverConfig, root string, w io.Writer, say func(string, ...any)) error {
	if cfg.rate < 12 || cfg.rate > 2000 {
		return fmt.Errorf("--failover-rate must be 12 to 2000, got %d", cfg.rate)
	}
	root, err := filepath.Abs(root)
	if err != nil {
		return err
	}
	dir := cfg.out
	if dir == "" {
		dir = filepath.Join(root, ".run", "failover-"+time.Now().UTC().Format("20060102-150405"))
	}
	var env []string
	for _, kv := range strings.Split(cfg.env, ",") {
		if kv = strings.TrimSpace(kv); kv != "" {
			if !strings.Contains(kv, "=") {
				return fmt.Errorf("--decider-env: %q is not NAME=value", kv)
			}
			env = append(env, kv)
		}
	}
	started := time.Now()
	res, err := chaos.Failover(ctx, chaos.FailoverConfig{Root: root, Dir: dir,
		DeciderKills: cfg.deciderKills, BrokerKills: cfg.brokerKills, BrokerPartitions: cfg.brokerPartition,
		ControllerKills: cfg.controllerKills,
		Rate:            cfg.rate, Quiet: cfg.quiet, DeciderEnv: env, KafkaLogLevel: cfg.kafkaLog,
		Logf: func(f string, a ...any) { say("%s %s", time.Now().Format("15:04:05"), fmt.Sprintf(f, a...)) }})
	if err != nil {
		return err
	}
	if j, err := json.MarshalIndent(res, "", "  "); err == nil {
		_ = os.WriteFile(filepath.Join(dir, "failover.json"), j, 0o600)
	}
	writeFailover(w, res, cfg, started, dir)
	return nil
}

func writeFailover(w io.Writer, res *chaos.FailoverResult, cfg failoverConfig, started time.Time, dir string) {
	p := func(format string, a ...any) { _, _ = fmt.Fprintf(w, format, a...) }
	p("\nAssent failover benchmark, %s, 12 partitions, RF 3, min ISR 2, 3 brokers and 3 KRaft controllers in network namespaces\n", started.UTC().Format(time.RFC3339))
	p("steady load %d submits/s (a decision on each partition every %s); %d decisions in all\n",
		cfg.rate, (12 * time.Second / time.Duration(cfg.rate)).Round(time.Millisecond), res.Decisions)
	p("baseline (no fault, %s): longest gap on all partitions %s, on one partition %s\n\n",
		cfg.quiet, res.Baseline.Global.Round(time.Millisecond), res.Baseline.PartitionGap.Round(time.Millisecond))

	p("Decider killed (-9): time to the survivor's first decision\n")
	p("  %-4s %-10s %-9s %-12s %-26s %s\n", "#", "killed", "partition", "first", "all its partitions", "")
	var first []time.Duration
	for i, d := range res.Deciders {
		note := ""
		if d.Err != "" {
			note = "ERROR: " + d.Err
		} else {
			first = append(first, d.First)
		}
		p("  %-4d %-10s %-9d %-12s %-26s %s\n", i+1, d.Killed, d.Partition, d.First.Round(time.Millisecond),
			fmt.Sprintf("%s (p%d of %v)", d.Slowest.Round(time.Millisecond), d.SlowestPartition, d.Owned), note)
	}
	if len(first) > 0 {
		p50, worst := pct(first, 50), pct(first, 100)
		p("  p50 %s, max %s   %s\n", p50.Round(time.Millisecond), worst.Round(time.Millisecond), verdict(worst <= goalDeciderFailover, "max <= 3 s"))
	}

	p("\nBroker or controller lost: longest gap between decisions on all partitions, judged, and on any one\npartition, shown (fault to heal + %s)\n", cfg.quiet)
	p("  %-17s %-38s %-8s %-12s %-20s %s\n", "fault", "target", "held", "gap", "on one partition", "")
	byKind := map[string][]time.Duration{}
	for i, f := range res.Brokers {
		g := res.Gaps[i]
		note := ""
		if f.Err != "" {
			note = "ERROR: " + f.Err
		}
		byKind[f.Name] = append(byKind[f.Name], g.Global)
		p("  %-17s %-38s %-8s %-12s %-20s %s\n", f.Name, f.Target, f.Healed.Sub(f.Start).Round(100*time.Millisecond), g.Global.Round(time.Millisecond),
			fmt.Sprintf("%s (p%d)", g.PartitionGap.Round(time.Millisecond), g.PartitionName), note)
	}
	for _, kind := range []string{chaos.FaultKillBroker, chaos.FaultPartitionBroker, chaos.FaultKillController} {
		if gs := byKind[kind]; len(gs) > 0 {
			worst := pct(gs, 100)
			p("  %-17s p50 %s, max %s   %s\n", kind, pct(gs, 50).Round(time.Millisecond), worst.Round(time.Millisecond), verdict(worst <= goalBrokerGap, "max <= 5 s"))
		}
	}
	p("\nlogs (services with franz-go's at %s, brokers): %s\n", cfg.kafkaLog, dir)
}

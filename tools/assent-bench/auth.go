package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/logadmin"
)

// The goal of issue 12's benchmark: authentication costs at most 5% of the
// decision latency at p50.
const authGoalP50 = 1.05

// arm is one side of the authentication A/B: a system of two deciders and
// two api replicas on its own topics.
type arm struct {
	name  string
	bin   string
	procs []*proc
	apis  []string
	lat   []time.Duration
	round []time.Duration // p50 of each round
}

// runAuth measures decision latency with authentication (the production
// build) and without it (the assentbench_noauth build) in one run, on one
// cluster, each system on fresh topics of the same layout, in rounds that
// alternate A B B A A B ... so that drift and noise fall on both arms alike.
func runAuth(ctx context.Context, cfg config, partitions int32, adm *kadm.Client, stamp string, stdout io.Writer, say func(string, ...any)) error {
	if cfg.rounds < 1 {
		return fmt.Errorf("--rounds must be at least 1, got %d", cfg.rounds)
	}
	noauth := cfg.noauthBin
	if noauth == "" {
		noauth = filepath.Join(cfg.bin, "noauth")
	}
	for _, svc := range []string{"decider", "api"} {
		if _, err := os.Stat(filepath.Join(noauth, svc)); err != nil {
			return fmt.Errorf("--auth needs the assentbench_noauth builds in %s (scripts/bench --auth builds them): %w", noauth, err)
		}
	}
	arms := []*arm{{name: "with", bin: cfg.bin}, {name: "without", bin: noauth}}
	defer func() {
		for _, a := range arms {
			for _, p := range a.procs {
				p.stop()
			}
		}
	}()
	for _, a := range arms {
		topics := eventlog.TopicSpec{Commands: "bench." + stamp + "." + a.name + ".commands", Events: "bench." + stamp + "." + a.name + ".events",
			Partitions: partitions, ReplicationFactor: 3, MinInsyncReplicas: 2}
		if _, err := logadmin.Provision(ctx, adm, topics); err != nil {
			return fmt.Errorf("%s-auth topics: %w", a.name, err)
		}
		defer deleteTopics(adm, topics.Commands, topics.Events)
		say("auth: starting the %s-authentication system from %s on %s", a.name, a.bin, topics.Events)
		var err error
		a.procs, a.apis, err = startServices(ctx, cfg, a.bin, topics, stamp+"-"+a.name, say)
		if err != nil {
			return err
		}
	}
	for _, a := range arms {
		say("auth: warming up the %s-authentication system", a.name)
		if err := warmUp(ctx, a.apis); err != nil {
			return fmt.Errorf("%s authentication: %w", a.name, err)
		}
	}
	rc := cfg
	rc.duration = max(time.Second, cfg.duration/time.Duration(cfg.rounds))
	for r := range cfg.rounds {
		order := arms
		if r%2 == 1 {
			order = []*arm{arms[1], arms[0]}
		}
		for _, a := range order {
			say("auth: round %d/%d, %s authentication, %d decisions/s for %s", r+1, cfg.rounds, a.name, rc.rate, rc.duration)
			lat, _, err := measureLatency(ctx, rc, a.apis, say)
			if err != nil {
				return fmt.Errorf("%s authentication, round %d: %w", a.name, r+1, err)
			}
			a.lat = append(a.lat, lat...)
			a.round = append(a.round, pct(lat, 50))
		}
	}
	reportAuth(stdout, cfg, rc.duration, arms[0], arms[1])
	return nil
}

func reportAuth(w io.Writer, cfg config, round time.Duration, with, without *arm) {
	p50w, p99w := pct(with.lat, 50), pct(with.lat, 99)
	p50o, p99o := pct(without.lat, 50), pct(without.lat, 99)
	r50 := ratio(p50w, p50o)
	_, _ = fmt.Fprintf(w, "\nAssent authentication benchmark, %s, %d partitions, RF 3, min ISR 2, 3 brokers on 127.0.0.1\n\n", time.Now().UTC().Format(time.RFC3339), cfg.partitions)
	_, _ = fmt.Fprintf(w, "%-34s %16s %16s %8s  %s\n", "figure", "without (floor)", "with auth", "ratio", "goal")
	_, _ = fmt.Fprintf(w, "%-34s %16s %16s %8.3f  %s\n", "latency p50 (vote POST -> GET)", ms(p50o), ms(p50w), r50, verdict(r50 <= authGoalP50, fmt.Sprintf("<= %.2fx", authGoalP50)))
	_, _ = fmt.Fprintf(w, "%-34s %16s %16s %8.3f\n", "latency p99 (vote POST -> GET)", ms(p99o), ms(p99w), ratio(p99w, p99o))
	_, _ = fmt.Fprintf(w, "\nper-round p50 (rounds of %s at %d decisions/s, alternated A B B A ...):\n", round, cfg.rate)
	var better int
	for i := range with.round {
		rr := ratio(with.round[i], without.round[i])
		if rr <= 1 {
			better++
		}
		_, _ = fmt.Fprintf(w, "  round %2d  without %9s  with %9s  ratio %.3f\n", i+1, ms(without.round[i]), ms(with.round[i]), rr)
	}
	q1, med, q3 := ratioQuartiles(with.round, without.round)
	_, _ = fmt.Fprintf(w, "per-round ratios: median %.3f, quartiles %.3f to %.3f; rounds where with <= without: %d of %d\n", med, q1, q3, better, len(with.round))
	if q1 <= authGoalP50 && q3 > authGoalP50 || q3-q1 > 2*(authGoalP50-1) {
		_, _ = fmt.Fprintf(w, "resolution: the rounds spread wider than the goal's %.0f%%, so this run cannot resolve a difference that small;\n"+
			"the pooled p50 ratio above is the figure, and a quieter machine or more rounds (--rounds, --duration) narrow it.\n", 100*(authGoalP50-1))
	}
	_, _ = fmt.Fprintf(w, `
samples: with %d, without %d. Both arms: two deciders and two api replicas,
the same cluster, the same topic layout (fresh topics each), the same
SASL/SCRAM credentials and ACL checks, at the same rate.
"with" is the production build: every decider transaction ends with an
Ed25519-signed seal per partition it wrote, and every reader (the api's and
the deciders' projections) holds records until a seal covers them and
verifies it (wire.Authenticator). "without" is the same code built with
-tags assentbench_noauth: no seal is signed or written, and the readers apply
each record as it comes. What it does not remove: SASL/SCRAM and the ACLs
(per connection, and a check per request on the brokers), the hash chain
(prevhash, not authentication by itself), and TLS (not used on this
listener in either arm). Command signatures are not in this build.
`, len(with.lat), len(without.lat))
}

// ratioQuartiles returns the quartiles of the per-round ratios a[i]/b[i].
func ratioQuartiles(a, b []time.Duration) (q1, med, q3 float64) {
	rs := make([]time.Duration, len(a))
	for i := range a {
		// ratios as fixed-point durations, to reuse pct's nearest rank
		rs[i] = time.Duration(ratio(a[i], b[i]) * 1e6)
	}
	return float64(pct(rs, 25)) / 1e6, float64(pct(rs, 50)) / 1e6, float64(pct(rs, 75)) / 1e6
}

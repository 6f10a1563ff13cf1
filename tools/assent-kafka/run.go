package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	iofs "io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/logadmin"
)

// defaultBrokers is the local cluster of scripts/kafka.
const defaultBrokers = "127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094"

// errUsage means the command line was wrong and the usage was printed.
var errUsage = errors.New("usage")

// command is one subcommand: its flags are registered by setup, which
// returns the function that runs it.
type command struct {
	name    string
	summary string
	args    string // positional arguments, for the usage line
	setup   func(fs *flag.FlagSet) func(ctx context.Context, adm *kadm.Client, args []string, stdout io.Writer) error
}

var commands = []command{
	{
		name:    "wait",
		summary: "wait until N brokers are registered and every partition has a leader and a full ISR",
		setup:   setupWait,
	},
	{
		name:    "provision",
		summary: "create the commands and events topics, or verify the existing ones; never alters a topic",
		setup:   setupProvision,
	},
	{
		name:    "users",
		summary: "create or update the SCRAM-SHA-512 user of each service whose password file is in --credentials",
		setup:   setupUsers,
	},
	{
		name:    "grant",
		summary: "grant a principal the ACLs of a role on the topics (provision grants every service's)",
		setup:   setupGrant,
	},
	{
		name:    "pki",
		summary: "make the local CA and the certificates of the cluster's TLS listener (brokers, and clients such as kcat); no Kafka needed",
		setup:   setupPKI,
	},
	{
		name:    "check",
		summary: "verify the topics without creating anything, as every service does at start",
		setup:   setupCheck,
	},
	{
		name:    "describe",
		summary: "print brokers, and the partitions, leaders, replicas and ISR of topics",
		args:    "[topic ...]",
		setup:   setupDescribe,
	},
}

func usage(w io.Writer) {
	_, _ = fmt.Fprintf(w, `assent-kafka waits for, provisions, checks and describes Assent's Kafka cluster.

Usage:
  assent-kafka <command> [flags]

Commands:
`)
	for _, c := range commands {
		_, _ = fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	_, _ = fmt.Fprintf(w, `
Every command takes --brokers (default $%s, else %s), and
authenticates as $%s with the password in $%s when they are set
(scripts/kafka up prints them for the cluster's admin).
Run "assent-kafka <command> --help" for the flags of a command.
`, eventlog.EnvBrokers, defaultBrokers, eventlog.EnvUser, eventlog.EnvPasswordFile)
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		usage(stderr)
		return errUsage
	}
	if isHelp(args[0]) || args[0] == "help" {
		usage(stdout)
		return nil
	}
	i := slices.IndexFunc(commands, func(c command) bool { return c.name == args[0] })
	if i < 0 {
		_, _ = fmt.Fprintf(stderr, "assent-kafka: unknown command %q\n\n", args[0])
		usage(stderr)
		return errUsage
	}
	cmd := commands[i]

	fs := flag.NewFlagSet("assent-kafka "+cmd.name, flag.ContinueOnError)
	defBrokers := getenv(eventlog.EnvBrokers)
	if strings.TrimSpace(defBrokers) == "" {
		defBrokers = defaultBrokers
	}
	brokers := fs.String("brokers", defBrokers, "comma-separated seed brokers")
	exec := cmd.setup(fs)
	fs.Usage = func() {
		_, _ = fmt.Fprintf(fs.Output(), "Usage: assent-kafka %s\n\n%s.\n\nFlags:\n", strings.TrimSpace(cmd.name+" [flags] "+cmd.args), capitalize(cmd.summary))
		fs.PrintDefaults()
	}
	if slices.ContainsFunc(args[1:], isHelp) {
		fs.SetOutput(stdout)
		fs.Usage()
		return nil
	}
	fs.SetOutput(stderr)
	if err := fs.Parse(args[1:]); err != nil {
		return errUsage // flag printed the problem and the usage
	}
	if cmd.args == "" && fs.NArg() > 0 {
		_, _ = fmt.Fprintf(stderr, "assent-kafka %s: unexpected arguments %q\n", cmd.name, fs.Args())
		fs.Usage()
		return errUsage
	}
	kcfg, err := eventlog.ConfigFromEnv(func(k string) string {
		if k == eventlog.EnvBrokers {
			return *brokers
		}
		return getenv(k)
	})
	if err != nil {
		return err
	}
	kcfg.ClientID = "assent-kafka"
	cl, err := eventlog.NewClient(kcfg)
	if err != nil {
		return err
	}
	defer cl.Close()
	return exec(ctx, kadm.NewClient(cl), fs.Args(), stdout)
}

func isHelp(arg string) bool {
	switch arg {
	case "-h", "-help", "--help":
		return true
	}
	return false
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func setupWait(fs *flag.FlagSet) func(context.Context, *kadm.Client, []string, io.Writer) error {
	nodes := fs.Int("nodes", 3, "number of brokers to wait for")
	timeout := fs.Duration("timeout", 60*time.Second, "give up after this long")
	return func(ctx context.Context, adm *kadm.Client, _ []string, stdout io.Writer) error {
		ctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		last := ""
		err := logadmin.PollReady(ctx, adm, *nodes, nil, func(r logadmin.Readiness, err error) {
			line := "waiting: " + r.String()
			if err != nil {
				line = "waiting: " + err.Error()
			}
			if line != last {
				_, _ = fmt.Fprintln(stdout, line)
				last = line
			}
		})
		if err != nil {
			return err
		}
		r, err := logadmin.CheckReady(ctx, adm, *nodes)
		if err != nil {
			return err
		}
		_, _ = fmt.Fprintf(stdout, "ready: %d/%d brokers, all %d partitions have a leader and a full ISR\n", r.Brokers, r.WantBrokers, r.Partitions)
		return nil
	}
}

// specFlags registers the flags that describe a TopicSpec; the returned
// function builds it after parsing.
func specFlags(fs *flag.FlagSet) (func() (eventlog.TopicSpec, error), *time.Duration) {
	def := eventlog.DefaultTopicSpec()
	commands := fs.String("commands-topic", def.Commands, "commands topic name")
	events := fs.String("events-topic", def.Events, "events topic name")
	partitions := fs.Int("partitions", int(def.Partitions), "partitions of each topic")
	rf := fs.Int("replication-factor", int(def.ReplicationFactor), "replication factor of each topic")
	minISR := fs.Int("min-isr", def.MinInsyncReplicas, "min.insync.replicas of each topic")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	return func() (eventlog.TopicSpec, error) {
		if *partitions < 0 || *partitions > math.MaxInt32 || *rf < 0 || *rf > math.MaxInt16 {
			return eventlog.TopicSpec{}, errors.New("--partitions or --replication-factor is out of range")
		}
		spec := eventlog.TopicSpec{
			Commands:          *commands,
			Events:            *events,
			Partitions:        int32(*partitions),
			ReplicationFactor: int16(*rf),
			MinInsyncReplicas: *minISR,
		}
		return spec, spec.Validate()
	}, timeout
}

func setupProvision(fs *flag.FlagSet) func(context.Context, *kadm.Client, []string, io.Writer) error {
	build, timeout := specFlags(fs)
	grant := fs.Bool("grant", true, "also grant each service's user (User:assent-<role>) the ACLs of its role on the topics")
	return func(ctx context.Context, adm *kadm.Client, _ []string, stdout io.Writer) error {
		spec, err := build()
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		report, err := logadmin.Provision(ctx, adm, spec)
		if len(report.Topics) > 0 {
			_, _ = fmt.Fprintln(stdout, report)
		}
		if err := explain(err, stdout); err != nil || !*grant {
			return err
		}
		for _, role := range logadmin.Roles() {
			principal := "User:" + ServiceUser(role)
			if err := logadmin.GrantACLs(ctx, adm, principal, role, spec); err != nil {
				return err
			}
			_, _ = fmt.Fprintf(stdout, "granted %s the ACLs of the %s role\n", principal, role)
		}
		return nil
	}
}

// ServiceUser is the Kafka user a service runs as in the clusters the
// scripts start and in infra/k8s: assent-<role>.
func ServiceUser(role logadmin.Role) string { return "assent-" + string(role) }

func setupUsers(fs *flag.FlagSet) func(context.Context, *kadm.Client, []string, io.Writer) error {
	dir := fs.String("credentials", "", "directory holding <user>.password files (scripts/kafka keeps them in .run/kafka/credentials)")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	return func(ctx context.Context, adm *kadm.Client, _ []string, stdout io.Writer) error {
		if *dir == "" {
			return errors.New("--credentials is required")
		}
		ctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		n := 0
		for _, role := range logadmin.Roles() {
			user := ServiceUser(role)
			b, err := os.ReadFile(filepath.Join(*dir, user+".password"))
			if errors.Is(err, iofs.ErrNotExist) {
				continue
			}
			if err != nil {
				return err
			}
			if err := logadmin.UpsertUser(ctx, adm, user, strings.TrimSpace(string(b))); err != nil {
				return err
			}
			_, _ = fmt.Fprintf(stdout, "user %s: SCRAM-SHA-512 credential set\n", user)
			n++
		}
		if n == 0 {
			return fmt.Errorf("no assent-<role>.password file in %s", *dir)
		}
		return nil
	}
}

func setupPKI(fs *flag.FlagSet) func(context.Context, *kadm.Client, []string, io.Writer) error {
	dir := fs.String("dir", "", "directory of the CA and certificates (scripts/kafka uses .run/kafka/pki)")
	hosts := fs.String("hosts", "127.0.0.1", "comma-separated addresses or names the brokers' certificate is valid for")
	users := fs.String("users", "admin,assent-auditor", "comma-separated users to make client certificates for (CN=user)")
	return func(_ context.Context, _ *kadm.Client, _ []string, stdout io.Writer) error {
		if *dir == "" {
			return errors.New("--dir is required")
		}
		p := logadmin.LocalPKI{Dir: *dir}
		if err := p.Ensure(splitList(*hosts), splitList(*users)); err != nil {
			return err
		}
		_, _ = fmt.Fprintf(stdout, "pki: CA %s, broker certificate %s, clients %s\n", p.CA(), p.Broker(), filepath.Join(*dir, "clients"))
		return nil
	}
}

func splitList(s string) []string {
	var out []string
	for v := range strings.SplitSeq(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func setupGrant(fs *flag.FlagSet) func(context.Context, *kadm.Client, []string, io.Writer) error {
	build, timeout := specFlags(fs)
	roleName := fs.String("role", "", "the role: decider, api, slack-gateway, notifier, console, auditor or kafka-health")
	principal := fs.String("principal", "", "the principal, User:<name> (default User:assent-<role>)")
	return func(ctx context.Context, adm *kadm.Client, _ []string, stdout io.Writer) error {
		spec, err := build()
		if err != nil {
			return err
		}
		role, err := logadmin.ParseRole(*roleName)
		if err != nil {
			return fmt.Errorf("--role: %w", err)
		}
		p := *principal
		if p == "" {
			p = "User:" + ServiceUser(role)
		}
		ctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		if err := logadmin.GrantACLs(ctx, adm, p, role, spec); err != nil {
			return err
		}
		grants, _ := logadmin.Grants(role, spec)
		for _, g := range grants {
			_, _ = fmt.Fprintf(stdout, "granted %s: %s\n", p, g)
		}
		return nil
	}
}

func setupCheck(fs *flag.FlagSet) func(context.Context, *kadm.Client, []string, io.Writer) error {
	build, timeout := specFlags(fs)
	return func(ctx context.Context, adm *kadm.Client, _ []string, stdout io.Writer) error {
		spec, err := build()
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		if err := logadmin.CheckTopics(ctx, adm, spec); err != nil {
			return explain(err, stdout)
		}
		_, _ = fmt.Fprintf(stdout, "%s, %s: match the spec (%d partitions, replication factor %d, min.insync.replicas %d)\n",
			spec.Commands, spec.Events, spec.Partitions, spec.ReplicationFactor, spec.MinInsyncReplicas)
		return nil
	}
}

// explain prints a MismatchError one difference per line, with its fix,
// and returns a short error; other errors are returned as they are.
func explain(err error, stdout io.Writer) error {
	var me *logadmin.MismatchError
	if !errors.As(err, &me) {
		return err
	}
	for _, m := range me.Mismatches {
		_, _ = fmt.Fprintf(stdout, "mismatch: %s\n  fix: %s\n", m, m.Fix())
	}
	return fmt.Errorf("%d difference(s) from the spec; existing topics are never altered", len(me.Mismatches))
}

func setupDescribe(fs *flag.FlagSet) func(context.Context, *kadm.Client, []string, io.Writer) error {
	internal := fs.Bool("internal", false, "include internal topics (__consumer_offsets, __transaction_state)")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	return func(ctx context.Context, adm *kadm.Client, topics []string, stdout io.Writer) error {
		ctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		md, err := adm.Metadata(kadm.WithAuthorizedOps(ctx), topics...) // WithAuthorizedOps: bypass kadm's metadata cache
		if err != nil {
			return err
		}
		_, _ = fmt.Fprintf(stdout, "cluster %s, controller %d\n", md.Cluster, md.Controller)
		for _, b := range md.Brokers {
			_, _ = fmt.Fprintf(stdout, "broker %d: %s:%d\n", b.NodeID, b.Host, b.Port)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		_, _ = fmt.Fprintln(tw, "\nTOPIC\tPARTITION\tLEADER\tREPLICAS\tISR\tSTATUS")
		for _, td := range md.Topics.Sorted() {
			if td.IsInternal && !*internal && len(topics) == 0 {
				continue
			}
			if td.Err != nil {
				_, _ = fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t%v\n", td.Topic, td.Err)
				continue
			}
			for _, p := range td.Partitions.Sorted() {
				status := "ok"
				switch {
				case p.Leader < 0:
					status = "no leader"
				case p.Err != nil:
					status = p.Err.Error()
				case len(p.ISR) < len(p.Replicas):
					status = "under-replicated"
				}
				_, _ = fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\n", td.Topic, p.Partition, p.Leader, ids(p.Replicas), ids(p.ISR), status)
			}
		}
		return tw.Flush()
	}
}

func ids(ns []int32) string {
	s := make([]string, len(ns))
	for i, n := range slices.Sorted(slices.Values(ns)) {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, ",")
}

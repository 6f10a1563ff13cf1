package session_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/codec"
	"github.com/assent-dev/assent/libs/command"
	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/logadmin"
	"github.com/assent-dev/assent/libs/projection"
	"github.com/assent-dev/assent/libs/projection/requests"
	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/services/decider/internal/core"
	"github.com/assent-dev/assent/services/decider/internal/session"
	"github.com/assent-dev/assent/test/systest"
)

// rig is a Kafka cluster in this process (kfake) with the two topics.
type rig struct {
	cluster *kfake.Cluster
	kafka   eventlog.Config
	topics  eventlog.TopicSpec
	adm     *kadm.Client
}

func newRig(t *testing.T) *rig { return newRigN(t, 1) }

// newRigN is a rig whose topics have n partitions, on brokers brokers
// (one if not given).
func newRigN(t *testing.T, n int32, brokers ...int) *rig {
	t.Helper()
	nb := 1
	if len(brokers) > 0 {
		nb = brokers[0]
	}
	return newRigWith(t, n, kfake.NumBrokers(nb), kfake.GroupMinSessionTimeout(100*time.Millisecond))
}

// newRigWith is a rig whose topics have n partitions, on a cluster with
// the given options.
func newRigWith(t *testing.T, n int32, opts ...kfake.Opt) *rig {
	t.Helper()
	c, err := kfake.NewCluster(opts...)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	r := &rig{cluster: c, kafka: eventlog.Config{Brokers: c.ListenAddrs(), ClientID: "rig"},
		topics: eventlog.TopicSpec{Commands: "commands", Events: "events", Partitions: n, ReplicationFactor: 1, MinInsyncReplicas: 1}}
	cl, err := eventlog.NewClient(r.kafka)
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	r.adm = kadm.NewClient(cl)
	_, err = logadmin.Provision(t.Context(), r.adm, r.topics)
	require.NoError(t, err)
	return r
}

var testPolicies = approval.Policies{Rules: []approval.Policy{{
	Name: "deploys", Approvers: []string{"user:alice@example.com", "user:bob@example.com"},
	MinApprovals: 2, RejectThreshold: 1, TTL: approval.Duration(time.Hour),
}}}

// decider is one decider replica, wired as the service wires it.
type decider struct {
	name   string
	core   *core.Core
	runner *projection.Runner
	store  *requests.Store
	cancel context.CancelFunc
	// loopDone and runDone receive what the transaction loop and the
	// projection returned.
	loopDone, runDone chan error
	stopOnce          sync.Once

	mu         sync.Mutex
	quarantine []string // the commands the core quarantined, and why
}

// quarantined counts the commands the core quarantined: distinct
// commands, since a transaction that aborts for another reason (a slow
// commit under load) hands the same command to the next one, which
// quarantines it again.
func (d *decider) quarantined() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	seen := map[string]bool{}
	for _, q := range d.quarantine {
		where, _, _ := strings.Cut(q, ": ")
		seen[where] = true
	}
	return len(seen)
}

func (r *rig) startDecider(t *testing.T, name string) *decider {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("ZDEBUG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("decider", name)
	}
	cfg := r.kafka
	cfg.ClientID = name
	store := &requests.Store{}
	runner, err := projection.Open(projection.Config{Dir: filepath.Join(t.TempDir(), name), Topic: r.topics.Events,
		Partitions: r.topics.Partitions, Kafka: cfg, Handler: store, Logger: log, Keys: systest.DemoKeys(t)})
	require.NoError(t, err)
	store.Attach(runner.DB())
	d := &decider{name: name, runner: runner, store: store, loopDone: make(chan error, 1), runDone: make(chan error, 1)}
	c := core.New(core.Config{Topic: r.topics.Events, Partitions: r.topics.Partitions, Source: "assent/decider",
		Policies: func() approval.Policies { return testPolicies }, Signer: systest.DemoSigner(t), CommandKeys: systest.DemoCommandKeys(t),
		Quarantined: func(in core.In, err error) {
			d.mu.Lock()
			defer d.mu.Unlock()
			d.quarantine = append(d.quarantine, fmt.Sprintf("%d@%d: %v", in.Partition, in.Offset, err))
		}}, store, runner)
	d.core = c
	opts, err := cfg.Opts(
		kgo.TransactionalID("assent-"+name), kgo.TransactionTimeout(5*time.Second),
		kgo.ConsumerGroup("deciders"), kgo.ConsumeTopics(r.topics.Commands),
		kgo.SessionTimeout(time.Second), kgo.HeartbeatInterval(100*time.Millisecond), kgo.FetchMaxWait(100*time.Millisecond),
	)
	require.NoError(t, err)
	timers, err := eventlog.NewClient(cfg)
	require.NoError(t, err)
	t.Cleanup(timers.Close)
	loop := session.New(session.Config{Group: "deciders", InstanceID: name, TransactionalID: "assent-" + name, CommandsTopic: r.topics.Commands, EventsTopic: r.topics.Events,
		Timers:     command.Kafka{Client: timers, Topic: r.topics.Commands, Signer: systest.DemoSigner(t)},
		TxnTimeout: 5 * time.Second, SessionTTL: time.Second, ExpiryPeriod: 50 * time.Millisecond, Logger: log,
		PeerClientID: func(tid string) (string, bool) { return strings.CutPrefix(tid, "assent-") }}, c, runner, r.adm, opts)
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	go func() { d.runDone <- runner.Run(ctx) }()
	go func() { d.loopDone <- loop.Run(ctx) }()
	t.Cleanup(func() { d.stop(t) })
	return d
}

// stop stops the replica (as SIGTERM would) and closes its store.
func (d *decider) stop(t *testing.T) {
	d.stopOnce.Do(func() {
		d.cancel()
		for _, ch := range []chan error{d.loopDone, d.runDone} { // how they ended is logged, not checked
			select {
			case err := <-ch:
				if err != nil {
					t.Logf("%s: %v", d.name, err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("%s did not stop in 30s", d.name)
			}
		}
		_ = d.runner.Close()
	})
}

func (d *decider) owns(p int32) bool {
	caughtUp, ok := d.core.Owned()[p]
	return ok && caughtUp
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ridIn returns a request id, named after prefix, that the murmur2
// partitioner puts in partition p.
func (r *rig) ridIn(t *testing.T, prefix string, p int32) string {
	t.Helper()
	for i := range 10_000 {
		rid := fmt.Sprintf("%s-%d", prefix, i)
		if wire.Partition([]byte(rid), int(r.topics.Partitions)) == p {
			return rid
		}
	}
	t.Fatalf("no request id for partition %d", p)
	return ""
}

// send produces a command and returns its id.
func (r *rig) send(t *testing.T, cmd approval.Command) string {
	t.Helper()
	if cmd.ID == "" {
		cmd.ID = wire.NewID(time.Now())
	}
	if cmd.Time.IsZero() {
		cmd.Time = time.Now().UTC()
	}
	env, err := codec.CommandEnvelope(cmd, "assent/test")
	require.NoError(t, err)
	env = systest.SignCommand(t, systest.ServiceAPI, env) // the api's key may name anyone
	cl, err := eventlog.NewClient(r.kafka)
	require.NoError(t, err)
	defer cl.Close()
	require.NoError(t, eventlog.Produce(t.Context(), cl, r.topics.Commands, env))
	return cmd.ID
}

// submit produces a submit command for rid and returns its id.
func (r *rig) submit(t *testing.T, rid string, ttl time.Duration) string {
	t.Helper()
	return r.send(t, approval.Command{RequestID: rid, Actor: "service:billing",
		Body: approval.Submit{Action: approval.Action{Type: "deploy", Resource: "svc/api", Environment: "production"}, Reason: "release",
			TTL: approval.Duration(ttl)}})
}

// logged is one committed record of an events partition.
type logged struct {
	offset int64
	env    wire.Envelope
	hash   string
}

// log reads the committed records of events partition p, from the log
// start to the last stable offset, without checking the chain.
func (r *rig) log(t *testing.T, p int32) []logged {
	t.Helper()
	cl, err := eventlog.NewClient(r.kafka, kgo.KeepControlRecords(),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{r.topics.Events: {p: kgo.NewOffset().AtStart()}}))
	require.NoError(t, err)
	defer cl.Close()
	starts, err := r.adm.ListStartOffsets(t.Context(), r.topics.Events)
	require.NoError(t, err)
	start, _ := starts.Lookup(r.topics.Events, p)
	ends, err := r.adm.ListCommittedOffsets(t.Context(), r.topics.Events)
	require.NoError(t, err)
	end, _ := ends.Lookup(r.topics.Events, p)
	var out []logged
	read := start.Offset
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for read < end.Offset {
		fs := cl.PollFetches(ctx)
		require.NoError(t, ctx.Err(), "read events partition %d", p)
		fs.EachRecord(func(rec *kgo.Record) {
			read = rec.Offset + 1
			if rec.Attrs.IsControl() {
				return
			}
			env, err := eventlog.DecodeRecord(rec)
			require.NoError(t, err)
			if os.Getenv("ZDEBUG") != "" {
				t.Logf("p%d %d %s %s %s", p, rec.Offset, env.Source, env.Type, env.Subject)
			}
			out = append(out, logged{offset: rec.Offset, env: env, hash: wire.Hash(rec.Value)})
		})
	}
	return out
}

// events reads the committed events partition 0 from the start, and
// requires every record to link to the one before.
func (r *rig) events(t *testing.T) []wire.Envelope {
	t.Helper()
	prev := wire.GenesisHash
	var out []wire.Envelope
	for _, l := range r.log(t, 0) {
		require.Equal(t, prev, l.env.PrevHash, "the chain links at offset %d (%s %s)", l.offset, l.env.Type, l.env.Subject)
		prev = l.hash
		out = append(out, l.env)
	}
	return out
}

// decided reports whether events partition p holds an event caused by
// the command id.
func (r *rig) decided(t *testing.T, p int32, commandID string) bool {
	t.Helper()
	for _, l := range r.log(t, p) {
		if l.env.CommandID == commandID {
			return true
		}
	}
	return false
}

// committed returns the decider group's committed offset of commands
// partition p (-1 if none).
func (r *rig) committed(t *testing.T, p int32) int64 {
	t.Helper()
	offs, err := r.adm.FetchOffsets(t.Context(), "deciders")
	require.NoError(t, err)
	o, ok := offs.Lookup(r.topics.Commands, p)
	if !ok {
		return -1
	}
	return o.At
}

// deleteRecords moves the log start of topic's partition p to off, as
// retention does when it deletes a segment.
func (r *rig) deleteRecords(t *testing.T, topic string, p int32, off int64) {
	t.Helper()
	var o kadm.Offsets
	o.Add(kadm.Offset{Topic: topic, Partition: p, At: off})
	resp, err := r.adm.DeleteRecords(t.Context(), o)
	require.NoError(t, err)
	require.NoError(t, resp.Error())
	starts, err := r.adm.ListStartOffsets(t.Context(), topic)
	require.NoError(t, err)
	start, _ := starts.Lookup(topic, p)
	require.Equal(t, off, start.Offset, "the log of %s/%d starts at %d now", topic, p, off)
}

// end returns the high watermark of topic's partition p.
func (r *rig) end(t *testing.T, topic string, p int32) int64 {
	t.Helper()
	ends, err := r.adm.ListEndOffsets(t.Context(), topic)
	require.NoError(t, err)
	e, _ := ends.Lookup(topic, p)
	return e.Offset
}

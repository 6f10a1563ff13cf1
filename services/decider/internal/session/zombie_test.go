package session_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

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

func newRig(t *testing.T) *rig {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(100*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	r := &rig{cluster: c, kafka: eventlog.Config{Brokers: c.ListenAddrs(), ClientID: "rig"},
		topics: eventlog.TopicSpec{Commands: "commands", Events: "events", Partitions: 1, ReplicationFactor: 1, MinInsyncReplicas: 1}}
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
	cancel context.CancelFunc
	done   chan error
}

func (r *rig) startDecider(t *testing.T, name string) *decider {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := r.kafka
	cfg.ClientID = name
	store := &requests.Store{}
	runner, err := projection.Open(projection.Config{Dir: filepath.Join(t.TempDir(), name), Topic: r.topics.Events,
		Partitions: r.topics.Partitions, Kafka: cfg, Handler: store, Logger: log, Keys: systest.DemoKeys(t)})
	require.NoError(t, err)
	store.Attach(runner.DB())
	c := core.New(core.Config{Topic: r.topics.Events, Partitions: r.topics.Partitions, Source: "assent/decider",
		Policies: func() approval.Policies { return testPolicies }, Signer: systest.DemoSigner(t)}, store, runner)
	opts, err := cfg.Opts(
		kgo.TransactionalID("assent-"+name), kgo.TransactionTimeout(5*time.Second),
		kgo.ConsumerGroup("deciders"), kgo.ConsumeTopics(r.topics.Commands),
		kgo.SessionTimeout(time.Second), kgo.HeartbeatInterval(100*time.Millisecond), kgo.FetchMaxWait(100*time.Millisecond),
	)
	require.NoError(t, err)
	timers, err := eventlog.NewClient(cfg)
	require.NoError(t, err)
	t.Cleanup(timers.Close)
	loop := session.New(session.Config{Group: "deciders", TransactionalID: "assent-" + name, EventsTopic: r.topics.Events,
		Timers:     command.Kafka{Client: timers, Topic: r.topics.Commands},
		TxnTimeout: 5 * time.Second, SessionTTL: time.Second, ExpiryPeriod: 50 * time.Millisecond, Logger: log}, c, runner, r.adm, opts)
	ctx, cancel := context.WithCancel(context.Background())
	d := &decider{name: name, core: c, runner: runner, cancel: cancel, done: make(chan error, 2)}
	go func() { d.done <- runner.Run(ctx) }()
	go func() {
		if runner.WaitReady(ctx) == nil {
			d.done <- loop.Run(ctx)
		} else {
			d.done <- nil
		}
	}()
	t.Cleanup(func() {
		cancel()
		for range 2 { // both loops: how they ended is logged, not checked
			if err := <-d.done; err != nil {
				t.Logf("%s: %v", name, err)
			}
		}
		_ = runner.Close()
	})
	return d
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

func (r *rig) submit(t *testing.T, rid string, ttl time.Duration) {
	t.Helper()
	now := time.Now().UTC()
	cmd := approval.Command{ID: wire.NewID(now), RequestID: rid, Actor: "service:billing", Time: now,
		Body: approval.Submit{Action: approval.Action{Type: "deploy", Resource: "svc/api", Environment: "production"}, Reason: "release",
			TTL: approval.Duration(ttl)}}
	env, err := codec.CommandEnvelope(cmd, "assent/test")
	require.NoError(t, err)
	cl, err := eventlog.NewClient(r.kafka)
	require.NoError(t, err)
	defer cl.Close()
	require.NoError(t, eventlog.Produce(t.Context(), cl, r.topics.Commands, env))
}

// events reads the committed events partition 0 from the start.
func (r *rig) events(t *testing.T) []wire.Envelope {
	t.Helper()
	cl, err := eventlog.NewClient(r.kafka, kgo.KeepControlRecords(),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{r.topics.Events: {0: kgo.NewOffset().AtStart()}}))
	require.NoError(t, err)
	defer cl.Close()
	ends, err := r.adm.ListCommittedOffsets(t.Context(), r.topics.Events)
	require.NoError(t, err)
	end, _ := ends.Lookup(r.topics.Events, 0)
	var out []wire.Envelope
	prev := wire.GenesisHash
	var read int64
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for read < end.Offset {
		fs := cl.PollFetches(ctx)
		require.NoError(t, ctx.Err(), "read the events partition")
		fs.EachRecord(func(rec *kgo.Record) {
			read = rec.Offset + 1
			if rec.Attrs.IsControl() {
				return
			}
			env, err := eventlog.DecodeRecord(rec)
			require.NoError(t, err)
			if os.Getenv("ZDEBUG") != "" {
				t.Logf("%d %s %s %s link=%v", rec.Offset, env.Source, env.Type, env.Subject, prev == env.PrevHash)
			}
			require.Equal(t, prev, env.PrevHash, "the chain links at offset %d (%s %s)", rec.Offset, env.Type, env.Subject)
			prev = wire.Hash(rec.Value)
			out = append(out, env)
		})
	}
	return out
}

// TestZombieCannotWriteTimersOrCheckpoints reproduces issue 13, item 1. The
// owner of a partition stops hearing from the group coordinator (its
// heartbeats are answered "fine" by a forged response, as a decider paused
// past its session timeout sees before it learns it was kicked out, or one
// cut off from the coordinator), the group gives the partition to another
// decider, and a request's deadline passes. The zombie's timer must not
// write anything into the partition the new owner writes: not an
// expiry (a second terminal event, I3) and not a record the new owner's
// chain does not know (a fork, I6).
func TestZombieCannotWriteTimersOrCheckpoints(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	a := r.startDecider(t, "a")
	eventually(t, "a owns the partition", func() bool { return a.owns(0) })
	r.submit(t, "r-1", 3*time.Second)
	eventually(t, "r-1 is pending in a's projection", func() bool { return a.runner.Next(0) > 0 })

	// From now on the coordinator never hears from a, but a is told all
	// is well.
	groups, err := r.adm.DescribeGroups(t.Context(), "deciders")
	require.NoError(t, err)
	var member string
	for _, m := range groups["deciders"].Members {
		if m.ClientID == "a" {
			member = m.MemberID
		}
	}
	require.NotEmpty(t, member)
	var forged sync.Once
	r.cluster.ControlKey(int16(kmsg.Heartbeat), func(req kmsg.Request) (kmsg.Response, error, bool) {
		r.cluster.KeepControl()
		hb := req.(*kmsg.HeartbeatRequest)
		if hb.MemberID != member {
			return nil, nil, false
		}
		forged.Do(func() { t.Log("forging a's heartbeats from now on") })
		resp := hb.ResponseKind().(*kmsg.HeartbeatResponse)
		return resp, nil, true
	})

	b := r.startDecider(t, "b")
	eventually(t, "b owns the partition", func() bool { return b.owns(0) })
	require.True(t, a.owns(0), "a still believes it owns the partition: it is the zombie")

	// The deadline passes; both timers fire. Then b writes again.
	eventually(t, "r-1 expired", func() bool {
		for _, e := range r.events(t) {
			if e.Subject == "r-1" && e.Type == approval.TypeRequestExpired {
				return true
			}
		}
		return false
	})
	time.Sleep(time.Second) // let the zombie's timer fire many times (every 50ms): what it writes is the point
	r.submit(t, "r-2", time.Hour)
	eventually(t, "b decides r-2", func() bool {
		for _, e := range r.events(t) {
			if e.Subject == "r-2" {
				return true
			}
		}
		return false
	})
	terminal := 0
	for _, e := range r.events(t) { // the chain links: checked by events
		if e.Subject == "r-1" && (e.Type == approval.TypeRequestExpired || e.Type == approval.TypeRequestApproved ||
			e.Type == approval.TypeRequestRejected || e.Type == approval.TypeRequestCancelled) {
			terminal++
		}
	}
	require.Equal(t, 1, terminal, "one terminal event for r-1")
}

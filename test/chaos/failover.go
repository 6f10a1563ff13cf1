package chaos

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/logadmin"
	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/test/systest"
)

// FailoverConfig is one run of the failover benchmark (Failover): the
// suite's own cluster and services under a steady load, and faults one at
// a time, each measured. It is a benchmark, never a test: it reports
// figures and asserts nothing.
type FailoverConfig struct {
	Root string // the repository
	Dir  string // binaries, the cluster, every log
	// DeciderKills is how many times the decider that owns a partition is
	// killed (-9); BrokerKills and BrokerPartitions how many times one
	// broker is killed, or cut off from the other brokers and the
	// controllers; ControllerKills how many times the active KRaft
	// controller is killed.
	DeciderKills, BrokerKills, BrokerPartitions, ControllerKills int
	// Rate is the steady load: submits per second, spread evenly over
	// every partition, so that each partition gets a decision every
	// Partitions/Rate seconds (the resolution of the figures).
	Rate int
	// Quiet is the wait before each fault and after it heals.
	Quiet time.Duration
	// BrokerHold is how long a killed node stays down, PartitionHold how
	// long a node stays cut off (the fault suite's 8s and 12s).
	BrokerHold, PartitionHold time.Duration
	// DeciderEnv is added to the deciders' environment (for example
	// ASSENT_SESSION_TIMEOUT).
	DeciderEnv []string
	// KafkaLogLevel is the deciders' and the api replicas'
	// ASSENT_KAFKA_LOG_LEVEL: info logs franz-go's view of the faults into
	// their logs.
	KafkaLogLevel string
	Logf          func(format string, args ...any)
}

// DeciderFailover is one kill of a decider.
type DeciderFailover struct {
	Killed    string    `json:"killed"`
	Partition int32     `json:"partition"` // the partition it was killed for
	Owned     []int32   `json:"owned"`     // every partition it owned
	At        time.Time `json:"at"`
	// First is the time from the kill to the survivor's first decision on
	// Partition; Slowest the same for the last of Owned to get one.
	First            time.Duration `json:"first"`
	Slowest          time.Duration `json:"slowest"`
	SlowestPartition int32         `json:"slowest_partition"`
	Err              string        `json:"error,omitempty"`
}

// FailoverResult is what a failover run measured.
type FailoverResult struct {
	Deciders []DeciderFailover `json:"deciders"`
	// Brokers are the broker faults and, in Gaps, the longest time without
	// a decision on any partition in each one's window (from the fault to
	// the end of the quiet period after it healed), as the fault suite
	// measures it (gaps).
	Brokers  []Fault `json:"brokers"`
	Gaps     []Gap   `json:"gaps"`
	Baseline Gap     `json:"baseline"`
	// Decisions is how many events the deciders wrote during the run.
	Decisions int `json:"decisions"`
}

// Failover starts the suite's cluster (network namespaces: root), two
// deciders and two api replicas, a steady load of submits on every
// partition, then kills deciders and kills or cuts off brokers, one at a
// time, and measures what each fault cost: for a decider, the time from
// the kill to the survivor's first decision on the partition, read from
// the events' times; for a broker, the longest gap between decisions on
// all partitions.
func Failover(ctx context.Context, cfg FailoverConfig) (*FailoverResult, error) {
	if cfg.Rate <= 0 {
		cfg.Rate = 60
	}
	if cfg.Quiet <= 0 {
		cfg.Quiet = 10 * time.Second
	}
	if cfg.BrokerHold <= 0 {
		cfg.BrokerHold = 8 * time.Second
	}
	if cfg.PartitionHold <= 0 {
		cfg.PartitionHold = 12 * time.Second
	}
	logf := cfg.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	prefix := fmt.Sprintf("failover%d", time.Now().UnixNano()%1_000_000_000)
	bin := filepath.Join(cfg.Dir, "bin")
	logf("building api and decider into %s", bin)
	if err := Build(ctx, cfg.Root, bin, ""); err != nil {
		return nil, err
	}
	logf("starting a Kafka cluster (three brokers, three controllers) in network namespaces")
	cluster, err := StartCluster(ctx, cfg.Root, filepath.Join(cfg.Dir, "kafka"), logf)
	if err != nil {
		return nil, err
	}
	defer cluster.Close()
	kcfg := eventlog.Config{Brokers: cluster.Brokers(), SCRAM: cluster.Admin(), ClientID: prefix + "-bench"}
	spec := eventlog.TopicSpec{Commands: prefix + ".commands", Events: prefix + ".events", Partitions: 12, ReplicationFactor: 3, MinInsyncReplicas: 2}
	if err := provision(ctx, kcfg, spec, true); err != nil {
		return nil, err
	}
	users, err := serviceUsers(ctx, kcfg, spec, filepath.Join(cfg.Dir, "credentials"))
	if err != nil {
		return nil, err
	}
	var kafkaLog []string
	if cfg.KafkaLogLevel != "" {
		kafkaLog = []string{eventlog.EnvKafkaLogLevel + "=" + cfg.KafkaLogLevel}
	}
	run := Config{Root: cfg.Root, Dir: cfg.Dir, Prefix: prefix, noGateways: true,
		deciderEnv: slices.Concat(kafkaLog, cfg.DeciderEnv), apiEnv: kafkaLog}
	procs, err := startServices(ctx, run, bin, cluster.Brokers(), spec, "", users)
	if err != nil {
		return nil, err
	}
	defer procs.stopAll()
	logf("2 deciders and 2 api replicas ready; topics %s, %s", spec.Commands, spec.Events)

	tail, err := tailEvents(ctx, kcfg, spec.Events)
	if err != nil {
		return nil, err
	}
	defer tail.close()
	load := &steadyLoad{w: &Workload{Prefix: prefix, APIs: urls(procs.apis), Rec: &Recorder{}, Think: time.Millisecond},
		rate: cfg.Rate, partitions: int(spec.Partitions)}
	loadCtx, stopLoad := context.WithCancel(ctx)
	loadDone := make(chan struct{})
	go func() { defer close(loadDone); load.run(loadCtx) }()
	defer func() { stopLoad(); <-loadDone }()

	// Measure nothing before decisions flow on every partition (the
	// first transactions, the api's first produces).
	if err := tail.waitFlowing(ctx, spec.Partitions, 2*time.Minute); err != nil {
		return nil, err
	}
	res := &FailoverResult{}
	warmup := [2]time.Time{time.Now()}
	sleep(ctx, cfg.Quiet)
	warmup[1] = time.Now()

	for i := range cfg.DeciderKills {
		if ctx.Err() != nil {
			break
		}
		// Partitions 0, 5, 10, 3, ...: both deciders get killed over a
		// few rounds.
		d := killDecider(ctx, procs.deciders, int32((i*5)%int(spec.Partitions)), tail, logf) //nolint:gosec // G115: below the partition count, an int32
		res.Deciders = append(res.Deciders, d)
		sleep(ctx, cfg.Quiet)
	}

	adm, closeAdm, err := admin(kcfg)
	if err != nil {
		return nil, err
	}
	defer closeAdm()
	var next atomic.Int32
	nem := &Nemesis{Cluster: cluster, BrokerHold: cfg.BrokerHold, PartitionHold: cfg.PartitionHold, Logf: logf,
		// Each broker in turn, so that the leaders and the
		// coordinators of every one are among them.
		Broker: func() int { return 1 + int(next.Add(1)-1)%3 }}
	faults := slices.Concat(slices.Repeat([]string{FaultKillBroker}, cfg.BrokerKills), slices.Repeat([]string{FaultPartitionBroker}, cfg.BrokerPartitions),
		slices.Repeat([]string{FaultKillController}, cfg.ControllerKills))
	for _, name := range faults {
		if ctx.Err() != nil {
			break
		}
		f := nem.Inject(ctx, name)
		sleep(ctx, cfg.Quiet)
		f.End = time.Now()
		res.Brokers = append(res.Brokers, f)
		// The next fault starts on a healthy cluster: every replica back
		// in sync.
		rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		if err := logadmin.PollReady(rctx, adm, 3, nil, nil); err != nil {
			logf("the cluster is not whole again after %s: %v", name, err)
		}
		cancel()
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("chaos: interrupted: %w", err)
	}
	log := tail.records()
	res.Decisions = len(log)
	res.Gaps, res.Baseline = gaps(log, res.Brokers, warmup)
	return res, nil
}

func admin(kcfg eventlog.Config) (*kadm.Client, func(), error) {
	cl, err := eventlog.NewClient(kcfg)
	if err != nil {
		return nil, nil, err
	}
	return kadm.NewClient(cl), cl.Close, nil
}

// killDecider kills the decider that owns partition p, waits until the
// survivor has decided on every partition the dead one owned, and brings
// it back.
func killDecider(ctx context.Context, deciders []*Proc, p int32, tail *eventTail, logf func(string, ...any)) DeciderFailover {
	var owner *Proc
	for i := 0; i < 300 && owner == nil && ctx.Err() == nil; i++ {
		for _, d := range deciders {
			if slices.Contains(d.Owned(), p) {
				owner = d
			}
		}
		if owner == nil {
			sleep(ctx, 100*time.Millisecond)
		}
	}
	if owner == nil {
		return DeciderFailover{Partition: p, Err: fmt.Sprintf("no decider owns partition %d", p)}
	}
	d := DeciderFailover{Killed: owner.Name, Partition: p, Owned: owner.Owned(), At: time.Now()}
	owner.Kill()
	logf("killed %s (partitions %v) for partition %d", owner.Name, d.Owned, p)
	deadline := time.Now().Add(2 * time.Minute)
	for ctx.Err() == nil {
		all := true
		for _, q := range d.Owned {
			t, ok := tail.firstAfter(q, d.At)
			if !ok {
				all = false
				continue
			}
			took := t.Sub(d.At)
			if q == p {
				d.First = took
			}
			if took > d.Slowest {
				d.Slowest, d.SlowestPartition = took, q
			}
		}
		if all {
			break
		}
		if time.Now().After(deadline) {
			d.Err = "no decision on some of its partitions within 2 minutes"
			break
		}
		d.Slowest = 0
		sleep(ctx, 100*time.Millisecond)
	}
	logf("%s: first decision on partition %d after %s; on all its partitions after %s (partition %d)",
		owner.Name, p, d.First.Round(time.Millisecond), d.Slowest.Round(time.Millisecond), d.SlowestPartition)
	if err := owner.Start(); err != nil {
		d.Err = err.Error()
		return d
	}
	if err := readyAll(ctx, owner); err != nil {
		d.Err = err.Error()
		return d
	}
	// Both deciders own partitions again before the next kill.
	for i := 0; i < 600 && ctx.Err() == nil; i++ {
		if len(deciders[0].Owned()) > 0 && len(deciders[1].Owned()) > 0 {
			break
		}
		sleep(ctx, 100*time.Millisecond)
	}
	return d
}

// steadyLoad submits requests at a fixed rate, round-robin over the
// partitions (each request id is picked so that it lands on the next
// partition), each on its own goroutine, as an open-loop client would:
// a write that waits for a dead decider does not slow the others.
type steadyLoad struct {
	w          *Workload
	rate       int
	partitions int
	seq        int
}

func (l *steadyLoad) run(ctx context.Context) {
	t := time.NewTicker(time.Second / time.Duration(l.rate))
	defer t.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	sem := make(chan struct{}, 1024) // bounded: a stalled cluster does not pile up goroutines
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rid := l.idFor(int32(i % l.partitions)) //nolint:gosec // G115: below the partition count (12)
		select {
		case sem <- struct{}{}:
		default:
			continue // 1,024 submits waiting: skip this one
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			l.w.client(i).submit(ctx, billing, rid, "deploy", "steady load", "")
		}()
	}
}

// idFor returns a fresh request id that lands on partition p.
func (l *steadyLoad) idFor(p int32) string {
	for {
		l.seq++
		rid := l.w.Prefix + "-s" + strconv.Itoa(l.seq)
		if wire.Partition([]byte(rid), l.partitions) == p {
			return rid
		}
	}
}

// eventTail follows the events topic (read_committed) and keeps the time
// of every decision, partition by partition.
type eventTail struct {
	cl     *kgo.Client
	done   chan struct{}
	mu     sync.Mutex
	byPart map[int32][]time.Time
	log    []systest.Record
}

func tailEvents(ctx context.Context, kcfg eventlog.Config, topic string) (*eventTail, error) {
	cl, err := eventlog.NewClient(kcfg, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return nil, err
	}
	t := &eventTail{cl: cl, done: make(chan struct{}), byPart: map[int32][]time.Time{}}
	go func() {
		defer close(t.done)
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			if fs.IsClientClosed() {
				return
			}
			fs.EachRecord(func(r *kgo.Record) {
				env, err := eventlog.DecodeRecord(r)
				if err != nil || env.Subject == "" { // a seal
					return
				}
				t.mu.Lock()
				t.byPart[r.Partition] = append(t.byPart[r.Partition], env.Time)
				t.log = append(t.log, systest.Record{Partition: r.Partition, Offset: r.Offset, Envelope: env})
				t.mu.Unlock()
			})
		}
	}()
	return t, nil
}

func (t *eventTail) close() {
	t.cl.Close()
	<-t.done
}

// firstAfter is the time of the first decision on p after at.
func (t *eventTail) firstAfter(p int32, at time.Time) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, e := range t.byPart[p] {
		if e.After(at) {
			return e, true
		}
	}
	return time.Time{}, false
}

// waitFlowing waits until each of the n partitions has had a decision in
// the last two seconds, or fails after within.
func (t *eventTail) waitFlowing(ctx context.Context, n int32, within time.Duration) error {
	deadline := time.Now().Add(within)
	for ctx.Err() == nil {
		recent := 0
		for p := range n {
			if _, ok := t.firstAfter(p, time.Now().Add(-2*time.Second)); ok {
				recent++
			}
		}
		if recent == int(n) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("chaos: decisions on only %d of %d partitions after %s of steady load", recent, n, within)
		}
		sleep(ctx, 200*time.Millisecond)
	}
	return ctx.Err()
}

func (t *eventTail) records() []systest.Record {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.log)
}

// Package kafkahealth reads the health of the Kafka cluster Assent runs on
// with kadm, and exports it as Prometheus metrics: partitions that are
// under-replicated, under their min.insync.replicas or offline, the last
// stable offset of each topic, the lag of consumer groups, and the KRaft
// controller quorum (its leader, and how long ago each voter was last
// caught up).
//
// # Why a separate reader
//
// Under-replicated partitions are a cluster fact, not a service fact: no
// service sees them in its own traffic until a write fails with
// NOT_ENOUGH_REPLICAS, which is too late for an alert. Group lag is the same:
// when every decider is down, no decider is left to export its group's lag.
// An [Exporter] polls the cluster on its own schedule (one Metadata, one
// DescribeConfigs, one OffsetFetch, one DescribeGroups and one ListOffsets
// per period) and a scrape only reads the last snapshot, so scraping is
// cheap and cannot overload the brokers.
//
// # Lag against the last stable offset
//
// Group lag is the last stable offset minus the committed offset. The high
// watermark would count the transaction markers the decider writes, so a
// caught-up consumer of a transactional topic would read a lag of 1 for
// ever.
//
// The kafka-health service (services/kafka-health) serves these metrics.
package health

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/assent-dev/assent/libs/logadmin"
)

// Config says what to read.
type Config struct {
	// Topics to report on; empty means every topic, the internal ones
	// (__consumer_offsets, __transaction_state) included, because
	// transactions stop when __transaction_state is under its min ISR.
	Topics []string
	// Groups whose lag to report; empty means every group.
	Groups []string
	// Period between reads (default 10s); Timeout bounds one read
	// (default Period).
	Period  time.Duration
	Timeout time.Duration
}

// TopicHealth is one topic's replication state.
type TopicHealth struct {
	Partitions      int
	UnderReplicated int   // ISR smaller than the replica set
	UnderMinISR     int   // ISR smaller than min.insync.replicas: acks=all writes fail
	Offline         int   // no leader: reads and writes fail
	StableOffset    int64 // sum over partitions of the last stable offset
	MinISR          int   // min.insync.replicas, 0 when unknown
}

// GroupLag is one consumer group's lag on one topic.
type GroupLag struct {
	Group, Topic string
	Lag          int64
	Committed    int64 // sum over partitions of the committed offsets: it moves when the group makes progress
}

// GroupState is one consumer group's state and member count.
type GroupState struct {
	Group   string
	State   string
	Members int
}

// Quorum is the KRaft controller quorum as its leader describes it
// (DescribeQuorum, which the brokers forward to the controllers).
type Quorum struct {
	Leader int32 // the active controller's node id; -1: none known
	Voters []Voter
}

// Voter is one controller of the quorum.
type Voter struct {
	ID int32
	// CaughtUpAge is how long before the leader's answer the voter last
	// had the whole metadata log, on the leader's clock; Known is false
	// when that cannot be told (no leader, or never caught up). A voter
	// that is down or cut off ages from its loss on.
	CaughtUpAge time.Duration
	Known       bool
}

// Snapshot is one reading of the cluster.
type Snapshot struct {
	Time    time.Time
	Brokers int
	Topics  map[string]TopicHealth
	Lags    []GroupLag
	Groups  []GroupState
	// Quorum is the controller quorum; its Leader is -1 when it could not
	// be read (no active controller answered, or no DESCRIBE on the
	// cluster).
	Quorum Quorum
}

// Read takes one snapshot. Errors on single topics or groups leave them
// out of the snapshot; an error is returned only when nothing could be
// read at all.
func Read(ctx context.Context, cl *kgo.Client, cfg Config) (Snapshot, error) {
	adm := kadm.NewClient(cl)
	snap := Snapshot{Topics: map[string]TopicHealth{}}
	// WithAuthorizedOps bypasses kadm's metadata cache: an alert must see
	// the ISR as it is now.
	md, err := adm.Metadata(kadm.WithAuthorizedOps(ctx), cfg.Topics...)
	if err != nil {
		return snap, fmt.Errorf("kafkahealth: metadata: %w", err)
	}
	snap.Brokers = len(md.Brokers)
	var names []string
	for _, td := range md.Topics {
		if td.Err == nil {
			names = append(names, td.Topic)
		}
	}
	slices.Sort(names)
	minISR := map[string]int{}
	if len(names) > 0 {
		rcs, err := adm.DescribeTopicConfigs(ctx, names...)
		if err == nil {
			for _, rc := range rcs {
				for _, c := range rc.Configs {
					if c.Key == "min.insync.replicas" && c.Value != nil {
						if n, err := strconv.Atoi(*c.Value); err == nil {
							minISR[rc.Name] = n
						}
					}
				}
			}
		}
	}
	var stable kadm.ListedOffsets
	if len(names) > 0 {
		// ListCommittedOffsets lists last stable offsets (isolation
		// level read_committed). Shard errors leave partitions out.
		stable, _ = adm.ListCommittedOffsets(ctx, names...)
	}
	snap.Topics = Summarize(md.Topics, minISR, stable)
	snap.Quorum = Quorum{Leader: -1}
	if p, err := logadmin.DescribeQuorum(ctx, cl); err == nil {
		snap.Quorum = quorumOf(p)
	}

	lags, groups, err := readGroups(ctx, adm, cfg.Groups, stable, names)
	if err != nil {
		return snap, err
	}
	snap.Lags, snap.Groups = lags, groups
	return snap, nil
}

// QuorumOf reads a DescribeQuorum answer for the metadata log's one
// partition. The leader reports itself caught up at the time it answers,
// so a voter's age is the leader's last-caught-up time minus the voter's.
func QuorumOf(resp *kmsg.DescribeQuorumResponse) (Quorum, error) {
	p, err := logadmin.QuorumPartition(resp)
	if err != nil {
		return Quorum{}, fmt.Errorf("kafkahealth: %w", err)
	}
	return quorumOf(p), nil
}

func quorumOf(p kmsg.DescribeQuorumResponseTopicPartition) Quorum {
	q := Quorum{Leader: p.LeaderID}
	now := int64(-1)
	for _, v := range p.CurrentVoters {
		if v.ReplicaID == p.LeaderID && p.LeaderID >= 0 {
			now = v.LastCaughtUpTimestamp
		}
	}
	for _, v := range p.CurrentVoters {
		voter := Voter{ID: v.ReplicaID}
		if now >= 0 && v.LastCaughtUpTimestamp >= 0 {
			voter.Known = true
			voter.CaughtUpAge = time.Duration(max(now-v.LastCaughtUpTimestamp, 0)) * time.Millisecond
		}
		q.Voters = append(q.Voters, voter)
	}
	return q
}

// Summarize counts, per topic, the partitions that are under-replicated,
// under their min ISR or offline, and sums the last stable offsets.
func Summarize(topics kadm.TopicDetails, minISR map[string]int, stable kadm.ListedOffsets) map[string]TopicHealth {
	out := make(map[string]TopicHealth, len(topics))
	for _, td := range topics {
		if td.Err != nil {
			continue
		}
		h := TopicHealth{Partitions: len(td.Partitions), MinISR: minISR[td.Topic]}
		for _, p := range td.Partitions {
			switch {
			case p.Leader < 0:
				h.Offline++
				h.UnderReplicated++
				h.UnderMinISR++
				continue
			case len(p.ISR) < len(p.Replicas):
				h.UnderReplicated++
			}
			if h.MinISR > 0 && len(p.ISR) < h.MinISR {
				h.UnderMinISR++
			}
		}
		for _, o := range stable[td.Topic] {
			if o.Err == nil && o.Offset > 0 {
				h.StableOffset += o.Offset
			}
		}
		out[td.Topic] = h
	}
	return out
}

// readGroups reads the committed offsets and states of the groups (all
// groups when none are named) and their lag on the topics they committed
// to.
func readGroups(ctx context.Context, adm *kadm.Client, want []string, stable kadm.ListedOffsets, known []string) ([]GroupLag, []GroupState, error) {
	groups := want
	if len(groups) == 0 {
		listed, err := adm.ListGroups(ctx)
		if err != nil && len(listed) == 0 {
			return nil, nil, fmt.Errorf("kafkahealth: list groups: %w", err)
		}
		groups = listed.Groups()
	}
	if len(groups) == 0 {
		return nil, nil, nil
	}
	var states []GroupState
	described, _ := adm.DescribeGroups(ctx, groups...)
	for _, g := range described.Sorted() {
		if g.Err == nil {
			states = append(states, GroupState{Group: g.Group, State: g.State, Members: len(g.Members)})
		}
	}
	fetched := adm.FetchManyOffsets(ctx, groups...)
	// Topics committed to that the metadata read did not cover (a
	// restricted Topics list) need their own stable offsets.
	var missing []string
	for _, r := range fetched {
		for t := range r.Fetched {
			if !slices.Contains(known, t) && !slices.Contains(missing, t) {
				missing = append(missing, t)
			}
		}
	}
	if len(missing) > 0 {
		extra, _ := adm.ListCommittedOffsets(ctx, missing...)
		merged := kadm.ListedOffsets{}
		for t, ps := range stable {
			merged[t] = ps
		}
		for t, ps := range extra {
			merged[t] = ps
		}
		stable = merged
	}
	var lags []GroupLag
	var errs []error
	for _, g := range groups {
		r, ok := fetched[g]
		if !ok {
			continue
		}
		if r.Err != nil {
			errs = append(errs, fmt.Errorf("group %s: %w", g, r.Err))
			continue
		}
		lags = append(lags, Lag(g, r.Fetched, stable)...)
	}
	if len(lags) == 0 && len(errs) > 0 {
		return nil, states, fmt.Errorf("kafkahealth: fetch offsets: %w", errors.Join(errs...))
	}
	return lags, states, nil
}

// Lag computes one group's lag per topic: for every partition of a topic
// the group committed to, the last stable offset minus the committed
// offset (the whole partition when nothing is committed on it).
func Lag(group string, committed kadm.OffsetResponses, stable kadm.ListedOffsets) []GroupLag {
	var out []GroupLag
	for _, topic := range slices.Sorted(maps.Keys(committed)) {
		ends, ok := stable[topic]
		if !ok {
			continue
		}
		var lag, sum int64
		for p, end := range ends {
			if end.Err != nil || end.Offset < 0 {
				continue
			}
			at := int64(0)
			if c, ok := committed[topic][p]; ok && c.Err == nil && c.At >= 0 {
				at = c.At
			}
			lag += max(0, end.Offset-at)
			sum += at
		}
		out = append(out, GroupLag{Group: group, Topic: topic, Lag: lag, Committed: sum})
	}
	return out
}

// Exporter polls the cluster every period and serves the last snapshot
// as Prometheus metrics. It is a prometheus.Collector.
type Exporter struct {
	cl  *kgo.Client
	cfg Config

	mu    sync.Mutex
	snap  Snapshot
	valid bool

	reads *prometheus.CounterVec
	last  prometheus.Gauge
	took  prometheus.Gauge
}

// New returns an Exporter; call Run to start polling.
func New(cl *kgo.Client, cfg Config) *Exporter {
	if cfg.Period <= 0 {
		cfg.Period = 10 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = cfg.Period
	}
	return &Exporter{
		cl: cl, cfg: cfg,
		reads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "assent_kafka_health_reads_total", Help: "Reads of the cluster's health, by result (ok, error).",
		}, []string{"result"}),
		last: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "assent_kafka_health_last_read_timestamp_seconds", Help: "Unix time of the last successful read of the cluster's health.",
		}),
		took: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "assent_kafka_health_read_seconds", Help: "How long the last read of the cluster's health took.",
		}),
	}
}

// Register registers the exporter and its own bookkeeping metrics.
func (e *Exporter) Register(reg prometheus.Registerer) error {
	e.reads.WithLabelValues("ok")
	e.reads.WithLabelValues("error")
	return errors.Join(reg.Register(e), reg.Register(e.reads), reg.Register(e.last), reg.Register(e.took))
}

// Snapshot returns the last snapshot and whether there is one.
func (e *Exporter) Snapshot() (Snapshot, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.snap, e.valid
}

// Run reads the cluster every period until ctx ends. Failed reads are
// counted and retried at the next period; the last good snapshot stays
// exported, and assent_kafka_health_last_read_timestamp_seconds tells how
// old it is.
func (e *Exporter) Run(ctx context.Context) error {
	t := time.NewTicker(e.cfg.Period)
	defer t.Stop()
	for {
		_ = e.ReadOnce(ctx) // counted; the next period retries
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// ReadOnce takes one snapshot and keeps it if it succeeded.
func (e *Exporter) ReadOnce(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, e.cfg.Timeout)
	defer cancel()
	start := time.Now()
	snap, err := Read(rctx, e.cl, e.cfg)
	e.took.Set(time.Since(start).Seconds())
	if err != nil {
		e.reads.WithLabelValues("error").Inc()
		return err
	}
	snap.Time = time.Now()
	e.reads.WithLabelValues("ok").Inc()
	e.last.Set(float64(snap.Time.UnixNano()) / 1e9)
	e.mu.Lock()
	e.snap, e.valid = snap, true
	e.mu.Unlock()
	return nil
}

var (
	descBrokers   = prometheus.NewDesc("assent_kafka_brokers", "Brokers registered in the cluster's metadata.", nil, nil)
	descParts     = prometheus.NewDesc("assent_kafka_partitions", "Partitions of a topic.", []string{"topic"}, nil)
	descUnderRep  = prometheus.NewDesc("assent_kafka_under_replicated_partitions", "Partitions whose in-sync replica set is smaller than their replica set.", []string{"topic"}, nil)
	descUnderMin  = prometheus.NewDesc("assent_kafka_under_min_isr_partitions", "Partitions with fewer in-sync replicas than min.insync.replicas: acks=all writes to them fail.", []string{"topic"}, nil)
	descOffline   = prometheus.NewDesc("assent_kafka_offline_partitions", "Partitions without a leader.", []string{"topic"}, nil)
	descStable    = prometheus.NewDesc("assent_kafka_topic_last_stable_offset", "Sum over a topic's partitions of the last stable offset; it grows with every committed record and transaction marker.", []string{"topic"}, nil)
	descLag       = prometheus.NewDesc("assent_kafka_consumer_group_lag_records", "Records a consumer group has not yet committed past, on one topic, measured against the last stable offset.", []string{"group", "topic"}, nil)
	descCommitted = prometheus.NewDesc("assent_kafka_consumer_group_committed_offset", "Sum over a topic's partitions of a consumer group's committed offsets; it stands still when the group makes no progress.", []string{"group", "topic"}, nil)
	descMembers   = prometheus.NewDesc("assent_kafka_consumer_group_members", "Members of a consumer group.", []string{"group", "state"}, nil)
	descLeader    = prometheus.NewDesc("assent_kafka_controller_quorum_leader", "Node id of the active KRaft controller; -1 when no controller answered.", nil, nil)
	descVoterAge  = prometheus.NewDesc("assent_kafka_controller_quorum_voter_caught_up_age_seconds", "How long ago a controller (a voter of the KRaft quorum) last had the whole metadata log, on the active controller's clock.", []string{"node"}, nil)
	collectorDesc = []*prometheus.Desc{descBrokers, descParts, descUnderRep, descUnderMin, descOffline, descStable, descLag, descCommitted, descMembers, descLeader, descVoterAge}
)

// Describe implements prometheus.Collector.
func (e *Exporter) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range collectorDesc {
		ch <- d
	}
}

// Collect implements prometheus.Collector: it exports the last snapshot,
// or nothing before the first successful read.
func (e *Exporter) Collect(ch chan<- prometheus.Metric) {
	snap, ok := e.Snapshot()
	if !ok {
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(descBrokers, float64(snap.Brokers))
	for topic, h := range snap.Topics {
		gauge(descParts, float64(h.Partitions), topic)
		gauge(descUnderRep, float64(h.UnderReplicated), topic)
		gauge(descUnderMin, float64(h.UnderMinISR), topic)
		gauge(descOffline, float64(h.Offline), topic)
		gauge(descStable, float64(h.StableOffset), topic)
	}
	for _, l := range snap.Lags {
		gauge(descLag, float64(l.Lag), l.Group, l.Topic)
		gauge(descCommitted, float64(l.Committed), l.Group, l.Topic)
	}
	for _, g := range snap.Groups {
		gauge(descMembers, float64(g.Members), g.Group, g.State)
	}
	gauge(descLeader, float64(snap.Quorum.Leader))
	for _, v := range snap.Quorum.Voters {
		if v.Known {
			gauge(descVoterAge, v.CaughtUpAge.Seconds(), strconv.Itoa(int(v.ID)))
		}
	}
}

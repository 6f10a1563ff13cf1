package health_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/assent-dev/assent/services/kafka-health/internal/health"
	"github.com/assent-dev/assent/test/kafkatest"
)

// TestIntegrationReadAndExport reads a real cluster: per-test topics of 3
// partitions at replication factor 3, a transactional producer on the
// events topic, and a group that committed part of the commands topic. It
// checks the replication counts, that the lag of a group that is caught up
// on a transactional topic reads 0 (not 1, as the high watermark would
// make it), and what the exporter serves.
func TestIntegrationReadAndExport(t *testing.T) {
	spec := kafkatest.NewTopics(t, 3)
	adm := kafkatest.NewAdmin(t)
	ctx := t.Context()

	plain := kafkatest.NewClient(t)
	for i := range 9 {
		r := &kgo.Record{Topic: spec.Commands, Partition: int32(i % 3), Value: []byte("c")}
		require.NoError(t, plain.ProduceSync(ctx, r).FirstErr())
	}
	txn := kafkatest.NewClient(t, kgo.TransactionalID("kafkahealth-"+spec.Events), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	require.NoError(t, txn.BeginTransaction())
	for i := range 4 {
		require.NoError(t, txn.ProduceSync(ctx, &kgo.Record{Topic: spec.Events, Partition: int32(i % 2), Value: []byte("e")}).FirstErr())
	}
	require.NoError(t, txn.EndTransaction(ctx, kgo.TryCommit))

	group := "kafkahealth-" + spec.Commands
	eventsGroup := group + "-events"
	var commit kadm.Offsets
	commit.AddOffset(spec.Commands, 0, 3, -1) // caught up
	commit.AddOffset(spec.Commands, 1, 1, -1) // 2 behind; partition 2: nothing committed, 3 behind
	err := adm.CommitAllOffsets(ctx, group, commit)
	require.NoError(t, err)
	// A reader that consumed everything on the events topic commits past
	// the commit marker (offsets 0 and 1 are data, 2 the marker).
	var ev kadm.Offsets
	ev.AddOffset(spec.Events, 0, 3, -1)
	ev.AddOffset(spec.Events, 1, 3, -1)
	err = adm.CommitAllOffsets(ctx, eventsGroup, ev)
	require.NoError(t, err)

	// An open transaction moves the high watermark but not the last
	// stable offset: a read_committed reader cannot read past it yet, so
	// it is not behind.
	require.NoError(t, txn.BeginTransaction())
	require.NoError(t, txn.ProduceSync(ctx, &kgo.Record{Topic: spec.Events, Partition: 0, Value: []byte("open")}).FirstErr())
	defer func() { require.NoError(t, txn.EndTransaction(context.WithoutCancel(ctx), kgo.TryAbort)) }()
	hw, err := adm.ListEndOffsets(ctx, spec.Events)
	require.NoError(t, err)
	var hwSum int64
	hw.Each(func(o kadm.ListedOffset) { hwSum += o.Offset })
	require.Equal(t, int64(2*3+1), hwSum)

	cfg := health.Config{Topics: []string{spec.Commands, spec.Events}, Groups: []string{group, eventsGroup}}
	var snap health.Snapshot
	// The markers of the committed transaction reach the stable offset a
	// moment after EndTransaction returns: poll.
	require.Eventually(t, func() bool {
		snap, err = health.Read(ctx, plain, cfg)
		require.NoError(t, err)
		return snap.Topics[spec.Events].StableOffset == 2*3
	}, 20*time.Second, 100*time.Millisecond)

	require.Equal(t, 3, snap.Brokers)
	for _, topic := range []string{spec.Commands, spec.Events} {
		h := snap.Topics[topic]
		require.Equal(t, 3, h.Partitions, topic)
		require.Equal(t, 2, h.MinISR, topic)
		require.Zero(t, h.UnderReplicated, topic)
		require.Zero(t, h.Offline, topic)
	}
	require.Equal(t, int64(9), snap.Topics[spec.Commands].StableOffset)
	require.ElementsMatch(t, []health.GroupLag{
		{Group: group, Topic: spec.Commands, Lag: 2 + 3, Committed: 3 + 1},
		{Group: eventsGroup, Topic: spec.Events, Lag: 0, Committed: 3 + 3},
	}, snap.Lags)

	// The quorum: three voters, the leader among them, each caught up a
	// moment ago (the leader writes to the metadata log every 500 ms).
	require.Len(t, snap.Quorum.Voters, 3)
	var ids []int32
	for _, v := range snap.Quorum.Voters {
		ids = append(ids, v.ID)
		require.True(t, v.Known, "voter %d", v.ID)
		require.Less(t, v.CaughtUpAge, 10*time.Second, "voter %d", v.ID)
	}
	require.Contains(t, ids, snap.Quorum.Leader)

	exp := health.New(plain, cfg)
	reg := prometheus.NewRegistry()
	require.NoError(t, exp.Register(reg))
	require.Zero(t, testutil.CollectAndCount(exp), "nothing is exported before the first read")
	require.NoError(t, exp.ReadOnce(ctx))
	want := strings.NewReader(`
# HELP assent_kafka_under_replicated_partitions Partitions whose in-sync replica set is smaller than their replica set.
# TYPE assent_kafka_under_replicated_partitions gauge
assent_kafka_under_replicated_partitions{topic="` + spec.Commands + `"} 0
assent_kafka_under_replicated_partitions{topic="` + spec.Events + `"} 0
# HELP assent_kafka_consumer_group_lag_records Records a consumer group has not yet committed past, on one topic, measured against the last stable offset.
# TYPE assent_kafka_consumer_group_lag_records gauge
assent_kafka_consumer_group_lag_records{group="` + group + `",topic="` + spec.Commands + `"} 5
assent_kafka_consumer_group_lag_records{group="` + eventsGroup + `",topic="` + spec.Events + `"} 0
`)
	require.NoError(t, testutil.GatherAndCompare(reg, want,
		"assent_kafka_under_replicated_partitions", "assent_kafka_consumer_group_lag_records"))
	mfs, err := reg.Gather()
	require.NoError(t, err)
	exported := map[string]int{}
	for _, mf := range mfs {
		exported[mf.GetName()] = len(mf.GetMetric())
	}
	require.Equal(t, 1, exported["assent_kafka_controller_quorum_leader"])
	require.Equal(t, 3, exported["assent_kafka_controller_quorum_voter_caught_up_age_seconds"], "one age per voter")
	require.Equal(t, 1.0, testutil.ToFloat64(prometheusCounter(t, reg, "assent_kafka_health_reads_total", "ok")))
}

func prometheusCounter(t *testing.T, reg *prometheus.Registry, name, result string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "x"}, func() float64 { return m.GetCounter().GetValue() })
				}
			}
		}
	}
	t.Fatalf("%s{result=%q} not exported", name, result)
	return nil
}

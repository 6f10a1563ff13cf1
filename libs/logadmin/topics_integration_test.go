package logadmin_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/assent-dev/assent/libs/logadmin"
	"github.com/assent-dev/assent/test/kafkatest"
)

func TestIntegrationProvisionIsIdempotent(t *testing.T) {
	t.Parallel()
	spec := kafkatest.TopicSpec(t, 12)
	adm := kafkatest.NewAdmin(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	report, err := logadmin.Provision(ctx, adm, spec)
	require.NoError(t, err)
	require.Equal(t, []logadmin.Action{logadmin.Created, logadmin.Created}, actions(report))

	report, err = logadmin.Provision(ctx, adm, spec)
	require.NoError(t, err)
	require.Equal(t, []logadmin.Action{logadmin.Verified, logadmin.Verified}, actions(report))
	require.NoError(t, logadmin.CheckTopics(ctx, adm, spec))

	require.NoError(t, logadmin.PollReady(ctx, adm, 3, []string{spec.Commands, spec.Events}, nil))
	r, err := logadmin.CheckReady(ctx, adm, 3, spec.Commands, spec.Events)
	require.NoError(t, err)
	require.Equal(t, 24, r.Partitions)

	events := topicConfigs(t, adm, spec.Events)
	require.Equal(t, "-1", events["retention.ms"])
	require.Equal(t, "-1", events["retention.bytes"])
	require.Equal(t, "delete", events["cleanup.policy"])
	require.Equal(t, "2", events["min.insync.replicas"])
	commands := topicConfigs(t, adm, spec.Commands)
	require.Equal(t, "604800000", commands["retention.ms"])
	require.Equal(t, "delete", commands["cleanup.policy"])
	require.Equal(t, "2", commands["min.insync.replicas"])
}

func TestIntegrationProvisionRefusesMismatch(t *testing.T) {
	t.Parallel()
	goodEvents := map[string]string{"retention.ms": "-1", "retention.bytes": "-1", "min.insync.replicas": "2"}
	for _, tc := range []struct {
		name    string
		events  int32             // partitions of the pre-created events topic
		configs map[string]string // its configs
		want    logadmin.Mismatch
	}{
		{"events with 6 partitions", 6, goodEvents, logadmin.Mismatch{Setting: "partitions", Got: "6", Want: "12"}},
		{"events compacted", 12, with(goodEvents, "cleanup.policy", "compact"), logadmin.Mismatch{Setting: "cleanup.policy", Got: "compact", Want: "delete"}},
		{"events with 7-day retention", 12, with(goodEvents, "retention.ms", "604800000"), logadmin.Mismatch{Setting: "retention.ms", Got: "604800000", Want: "-1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			spec := kafkatest.TopicSpec(t, 12)
			adm := kafkatest.NewAdmin(t)
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			createTopic(t, adm, spec.Events, tc.events, 3, tc.configs)

			_, err := logadmin.Provision(ctx, adm, spec)
			var me *logadmin.MismatchError
			require.ErrorAs(t, err, &me)
			tc.want.Topic = spec.Events
			require.Equal(t, []logadmin.Mismatch{tc.want}, me.Mismatches)
			require.ErrorContains(t, err, spec.Events+": "+tc.want.Setting+" = "+tc.want.Got+", want "+tc.want.Want)
			require.ErrorContains(t, err, "never altered")

			// Nothing was created, and nothing was altered.
			err = logadmin.CheckTopics(ctx, adm, spec)
			require.ErrorAs(t, err, &me)
			require.Contains(t, me.Mismatches, logadmin.Mismatch{Topic: spec.Commands, Setting: "exists", Got: "no", Want: "yes"})
			require.Contains(t, me.Mismatches, tc.want)
			if tc.want.Setting != "partitions" {
				require.Equal(t, tc.want.Got, topicConfigs(t, adm, spec.Events)[tc.want.Setting])
			}
		})
	}
}

// TestIntegrationCheckTopicsRefusesDifferentPartitionCounts is the check
// every service makes at start: it refuses a commands topic and an events
// topic whose partition counts differ.
func TestIntegrationCheckTopicsRefusesDifferentPartitionCounts(t *testing.T) {
	t.Parallel()
	spec := kafkatest.TopicSpec(t, 3)
	adm := kafkatest.NewAdmin(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	createTopic(t, adm, spec.Commands, 3, 3, map[string]string{"retention.ms": "604800000", "cleanup.policy": "delete", "min.insync.replicas": "2"})
	createTopic(t, adm, spec.Events, 2, 3, map[string]string{"retention.ms": "-1", "retention.bytes": "-1", "min.insync.replicas": "2"})

	err := logadmin.CheckTopics(ctx, adm, spec)
	var me *logadmin.MismatchError
	require.ErrorAs(t, err, &me)
	require.Equal(t, []logadmin.Mismatch{
		{Topic: spec.Events, Setting: "partitions", Got: "2", Want: "3"},
		{Topic: spec.Commands + ", " + spec.Events, Setting: "partitions", Got: "3 and 2", Want: "equal"},
	}, me.Mismatches)
}

func TestIntegrationWaitReady(t *testing.T) {
	t.Parallel()
	adm := kafkatest.NewAdmin(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	require.NoError(t, logadmin.WaitReady(ctx, adm, 3))
	r, err := logadmin.CheckReady(ctx, adm, 3)
	require.NoError(t, err)
	require.Equal(t, 3, r.Brokers)
}

func actions(r logadmin.Report) []logadmin.Action {
	var as []logadmin.Action
	for _, t := range r.Topics {
		as = append(as, t.Action)
	}
	return as
}

func with(m map[string]string, k, v string) map[string]string {
	out := map[string]string{k: v}
	for mk, mv := range m {
		if mk != k {
			out[mk] = mv
		}
	}
	return out
}

func topicConfigs(t *testing.T, adm *kadm.Client, topic string) map[string]string {
	t.Helper()
	rcs, err := adm.DescribeTopicConfigs(t.Context(), topic)
	require.NoError(t, err)
	rc, err := rcs.On(topic, nil)
	require.NoError(t, err)
	require.NoError(t, rc.Err)
	out := map[string]string{}
	for _, c := range rc.Configs {
		out[c.Key] = c.MaybeValue()
	}
	return out
}

// TestIntegrationConnect: a service starts on topics that match its spec,
// and refuses, naming the difference, topics that do not.
func TestIntegrationConnect(t *testing.T) {
	t.Parallel()
	spec := kafkatest.NewTopics(t, 3)
	cfg := kafkatest.Config(t, "connect-test")
	cl, err := logadmin.Connect(t.Context(), cfg, spec)
	require.NoError(t, err)
	require.NoError(t, cl.Ping(t.Context()))
	cl.Close()

	wrong := spec
	wrong.Partitions = 6
	cl, err = logadmin.Connect(t.Context(), cfg, wrong)
	require.Nil(t, cl)
	var me *logadmin.MismatchError
	require.ErrorAs(t, err, &me)
	require.Contains(t, me.Mismatches, logadmin.Mismatch{Topic: spec.Events, Setting: "partitions", Got: "3", Want: "6"})
	require.ErrorContains(t, err, "topics: ")
}

// TestIntegrationProvisionReportsWhatTheClusterRefuses: a spec the cluster
// cannot meet is refused with the broker's reason, and nothing is created.
func TestIntegrationProvisionReportsWhatTheClusterRefuses(t *testing.T) {
	t.Parallel()
	spec := kafkatest.TopicSpec(t, 3)
	spec.ReplicationFactor = 4 // three brokers
	adm := kafkatest.NewAdmin(t)
	_, err := logadmin.Provision(t.Context(), adm, spec)
	require.ErrorIs(t, err, kerr.InvalidReplicationFactor)
	require.ErrorContains(t, err, "create topic "+spec.Commands)

	spec.ReplicationFactor = 3
	err = logadmin.CheckTopics(t.Context(), adm, spec)
	var me *logadmin.MismatchError
	require.ErrorAs(t, err, &me)
	require.Equal(t, []logadmin.Mismatch{
		{Topic: spec.Commands, Setting: "exists", Got: "no", Want: "yes"},
		{Topic: spec.Events, Setting: "exists", Got: "no", Want: "yes"},
	}, me.Mismatches)
}

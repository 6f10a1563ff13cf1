package logadmin_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/logadmin"
)

func TestDefaultTopicSpec(t *testing.T) {
	t.Parallel()
	spec := eventlog.DefaultTopicSpec()
	require.Equal(t, eventlog.TopicSpec{
		Commands: "assent.commands.v1", Events: "assent.events.v1",
		Partitions: 12, ReplicationFactor: 3, MinInsyncReplicas: 2,
	}, spec)
	require.NoError(t, spec.Validate())
	require.Equal(t, map[string]map[string]string{
		"assent.commands.v1": {"min.insync.replicas": "2", "retention.ms": "604800000", "cleanup.policy": "delete"},
		"assent.events.v1":   {"min.insync.replicas": "2", "retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"},
	}, spec.Configs())
}

func TestTopicSpecValidate(t *testing.T) {
	t.Parallel()
	for name, mutate := range map[string]func(*eventlog.TopicSpec){
		"no commands name": func(s *eventlog.TopicSpec) { s.Commands = "" },
		"same names":       func(s *eventlog.TopicSpec) { s.Events = s.Commands },
		"no partitions":    func(s *eventlog.TopicSpec) { s.Partitions = 0 },
		"no replication":   func(s *eventlog.TopicSpec) { s.ReplicationFactor = 0 },
		"min ISR above RF": func(s *eventlog.TopicSpec) { s.MinInsyncReplicas = 4 },
		"min ISR zero":     func(s *eventlog.TopicSpec) { s.MinInsyncReplicas = 0 },
	} {
		spec := eventlog.DefaultTopicSpec()
		mutate(&spec)
		require.ErrorContains(t, spec.Validate(), "eventlog: topic spec", name)
	}
}

func TestMismatchErrorMessage(t *testing.T) {
	t.Parallel()
	err := &logadmin.MismatchError{Mismatches: []logadmin.Mismatch{
		{Topic: "assent.events.v1", Setting: "partitions", Got: "6", Want: "12"},
		{Topic: "assent.events.v1", Setting: "cleanup.policy", Got: "compact", Want: "delete"},
	}}
	require.Contains(t, err.Error(), "eventlog: topics differ from the spec: assent.events.v1: partitions = 6, want 12; cleanup.policy = compact, want delete. ")
	require.Contains(t, err.Error(), "--entity-name assent.events.v1 --add-config cleanup.policy=delete")
	require.Contains(t, err.Error(), "delete and re-provision it")
}

// spec returns a small spec for kfake, which has three brokers here.
func spec(partitions int32) eventlog.TopicSpec {
	return eventlog.TopicSpec{Commands: "c", Events: "e", Partitions: partitions, ReplicationFactor: 3, MinInsyncReplicas: 2}
}

func TestProvisionCreatesThenVerifies(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	_, adm := fakeCluster(t, 3)
	s := spec(4)

	err := logadmin.CheckTopics(ctx, adm, s)
	var me *logadmin.MismatchError
	require.ErrorAs(t, err, &me)
	require.Equal(t, []logadmin.Mismatch{
		{Topic: "c", Setting: "exists", Got: "no", Want: "yes"},
		{Topic: "e", Setting: "exists", Got: "no", Want: "yes"},
	}, me.Mismatches)

	report, err := logadmin.Provision(ctx, adm, s)
	require.NoError(t, err)
	require.Len(t, report.Topics, 2)
	require.Equal(t, logadmin.Created, report.Topics[0].Action)
	require.Equal(t, logadmin.Created, report.Topics[1].Action)
	require.Contains(t, report.String(), "c: created (4 partitions, replication factor 3, cleanup.policy=delete, min.insync.replicas=2, retention.ms=604800000)")

	report, err = logadmin.Provision(ctx, adm, s)
	require.NoError(t, err)
	require.Equal(t, logadmin.Verified, report.Topics[0].Action)
	require.Equal(t, logadmin.Verified, report.Topics[1].Action)
	require.NoError(t, logadmin.CheckTopics(ctx, adm, s))

	cfgs, err := adm.DescribeTopicConfigs(ctx, "e")
	require.NoError(t, err)
	rc, err := cfgs.On("e", nil)
	require.NoError(t, err)
	got := map[string]string{}
	for _, c := range rc.Configs {
		got[c.Key] = c.MaybeValue()
	}
	require.Equal(t, "-1", got["retention.ms"])
	require.Equal(t, "delete", got["cleanup.policy"])
	require.Equal(t, "2", got["min.insync.replicas"])
}

func TestProvisionRefusesMismatches(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		precreate  func(t *testing.T, adm *kadm.Client)
		mismatches []logadmin.Mismatch
	}{
		{
			name: "events partitions",
			precreate: func(t *testing.T, adm *kadm.Client) {
				createTopic(t, adm, "e", 6, 3, map[string]string{"retention.ms": "-1", "retention.bytes": "-1", "min.insync.replicas": "2"})
			},
			mismatches: []logadmin.Mismatch{{Topic: "e", Setting: "partitions", Got: "6", Want: "4"}},
		},
		{
			name: "events compacted",
			precreate: func(t *testing.T, adm *kadm.Client) {
				createTopic(t, adm, "e", 4, 3, map[string]string{"retention.ms": "-1", "retention.bytes": "-1", "min.insync.replicas": "2", "cleanup.policy": "compact"})
			},
			mismatches: []logadmin.Mismatch{{Topic: "e", Setting: "cleanup.policy", Got: "compact", Want: "delete"}},
		},
		{
			name: "commands defaults",
			precreate: func(t *testing.T, adm *kadm.Client) {
				createTopic(t, adm, "c", 4, 1, nil)
			},
			mismatches: []logadmin.Mismatch{
				{Topic: "c", Setting: "replication factor", Got: "1", Want: "3"},
				{Topic: "c", Setting: "min.insync.replicas", Got: "1", Want: "2"},
			},
		},
		{
			name: "partition counts differ",
			precreate: func(t *testing.T, adm *kadm.Client) {
				createTopic(t, adm, "c", 4, 3, map[string]string{"min.insync.replicas": "2"})
				createTopic(t, adm, "e", 2, 3, map[string]string{"retention.ms": "-1", "retention.bytes": "-1", "min.insync.replicas": "2"})
			},
			mismatches: []logadmin.Mismatch{
				{Topic: "e", Setting: "partitions", Got: "2", Want: "4"},
				{Topic: "c, e", Setting: "partitions", Got: "4 and 2", Want: "equal"},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			_, adm := fakeCluster(t, 3)
			tc.precreate(t, adm)
			before := existingTopics(t, adm)

			_, err := logadmin.Provision(ctx, adm, spec(4))
			var me *logadmin.MismatchError
			require.ErrorAs(t, err, &me)
			require.Equal(t, tc.mismatches, me.Mismatches)

			require.Equal(t, before, existingTopics(t, adm), "Provision must create nothing when it refuses")

			err = logadmin.CheckTopics(ctx, adm, spec(4))
			require.ErrorAs(t, err, &me)
			for _, m := range tc.mismatches {
				require.Contains(t, me.Mismatches, m)
			}
		})
	}
}

func TestCheckTopicsReportsClusterErrors(t *testing.T) {
	t.Parallel()
	_, adm := fakeCluster(t, 1)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := logadmin.CheckTopics(ctx, adm, spec(1))
	require.ErrorIs(t, err, context.Canceled)
	var me *logadmin.MismatchError
	require.False(t, errors.As(err, &me), "a failure to ask is not a mismatch")
}

func createTopic(t *testing.T, adm *kadm.Client, name string, partitions int32, rf int16, configs map[string]string) {
	t.Helper()
	ptrs := map[string]*string{}
	for k, v := range configs {
		ptrs[k] = kadm.StringPtr(v)
	}
	_, err := adm.CreateTopic(t.Context(), partitions, rf, ptrs, name)
	require.NoError(t, err)
	// On a real cluster brokers learn of a new topic asynchronously.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	require.NoError(t, logadmin.PollReady(ctx, adm, 0, []string{name}, nil))
}

// existingTopics lists the topics that exist. kadm's listing can also hold
// topics that were asked about and do not exist, with an error.
func existingTopics(t *testing.T, adm *kadm.Client) []string {
	t.Helper()
	tds, err := adm.ListTopics(t.Context())
	require.NoError(t, err)
	var names []string
	for _, td := range tds.Sorted() {
		if td.Err == nil {
			names = append(names, td.Topic)
		}
	}
	return names
}

func TestTopicSpecFromEnv(t *testing.T) {
	t.Parallel()
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	spec, err := eventlog.TopicSpecFromEnv(env(nil))
	require.NoError(t, err)
	require.Equal(t, eventlog.DefaultTopicSpec(), spec)
	spec, err = eventlog.TopicSpecFromEnv(env(map[string]string{"ASSENT_PARTITIONS": "6", "ASSENT_COMMANDS_TOPIC": "c", "ASSENT_EVENTS_TOPIC": "e"}))
	require.NoError(t, err)
	require.Equal(t, int32(6), spec.Partitions)
	require.Equal(t, "c", spec.Commands)
	require.Equal(t, "e", spec.Events)
	_, err = eventlog.TopicSpecFromEnv(env(map[string]string{"ASSENT_PARTITIONS": "0"}))
	require.ErrorContains(t, err, `ASSENT_PARTITIONS="0" must be a whole number from 1 to 10000`)
}

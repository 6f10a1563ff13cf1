package eventlog_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/logadmin"
	"github.com/assent-dev/assent/libs/wire"
)

// TestProduceConsumeOnFakeCluster is the component version of the
// integration round trip: envelopes go out through NewRecord on a
// NewClient and come back through DecodeRecord, each in the partition
// that Partition names.
func TestProduceConsumeOnFakeCluster(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	cfg, adm := fakeCluster(t, 3)
	s := spec(6)
	_, err := logadmin.Provision(ctx, adm, s)
	require.NoError(t, err)

	producer := newClient(t, cfg)
	now := time.Date(2025, 5, 1, 10, 0, 0, 0, time.UTC)
	sent := map[string]wire.Envelope{}
	for i := range 50 {
		env := wire.Envelope{
			ID:      wire.NewID(now.Add(time.Duration(i) * time.Millisecond)),
			Source:  "assent/api",
			Type:    "dev.assent.command.submit",
			Subject: fmt.Sprintf("req-%d", i),
			Time:    now,
			Data:    json.RawMessage(fmt.Sprintf(`{"n":%d}`, i)),
		}
		r, err := eventlog.NewRecord(s.Commands, env)
		require.NoError(t, err)
		res := producer.ProduceSync(ctx, r)
		require.NoError(t, res.FirstErr())
		require.Equal(t, wire.Partition([]byte(env.Subject), 6), res[0].Record.Partition)
		env.SpecVersion, env.DataContentType = "1.0", "application/json" // what wire.Marshal fills in
		sent[env.ID] = env
	}

	consumer := newClient(t, cfg, kgo.ConsumeTopics(s.Commands), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := map[string]wire.Envelope{}
	for len(got) < len(sent) {
		fs := consumer.PollFetches(ctx)
		require.NoError(t, fs.Err())
		for _, r := range fs.Records() {
			env, err := eventlog.DecodeRecord(r)
			require.NoError(t, err)
			require.Equal(t, wire.Partition(r.Key, 6), r.Partition)
			got[env.ID] = env
		}
	}
	require.Equal(t, sent, got)
}

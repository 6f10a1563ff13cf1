package eventlog_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/test/kafkatest"
)

// TestIntegrationKeyedRecordsLandWherePartitionSays produces the same keys
// through eventlog's client, through franz-go's StickyKeyPartitioner(nil)
// and through franz-go's default partitioner, and checks on the cluster
// that every record sits in Partition(key, n): the Java producer's choice.
func TestIntegrationKeyedRecordsLandWherePartitionSays(t *testing.T) {
	t.Parallel()
	const partitions = 12
	spec := kafkatest.NewTopics(t, partitions)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	keys := []string{"21", "foobar", "a-little-bit-long-string", "a-little-bit-longer-string",
		"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", "abc"}
	for i := range 100 {
		keys = append(keys, fmt.Sprintf("req-%d", i), wire.NewID(time.Now()))
	}

	producers := map[string]*kgo.Client{
		"eventlog":      kafkatest.NewClient(t),
		"sticky-key":    plainClient(t, append(kafkatest.Auth(t), kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)))...),
		"franz-default": plainClient(t, kafkatest.Auth(t)...),
	}
	for name, p := range producers {
		var recs []*kgo.Record
		for _, k := range keys {
			recs = append(recs, &kgo.Record{Topic: spec.Commands, Key: []byte(k), Value: []byte(name)})
		}
		results := p.ProduceSync(ctx, recs...)
		require.NoError(t, results.FirstErr(), name)
		for _, res := range results {
			require.Equal(t, wire.Partition(res.Record.Key, partitions), res.Record.Partition, "%s: key %q", name, res.Record.Key)
		}
	}

	reader := kafkatest.NewClient(t, kgo.ConsumeTopics(spec.Commands), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	seen := map[string]int{}
	total := 0
	for total < len(keys)*len(producers) {
		fs := reader.PollFetches(ctx)
		require.NoError(t, fs.Err(), "polling until all %d records are read", len(keys)*len(producers))
		for _, r := range fs.Records() {
			require.Equal(t, wire.Partition(r.Key, partitions), r.Partition, "%s: key %q", r.Value, r.Key)
			seen[string(r.Value)]++
			total++
		}
	}
	for name := range producers {
		require.Equal(t, len(keys), seen[name], name)
	}
}

func plainClient(t *testing.T, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(opts...)
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	return cl
}

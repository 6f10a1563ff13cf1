package eventlog

import (
	"crypto/rand"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/assent-dev/assent/libs/wire"
)

func TestPartitionMatchesFranzGoStickyKeyPartitioner(t *testing.T) {
	t.Parallel()
	franz := kgo.StickyKeyPartitioner(nil).ForTopic("t")
	ours := Partitioner().ForTopic("t")
	keys := [][]byte{{}, []byte("a"), []byte("req-1"), []byte("01936f6e-1a2b-7c3d-8e4f-0123456789ab")}
	for range 2000 {
		k := make([]byte, 1+len(keys)%40)
		_, _ = rand.Read(k)
		keys = append(keys, k)
	}
	for _, n := range []int{1, 2, 3, 6, 12, 13, 64, 1000} {
		for _, k := range keys {
			r := &kgo.Record{Key: k}
			want := wire.Partition(k, n)
			require.Equal(t, int(want), franz.Partition(r, n), "franz-go, key %x, n %d", k, n)
			require.Equal(t, int(want), ours.Partition(r, n), "Partitioner, key %x, n %d", k, n)
		}
	}
}

func TestPartitionerUnkeyedUsesRecordPartition(t *testing.T) {
	t.Parallel()
	p := Partitioner().ForTopic("t")
	require.Equal(t, 7, p.Partition(&kgo.Record{Partition: 7}, 12))
	require.True(t, p.RequiresConsistency(&kgo.Record{}))
	// An empty key is a key, as in Java: it hashes.
	require.Equal(t, int(wire.Partition([]byte{}, 12)), p.Partition(&kgo.Record{Key: []byte{}, Partition: 7}, 12))
}

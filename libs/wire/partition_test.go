package wire

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestMurmur2KafkaVectors uses the cases of Kafka's
// clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java,
// testMurmur2, which Java asserts as signed ints.
func TestMurmur2KafkaVectors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		key  []byte
		want int32
	}{
		{[]byte("21"), -973932308},
		{[]byte("foobar"), -790332482},
		{[]byte("a-little-bit-long-string"), -985981536},
		{[]byte("a-little-bit-longer-string"), -1486304829},
		{[]byte("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"), -58897971},
		{[]byte{'a', 'b', 'c'}, 479470107},
	} {
		require.Equal(t, tc.want, int32(murmur2(tc.key)), "murmur2(%q)", tc.key) //nolint:gosec // G115: the bits as Java's signed int
		// toPositive masks the sign bit; 2^31 partitions keep the whole hash.
		require.Equal(t, tc.want&0x7fffffff, Partition(tc.key, 1<<31-1)+boolToInt32(tc.want&0x7fffffff == 1<<31-1), "Partition(%q)", tc.key)
	}
}

func boolToInt32(b bool) int32 {
	if b {
		return 1<<31 - 1
	}
	return 0
}

func TestPartitionKnownValues(t *testing.T) {
	t.Parallel()
	// toPositive(murmur2("foobar")) = 1357151166.
	require.Equal(t, int32(1357151166%12), Partition([]byte("foobar"), 12))
	require.Equal(t, int32(0), Partition([]byte("anything"), 1))
}

func TestPartitionPanicsWithoutPartitions(t *testing.T) {
	t.Parallel()
	require.Panics(t, func() { Partition([]byte("k"), 0) })
}

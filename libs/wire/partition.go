package wire

import "math"

// Partition returns the partition, out of partitions, that Kafka's Java
// producer picks for key: toPositive(murmur2(key)) % partitions, as in
// org.apache.kafka.common.utils.Utils and BuiltInPartitioner.partitionForKey.
// franz-go's StickyKeyPartitioner(nil) and the Partitioner of this package
// agree with it for every non-nil key (an empty key included).
//
// It panics if partitions is not positive, like a division by zero: a
// partition count always comes from topic metadata, never from input.
func Partition(key []byte, partitions int) int32 {
	if partitions <= 0 || partitions > math.MaxInt32 {
		panic("wire: Partition needs a partition count in 1..MaxInt32")
	}
	return int32(murmur2(key)&0x7fffffff) % int32(partitions)
}

// murmur2 is Kafka's Utils.murmur2: MurmurHash2, 32 bits, seed 0x9747b28c,
// little-endian blocks. Java returns it as a signed int; the bits are equal.
func murmur2(data []byte) uint32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	h := seed ^ uint32(len(data)) //nolint:gosec // G115: a hash; Java mixes in its int length the same way
	for ; len(data) >= 4; data = data[4:] {
		k := uint32(data[0]) | uint32(data[1])<<8 | uint32(data[2])<<16 | uint32(data[3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	switch len(data) {
	case 3:
		h ^= uint32(data[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(data[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(data[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}

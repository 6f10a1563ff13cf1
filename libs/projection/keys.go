package projection

import (
	"encoding/binary"
	"fmt"
)

// The runner owns the keys that start with metaPrefix; handlers own the
// rest. 0x00 sorts before any printable prefix a handler picks.
const metaPrefix = "\x00meta/"

var (
	keyCluster = []byte(metaPrefix + "cluster") // cluster id and topic id
)

func keyOffset(p int32) []byte { return partKey("offset/", p) }
func keyHead(p int32) []byte   { return partKey("head/", p) }
func keyHeadAt(p int32) []byte { return partKey("headat/", p) }

func partKey(kind string, p int32) []byte {
	k := make([]byte, 0, len(metaPrefix)+len(kind)+4)
	k = append(k, metaPrefix...)
	k = append(k, kind...)
	return binary.BigEndian.AppendUint32(k, uint32(p))
}

func encodeInt64(v int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(v)) }

func decodeInt64(b []byte) (int64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("projection: stored offset has %d bytes, want 8", len(b))
	}
	return int64(binary.BigEndian.Uint64(b)), nil
}

package wire

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// hashPrefix names the algorithm in every chain link, so that it can change
// one day without ambiguity.
const hashPrefix = "sha256:"

// GenesisHash is the prevhash of the first event in each events partition.
const GenesisHash = "sha256:0000000000000000000000000000000000000000000000000000000000000000"

// Hash returns "sha256:" and the lowercase hex SHA-256 of a record value.
//
// It hashes the exact bytes stored in Kafka, never a re-encoding: the value
// a consumer reads back is the value that was hashed, whatever JSON library
// wrote it. The next event in the same partition carries this as PrevHash.
func Hash(value []byte) string {
	sum := sha256.Sum256(value)
	return hashPrefix + hex.EncodeToString(sum[:])
}

// validHash reports whether s has the shape of Hash's output.
func validHash(s string) bool {
	digits, ok := strings.CutPrefix(s, hashPrefix)
	if !ok || len(digits) != 2*sha256.Size {
		return false
	}
	for _, c := range []byte(digits) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

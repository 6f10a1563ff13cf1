package requests

import (
	"crypto/sha256"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestEncodeTakesThePolicyHashAsAHintOnly: the encoding kept for a policy
// hash is reused only for the very same list; another list under the same
// hash (a hash is what the log says, not what the store checked) is encoded
// and hashed afresh, and so are nil and an empty list, which encode apart.
func TestEncodeTakesThePolicyHashAsAHintOnly(t *testing.T) {
	t.Parallel()
	var l approverLists
	for _, list := range [][]string{{"user:a"}, {"user:a", "user:b"}, {"user:a"}, nil, {}, {"user:b"}} {
		enc, ref := l.encode("sha256:same", list)
		require.Equal(t, string(appendStrings(nil, list)), string(enc))
		require.Equal(t, sha256.Sum256(enc), ref)
	}
}

package wire

import (
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestHash(t *testing.T) {
	t.Parallel()
	// FIPS 180-2 test vectors.
	require.Equal(t, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", Hash(nil))
	require.Equal(t, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", Hash([]byte("abc")))
	require.True(t, validHash(Hash([]byte("x"))))
}

func TestGenesisHash(t *testing.T) {
	t.Parallel()
	require.Equal(t, "sha256:"+strings.Repeat("0", 64), GenesisHash)
	require.True(t, validHash(GenesisHash))
}

func TestHashChainLinks(t *testing.T) {
	t.Parallel()
	// Each event's prevhash is the hash of the previous record's exact bytes.
	prev := GenesisHash
	var values [][]byte
	for i := range 3 {
		env := sampleEnvelope()
		env.Sequence = strconv.Itoa(i + 1)
		env.PrevHash = prev
		b, err := Marshal(env)
		require.NoError(t, err)
		values = append(values, b)
		prev = Hash(b)
	}
	for i := 1; i < len(values); i++ {
		env, err := Unmarshal(values[i])
		require.NoError(t, err)
		require.Equal(t, Hash(values[i-1]), env.PrevHash)
	}
}

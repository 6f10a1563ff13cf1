package wire_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/wire"
)

// The example checkpoint in schemas/ verifies with its documented public
// key: the Go code and the documented canonical string agree.
func TestVerifyCheckpointExample(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join("..", "..", "schemas", "examples", "dev.assent.log.checkpoint.json"))
	require.NoError(t, err)
	env, err := wire.Unmarshal(raw)
	require.NoError(t, err)
	pub, err := base64.StdEncoding.DecodeString("zSlMapBgYN8iNPnUS4iojTC8Aoxfp/3rZN5A59yVlQk=")
	require.NoError(t, err)
	ring := wire.NewKeyRing(map[string]ed25519.PublicKey{"example-2026-11": pub})
	c, err := wire.VerifyCheckpoint(ring, "assent.events.v1", 7, 1056, env)
	require.NoError(t, err)
	require.Equal(t, int64(1056), c.Offset)

	_, err = wire.VerifyCheckpoint(ring, "assent.events.v1", 7, 1055, env)
	require.ErrorContains(t, err, "data.offset is 1056")
	_, err = wire.VerifyCheckpoint(ring, "other.topic", 7, -1, env)
	require.ErrorContains(t, err, "does not verify with key")
	_, err = wire.VerifyCheckpoint(ring, "assent.events.v1", 6, -1, env)
	require.ErrorContains(t, err, "read from partition 6")
	_, err = wire.VerifyCheckpoint(wire.NewKeyRing(nil), "assent.events.v1", 7, -1, env)
	require.ErrorContains(t, err, "not in the published public keys")
}

func TestCheckpointSignAndVerify(t *testing.T) {
	t.Parallel()
	seed := sha256.Sum256([]byte("checkpoint test"))
	key := ed25519.NewKeyFromSeed(seed[:])
	s, err := wire.NewSigner("test-1", key)
	require.NoError(t, err)
	head := wire.Hash([]byte("x"))
	at := time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC)
	env, err := wire.NewCheckpoint(s, "assent/decider", "t", 3, 41, head, at)
	require.NoError(t, err)
	raw, err := wire.Marshal(env)
	require.NoError(t, err)
	back, err := wire.Unmarshal(raw)
	require.NoError(t, err)
	require.Equal(t, head, back.PrevHash)
	require.Empty(t, back.Subject)

	now := time.Now().UTC()
	keysFile := `{"format":"assent-checkpoint-keys-v1","keys":[{"key_id":"test-1","algorithm":"ed25519","public_key":"` +
		base64.StdEncoding.EncodeToString(s.Public()) + `","not_after":"` + now.Format(time.RFC3339) + `"}]}`
	ring, err := wire.ParseKeyRing([]byte(keysFile))
	require.NoError(t, err)
	_, err = wire.VerifyCheckpoint(ring, "t", 3, 41, back)
	require.NoError(t, err)

	// A checkpoint dated after the key's retirement is refused.
	late, err := wire.NewCheckpoint(s, "assent/decider", "t", 3, 41, head, now.Add(time.Hour))
	require.NoError(t, err)
	_, err = wire.VerifyCheckpoint(ring, "t", 3, 41, late)
	require.ErrorContains(t, err, "retired")

	// A forged signature: the same data, another key.
	other, err := wire.NewSigner("test-1", ed25519.NewKeyFromSeed(make([]byte, 32)))
	require.NoError(t, err)
	forged, err := wire.NewCheckpoint(other, "assent/decider", "t", 3, 41, head, at)
	require.NoError(t, err)
	_, err = wire.VerifyCheckpoint(ring, "t", 3, 41, forged)
	require.ErrorIs(t, err, wire.ErrCheckpoint)
	require.ErrorContains(t, err, "does not verify")
}

func TestKeyFiles(t *testing.T) {
	t.Parallel()
	_, key, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	pemBytes, err := wire.MarshalPrivateKeyPEM(key)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "k.pem")
	require.NoError(t, os.WriteFile(path, pemBytes, 0o600))
	s, err := wire.LoadSigner("k1", path)
	require.NoError(t, err)
	require.Equal(t, key.Public(), s.Public())

	_, err = wire.LoadSigner("bad id!", path)
	require.ErrorContains(t, err, "key id")
	require.NoError(t, os.WriteFile(path, []byte("nonsense"), 0o600))
	_, err = wire.LoadSigner("k1", path)
	require.ErrorContains(t, err, "openssl genpkey")

	for name, doc := range map[string]string{
		"format":    `{"format":"x","keys":[]}`,
		"unknown":   `{"format":"assent-checkpoint-keys-v1","keys":[],"extra":1}`,
		"short key": `{"format":"assent-checkpoint-keys-v1","keys":[{"key_id":"a","algorithm":"ed25519","public_key":"AAAA"}]}`,
		"algorithm": `{"format":"assent-checkpoint-keys-v1","keys":[{"key_id":"a","algorithm":"rsa","public_key":"AAAA"}]}`,
	} {
		_, err := wire.ParseKeyRing([]byte(doc))
		require.Error(t, err, name)
		require.True(t, strings.HasPrefix(err.Error(), "eventlog: public keys"), name)
	}
}

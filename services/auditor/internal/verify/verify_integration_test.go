package verify_test

import (
	"crypto/ed25519"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/services/auditor/internal/verify"
	"github.com/assent-dev/assent/test/kafkatest"
	"github.com/assent-dev/assent/test/loggen"
)

const parts = 3

// signedTopic is the topic the generated checkpoints sign; each scratch
// copy is verified as a copy of it.
const signedTopic = "assent.events.v1"

type fixture struct {
	signer *wire.Signer
	keys   *wire.KeyRing
	log    [][]*kgo.Record // the original log, by partition; record k at offset k
	kafka  eventlog.Config
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	_, key, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	signer, err := wire.NewSigner("test-key", key)
	require.NoError(t, err)
	log, err := loggen.Build(loggen.Options{Topic: signedTopic, Partitions: parts, Requests: 90, Signer: signer,
		CheckpointEvery: 10, Start: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC), Step: time.Second})
	require.NoError(t, err)
	return fixture{
		signer: signer,
		keys:   wire.NewKeyRing(map[string]ed25519.PublicKey{"test-key": signer.Public()}),
		log:    log, kafka: eventlog.Config{Brokers: kafkatest.Brokers(t)},
	}
}

// copyLog returns a deep copy of the log, to tamper with.
func (f fixture) copyLog() [][]*kgo.Record {
	out := make([][]*kgo.Record, len(f.log))
	for p, recs := range f.log {
		for _, r := range recs {
			c := *r
			c.Value = append([]byte(nil), r.Value...)
			out[p] = append(out[p], &c)
		}
	}
	return out
}

// write puts log into a fresh scratch topic and returns its name.
func (f fixture) write(t *testing.T, log [][]*kgo.Record) string {
	t.Helper()
	topic := kafkatest.NewTopics(t, parts).Events
	require.NoError(t, loggen.Write(t.Context(), f.kafka, topic, log))
	return topic
}

func (f fixture) verify(t *testing.T, topic string, from *verify.State) verify.Result {
	t.Helper()
	res, err := verify.Run(t.Context(), verify.Config{Kafka: f.kafka, Topic: topic, SignedTopic: signedTopic, Keys: f.keys, From: from})
	require.NoError(t, err)
	return res
}

// checkpointAfter returns the index of the first checkpoint in recs after
// index i.
func checkpointAfter(t *testing.T, recs []*kgo.Record, i int) int {
	t.Helper()
	for j := i + 1; j < len(recs); j++ {
		env, err := wire.Unmarshal(recs[j].Value)
		require.NoError(t, err)
		if env.Type == wire.TypeCheckpoint {
			return j
		}
	}
	t.Fatalf("no checkpoint after %d", i)
	return -1
}

func idAt(t *testing.T, r *kgo.Record) string {
	t.Helper()
	env, err := wire.Unmarshal(r.Value)
	require.NoError(t, err)
	return env.ID
}

// TestIntegrationVerifyTampering writes modified copies of a signed log
// into scratch topics and requires each tampering to be reported first at
// its exact partition, offset and event, with what failed.
func TestIntegrationVerifyTampering(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const p, k = 1, 23 // the record tampered with
	require.Greater(t, len(f.log[p]), 60)

	t.Run("intact", func(t *testing.T) {
		t.Parallel()
		res := f.verify(t, f.write(t, f.log), nil)
		require.True(t, res.OK(), "%v", res.Breaks)
		var n, ck int64
		for _, recs := range f.log {
			n += int64(len(recs))
			for _, r := range recs {
				if env, _ := wire.Unmarshal(r.Value); env.Type == wire.TypeCheckpoint {
					ck++
				}
			}
		}
		require.Equal(t, n, res.Records)
		require.Equal(t, ck, res.Checkpoints)
		require.Equal(t, 90, res.Requests)
		require.NotNil(t, res.State)
	})

	t.Run("rewritten", func(t *testing.T) {
		t.Parallel()
		log := f.copyLog()
		env, err := wire.Unmarshal(log[p][k].Value)
		require.NoError(t, err)
		require.NotEqual(t, wire.TypeCheckpoint, env.Type)
		env.Actor = "user:someone-else@example.com" // the forger keeps the record well formed
		log[p][k].Value, err = wire.Marshal(env)
		require.NoError(t, err)
		res := f.verify(t, f.write(t, log), nil)
		require.False(t, res.OK())
		b := res.Breaks[0]
		require.Equal(t, verify.Break{Partition: p, Offset: k, EventID: env.ID, Kind: verify.KindAltered, Reason: b.Reason}, b, "%v", res.Breaks)
		require.Contains(t, b.Reason, "the record was altered")
		require.Len(t, res.Breaks, 1, "one alteration is one break: %v", res.Breaks)
		require.Nil(t, res.State, "a broken log saves no state")
	})

	t.Run("deleted", func(t *testing.T) {
		t.Parallel()
		log := f.copyLog()
		log[p] = append(log[p][:k:k], log[p][k+1:]...)
		res := f.verify(t, f.write(t, log), nil)
		require.False(t, res.OK())
		b := res.Breaks[0]
		require.Equal(t, verify.Break{Partition: p, Offset: k, EventID: idAt(t, log[p][k]), Kind: verify.KindDeleted, Reason: b.Reason}, b, "%v", res.Breaks)
		require.Contains(t, b.Reason, "1 record(s) were deleted just before this one")
	})

	t.Run("reordered", func(t *testing.T) {
		t.Parallel()
		log := f.copyLog()
		log[p][k], log[p][k+1] = log[p][k+1], log[p][k]
		res := f.verify(t, f.write(t, log), nil)
		require.False(t, res.OK())
		b := res.Breaks[0]
		require.Equal(t, verify.Break{Partition: p, Offset: k, EventID: idAt(t, log[p][k]), Kind: verify.KindReordered, Reason: b.Reason}, b, "%v", res.Breaks)
		require.Contains(t, b.Reason, "which comes after it")
	})

	t.Run("forged checkpoint", func(t *testing.T) {
		t.Parallel()
		log := f.copyLog()
		c := checkpointAfter(t, log[p], k)
		env, err := wire.Unmarshal(log[p][c].Value)
		require.NoError(t, err)
		cp, err := wire.DecodeCheckpoint(env)
		require.NoError(t, err)
		_, otherKey, err := ed25519.GenerateKey(nil)
		require.NoError(t, err)
		forger, err := wire.NewSigner("test-key", otherKey) // claims the real key id
		require.NoError(t, err)
		forged, err := wire.NewCheckpoint(forger, env.Source, signedTopic, cp.Partition, cp.Offset, cp.Head, env.Time)
		require.NoError(t, err)
		forged.ID = env.ID
		log[p][c].Value, err = wire.Marshal(forged)
		require.NoError(t, err)
		res := f.verify(t, f.write(t, log), nil)
		require.False(t, res.OK())
		b := res.Breaks[0]
		require.Equal(t, verify.Break{Partition: p, Offset: int64(c), EventID: env.ID, Kind: verify.KindCheckpoint, Reason: b.Reason}, b, "%v", res.Breaks)
		require.Contains(t, b.Reason, "signature does not verify with key \"test-key\"")
	})

	t.Run("truncated after a checkpoint", func(t *testing.T) {
		t.Parallel()
		full := f.write(t, f.log)
		res := f.verify(t, full, nil)
		require.True(t, res.OK(), "%v", res.Breaks)
		statePath := filepath.Join(t.TempDir(), "state.json")
		require.NoError(t, res.State.Save(statePath))

		// Kafka cannot cut a topic's tail, so the truncated log is a copy
		// that ends with a checkpoint; the state saved from the full log
		// is pointed at it, as if the same topic had lost its tail.
		log := f.copyLog()
		c := checkpointAfter(t, log[p], k)
		require.Less(t, c+1, len(log[p]))
		lastID := idAt(t, log[p][len(log[p])-1])
		log[p] = log[p][:c+1]
		cut := f.write(t, log)
		raw, err := os.ReadFile(statePath)
		require.NoError(t, err)
		var st map[string]any
		require.NoError(t, json.Unmarshal(raw, &st))
		st["topic"] = cut
		raw, err = json.Marshal(st)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(statePath, raw, 0o600))
		saved, err := verify.LoadState(statePath)
		require.NoError(t, err)

		res = f.verify(t, cut, saved)
		require.False(t, res.OK())
		require.Len(t, res.Breaks, 1, "%v", res.Breaks)
		b := res.Breaks[0]
		require.Equal(t, verify.Break{Partition: p, Offset: int64(c + 1), EventID: lastID, Kind: verify.KindTruncated, Reason: b.Reason}, b)
		require.Contains(t, b.Reason, "the tail was truncated")
	})
}

// TestIntegrationVerifyIncremental verifies a log, adds to it, and
// verifies again from the saved state: only the new records are read, and
// a state that the log no longer matches is reported as tampering.
func TestIntegrationVerifyIncremental(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	topic := kafkatest.NewTopics(t, parts).Events
	first := make([][]*kgo.Record, parts)
	rest := make([][]*kgo.Record, parts)
	for p, recs := range f.log {
		first[p], rest[p] = recs[:len(recs)/2], recs[len(recs)/2:]
	}
	require.NoError(t, loggen.Write(t.Context(), f.kafka, topic, first))
	res := f.verify(t, topic, nil)
	require.True(t, res.OK(), "%v", res.Breaks)
	firstN := res.Records
	statePath := filepath.Join(t.TempDir(), "state.json")
	require.NoError(t, res.State.Save(statePath))

	require.NoError(t, loggen.Write(t.Context(), f.kafka, topic, rest))
	saved, err := verify.LoadState(statePath)
	require.NoError(t, err)
	res = f.verify(t, topic, saved)
	require.True(t, res.OK(), "%v", res.Breaks)
	var total int64
	for _, recs := range f.log {
		total += int64(len(recs))
	}
	require.Equal(t, total, res.Records)
	require.Equal(t, total-firstN, res.NewRecords, "only the new records are verified")
	require.Equal(t, 90, res.Requests, "per-request sequences carry over")

	// Nothing new: nothing read, still OK.
	require.NoError(t, res.State.Save(statePath))
	saved, err = verify.LoadState(statePath)
	require.NoError(t, err)
	again := f.verify(t, topic, saved)
	require.True(t, again.OK(), "%v", again.Breaks)
	require.Zero(t, again.NewRecords)

	// A saved state whose head the log does not hold is tampering.
	saved.Partitions["2"].Head = wire.Hash([]byte("not this log"))
	bad := f.verify(t, topic, saved)
	require.False(t, bad.OK())
	require.Equal(t, verify.KindState, bad.Breaks[0].Kind)
	require.Equal(t, int32(2), bad.Breaks[0].Partition)
	require.Equal(t, saved.Partitions["2"].HeadOffset, bad.Breaks[0].Offset)
}

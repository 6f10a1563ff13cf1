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

// signedTopic is the topic the generated seals sign; each scratch copy is
// verified as a copy of it.
const signedTopic = "assent.events.v1"

type fixture struct {
	signer *wire.Signer
	keys   *wire.KeyRing
	log    [][]*kgo.Record // the original log, by partition, in order
	kafka  eventlog.Config
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	_, key, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	signer, err := wire.NewSigner("test-key", key)
	require.NoError(t, err)
	log, err := loggen.Build(loggen.Options{Topic: signedTopic, Partitions: parts, Requests: 90, Signer: signer,
		SealEvery: 10, Start: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC), Step: time.Second})
	require.NoError(t, err)
	return fixture{
		signer: signer,
		keys:   wire.NewKeyRing(map[string]ed25519.PublicKey{"test-key": signer.Public()}),
		log:    log, kafka: kafkatest.Config(t, ""),
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

// write puts log into a fresh scratch topic, in sealed transactions, and
// returns its name and where each record landed.
func (f fixture) write(t *testing.T, log [][]*kgo.Record) (string, [][]int64) {
	t.Helper()
	topic := kafkatest.NewTopics(t, parts).Events
	offsets, err := loggen.Write(t.Context(), f.kafka, topic, log)
	require.NoError(t, err)
	return topic, offsets
}

func (f fixture) verify(t *testing.T, topic string, from *verify.State) verify.Result {
	t.Helper()
	res, err := verify.Run(t.Context(), verify.Config{Kafka: f.kafka, Topic: topic, SignedTopic: signedTopic, Keys: f.keys, From: from})
	require.NoError(t, err)
	return res
}

func isSeal(t *testing.T, r *kgo.Record) bool {
	t.Helper()
	env, err := wire.Unmarshal(r.Value)
	require.NoError(t, err)
	return env.Type == wire.TypeSeal
}

// sealAfter returns the index of the first seal in recs after index i.
func sealAfter(t *testing.T, recs []*kgo.Record, i int) int {
	t.Helper()
	for j := i + 1; j < len(recs); j++ {
		if isSeal(t, recs[j]) {
			return j
		}
	}
	t.Fatalf("no seal after %d", i)
	return -1
}

// breakAt finds the break at offset off.
func breakAt(t *testing.T, res verify.Result, p int32, off int64) verify.Break {
	t.Helper()
	for _, b := range res.Breaks {
		if b.Partition == p && b.Offset == off {
			return b
		}
	}
	t.Fatalf("no break at partition %d offset %d: %v", p, off, res.Breaks)
	return verify.Break{}
}

// TestIntegrationVerifyTampering writes modified copies of a sealed log
// into scratch topics and requires each tampering to be reported at its
// exact partition and offset, with what failed, and no state saved.
func TestIntegrationVerifyTampering(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const p, k = 1, 23 // the record tampered with
	require.Greater(t, len(f.log[p]), 60)

	t.Run("intact", func(t *testing.T) {
		t.Parallel()
		topic, _ := f.write(t, f.log)
		res := f.verify(t, topic, nil)
		require.True(t, res.OK(), "%v", res.Breaks)
		var n, seals int64
		for _, recs := range f.log {
			n += int64(len(recs))
			for _, r := range recs {
				if isSeal(t, r) {
					seals++
				}
			}
		}
		require.Equal(t, n, res.Records)
		require.Equal(t, seals, res.Seals)
		require.Equal(t, 90, res.Requests)
		require.NotNil(t, res.State)
	})

	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, log [][]*kgo.Record) int // returns the index of the record to find reported
		reason string
	}{
		{"rewritten", func(t *testing.T, log [][]*kgo.Record) int {
			env, err := wire.Unmarshal(log[p][k].Value)
			require.NoError(t, err)
			require.NotEqual(t, wire.TypeSeal, env.Type)
			env.Actor = "user:someone-else@example.com" // the forger keeps the record well formed
			log[p][k].Value, err = wire.Marshal(env)
			require.NoError(t, err)
			return k
		}, "without a seal covering it"},
		{"deleted", func(t *testing.T, log [][]*kgo.Record) int {
			log[p] = append(log[p][:k:k], log[p][k+1:]...)
			return k
		}, "without a seal covering it"},
		{"reordered", func(t *testing.T, log [][]*kgo.Record) int {
			require.False(t, isSeal(t, log[p][k]) || isSeal(t, log[p][k+1]))
			log[p][k], log[p][k+1] = log[p][k+1], log[p][k]
			return k
		}, "without a seal covering it"},
		{"forged seal", func(t *testing.T, log [][]*kgo.Record) int {
			c := sealAfter(t, log[p], k)
			env, err := wire.Unmarshal(log[p][c].Value)
			require.NoError(t, err)
			s, err := wire.DecodeSeal(env)
			require.NoError(t, err)
			_, otherKey, err := ed25519.GenerateKey(nil)
			require.NoError(t, err)
			forger, err := wire.NewSigner("test-key", otherKey) // claims the real key id
			require.NoError(t, err)
			forged, err := wire.NewSeal(forger, env.Source, signedTopic, s.Partition, s.From, s.Head, s.Count, env.Time)
			require.NoError(t, err)
			forged.ID = env.ID
			log[p][c].Value, err = wire.Marshal(forged)
			require.NoError(t, err)
			return c
		}, `signature does not verify with key "test-key"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			log := f.copyLog()
			i := tc.tamper(t, log)
			topic, offsets := f.write(t, log)
			res := f.verify(t, topic, nil)
			require.False(t, res.OK())
			b := breakAt(t, res, p, offsets[p][i])
			require.Equal(t, verify.KindUnauthenticated, b.Kind, "%v", b)
			require.Contains(t, b.Reason, tc.reason)
			require.Equal(t, idAt(t, log[p][i]), b.EventID)
			require.Nil(t, res.State, "a broken log saves no state")
		})
	}

	t.Run("truncated after a seal", func(t *testing.T) {
		t.Parallel()
		full, _ := f.write(t, f.log)
		res := f.verify(t, full, nil)
		require.True(t, res.OK(), "%v", res.Breaks)
		statePath := filepath.Join(t.TempDir(), "state.json")
		require.NoError(t, res.State.Save(statePath))

		// Kafka cannot cut a topic's tail, so the truncated log is a copy
		// that ends with a seal; the state saved from the full log is
		// pointed at it, as if the same topic had lost its tail.
		log := f.copyLog()
		c := sealAfter(t, log[p], k)
		require.Less(t, c+1, len(log[p]))
		lastID := idAt(t, log[p][len(log[p])-1])
		log[p] = log[p][:c+1]
		cut, offsets := f.write(t, log)
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
		require.Equal(t, verify.Break{Partition: p, Offset: offsets[p][c] + 2, EventID: lastID, Kind: verify.KindTruncated, Reason: b.Reason}, b,
			"the cut log ends after the seal and its commit marker")
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
		cut := sealAfter(t, recs, len(recs)/2) + 1 // a whole number of transactions
		first[p], rest[p] = recs[:cut], recs[cut:]
	}
	_, err := loggen.Write(t.Context(), f.kafka, topic, first)
	require.NoError(t, err)
	res := f.verify(t, topic, nil)
	require.True(t, res.OK(), "%v", res.Breaks)
	firstN := res.Records
	statePath := filepath.Join(t.TempDir(), "state.json")
	require.NoError(t, res.State.Save(statePath))

	_, err = loggen.Write(t.Context(), f.kafka, topic, rest)
	require.NoError(t, err)
	saved, err := verify.LoadState(statePath)
	require.NoError(t, err)
	pending := 0
	for _, ps := range saved.Partitions {
		for _, rs := range ps.Requests {
			if len(rs.Pending) > 0 {
				pending++
			}
		}
	}
	require.Positive(t, pending, "requests pending at the cut: the replay goes on from their saved events")
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

func idAt(t *testing.T, r *kgo.Record) string {
	t.Helper()
	env, err := wire.Unmarshal(r.Value)
	require.NoError(t, err)
	return env.ID
}

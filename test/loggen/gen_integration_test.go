package loggen_test

import (
	"context"
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/test/kafkatest"
	"github.com/assent-dev/assent/test/loggen"
)

// TestIntegrationStream streams a generated log the size of a small
// benchmark and reads it back read_committed: every partition must hold
// exactly the records Generate makes, in order, each run committed with
// its seal (the benchmark's log is what audit-bench times verify on).
func TestIntegrationStream(t *testing.T) {
	t.Parallel()
	const parts = 6
	_, key, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	signer, err := wire.NewSigner("test-key", key)
	require.NoError(t, err)
	topic := kafkatest.NewTopics(t, parts).Events
	cfg := kafkatest.Config(t, "loggen")
	o := loggen.Options{Topic: topic, Partitions: parts, Requests: 12_000, Signer: signer, SealEvery: 100,
		Start: time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), Step: 10 * time.Millisecond}
	n, err := loggen.Stream(t.Context(), cfg, o, nil)
	require.NoError(t, err)

	want, err := loggen.Build(o)
	require.NoError(t, err)
	var total int64
	for _, recs := range want {
		total += int64(len(recs))
	}
	require.Equal(t, total, n)

	cl := kafkatest.NewClient(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	got := make([][]*kgo.Record, parts)
	var read int64
	for read < total {
		fs := cl.PollFetches(ctx)
		require.NoError(t, ctx.Err(), "read %d of %d records", read, total)
		require.NoError(t, fs.Err0())
		fs.EachRecord(func(r *kgo.Record) {
			got[r.Partition] = append(got[r.Partition], r)
			read++
		})
	}
	// Event ids are fresh UUIDv7s, so the records are compared by what
	// they say and by their chain: each links to the one before it.
	for p := range parts {
		require.Len(t, got[p], len(want[p]), "partition %d", p)
		head := wire.GenesisHash
		for i, r := range got[p] {
			g, err := wire.Unmarshal(r.Value)
			require.NoError(t, err)
			w, err := wire.Unmarshal(want[p][i].Value)
			require.NoError(t, err)
			if g.Type != w.Type || g.Subject != w.Subject || g.Sequence != w.Sequence || g.PrevHash != head {
				t.Fatalf("partition %d record %d (offset %d): %s %s #%s after %s, want %s %s #%s after %s",
					p, i, r.Offset, g.Type, g.Subject, g.Sequence, g.PrevHash, w.Type, w.Subject, w.Sequence, head)
			}
			head = wire.Hash(r.Value)
		}
	}
}

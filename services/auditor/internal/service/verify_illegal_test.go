package service_test

import (
	"bytes"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/services/auditor/internal/service"
	"github.com/assent-dev/assent/test/loggen"
	"github.com/assent-dev/assent/test/systest"
)

// fakeLog is an in-process Kafka (kfake) to write logs to: the unit
// tests run `auditor verify` against it as against a real cluster.
type fakeLog struct {
	cfg eventlog.Config
	adm *kadm.Client
	n   atomic.Int64 // names each topic; parallel subtests write
}

func newFakeLog(t *testing.T) *fakeLog {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	cfg := eventlog.Config{Brokers: c.ListenAddrs(), ClientID: "verify-unit"}
	cl, err := eventlog.NewClient(cfg)
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	return &fakeLog{cfg: cfg, adm: kadm.NewClient(cl)}
}

// write puts each partition's events, sealed with the demo key, into a
// new topic and returns its name and the offset of every event.
func (f *fakeLog) write(t *testing.T, parts ...[]approval.Event) (string, [][]int64) {
	t.Helper()
	topic := fmt.Sprintf("events-%d", f.n.Add(1))
	require.Less(t, len(parts), 100, "a handful of partitions")
	n := int32(len(parts)) //nolint:gosec // G115: fewer than 100, checked above
	_, err := f.adm.CreateTopic(t.Context(), n, 1, nil, topic)
	require.NoError(t, err)
	o := loggen.Options{Topic: topic, Partitions: n, Signer: systest.DemoSigner(t), SealEvery: 3}
	recs := make([][]*kgo.Record, len(parts))
	for p, events := range parts {
		recs[p], err = loggen.Seal(o, int32(p), events)
		require.NoError(t, err)
	}
	offsets, err := loggen.Write(t.Context(), f.cfg, topic, recs)
	require.NoError(t, err)
	// The offsets of the events alone, without the seals between them.
	out := make([][]int64, len(parts))
	for p, events := range parts {
		for i, r := range recs[p] {
			if r.Key != nil {
				out[p] = append(out[p], offsets[p][i])
			}
		}
		require.Len(t, out[p], len(events))
	}
	return topic, out
}

// verify runs `auditor verify` on topic as the command line does.
func (f *fakeLog) verify(t *testing.T, topic string, extra ...string) (string, error) {
	t.Helper()
	getenv := func(k string) string {
		return map[string]string{"ASSENT_KAFKA_BROKERS": strings.Join(f.cfg.Brokers, ","), "ASSENT_EVENTS_TOPIC": topic}[k]
	}
	var out bytes.Buffer
	err := service.Main(t.Context(), append([]string{"verify", "--quiet", "--keys", systest.DemoKeysFile()}, extra...), getenv, &out, &bytes.Buffer{})
	return out.String(), err
}

// TestVerifyReportsIllegalEvents writes logs whose events are all covered
// by valid seals, so that only the domain replay can tell them apart: each
// illegal one must make verify exit 2 (ErrTampered) with one break, of
// kind illegal, at the forged event's offset; the legal ones, and a
// generated log, must verify clean.
func TestVerifyReportsIllegalEvents(t *testing.T) {
	t.Parallel()
	f := newFakeLog(t)
	for _, tc := range illegalCases() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := tc.build(t)
			require.GreaterOrEqual(t, h.forged, 0)
			at := h.forged
			if tc.at != nil {
				at = tc.at(h)
			}
			topic, offsets := f.write(t, h.events)
			var extra []string
			if tc.admins {
				extra = append(extra, "--policies", illegalPolicyFile(t))
			}
			out, err := f.verify(t, topic, extra...)
			require.ErrorIs(t, err, service.ErrTampered, out)
			require.Equal(t, 1, strings.Count(out, "BREAK "), out)
			line := out[strings.Index(out, "BREAK "):]
			line = line[:strings.IndexByte(line, '\n')]
			require.Contains(t, line, fmt.Sprintf("BREAK partition 0 offset %d event ", offsets[0][at]))
			require.Contains(t, line, ": illegal: request "+h.rid+": ")
			require.Contains(t, line, tc.reason)
			t.Log(line)
		})
	}

	t.Run("legal", func(t *testing.T) {
		t.Parallel()
		// Interleaved, as a busy decider writes; each request's events
		// stay in order.
		topic, _ := f.write(t, interleave(legalHistories(t)))
		out, err := f.verify(t, topic)
		require.NoError(t, err, out)
		require.Contains(t, out, "1 cancels by someone other than the requester were not checked")
		out, err = f.verify(t, topic, "--policies", illegalPolicyFile(t))
		require.NoError(t, err, out)
		require.NotContains(t, out, "not checked")
	})

	t.Run("generated", func(t *testing.T) {
		t.Parallel()
		topic := "generated"
		_, err := f.adm.CreateTopic(t.Context(), 3, 1, nil, topic)
		require.NoError(t, err)
		log, err := loggen.Build(loggen.Options{Topic: topic, Partitions: 3, Requests: 600, Signer: systest.DemoSigner(t),
			SealEvery: 25, Start: t0, Step: time.Second})
		require.NoError(t, err)
		_, err = loggen.Write(t.Context(), f.cfg, topic, log)
		require.NoError(t, err)
		out, err := f.verify(t, topic)
		require.NoError(t, err, out)
		require.Contains(t, out, "600 requests")
	})
}

// interleave merges the histories' events round robin.
func interleave(hs []*history) []approval.Event {
	var out []approval.Event
	for k := 0; ; k++ {
		any := false
		for _, h := range hs {
			if k < len(h.events) {
				out = append(out, h.events[k])
				any = true
			}
		}
		if !any {
			return out
		}
	}
}

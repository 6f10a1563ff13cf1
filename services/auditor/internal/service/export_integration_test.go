package service_test

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/services/auditor/internal/export"
	"github.com/assent-dev/assent/services/auditor/internal/service"
	"github.com/assent-dev/assent/test/kafkatest"
	"github.com/assent-dev/assent/test/loggen"
	"github.com/assent-dev/assent/test/systest"
)

func env(topic string) func(string) string {
	return func(k string) string {
		return map[string]string{
			"ASSENT_KAFKA_USER": os.Getenv("ASSENT_KAFKA_USER"), "ASSENT_KAFKA_PASSWORD_FILE": os.Getenv("ASSENT_KAFKA_PASSWORD_FILE"),
			"ASSENT_KAFKA_BROKERS":   os.Getenv("ASSENT_KAFKA_BROKERS"),
			"ASSENT_EVENTS_TOPIC":    topic,
			"ASSENT_AUDIT_KEYS_FILE": systest.DemoKeysFile(),
		}[k]
	}
}

var start = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

// TestIntegrationExportAndStateMatchReplay writes a log of 10,000 requests
// and checks `auditor export` (JSONL and CSV) and `auditor state` against
// a replay by hand of the same events.
func TestIntegrationExportAndStateMatchReplay(t *testing.T) {
	t.Parallel()
	const requests, parts = 10_000, 6
	signer := systest.DemoSigner(t)
	topic := kafkatest.NewTopics(t, parts).Events
	log, err := loggen.Build(loggen.Options{Topic: topic, Partitions: parts, Requests: requests, Signer: signer,
		SealEvery: 200, Start: start, Step: time.Second})
	require.NoError(t, err)
	offsets, err := loggen.Write(t.Context(), kafkatest.Config(t, ""), topic, log)
	require.NoError(t, err)

	// By hand: what an export of this window and actor must hold.
	from, to := start.Add(2000*time.Second), start.Add(6000*time.Second)
	actor := loggen.Approvers[3]
	var want []export.Row
	var wantAll int
	for p, recs := range log {
		for i, r := range recs {
			off := offsets[p][i]
			e, err := wire.Unmarshal(r.Value)
			require.NoError(t, err)
			if e.Time.Before(from) || !e.Time.Before(to) {
				continue
			}
			wantAll++
			if e.Actor == actor {
				want = append(want, export.Row{Partition: int32(p), Offset: off, Hash: wire.Hash(r.Value), Event: r.Value})
			}
		}
	}
	require.Greater(t, len(want), 50)

	var out bytes.Buffer
	args := []string{"export", "--from", from.Format(time.RFC3339), "--to", to.Format(time.RFC3339), "--actor", actor, "--format", "jsonl"}
	require.NoError(t, service.Main(t.Context(), args, env(topic), &out, os.Stderr))
	var got []export.Row
	sc := bufio.NewScanner(&out)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r export.Row
		require.NoError(t, json.Unmarshal(sc.Bytes(), &r))
		got = append(got, r)
	}
	require.Equal(t, want, got, "the JSONL export is the hand-filtered log, byte for byte")

	out.Reset()
	args = []string{"export", "--from", from.Format(time.RFC3339), "--to", to.Format(time.RFC3339), "--format", "csv"}
	require.NoError(t, service.Main(t.Context(), args, env(topic), &out, os.Stderr))
	rows, err := csv.NewReader(&out).ReadAll()
	require.NoError(t, err)
	require.Equal(t, export.CSVHeader, rows[0])
	require.Len(t, rows, wantAll+1, "every event of the window, and the header")
	at := map[[2]int64][]byte{} // the record at each partition and offset
	for p, recs := range log {
		for i, r := range recs {
			at[[2]int64{int64(p), offsets[p][i]}] = r.Value
		}
	}
	for _, row := range rows[1:] {
		p, _ := strconv.ParseInt(row[0], 10, 32)
		off, _ := strconv.ParseInt(row[1], 10, 64)
		v := at[[2]int64{p, off}]
		e, err := wire.Unmarshal(v)
		require.NoError(t, err)
		require.Equal(t, []string{wire.Hash(v), e.ID, e.Type, e.Subject, e.Actor, e.PrevHash},
			[]string{row[2], row[3], row[5], row[6], row[7], row[10]})
	}

	// State at a time: replay by hand of the domain events up to it.
	for _, i := range []int{0, 1, 2, 3, 4, 5, 4321, 9999} {
		evs := loggen.Events(i, start, time.Second)
		for _, at := range []time.Time{evs[0].Time, evs[0].Time.Add(1500 * time.Millisecond), evs[len(evs)-1].Time, evs[len(evs)-1].Time.Add(time.Hour)} {
			var st approval.State
			n := 0
			for _, e := range evs {
				if !e.Time.After(at) {
					st = approval.Evolve(st, e)
					n++
				}
			}
			out.Reset()
			require.NoError(t, service.Main(t.Context(), []string{"state", "--request", loggen.RequestID(i), "--at", at.Format(time.RFC3339Nano)}, env(topic), &out, os.Stderr))
			var got export.AsOf
			require.NoError(t, json.Unmarshal(out.Bytes(), &got))
			wantJSON, err := json.Marshal(st)
			require.NoError(t, err)
			gotJSON, err := json.Marshal(got.State)
			require.NoError(t, err)
			require.JSONEq(t, string(wantJSON), string(gotJSON), "request %d at %s", i, at)
			require.Equal(t, n, got.Events)
		}
		// Before its submit, the request did not exist.
		err := service.Main(t.Context(), []string{"state", "--request", loggen.RequestID(i), "--at", evs[0].Time.Add(-time.Nanosecond).Format(time.RFC3339Nano)}, env(topic), &out, os.Stderr)
		require.ErrorIs(t, err, export.ErrUnknownRequest)
	}
}

// Bad flags get clear errors, not a crash.
func TestBadFlags(t *testing.T) {
	t.Parallel()
	getenv := env("x")
	for args, want := range map[string][]string{
		"--from is required":        {"export", "--to", "2026-01-01T00:00:00Z"},
		"use jsonl or csv":          {"export", "--from", "2026-01-01T00:00:00Z", "--to", "2026-01-02T00:00:00Z", "--format", "xml"},
		"--to must be after --from": {"export", "--from", "2026-01-02T00:00:00Z", "--to", "2026-01-01T00:00:00Z"},
		"--request is required":     {"state", "--at", "2026-01-01T00:00:00Z"},
		"use an RFC 3339 time":      {"state", "--request", "r", "--at", "yesterday"},
		"unknown command":           {"frobnicate"},
		"a command is required":     {},
	} {
		err := service.Main(t.Context(), want, getenv, &bytes.Buffer{}, &bytes.Buffer{})
		require.ErrorContains(t, err, args)
	}
	var help bytes.Buffer
	require.NoError(t, service.Main(t.Context(), []string{"--help"}, getenv, &help, &help))
	require.Contains(t, help.String(), "verify [--from-offsets FILE]")
	help.Reset()
	require.NoError(t, service.Main(t.Context(), []string{"verify", "--help"}, getenv, &help, &help))
	require.Contains(t, help.String(), "-from-offsets")
}

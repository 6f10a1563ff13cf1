package service_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/approval"
	index "github.com/assent-dev/assent/libs/auditindex"
	"github.com/assent-dev/assent/libs/codec"
	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/services/auditor/internal/service"
	"github.com/assent-dev/assent/services/auditor/internal/verify"
	"github.com/assent-dev/assent/test/kafkatest"
	"github.com/assent-dev/assent/test/systest"
)

// getJSON returns the status (0 if the server could not be reached, -1
// if a 200 did not decode) and decodes a 200 into v. It does not fail the
// test itself, so that polls may call it from any goroutine.
func getJSON(t *testing.T, u string, v any) int {
	t.Helper()
	resp, err := http.Get(u) //nolint:gosec // a test server on loopback
	if err != nil {
		return 0
	}
	defer func() { _ = resp.Body.Close() }() // read-only
	if v != nil && resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			return -1
		}
	}
	return resp.StatusCode
}

type eventsPage struct {
	Events     []index.Row `json:"events"`
	NextCursor string      `json:"next_cursor"`
}

// allByActor pages through /v1/audit/events for one actor; it returns
// the status of a page that was not a 200.
func allByActor(t *testing.T, base, actor string) ([]index.Row, int) {
	t.Helper()
	var rows []index.Row
	cursor := ""
	for range 1000 {
		var page eventsPage
		q := url.Values{"actor": {actor}, "limit": {"7"}, "cursor": {cursor}}
		if code := getJSON(t, base+"/v1/audit/events?"+q.Encode(), &page); code != http.StatusOK {
			return nil, code
		}
		rows = append(rows, page.Events...)
		if cursor = page.NextCursor; cursor == "" {
			return rows, http.StatusOK
		}
	}
	return nil, -2 // more than 1000 pages
}

// TestIntegrationServeWhileDeciderWrites runs a real decider process
// sealing its transactions with the demo key, and the audit service in-process,
// and queries the service while commands are being decided. Once the
// writes stop, its answers equal a reading of the log by hand, every
// request's chain is verified, and `verify` agrees with the published key.
func TestIntegrationServeWhileDeciderWrites(t *testing.T) {
	t.Parallel()
	const parts = 3
	topics := kafkatest.NewTopics(t, parts)
	root := systest.RepoRoot()
	bin := systest.Build(t, "decider")
	dec := systest.NewProc(t, filepath.Join(bin, "decider"), "decider-audit",
		"ASSENT_KAFKA_BROKERS="+os.Getenv("ASSENT_KAFKA_BROKERS"),
		"ASSENT_POLICY_FILE="+filepath.Join(root, "infra/policies/example.yaml"),
		fmt.Sprintf("ASSENT_PARTITIONS=%d", parts),
		"ASSENT_COMMANDS_TOPIC="+topics.Commands, "ASSENT_EVENTS_TOPIC="+topics.Events,
		"ASSENT_DECIDER_GROUP=audit-"+topics.Commands,
		"ASSENT_SIGNING_KEY_FILE="+filepath.Join(root, "infra/keys/demo-decider.key.pem"),
		"ASSENT_SIGNING_KEY_ID=demo-2026-01", "ASSENT_SEAL_KEYS_FILE="+filepath.Join(root, "infra/keys/decider-keys.json"))
	dec.Start()
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	require.NoError(t, dec.WaitReady(ctx))

	keysPath := filepath.Join(root, "infra/keys/decider-keys.json")
	port := systest.FreePort(t)
	cfg, err := service.LoadServeConfig(func(k string) string {
		return map[string]string{
			"ASSENT_KAFKA_USER": os.Getenv("ASSENT_KAFKA_USER"), "ASSENT_KAFKA_PASSWORD_FILE": os.Getenv("ASSENT_KAFKA_PASSWORD_FILE"),
			"ASSENT_KAFKA_BROKERS": os.Getenv("ASSENT_KAFKA_BROKERS"), "ASSENT_EVENTS_TOPIC": topics.Events,
			"ASSENT_COMMANDS_TOPIC": topics.Commands, "ASSENT_PARTITIONS": fmt.Sprint(parts),
			"ASSENT_HTTP_ADDR": fmt.Sprintf("127.0.0.1:%d", port), "ASSENT_DATA_DIR": filepath.Join(t.TempDir(), "audit"),
			"ASSENT_AUDIT_KEYS_FILE": keysPath, "ASSENT_INSTANCE_ID": "auditor-test",
		}[k]
	}, "")
	require.NoError(t, err)
	sctx, stop := context.WithCancel(context.WithoutCancel(t.Context()))
	served := make(chan error, 1)
	logs := &systest.SyncBuffer{}
	go func() { served <- service.Serve(sctx, cfg, logs, nil) }()
	t.Cleanup(func() {
		stop()
		require.NoError(t, <-served)
		if t.Failed() {
			t.Logf("auditor logs:\n%s", logs.String())
		}
	})
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	require.Eventually(t, func() bool { return getJSON(t, base+"/readyz", nil) == http.StatusOK }, 60*time.Second, 50*time.Millisecond)

	// Writes: 30 requests, each submitted and voted on, while a reader
	// queries the service without pause.
	cl := kafkatest.NewClient(t)
	const n = 30
	var (
		wg      sync.WaitGroup
		queries atomic.Int64
		done    = make(chan struct{})
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			var page eventsPage
			q := url.Values{"actor": {"user:alice@example.com"}, "limit": {"5"}}
			if code := getJSON(t, base+"/v1/audit/events?"+q.Encode(), &page); code != http.StatusOK {
				t.Errorf("events query: %d", code)
				return
			}
			code := getJSON(t, base+fmt.Sprintf("/v1/audit/requests/audit-req-%d", i%n), nil)
			if code != http.StatusOK && code != http.StatusNotFound {
				t.Errorf("request query: %d", code)
				return
			}
			queries.Add(2)
		}
	}()
	produce := func(c approval.Command) {
		c.Time = time.Now().UTC()
		env, err := codec.CommandEnvelope(c, "assent/test")
		require.NoError(t, err)
		env = systest.SignCommand(t, systest.ServiceAPI, env) // the api's key may name anyone
		rec, err := eventlog.NewRecord(topics.Commands, env)
		require.NoError(t, err)
		require.NoError(t, cl.ProduceSync(t.Context(), rec).FirstErr())
	}
	for i := range n {
		rid := fmt.Sprintf("audit-req-%d", i)
		produce(approval.Command{ID: wire.NewID(time.Now()), RequestID: rid, Actor: "service:billing", Body: approval.Submit{
			Action: approval.Action{Type: "deploy", Resource: "services/billing/api", Environment: "production"},
			Reason: "release", TTL: approval.Duration(time.Hour)}})
		voter := []string{"user:alice@example.com", "user:bob@example.com"}[i%2]
		produce(approval.Command{ID: wire.NewID(time.Now()), RequestID: rid, Actor: voter, Body: approval.Vote{Decision: approval.Approve}})
	}

	// Once everything is decided and signed, the service answers exactly
	// what the log holds.
	kcfg := kafkatest.Config(t, "")
	var log []systest.Record
	require.Eventually(t, func() bool {
		log, err = systest.ReadLog(t.Context(), kcfg, topics.Events)
		require.NoError(t, err)
		votes, last := 0, map[int32]string{}
		for _, r := range log {
			if r.Envelope.Type == approval.TypeVoteRecorded {
				votes++
			}
			last[r.Partition] = r.Envelope.Type
		}
		for _, typ := range last {
			if typ != wire.TypeSeal {
				return false
			}
		}
		return votes == n
	}, 60*time.Second, 200*time.Millisecond, "every vote recorded and every partition signed")
	close(done)
	wg.Wait()
	require.Positive(t, queries.Load())

	var want []systest.Record
	for _, r := range log {
		if r.Envelope.Actor == "user:alice@example.com" {
			want = append(want, r)
		}
	}
	// The index orders by time, then partition and offset: events decided
	// in one transaction share its time.
	sort.SliceStable(want, func(i, j int) bool {
		a, b := want[i], want[j]
		if !a.Envelope.Time.Equal(b.Envelope.Time) {
			return a.Envelope.Time.Before(b.Envelope.Time)
		}
		if a.Partition != b.Partition {
			return a.Partition < b.Partition
		}
		return a.Offset < b.Offset
	})
	var (
		got  []index.Row
		code int
	)
	require.Eventually(t, func() bool {
		got, code = allByActor(t, base, "user:alice@example.com")
		return code == http.StatusOK && len(got) == len(want)
	}, 30*time.Second, 100*time.Millisecond, "status %d, %d of %d events", code, len(got), len(want))
	for i, r := range want {
		require.Equal(t, index.Row{Partition: r.Partition, Offset: r.Offset, Hash: wire.Hash(r.Value), Event: r.Value}, got[i])
	}

	for i := range n {
		rid := fmt.Sprintf("audit-req-%d", i)
		var req index.Request
		require.Eventually(t, func() bool {
			return getJSON(t, base+"/v1/audit/requests/"+rid, &req) == http.StatusOK && req.Verification.Status == "verified"
		}, 30*time.Second, 100*time.Millisecond, "request %s: %+v", rid, req.Verification)
		var mine int
		for _, r := range log {
			if r.Envelope.Subject == rid {
				mine++
			}
		}
		require.Len(t, req.Events, mine)
		require.Equal(t, "demo-2026-01", req.Verification.SealKeyID)
	}
	require.Equal(t, http.StatusNotFound, getJSON(t, base+"/v1/audit/requests/no-such-request", nil))
	require.Equal(t, http.StatusBadRequest, getJSON(t, base+"/v1/audit/events?from=yesterday", nil))
	require.Equal(t, http.StatusBadRequest, getJSON(t, base+"/v1/audit/events?cursor=bogus", nil))

	ring, err := wire.LoadKeyRing(keysPath)
	require.NoError(t, err)
	res, err := verify.Run(t.Context(), verify.Config{Kafka: kcfg, Topic: topics.Events, Keys: ring})
	require.NoError(t, err)
	require.True(t, res.OK(), "%v", res.Breaks)
	require.Positive(t, res.Seals)
}

package service_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/command"
	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/tracing"
	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/test/kafkatest"
	"github.com/assent-dev/assent/test/otlptest"
	"github.com/assent-dev/assent/test/systest"
)

// TestIntegrationTracing runs a decider (a process) and an api replica
// (in-process), both exporting to an OTLP/HTTP receiver the test runs, and
// checks the per-hop trace of a write (docs/architecture.md, "Tracing"):
// the submit's and the deciding vote's traces each hold every hop, in
// order, each span a child of the one before it; the trace context rides
// in the records' headers, never in their (hash-chained, signed) values;
// and a malformed or oversized traceparent, on HTTP or on a command
// record, changes nothing that is decided.
func TestIntegrationTracing(t *testing.T) {
	rcv, err := otlptest.Start()
	require.NoError(t, err)
	t.Cleanup(func() { _ = rcv.Close() })
	// The in-process api's SDK reads the batch delay from the process
	// environment; the decider inherits it.
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "100")

	brokers := kafkatest.Brokers(t)
	topics := kafkatest.NewTopics(t, 12)
	bin := systest.Build(t, "decider")
	root := systest.RepoRoot()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	dec := systest.NewProc(t, filepath.Join(bin, "decider"), "decider-trace-"+topics.Commands,
		"ASSENT_KAFKA_BROKERS="+strings.Join(brokers, ","),
		"ASSENT_POLICY_FILE="+filepath.Join(root, "infra/policies/example.yaml"),
		"ASSENT_PARTITIONS=12", "ASSENT_COMMANDS_TOPIC="+topics.Commands, "ASSENT_EVENTS_TOPIC="+topics.Events,
		"ASSENT_DECIDER_GROUP=test-decider-"+topics.Commands, "ASSENT_LOG_LEVEL=info",
		"OTEL_EXPORTER_OTLP_ENDPOINT="+rcv.URL)
	dec.Start()
	require.NoError(t, dec.WaitReady(ctx))
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := os.ReadFile(dec.Log)
			t.Logf("decider log (tail):\n%s", tail(string(logs), 40))
		}
	})
	apiName := "api-trace"
	c := &cluster{t: t, topics: topics, kafka: kafkatest.Config(t, "api-trace-test")}
	c.apis = []string{startAPI(t, topics, brokers, apiName, "OTEL_EXPORTER_OTLP_ENDPOINT="+rcv.URL, "OTEL_SERVICE_NAME=api-under-test")}
	require.NoError(t, waitReady(ctx, c.apis[0]))
	apiInstance := apiName + "-" + topics.Commands

	// A submit and its deciding vote, each with a traceparent of its own.
	const (
		submitTrace, submitParent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
		voteTrace, voteParent     = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
	)
	rid := uniq("traced")
	v := c.expect(t, 0, http.MethodPost, "/v1/requests", deployBot, deployBody(rid, "traced"), http.StatusCreated,
		"Traceparent: 00-"+submitTrace+"-"+submitParent+"-01", "Tracestate: assent=test")
	require.Equal(t, "pending", v["status"])
	v = c.expect(t, 0, http.MethodPost, "/v1/requests/"+rid+"/votes", alice, `{"decision":"approve"}`, http.StatusOK,
		"Traceparent: 00-"+voteTrace+"-"+voteParent+"-01")
	require.Equal(t, "approved", v["status"])

	var tls map[string]otlptest.Timeline
	eventually(t, 30*time.Second, func() bool {
		tls = otlptest.Timelines(rcv.Spans())
		_, ok1 := tls[submitTrace]
		_, ok2 := tls[voteTrace]
		return ok1 && ok2
	}, "the receiver never held both traces whole (%d spans)", len(rcv.Spans()))
	spans := rcv.Spans()
	for trace, parent := range map[string]string{submitTrace: submitParent, voteTrace: voteParent} {
		tl := tls[trace]
		// Each hop follows the one before, but for the commit: the
		// decider learns that its transaction committed about when the
		// readers see its records, so the api may apply them before the
		// decider's commit span ends; the apply follows the decide.
		for h := 1; h < otlptest.Hops; h++ {
			before := h - 1
			if h == otlptest.Applied {
				before = otlptest.Decided
			}
			require.False(t, tl.At[h].Before(tl.At[before]), "trace %s: %s at %s is before %s at %s", trace,
				otlptest.HopNames[h], tl.At[h].Format(time.RFC3339Nano), otlptest.HopNames[before], tl.At[before].Format(time.RFC3339Nano))
		}
		// The chain of parents, which Timelines follows, starts at the
		// caller's span, and each span is recorded by the service that did
		// the work.
		byName := map[string][]otlptest.Span{}
		for _, s := range spans {
			if s.TraceID == trace {
				byName[s.Name] = append(byName[s.Name], s)
			}
		}
		require.Len(t, byName[tracing.SpanReceive], 1, "trace %s", trace)
		recv := byName[tracing.SpanReceive][0]
		require.Equal(t, parent, recv.ParentID)
		require.Equal(t, "api-under-test", recv.Service)
		require.Equal(t, apiInstance, recv.Instance)
		require.Equal(t, recv.SpanID, byName[tracing.SpanProduce][0].ParentID)
		for _, name := range []string{tracing.SpanFetch, tracing.SpanDecide, tracing.SpanCommit} {
			require.NotEmpty(t, byName[name], "trace %s has no %s", trace, name)
			require.Equal(t, "assent-decider", byName[name][0].Service, name)
		}
		require.Equal(t, byName[tracing.SpanProduce][0].SpanID, byName[tracing.SpanFetch][0].ParentID)
		require.Equal(t, byName[tracing.SpanFetch][0].SpanID, byName[tracing.SpanCommit][0].ParentID)
		require.NotEmpty(t, byName[tracing.SpanApply])
		for _, a := range byName[tracing.SpanApply] {
			require.Equal(t, byName[tracing.SpanCommit][0].SpanID, a.ParentID)
			require.Equal(t, apiInstance, a.Instance)
		}
	}

	// A vote whose traceparent is malformed, and a submit whose
	// traceparent is oversized: decided as without one, and traced from a
	// root of the api's own.
	rid2 := uniq("badtrace")
	c.expect(t, 0, http.MethodPost, "/v1/requests", deployBot, deployBody(rid2, "bad trace"), http.StatusCreated,
		"Traceparent: 00-"+strings.Repeat("a", 4096)+"-b7ad6b7169203331-01")
	v = c.expect(t, 0, http.MethodPost, "/v1/requests/"+rid2+"/votes", bob, `{"decision":"reject","comment":"no"}`, http.StatusOK,
		"Traceparent: 00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01")
	require.Equal(t, "rejected", v["status"])

	// A command record with a malformed and an oversized traceparent, and
	// one with two: the decider decides each as it would without them.
	getenv := func(k string) string {
		return map[string]string{command.EnvKeyFile: systest.DemoCommandKeyFile(systest.ServiceAPI), command.EnvKeyID: systest.DemoCommandKeyID(systest.ServiceAPI)}[k]
	}
	signer, err := command.LoadSigner(getenv)
	require.NoError(t, err)
	cl, err := eventlog.NewClient(c.kafka)
	require.NoError(t, err)
	defer cl.Close()
	var odd []string
	for i, hs := range [][]kgo.RecordHeader{
		{{Key: "traceparent", Value: []byte("garbage")}},
		{{Key: "traceparent", Value: bytes.Repeat([]byte("0"), 1<<16)}, {Key: "tracestate", Value: bytes.Repeat([]byte("a=b,"), 1<<14)}},
		{{Key: "traceparent", Value: []byte("00-" + voteTrace + "-" + voteParent + "-01")}, {Key: "traceparent", Value: []byte("00-" + submitTrace + "-" + submitParent + "-01")}},
	} {
		r := uniq(fmt.Sprintf("oddheader%d", i))
		odd = append(odd, r)
		w := command.Writer{Source: command.SourceAPI, Sender: headerSender{cl: cl, topic: topics.Commands, signer: signer, headers: hs}}
		require.NoError(t, w.Send(ctx, w.New(wire.NewID(time.Now()), r, "service:deploy-bot", approval.Submit{
			Action: approval.Action{Type: "deploy", Resource: "services/web", Environment: "production"}, Reason: "odd headers"})))
		require.NoError(t, w.Send(ctx, w.New(wire.NewID(time.Now()), r, "user:alice@example.com", approval.Vote{Decision: approval.Approve})))
	}
	for _, r := range odd {
		c.get(t, 0, r, "approved")
	}

	// The headers carry the trace context; the values never do. Read
	// both topics back from the start.
	rd, err := eventlog.NewClient(c.kafka, kgo.ConsumeTopics(topics.Commands, topics.Events),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	require.NoError(t, err)
	defer rd.Close()
	var cmds, events []*kgo.Record
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && (countFor(events, rid) < 3 || countFor(cmds, rid) != 2 || countFor(events, odd[2]) < 3) {
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		fs := rd.PollFetches(pctx)
		pcancel()
		fs.EachRecord(func(r *kgo.Record) {
			if r.Topic == topics.Commands {
				cmds = append(cmds, r)
			} else {
				events = append(events, r)
			}
		})
	}
	require.Equal(t, 2, countFor(cmds, rid))
	require.GreaterOrEqual(t, countFor(events, rid), 3, "submitted, vote recorded, approved")
	traceOf := func(r *kgo.Record) string {
		var tps []string
		for _, h := range r.Headers {
			if h.Key == tracing.HeaderTraceparent {
				tps = append(tps, string(h.Value))
			}
		}
		require.Len(t, tps, 1, "record %s/%d@%d", r.Topic, r.Partition, r.Offset)
		return strings.Split(tps[0], "-")[1]
	}
	for _, r := range slices.Concat(cmds, events) {
		require.NotContains(t, string(r.Value), "traceparent")
		require.NotContains(t, string(r.Value), submitTrace)
		require.NotContains(t, string(r.Value), voteTrace)
		if string(r.Key) != rid {
			continue
		}
		env, err := eventlog.DecodeRecord(r)
		require.NoError(t, err)
		switch env.Type {
		case "dev.assent.command.submit", "dev.assent.request.submitted":
			require.Equal(t, submitTrace, traceOf(r), env.Type)
		case "dev.assent.command.vote", "dev.assent.vote.recorded", "dev.assent.request.approved":
			require.Equal(t, voteTrace, traceOf(r), env.Type)
		default:
			t.Fatalf("unexpected %s", env.Type)
		}
	}
	// The decider wrote the events of the odd-header commands without a
	// trace context: it read none from them.
	for _, r := range events {
		if slices.Contains(odd, string(r.Key)) {
			for _, h := range r.Headers {
				require.NotEqual(t, tracing.HeaderTraceparent, h.Key, "an event of %s carries %q", r.Key, h.Value)
			}
		}
	}
	// Seals carry none either: they are no request's.
	for _, r := range events {
		if len(r.Key) == 0 {
			require.Len(t, r.Headers, 1)
		}
	}
}

func countFor(recs []*kgo.Record, rid string) int {
	n := 0
	for _, r := range recs {
		if string(r.Key) == rid {
			n++
		}
	}
	return n
}

// headerSender signs and produces a command with the given record
// headers, as a producer outside Assent could.
type headerSender struct {
	cl      *kgo.Client
	topic   string
	signer  *wire.Signer
	headers []kgo.RecordHeader
}

func (s headerSender) Send(ctx context.Context, env wire.Envelope) error {
	env, err := wire.SignCommand(s.signer, env)
	if err != nil {
		return err
	}
	return eventlog.Produce(ctx, s.cl, s.topic, env, s.headers...)
}

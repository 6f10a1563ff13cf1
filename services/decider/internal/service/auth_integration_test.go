package service_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/codec"
	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/test/kafkatest"
	"github.com/assent-dev/assent/test/systest"
)

// TestIntegrationUnauthenticatedCommands: whoever may write to the
// commands topic cannot act as another principal (issue 12, item 7). A
// vote naming user:alice that is unsigned, or signed by a backend's key
// without on_behalf, is refused unauthenticated and counted; the same
// vote signed by the api's key (on_behalf) decides the request.
func TestIntegrationUnauthenticatedCommands(t *testing.T) {
	topics := kafkatest.NewTopics(t, 2)
	addr := systest.FreeAddr(t)
	startDeciderAt(t, topics, "test-decider-"+topics.Commands, "decider-auth", addr)
	cl := kafkatest.NewClient(t)
	kcfg := kafkatest.Config(t, "auth")

	const rid = "req-auth"
	produce := func(service string, c approval.Command) string {
		c.ID, c.RequestID, c.Time = wire.NewID(time.Now()), rid, time.Now().UTC()
		env, err := codec.CommandEnvelope(c, "assent/test")
		require.NoError(t, err)
		if service != "" {
			env = systest.SignCommand(t, service, env)
		}
		require.NoError(t, eventlog.Produce(t.Context(), cl, topics.Commands, env))
		return c.ID
	}
	// outcome finds the first event of a command; a command refused
	// unauthenticated is refused under its record's id, and the detail
	// names the id it claimed.
	outcome := func(id string) (approval.Event, bool) {
		log, err := systest.ReadLog(t.Context(), kcfg, topics.Events)
		require.NoError(t, err)
		for _, r := range log {
			if r.Envelope.Type == wire.TypeSeal {
				continue
			}
			e, err := codec.DomainEvent(r.Envelope)
			require.NoError(t, err)
			rej, isRejection := e.Body.(approval.CommandRejected)
			if e.CommandID == id || isRejection && rej.Code == approval.ReasonUnauthenticated && strings.Contains(rej.Detail, id) {
				return e, true
			}
		}
		return approval.Event{}, false
	}
	decided := func(id string) approval.Event {
		var e approval.Event
		require.Eventually(t, func() bool {
			var ok bool
			e, ok = outcome(id)
			return ok
		}, 60*time.Second, 200*time.Millisecond, "command %s is decided", id)
		return e
	}
	vote := approval.Vote{Decision: approval.Approve}

	submit := produce(systest.ServiceBilling, approval.Command{Actor: "service:billing", Body: approval.Submit{
		Action: approval.Action{Type: "deploy", Resource: "services/billing/api", Environment: "production"},
		Reason: "release", TTL: approval.Duration(time.Hour)}})
	require.IsType(t, approval.RequestSubmitted{}, decided(submit).Body, "billing's own submit is decided")

	for name, service := range map[string]string{"unsigned": "", "signed by billing, which has no on_behalf role": systest.ServiceBilling} {
		e := decided(produce(service, approval.Command{Actor: "user:alice@example.com", Body: vote}))
		rej, ok := e.Body.(approval.CommandRejected)
		require.True(t, ok, "%s: a vote as alice is refused, not %T", name, e.Body)
		require.Equal(t, approval.ReasonUnauthenticated, rej.Code, name)
		require.Equal(t, approval.SystemDecider, e.Actor, "%s: the refusal is not attributed to the actor it claims", name)
		require.True(t, strings.HasPrefix(rej.CommandID, "kafka:"+topics.Commands+"/"), "%s: refused under its record's id, not the id it claims: %s", name, rej.CommandID)
		t.Logf("%s: %s", name, rej.Detail)
	}
	e := decided(produce(systest.ServiceAPI, approval.Command{Actor: "user:alice@example.com", Body: vote}))
	require.IsType(t, approval.VoteRecorded{}, e.Body, "the api's key has on_behalf: alice's vote counts")
	require.Eventually(t, func() bool {
		m := get(t, "http://"+addr+"/metrics")
		return strings.Contains(m, "\nassent_refusals_total{reason=\"unauthenticated\"} 2\n") &&
			strings.Contains(m, "\nassent_decider_unauthenticated_commands_total 2\n")
	}, 10*time.Second, 200*time.Millisecond, "both forgeries are counted")

	// The refusals are legal history: auditor verify, which replays the
	// domain, passes the log.
	bin := filepath.Join(systest.Build(t, "auditor"), "auditor")
	cmd := exec.CommandContext(t.Context(), bin, "verify", "--quiet", "--keys", systest.DemoKeysFile())
	cmd.Env = append(os.Environ(), "ASSENT_KAFKA_BROKERS="+strings.Join(kcfg.Brokers, ","), "ASSENT_EVENTS_TOPIC="+topics.Events,
		"ASSENT_PARTITIONS=2")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "auditor verify:\n%s", out)
}

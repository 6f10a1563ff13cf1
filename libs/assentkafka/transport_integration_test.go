package assentkafka_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/approval"
	assentkafka "github.com/assent-dev/assent/libs/assentkafka"
	assent "github.com/assent-dev/assent/libs/sdk"
	"github.com/assent-dev/assent/schemas"
	"github.com/assent-dev/assent/test/sdktest"
	"github.com/assent-dev/assent/test/systest"
)

func transport(t *testing.T, c *sdktest.Cluster, principal string) *assentkafka.Client {
	t.Helper()
	// billing signs with its own key; a person's transport is a gateway's,
	// whose key has on_behalf (the api's demo key stands in for it).
	key := systest.ServiceAPI
	if principal == "service:billing" {
		key = systest.ServiceBilling
	}
	tr, err := assentkafka.New(c.Kafka, c.Topics, principal, assentkafka.WithKeys(systest.DemoKeys(t)),
		assentkafka.WithCommandKey(systest.DemoCommandSigner(t, key)))
	require.NoError(t, err)
	t.Cleanup(tr.Close)
	return tr
}

func deploy(rid, env string) assent.SubmitRequest {
	return assent.SubmitRequest{
		RequestID: rid,
		Action: assent.Action{Type: "deploy", Resource: "services/billing/api", Environment: env,
			Details: map[string]any{"version": "1.4.2"}},
		Reason: "release 1.4.2",
	}
}

// TestIntegrationKafkaTransport runs the Kafka transport against two real
// deciders on the real cluster: a submit approved by a vote produced as
// alice, a refusal, and retried submits that the log shows decided once.
func TestIntegrationKafkaTransport(t *testing.T) {
	c := sdktest.Start(t, 2, 0)
	billing := transport(t, c, "service:billing")
	alice := transport(t, c, "user:alice@example.com")
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	// Approved: submit, wait in the background, vote as alice.
	rid := assent.NewRequestID()
	s, err := billing.Submit(ctx, deploy(rid, "production"))
	require.NoError(t, err)
	require.NoError(t, billing.Outcome(ctx, s), "the submit was accepted")
	acked := []systest.Acked{{RequestID: rid, CommandID: s.CommandID}}
	type result struct {
		d   assent.Decision
		err error
	}
	waited := make(chan result, 1)
	go func() {
		d, err := billing.WaitFor(ctx, s)
		waited <- result{d, err}
	}()
	v, err := alice.Vote(ctx, rid, assent.VoteRequest{Decision: assent.Approve, Comment: "canary is green"})
	require.NoError(t, err)
	require.NoError(t, alice.Outcome(ctx, v))
	acked = append(acked, systest.Acked{RequestID: rid, CommandID: v.CommandID})
	r := <-waited
	require.NoError(t, r.err)
	require.True(t, r.d.Approved)
	require.Equal(t, assent.StatusApproved, r.d.Status)
	require.Equal(t, []string{"user:alice@example.com"}, r.d.DecidedBy)
	require.Equal(t, "prod-deploy", r.d.View.Policy.Name)
	require.ElementsMatch(t, []string{"user:alice@example.com", "user:bob@example.com", "user:carol@example.com", "user:dana@example.com"},
		r.d.View.Policy.Approvers)

	// A retried Submit, and a RequestApproval of the same request, are the
	// same command: decided once, and the decision is the same.
	again, err := billing.Submit(ctx, deploy(rid, "production"))
	require.NoError(t, err)
	require.Equal(t, s.CommandID, again.CommandID)
	d, err := billing.RequestApproval(ctx, deploy(rid, "production"))
	require.NoError(t, err)
	require.True(t, d.Approved)
	d, err = transport(t, c, "service:billing").Wait(ctx, rid)
	require.NoError(t, err)
	require.True(t, d.Approved)

	// A vote after the decision is refused, with its reason code.
	late, err := transport(t, c, "user:bob@example.com").Vote(ctx, rid, assent.VoteRequest{Decision: assent.Reject})
	require.NoError(t, err)
	require.True(t, assent.IsCode(transport(t, c, "user:bob@example.com").Outcome(ctx, late), assent.CodeAlreadyDecided))

	// Refused: no policy matches a deploy to qa (staging-any matches only
	// staging, and there is no catch-all).
	refusedID := assent.NewRequestID()
	d, err = billing.RequestApproval(ctx, deploy(refusedID, "qa"))
	require.True(t, assent.IsCode(err, assent.CodeNoPolicy), "%v", err)
	require.False(t, d.Approved)
	var p *assent.Problem
	require.ErrorAs(t, err, &p)
	require.Contains(t, p.Detail, `"qa"`)

	// Rejected by bob: not approved, and not an error.
	rejectedID := assent.NewRequestID()
	s, err = billing.Submit(ctx, deploy(rejectedID, "production"))
	require.NoError(t, err)
	_, err = transport(t, c, "user:bob@example.com").Vote(ctx, rejectedID, assent.VoteRequest{Decision: assent.Reject, Comment: "freeze"})
	require.NoError(t, err)
	d, err = billing.WaitFor(ctx, s)
	require.NoError(t, err)
	require.False(t, d.Approved)
	require.Equal(t, assent.StatusRejected, d.Status)

	// The log: one request.submitted per request, however often it was
	// submitted, and every invariant the checker knows holds.
	var log []systest.Record
	require.Eventually(t, func() bool {
		log, err = systest.ReadLog(ctx, c.Kafka, c.Topics.Events)
		require.NoError(t, err)
		return countType(log, rejectedID, approval.TypeRequestRejected) == 1
	}, 30*time.Second, 200*time.Millisecond)
	require.Equal(t, 1, countType(log, rid, approval.TypeRequestSubmitted), "three submits, one request.submitted")
	require.Equal(t, 1, countType(log, rid, approval.TypeRequestApproved))
	require.Equal(t, 0, countType(log, refusedID, approval.TypeRequestSubmitted))
	require.Equal(t, 1, countType(log, refusedID, approval.TypeCommandRejected))
	acked = append(acked, systest.Acked{RequestID: rejectedID, CommandID: s.CommandID})
	res := systest.Check(log, acked)
	require.Empty(t, res.Anomalies, res.Summary())

	// Every command the transport produced is valid under its schema.
	commands, err := systest.ReadLog(ctx, c.Kafka, c.Topics.Commands)
	require.NoError(t, err)
	require.NotEmpty(t, commands)
	for _, r := range commands {
		require.NoError(t, schemas.Validate(r.Value), string(r.Value))
		require.Equal(t, assentkafka.Source, r.Envelope.Source)
	}
}

func countType(log []systest.Record, rid, typ string) int {
	n := 0
	for _, r := range log {
		if r.Envelope.Subject == rid && r.Envelope.Type == typ {
			n++
		}
	}
	return n
}

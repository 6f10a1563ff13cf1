package command_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/codec"
	"github.com/assent-dev/assent/libs/command"
	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/test/systest"
)

// TestAuthenticate: the decider's check before the domain, with the demo
// keys: a signer speaks for its own principal, an on_behalf signer for
// anyone but a system principal, and a submit's requester counts as a
// principal named.
func TestAuthenticate(t *testing.T) {
	t.Parallel()
	keys := systest.DemoCommandKeys(t)
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	sub := approval.Submit{Action: approval.Action{Type: "deploy", Resource: "svc/api", Environment: "production"}, Reason: "release"}
	forDana := sub
	forDana.Requester = "user:dana@example.com"
	for name, tc := range map[string]struct {
		service, actor string // service "" leaves the command unsigned
		body           approval.CommandBody
		ok             bool
	}{
		"billing submits as itself":             {systest.ServiceBilling, "service:billing", sub, true},
		"billing names dana as the requester":   {systest.ServiceBilling, "service:billing", forDana, false},
		"the api names dana as the requester":   {systest.ServiceAPI, "service:billing", forDana, true},
		"billing votes as alice":                {systest.ServiceBilling, "user:alice@example.com", approval.Vote{Decision: approval.Approve}, false},
		"the gateway votes for alice":           {systest.ServiceSlackGateway, "user:alice@example.com", approval.Vote{Decision: approval.Approve}, true},
		"the notifier records as itself":        {systest.ServiceNotifier, "service:notifier", approval.RecordNotification{Kind: approval.NotifyWebhook, Channel: "https://h", TS: "1", Outcome: approval.Delivered, At: at}, true},
		"the notifier records as the gateway":   {systest.ServiceNotifier, "service:slack-gateway", approval.RecordNotification{Kind: approval.NotifyCard, Channel: "C1", TS: "1"}, false},
		"unsigned":                              {"", "user:alice@example.com", approval.Vote{Decision: approval.Approve}, false},
		"the console may not expire as decider": {systest.ServiceConsole, approval.SystemDecider, approval.Expire{}, false},
	} {
		t.Run(name, func(t *testing.T) {
			c := approval.Command{ID: "c1", RequestID: "r1", Actor: tc.actor, Time: at, Body: tc.body}
			env, err := codec.CommandEnvelope(c, "assent/test")
			require.NoError(t, err)
			if tc.service != "" {
				env = systest.SignCommand(t, tc.service, env)
			}
			r := command.Authenticate(keys, env, c)
			if tc.ok {
				require.Nil(t, r)
				return
			}
			require.NotNil(t, r)
			require.Equal(t, approval.ReasonUnauthenticated, r.Code)
		})
	}
}

// TestKafkaSenderRefusesToSendUnsigned: without a key nothing is produced,
// and the error says so rather than "the outcome is unknown".
func TestKafkaSenderRefusesToSendUnsigned(t *testing.T) {
	t.Parallel()
	w := command.Writer{Source: "assent/test", Sender: command.Kafka{Topic: "commands"}} // no client: it must not get that far
	err := w.Send(context.Background(), approval.Command{ID: "c1", RequestID: "r1", Actor: "service:billing", Time: time.Now(), Body: approval.Cancel{}})
	require.ErrorIs(t, err, wire.ErrNoCommandKey)
	require.NotErrorIs(t, err, command.ErrOutcomeUnknown)
}

func TestLoadSigner(t *testing.T) {
	t.Parallel()
	_, err := command.LoadSigner(func(string) string { return "" })
	require.ErrorContains(t, err, "ASSENT_COMMAND_KEY_FILE and ASSENT_COMMAND_KEY_ID are required")
	require.ErrorContains(t, err, "auditor keygen")
	env := map[string]string{command.EnvKeyFile: systest.DemoCommandKeyFile(systest.ServiceAPI), command.EnvKeyID: "demo-api-2026-01"}
	s, err := command.LoadSigner(func(k string) string { return env[k] })
	require.NoError(t, err)
	require.Equal(t, "demo-api-2026-01", s.KeyID())
	env[command.EnvKeyFile] = "/nonexistent.pem"
	_, err = command.LoadSigner(func(k string) string { return env[k] })
	require.ErrorContains(t, err, command.EnvKeyFile)
}

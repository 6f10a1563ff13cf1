package assentkafka

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/codec"
	"github.com/assent-dev/assent/libs/command"
	"github.com/assent-dev/assent/libs/eventlog"
	assent "github.com/assent-dev/assent/libs/sdk"
	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/schemas"
	"github.com/assent-dev/assent/test/systest"
)

// The component tests run the transport against kfake, with a fake decider:
// a loop that decides each command with the pure domain and writes the
// events in a transaction that ends with a seal, as the real decider does
// (which runs in the integration tests).

var policies = approval.Policies{Rules: []approval.Policy{{
	Name:         "prod-deploy",
	Match:        approval.Match{ActionTypes: []string{"deploy"}, Environments: []string{"production"}, Resource: "services/**"},
	Approvers:    []string{"user:alice@example.com", "user:bob@example.com", "user:carol@example.com", "user:dana@example.com"},
	MinApprovals: 1, RejectThreshold: 1, TTL: approval.Duration(time.Hour),
}}}

type fakeDecider struct {
	mu              sync.Mutex
	commands        [][]byte // every command value it read
	unauthenticated []string // the ids claimed by the commands refused unauthenticated
}

func (f *fakeDecider) seen() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]byte(nil), f.commands...)
}

// startFakeDecider decides commands until the test ends.
func startFakeDecider(t *testing.T, cfg eventlog.Config, spec eventlog.TopicSpec) *fakeDecider {
	t.Helper()
	cl, err := eventlog.NewClient(cfg, kgo.ConsumeTopics(spec.Commands), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.TransactionalID("fake-decider-"+wire.NewID(time.Now())))
	require.NoError(t, err)
	signer := systest.DemoSigner(t)
	cmdKeys := systest.DemoCommandKeys(t)
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done; cl.Close() })
	f := &fakeDecider{}
	go func() {
		defer close(done)
		states := map[string]approval.State{}
		heads := map[int32]*wire.Chain{}
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			fs.EachRecord(func(r *kgo.Record) {
				f.mu.Lock()
				f.commands = append(f.commands, r.Value)
				f.mu.Unlock()
				env, err := eventlog.DecodeRecord(r)
				if err != nil {
					t.Errorf("fake decider: %v", err)
					return
				}
				cmd, err := codec.DomainCommand(env)
				st := states[cmd.RequestID]
				var d approval.Decision
				var refusal *approval.Refusal
				if unauth := command.Authenticate(cmdKeys, env, cmd); unauth != nil {
					// As the real decider: what a key that may speak for
					// the actor did not sign is refused before the domain,
					// under the record's id, not the one it claims.
					f.mu.Lock()
					f.unauthenticated = append(f.unauthenticated, cmd.ID)
					f.mu.Unlock()
					forged := approval.Command{ID: fmt.Sprintf("kafka:%s/%d/%d", r.Topic, r.Partition, r.Offset), RequestID: cmd.RequestID, Actor: approval.SystemDecider}
					d = approval.Refuse(st, forged, env.Type, unauth, time.Now())
				} else if errors.As(err, &refusal) {
					d = approval.Refuse(st, cmd, env.Type, refusal, time.Now())
				} else {
					d = approval.Decide(st, cmd, policies, time.Now())
				}
				if len(d.Events) == 0 {
					return
				}
				p := wire.Partition([]byte(cmd.RequestID), int(spec.Partitions))
				chain := heads[p]
				if chain == nil {
					chain = wire.NewChain("")
					heads[p] = chain
				}
				from := chain.Head
				if err := cl.BeginTransaction(); err != nil {
					t.Errorf("fake decider: begin: %v", err)
					return
				}
				produce := func(key, value []byte) {
					rec := eventlog.RecordOf(spec.Events, key, value)
					rec.Partition = p
					if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil && ctx.Err() == nil {
						t.Errorf("fake decider: produce: %v", err)
					}
				}
				for _, e := range d.Events {
					st = approval.Evolve(st, e)
					ev, err := codec.EventEnvelope(e, "assent/decider", chain.Head)
					require.NoError(t, err)
					value, err := chain.Next(ev)
					require.NoError(t, err)
					produce([]byte(cmd.RequestID), value)
				}
				sealEnv, err := wire.NewSeal(signer, "assent/decider", spec.Events, p, from, chain.Head, len(d.Events), time.Now())
				require.NoError(t, err)
				value, err := chain.Next(sealEnv)
				require.NoError(t, err)
				produce(nil, value)
				if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil && ctx.Err() == nil {
					t.Errorf("fake decider: commit: %v", err)
				}
				states[cmd.RequestID] = st
			})
		}
	}()
	return f
}

func fakeCluster(t *testing.T) (eventlog.Config, eventlog.TopicSpec) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	cfg := eventlog.Config{Brokers: c.ListenAddrs()}
	spec := eventlog.TopicSpec{Commands: "c", Events: "e", Partitions: 3, ReplicationFactor: 1, MinInsyncReplicas: 1}
	admCl, err := eventlog.NewClient(cfg)
	require.NoError(t, err)
	t.Cleanup(admCl.Close)
	_, err = kadm.NewClient(admCl).CreateTopics(t.Context(), spec.Partitions, 1, nil, spec.Commands, spec.Events)
	require.NoError(t, err)
	return cfg, spec
}

func newTransport(t *testing.T, cfg eventlog.Config, spec eventlog.TopicSpec, principal string) *Client {
	t.Helper()
	return newTransportWith(t, cfg, spec, principal, demoKeyFor(principal))
}

// demoKeyFor is the demo command key a transport acting as principal
// signs with: billing's own for service:billing; for a person, the key of
// a gateway that votes on their behalf (the api's demo key, which has the
// on_behalf role, stands in for it).
func demoKeyFor(principal string) string {
	if principal == "service:billing" {
		return systest.ServiceBilling
	}
	return systest.ServiceAPI
}

func newTransportWith(t *testing.T, cfg eventlog.Config, spec eventlog.TopicSpec, principal, key string) *Client {
	t.Helper()
	c, err := New(cfg, spec, principal, WithRescanAfter(100*time.Millisecond), WithKeys(systest.DemoKeys(t)),
		WithCommandKey(systest.DemoCommandSigner(t, key)))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

func deploy(rid, env string) assent.SubmitRequest {
	return assent.SubmitRequest{
		RequestID: rid,
		Action: assent.Action{Type: "deploy", Resource: "services/billing/api", Environment: env,
			Details: map[string]any{"version": "1.4.2", "b": []any{1, 2}}},
		Reason: "release 1.4.2",
	}
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestNewRefusesBadConfiguration(t *testing.T) {
	t.Parallel()
	spec := eventlog.DefaultTopicSpec()
	cfg := eventlog.Config{Brokers: []string{"127.0.0.1:1"}}
	_, err := New(cfg, spec, "system:decider")
	require.ErrorContains(t, err, "system principal")
	_, err = New(cfg, spec, "billing")
	require.Error(t, err)
	spec.Partitions = 0
	_, err = New(cfg, spec, "service:billing")
	require.Error(t, err)
	_, err = New(cfg, eventlog.DefaultTopicSpec(), "service:billing")
	require.ErrorContains(t, err, "published decider public keys are required")
	_, err = New(cfg, eventlog.DefaultTopicSpec(), "service:billing", WithKeys(systest.DemoKeys(t)))
	require.ErrorContains(t, err, "command key is required (WithCommandKey)")
	c, err := New(cfg, eventlog.DefaultTopicSpec(), "Alice@Example.com", WithKeys(systest.DemoKeys(t)),
		WithCommandKey(systest.DemoCommandSigner(t, systest.ServiceAPI)))
	require.NoError(t, err)
	require.Equal(t, "user:alice@example.com", c.Principal())
	c.Close()
}

func TestCommandIDsNameTheIntention(t *testing.T) {
	t.Parallel()
	c := &Client{principal: "service:billing"}
	a, h1, err := c.submitBody(deploy("r-1", "production"))
	require.NoError(t, err)
	b, h2, err := c.submitBody(deploy("r-1", "production"))
	require.NoError(t, err)
	require.Equal(t, a, b)
	require.Equal(t, h1, h2)
	require.Equal(t, command.SDKCommandID("submit", "service:billing", "r-1", h1), command.SDKCommandID("submit", "service:billing", "r-1", h2))
	_, h3, err := c.submitBody(deploy("r-1", "staging"))
	require.NoError(t, err)
	require.NotEqual(t, h1, h3, "other content is another command")
	require.NotEqual(t, command.SDKCommandID("submit", "service:billing", "r-1", h1), command.SDKCommandID("submit", "service:alice", "r-1", h1))
	require.NotEqual(t, command.SDKCommandID("vote", "a", "bc"), command.SDKCommandID("vote", "ab", "c"), "parts are separated")
	require.Regexp(t, `^sdk-submit-[0-9a-f]{32}$`, command.SDKCommandID("submit", "x"))
}

func TestInvalidCommandsNeverReachTheLog(t *testing.T) {
	t.Parallel()
	c := newTransport(t, eventlog.Config{Brokers: []string{"127.0.0.1:1"}}, eventlog.DefaultTopicSpec(), "service:billing")
	ctx := ctxFor(t, 5*time.Second)
	req := deploy("r-1", "production")
	req.Reason = ""
	_, err := c.Submit(ctx, req)
	require.True(t, assent.IsCode(err, assent.CodeInvalid), "%v", err)
	_, err = c.Submit(ctx, deploy("has space", "production"))
	require.True(t, assent.IsCode(err, assent.CodeInvalid), "%v", err)
	_, err = c.Vote(ctx, "r-1", assent.VoteRequest{Decision: "maybe"})
	require.True(t, assent.IsCode(err, assent.CodeInvalid), "%v", err)
	_, err = c.Vote(ctx, "r-1", assent.VoteRequest{Decision: assent.Approve, Voter: "user:bob@example.com"})
	require.True(t, assent.IsCode(err, assent.CodeForbidden), "%v", err)
}

func TestSubmitWaitApproveOnFakeCluster(t *testing.T) {
	t.Parallel()
	cfg, spec := fakeCluster(t)
	dec := startFakeDecider(t, cfg, spec)
	billing := newTransport(t, cfg, spec, "service:billing")
	alice := newTransport(t, cfg, spec, "user:alice@example.com")
	ctx := ctxFor(t, 30*time.Second)

	s, err := billing.Submit(ctx, deploy("r-1", "production"))
	require.NoError(t, err)
	require.Equal(t, wire.Partition([]byte("r-1"), 3), s.Partition)
	require.NoError(t, billing.Outcome(ctx, s), "the submit was accepted")

	v, err := alice.Vote(ctx, "r-1", assent.VoteRequest{Decision: assent.Approve, Comment: "lgtm"})
	require.NoError(t, err)
	require.NoError(t, alice.Outcome(ctx, v))
	d, err := billing.WaitFor(ctx, s)
	require.NoError(t, err)
	require.True(t, d.Approved)
	require.Equal(t, assent.StatusApproved, d.Status)
	require.Equal(t, []string{"user:alice@example.com"}, d.DecidedBy)
	require.Equal(t, "service:billing", d.View.Requester)
	require.Equal(t, map[string]any{"b": []any{1.0, 2.0}, "version": "1.4.2"}, d.View.Action.Details)
	require.Equal(t, "prod-deploy", d.View.Policy.Name)
	require.Len(t, d.View.Votes, 1)

	// A second vote by alice is refused, and Outcome says so.
	v, err = alice.Vote(ctx, "r-1", assent.VoteRequest{Decision: assent.Reject})
	require.NoError(t, err)
	require.True(t, assent.IsCode(alice.Outcome(ctx, v), assent.CodeAlreadyDecided))

	// By id alone: a scan from the start.
	d, err = billing.Wait(ctx, "r-1")
	require.NoError(t, err)
	require.True(t, d.Approved)

	// Every command the transport wrote is valid under its schema.
	for _, value := range dec.seen() {
		require.NoError(t, schemas.Validate(value), string(value))
	}
}

func TestRetriedSubmitOfADecidedRequestRescans(t *testing.T) {
	t.Parallel()
	cfg, spec := fakeCluster(t)
	startFakeDecider(t, cfg, spec)
	billing := newTransport(t, cfg, spec, "service:billing")
	alice := newTransport(t, cfg, spec, "user:alice@example.com")
	ctx := ctxFor(t, 30*time.Second)

	first, err := billing.Submit(ctx, deploy("r-2", "production"))
	require.NoError(t, err)
	require.NoError(t, billing.Outcome(ctx, first))
	v, err := alice.Vote(ctx, "r-2", assent.VoteRequest{Decision: assent.Approve})
	require.NoError(t, err)
	require.NoError(t, alice.Outcome(ctx, v))

	// A pipeline step that restarts submits again: the same command,
	// decided before, adds nothing after From; the wait must look back.
	again := newTransport(t, cfg, spec, "service:billing")
	d, err := again.RequestApproval(ctx, deploy("r-2", "production"))
	require.NoError(t, err)
	require.True(t, d.Approved)
}

func TestWaitForRereadsWhenItJoinsARequestMidway(t *testing.T) {
	t.Parallel()
	cfg, spec := fakeCluster(t)
	startFakeDecider(t, cfg, spec)
	billing := newTransport(t, cfg, spec, "service:billing")
	alice := newTransport(t, cfg, spec, "user:alice@example.com")
	ctx := ctxFor(t, 30*time.Second)

	first, err := billing.Submit(ctx, deploy("r-3", "production"))
	require.NoError(t, err)
	require.NoError(t, billing.Outcome(ctx, first))
	// From is now after the request's first event; the vote's events come
	// after it, so the wait meets sequence 2 first.
	again, err := billing.Submit(ctx, deploy("r-3", "production"))
	require.NoError(t, err)
	require.Equal(t, first.CommandID, again.CommandID)
	require.Greater(t, again.From, first.From)
	v, err := alice.Vote(ctx, "r-3", assent.VoteRequest{Decision: assent.Reject, Comment: "not today"})
	require.NoError(t, err)
	require.NoError(t, alice.Outcome(ctx, v))
	d, err := billing.WaitFor(ctx, again)
	require.NoError(t, err)
	require.False(t, d.Approved)
	require.Equal(t, assent.StatusRejected, d.Status)
}

// TestABackendKeySpeaksOnlyForItself: a backend's command key has no
// on_behalf role, so a transport configured with it as another principal,
// or naming another requester, gets its commands refused unauthenticated
// by the decider (the fake one authenticates as the real one does); what
// it signs as itself is decided, and every command it writes is signed.
func TestABackendKeySpeaksOnlyForItself(t *testing.T) {
	t.Parallel()
	cfg, spec := fakeCluster(t)
	dec := startFakeDecider(t, cfg, spec)
	billing := newTransport(t, cfg, spec, "service:billing")
	impostor := newTransportWith(t, cfg, spec, "user:alice@example.com", systest.ServiceBilling)
	ctx := ctxFor(t, 30*time.Second)

	s, err := billing.Submit(ctx, deploy("r-own", "production"))
	require.NoError(t, err)
	require.NoError(t, billing.Outcome(ctx, s), "billing's own submit is decided")

	forged, err := impostor.Vote(ctx, "r-own", assent.VoteRequest{Decision: assent.Approve})
	require.NoError(t, err, "Kafka takes the record")
	req := deploy("r-for-dana", "production")
	req.Requester = "user:dana@example.com"
	forDana, err := billing.Submit(ctx, req)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		dec.mu.Lock()
		defer dec.mu.Unlock()
		return len(dec.unauthenticated) == 2
	}, 10*time.Second, 20*time.Millisecond, "billing's key can neither vote as alice nor name dana as the requester")
	require.ElementsMatch(t, []string{forged.CommandID, forDana.CommandID}, dec.unauthenticated)

	// One approval decides r-own: had the forged vote counted, alice's
	// own (through a gateway's key) would find it decided; and though it
	// has the same id as the forgery (ids name the intention), it is
	// decided, not deduped to the forgery's refusal.
	alice := newTransport(t, cfg, spec, "user:alice@example.com")
	v, err := alice.Vote(ctx, "r-own", assent.VoteRequest{Decision: assent.Approve})
	require.NoError(t, err)
	require.Equal(t, forged.CommandID, v.CommandID)
	require.NoError(t, alice.Outcome(ctx, v), "alice's own vote is the first that counts")
	d, err := billing.Wait(ctx, "r-own")
	require.NoError(t, err)
	require.True(t, d.Approved)
	require.Len(t, d.View.Votes, 1)
	for _, value := range dec.seen() {
		env, err := wire.Unmarshal(value)
		require.NoError(t, err)
		require.Contains(t, []string{"demo-billing-2026-01", "demo-api-2026-01"}, env.AuthKeyID)
		require.NotEmpty(t, env.AuthSig)
	}
}

func TestRefusalsComeBackAsProblems(t *testing.T) {
	t.Parallel()
	cfg, spec := fakeCluster(t)
	startFakeDecider(t, cfg, spec)
	billing := newTransport(t, cfg, spec, "service:billing")
	ctx := ctxFor(t, 30*time.Second)

	d, err := billing.RequestApproval(ctx, deploy("r-4", "qa"))
	var p *assent.Problem
	require.ErrorAs(t, err, &p)
	require.Equal(t, assent.CodeNoPolicy, p.Code)
	require.Equal(t, 422, p.Status)
	require.Contains(t, p.Detail, `no policy matches action type "deploy"`)
	require.False(t, d.Approved)
	require.Empty(t, d.Status)

	d, err = billing.Wait(ctx, "r-4")
	require.True(t, assent.IsCode(err, assent.CodeNoPolicy), "%v", err)
	require.False(t, d.Approved)

	// The same id with other content is a conflict.
	_, err = billing.RequestApproval(ctxFor(t, time.Second), deploy("r-5", "production"))
	require.ErrorIs(t, err, assent.ErrPending, "pending until someone votes")
	_, err = billing.RequestApproval(ctxFor(t, 10*time.Second), func() assent.SubmitRequest {
		r := deploy("r-5", "production")
		r.Reason = "something else"
		return r
	}())
	require.True(t, assent.IsCode(err, assent.CodeConflict), "%v", err)
}

func TestWaitEndsWithTheContext(t *testing.T) {
	t.Parallel()
	cfg, spec := fakeCluster(t)
	startFakeDecider(t, cfg, spec)
	billing := newTransport(t, cfg, spec, "service:billing")
	d, err := billing.RequestApproval(ctxFor(t, 2*time.Second), deploy("r-6", "production"))
	require.ErrorIs(t, err, assent.ErrPending)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.False(t, d.Approved)
	require.Equal(t, assent.StatusPending, d.Status)
	require.Equal(t, "r-6", d.RequestID)
}

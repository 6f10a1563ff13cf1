package queue_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/codec"
	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/projection"
	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/services/notifier/internal/queue"
	"github.com/assent-dev/assent/test/systest"
)

var t0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

// notifyPolicies is one policy with every kind of delivery target: a
// webhook with the default events, one with the decision only, and email
// to the approvers and to the requester.
func notifyPolicies() approval.Policies {
	approvers := []string{"user:ann@example.com", "user:bob@example.com", "user:cat@example.com"}
	return approval.Policies{Rules: []approval.Policy{{
		Name: "notified", Approvers: approvers, MinApprovals: 2, RejectThreshold: 1, TTL: approval.Duration(time.Hour),
		Notify: []approval.NotifyTarget{
			{Kind: "webhook", Target: "https://hooks.example.com/all"},
			{Kind: "webhook", Target: "https://hooks.example.com/decided", Events: []string{approval.NotifyApproved, approval.NotifyRejected}},
			{Kind: "email", Target: "approvers"},
			{Kind: "email", Target: "requester"},
		},
	}}}
}

// partLog writes one partition's events as a decider would: chained,
// decided by the domain.
type partLog struct {
	p      int32
	chain  *wire.Chain
	events []projection.Event
}

func (l *partLog) put(t *testing.T, e approval.Event) projection.Event {
	env, err := codec.EventEnvelope(e, "assent/decider", l.chain.Head)
	require.NoError(t, err)
	value, err := l.chain.Next(env)
	require.NoError(t, err)
	off := int64(len(l.events))
	rec := eventlog.RecordOf("events", []byte(e.RequestID), value)
	rec.Partition, rec.Offset = l.p, off
	dec, err := wire.DecodeRecord(eventlog.WireRecord(rec))
	require.NoError(t, err)
	pe := projection.Event{Partition: l.p, Offset: off, Value: value, Hash: wire.Hash(value), Envelope: dec}
	l.events = append(l.events, pe)
	return pe
}

// request is one request's commands, decided one at a time as the log is
// written, with the notifier's delivery notes about the deliveries its
// earlier events called for.
type request struct {
	i       int
	rid     string
	st      approval.State
	step    int
	due     []queue.Entry // deliveries called for, not yet noted
	noted   int
	invalid bool
}

// notifierLog is a log of n requests under notifyPolicies, spread over
// parts partitions and interleaved three at a time, with every outcome a
// delivery note can have: delivered, dead_letter, a replay and the
// delivery of the replayed generation, an outcome of a stale generation,
// and a note that matches no delivery.
func notifierLog(t *testing.T, parts int32, n int) [][]projection.Event {
	pols := notifyPolicies()
	logs := make([]*partLog, parts)
	for p := range parts {
		logs[p] = &partLog{p: p, chain: wire.NewChain("")}
	}
	at := t0
	decide := func(r *request, actor string, body approval.CommandBody) {
		r.step++
		at = at.Add(time.Second)
		c := approval.Command{ID: fmt.Sprintf("%s-c%d", r.rid, r.step), RequestID: r.rid, Actor: actor, Time: at, Body: body}
		l := logs[r.i%int(parts)]
		for _, e := range approval.Decide(r.st, c, pols, at).Events {
			r.st = approval.Evolve(r.st, e)
			pe := l.put(t, e)
			if _, ok := e.Body.(approval.NotificationRecorded); !ok {
				r.due = append(r.due, queue.Deliveries(r.st, e, pe.Partition, pe.Offset, pe.Envelope.ID)...)
			}
		}
	}
	note := func(r *request, e queue.Entry, outcome approval.DeliveryOutcome, gen int) {
		decide(r, "service:notifier", approval.RecordNotification{Kind: e.Kind, Channel: e.Channel(), TS: e.EventID,
			Recipient: e.Recipient, Outcome: outcome, Reason: "test", Attempts: 1, At: at, Generation: gen})
	}
	// next takes a request one command further; it reports false once
	// the request is done.
	next := func(r *request) bool {
		requester := fmt.Sprintf("user:dev%d@example.com", r.i%5)
		switch {
		case r.step == 0:
			decide(r, requester, approval.Submit{Action: approval.Action{Type: "deploy", Resource: fmt.Sprintf("svc/%d", r.i), Environment: "production"},
				Reason: "release"})
		case r.step == 1:
			decide(r, "user:ann@example.com", approval.Vote{Decision: approval.Approve})
		case r.step == 2 && r.i%4 == 0:
			decide(r, "user:bob@example.com", approval.Vote{Decision: approval.Approve})
		case r.step == 2 && r.i%4 == 1:
			decide(r, "user:bob@example.com", approval.Vote{Decision: approval.Reject, Comment: "no"})
		case r.step == 2 && r.i%4 == 2:
			decide(r, "user:mallory@example.com", approval.Vote{Decision: approval.Approve}) // refused
		case r.step == 2:
			decide(r, requester, approval.Cancel{Reason: "superseded"})
		case r.noted < len(r.due):
			e := r.due[r.noted]
			r.noted++
			switch (r.i + r.noted) % 6 {
			case 0:
				note(r, e, approval.Delivered, 0)
			case 1:
				note(r, e, approval.DeadLetter, 0)
			case 2:
				note(r, e, approval.DeadLetter, 0)
				note(r, e, approval.ReplayAsked, 0)
				note(r, e, approval.Delivered, 1)
			case 3:
				note(r, e, approval.DeadLetter, 0)
				note(r, e, approval.ReplayAsked, 0) // pending again, in generation 1
			case 4:
				note(r, e, approval.Delivered, 3) // another generation: it stays pending
			default: // still pending
			}
		case !r.invalid && r.i%7 == 0:
			r.invalid = true
			note(r, queue.Entry{Kind: approval.NotifyWebhook, Target: "https://hooks.example.com/none", EventID: "no-such-event"}, approval.Delivered, 0)
		default:
			return false
		}
		return true
	}
	for first := 0; first < n; first += 3 {
		var open []*request
		for i := first; i < min(first+3, n); i++ {
			open = append(open, &request{i: i, rid: fmt.Sprintf("req-%05d", i)})
		}
		for len(open) > 0 {
			open = slicesDeleteDone(open, next)
		}
	}
	out := make([][]projection.Event, parts)
	for p, l := range logs {
		out[p] = l.events
	}
	return out
}

// slicesDeleteDone steps each request once and drops those done.
func slicesDeleteDone(rs []*request, next func(*request) bool) []*request {
	kept := rs[:0]
	for _, r := range rs {
		if next(r) {
			kept = append(kept, r)
		}
	}
	return kept
}

type quiet struct{ t testing.TB }

func (quiet) Infof(string, ...any)           {}
func (q quiet) Errorf(f string, args ...any) { q.t.Errorf("pebble: "+f, args...) }
func (q quiet) Fatalf(f string, args ...any) { q.t.Fatalf("pebble: "+f, args...) }

// TestApplyBatchEqualsApply: the notifier's store is a
// projection.BatchHandler (with Prepare and Committed, as the request
// store's), so that the runner rebuilds it a batch at a time, and folding
// a log with ApplyBatch, in batches of any size that cut requests and
// their deliveries anywhere, restarting in the middle, leaves the store
// byte for byte as folding it event by event with Apply does: the same
// requests, the same deliveries pending and ever made, the same notes
// that matched nothing.
func TestApplyBatchEqualsApply(t *testing.T) {
	t.Parallel()
	const parts = 3
	log := notifierLog(t, parts, 240)
	open := func() (*pebble.DB, *queue.Store) {
		db, err := pebble.Open(t.TempDir(), &pebble.Options{Logger: quiet{t}})
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, db.Close()) })
		s := queue.New()
		s.Attach(db)
		return db, s
	}
	one, oneStore := open()
	many, manyStore := open()
	batched := func(s *queue.Store) (projection.BatchHandler, projection.Preparer, projection.Committer) {
		var h projection.Handler = s
		bh, ok := h.(projection.BatchHandler)
		require.True(t, ok, "the notifier's store is a projection.BatchHandler: the runner folds a batch at a time")
		pr, ok := h.(projection.Preparer)
		require.True(t, ok, "the notifier's store is a projection.Preparer: events are decoded ahead of the fold")
		cm, ok := h.(projection.Committer)
		require.True(t, ok, "the notifier's store is a projection.Committer: it lets go of the batch once committed")
		return bh, pr, cm
	}
	bh, pr, cm := batched(manyStore)
	invalidBefore := int64(0)
	rnd := rand.New(rand.NewPCG(3, 4)) //nolint:gosec // G404: the same batch sizes every run, not a secret
	at := make([]int, parts)
	for round := 0; ; round++ {
		if round == 10 {
			// A restart: a new store on what is there.
			invalidBefore = manyStore.Invalid.Load()
			manyStore = queue.New()
			manyStore.Attach(many)
			bh, pr, cm = batched(manyStore)
		}
		var poll []projection.Event
		for p := range parts {
			n := min(len(log[p])-at[p], rnd.IntN(40))
			poll = append(poll, log[p][at[p]:at[p]+n]...)
			at[p] += n
		}
		if len(poll) == 0 && at[0] == len(log[0]) && at[1] == len(log[1]) && at[2] == len(log[2]) {
			break
		}
		b := one.NewIndexedBatch()
		for i := range poll {
			e := poll[i]
			require.NoError(t, oneStore.Apply(b, &e))
		}
		require.NoError(t, b.Commit(pebble.NoSync))
		b = many.NewIndexedBatch()
		prepared := make([]projection.Event, len(poll))
		for i, e := range poll {
			if i%2 == 0 { // half of them prepared, as the runner prepares them
				e.Prepared = pr.Prepare(&e)
			}
			prepared[i] = e
		}
		require.NoError(t, bh.ApplyBatch(b, prepared))
		require.NoError(t, b.Commit(pebble.NoSync))
		cm.Committed()
	}
	require.Zero(t, oneStore.Requests.Invalid.Load())
	require.Zero(t, manyStore.Requests.Invalid.Load())
	require.Positive(t, oneStore.Invalid.Load(), "the notes that match no delivery are counted")
	require.Equal(t, oneStore.Invalid.Load(), invalidBefore+manyStore.Invalid.Load())

	// The log exercised every outcome: deliveries ended, replayed, and
	// pending in generations 0 and 1.
	var pending, made int
	gens := map[int]int{}
	for p := range int32(parts) {
		es, err := oneStore.Pending(p)
		require.NoError(t, err)
		pending += len(es)
		for _, e := range es {
			gens[e.Generation]++
		}
	}
	for _, kv := range systest.PebbleDump(t, one) {
		if strings.HasPrefix(string(kv[0]), "n/d/") {
			made++
		}
	}
	require.Positive(t, gens[0], "deliveries pending in generation 0")
	require.Positive(t, gens[1], "deliveries pending again after a replay")
	require.Less(t, pending, made, "some deliveries ended")

	want, got := systest.PebbleDump(t, one), systest.PebbleDump(t, many)
	require.Greater(t, len(want), 240*3)
	require.Equal(t, len(want), len(got))
	for i := range want {
		require.Equal(t, string(want[i][0]), string(got[i][0]), "key %d", i)
		require.Equal(t, string(want[i][1]), string(got[i][1]), "value of %q", want[i][0])
	}
}

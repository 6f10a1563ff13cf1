package requests_test

import (
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/codec"
	"github.com/assent-dev/assent/libs/projection"
	"github.com/assent-dev/assent/libs/projection/requests"
	"github.com/assent-dev/assent/libs/wire"
)

var t0 = time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)

const (
	alice   = "user:alice@example.com"
	bob     = "user:bob@example.com"
	carol   = "user:carol@example.com"
	dave    = "user:dave@example.com" // a requester, not an approver
	erin    = "user:erin@example.com" // another requester
	root    = "user:root@example.com" // admin
	gateway = "service:slack-gateway"
	parts   = 4
)

func policies() approval.Policies {
	return approval.Policies{
		Admins: []string{root},
		Rules: []approval.Policy{{
			Name:            "prod-deploy",
			Match:           approval.Match{ActionTypes: []string{"deploy"}},
			Approvers:       []string{alice, bob, carol, dave},
			MinApprovals:    2,
			RejectThreshold: 1,
			TTL:             approval.Duration(time.Hour),
		}},
	}
}

// logged is one event as it went into the store.
type logged struct {
	p     int32
	off   int64
	value []byte
}

// harness is a decider and a log in miniature: it decides commands with
// approval.Decide, encodes the events as the decider would, and applies
// them to a requests.Store the way the runner does (one indexed batch per
// poll), with no Kafka.
type harness struct {
	t     *testing.T
	db    *pebble.DB
	store *requests.Store

	states  map[string]approval.State // the decider's view, by Evolve
	log     map[string][]logged       // per request, in log order
	offsets map[int32]int64
	heads   map[int32]string
	ids     int
}

func newHarness(t *testing.T) *harness {
	db, err := pebble.Open(t.TempDir(), &pebble.Options{Logger: quiet{t}})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	s := &requests.Store{}
	s.Attach(db)
	return &harness{
		t: t, db: db, store: s,
		states: map[string]approval.State{}, log: map[string][]logged{},
		offsets: map[int32]int64{}, heads: map[int32]string{},
	}
}

// quiet drops Pebble's chatter and keeps its errors.
type quiet struct{ t *testing.T }

func (quiet) Infof(string, ...any)                {}
func (q quiet) Errorf(format string, args ...any) { q.t.Errorf("pebble: "+format, args...) }
func (q quiet) Fatalf(format string, args ...any) { q.t.Fatalf("pebble: "+format, args...) }

func partition(rid string) int32 { return wire.Partition([]byte(rid), parts) }

// do decides one command at now and applies what it produced.
func (h *harness) do(rid, actor string, body approval.CommandBody, now time.Time) approval.Decision {
	h.t.Helper()
	h.ids++
	c := approval.Command{ID: "cmd-" + strconv.Itoa(h.ids), RequestID: rid, Actor: actor, Time: now, Body: body}
	d := approval.Decide(h.states[rid], c, policies(), now)
	h.apply(d.Events...)
	return d
}

func (h *harness) submit(rid, requester string, now time.Time, ttl time.Duration) {
	h.t.Helper()
	d := h.do(rid, requester, approval.Submit{
		Action: approval.Action{Type: "deploy", Resource: "payments/api", Environment: "production"},
		Reason: "release <1.4.2> & friends", Requester: requester, TTL: approval.Duration(ttl),
	}, now)
	require.Nil(h.t, d.Refusal)
}

func (h *harness) vote(rid, voter string, decision approval.VoteDecision, now time.Time) *approval.Refusal {
	h.t.Helper()
	return h.do(rid, voter, approval.Vote{Decision: decision, Comment: "looks <ok>"}, now).Refusal
}

// apply encodes events, one poll's worth, and applies them in one batch.
func (h *harness) apply(events ...approval.Event) {
	h.t.Helper()
	if len(events) == 0 {
		return
	}
	b := h.db.NewIndexedBatch()
	defer func() { _ = b.Close() }()
	for _, ev := range events {
		p := partition(ev.RequestID)
		prev, ok := h.heads[p]
		if !ok {
			prev = wire.GenesisHash
		}
		env, err := codec.EventEnvelope(ev, "assent/decider", prev)
		require.NoError(h.t, err)
		h.applyEnvelope(b, p, env)
		h.states[ev.RequestID] = approval.Evolve(h.states[ev.RequestID], ev)
	}
	require.NoError(h.t, b.Commit(pebble.Sync))
}

// applyEnvelope puts env on the log of partition p and applies it as the
// runner would hand it over: decoded from the exact bytes.
func (h *harness) applyEnvelope(b *pebble.Batch, p int32, env wire.Envelope) {
	h.t.Helper()
	value, err := wire.Marshal(env)
	require.NoError(h.t, err)
	decoded, err := wire.Unmarshal(value)
	require.NoError(h.t, err)
	prev, ok := h.heads[p]
	if !ok {
		prev = wire.GenesisHash
	}
	e := &projection.Event{Partition: p, Offset: h.offsets[p], Value: value, Hash: wire.Hash(value), PrevHead: prev, Envelope: decoded}
	require.NoError(h.t, h.store.Apply(b, e))
	require.NoError(h.t, projection.KeepRecords(b, []projection.Event{*e})) // as the runner does
	h.log[env.Subject] = append(h.log[env.Subject], logged{p, e.Offset, value})
	h.offsets[p] += 2 // every decision is a transaction: leave room for its marker
	h.heads[p] = e.Hash
}

// replay is a fresh fold of the request's events as they sit in the log.
func (h *harness) replay(rid string) approval.State {
	h.t.Helper()
	var events []approval.Event
	for _, l := range h.log[rid] {
		env, err := wire.Unmarshal(l.value)
		require.NoError(h.t, err)
		ev, err := codec.DomainEvent(env)
		require.NoError(h.t, err)
		events = append(events, ev)
	}
	return approval.Fold(events)
}

func (h *harness) get(rid string) approval.State {
	h.t.Helper()
	st, found, err := h.store.Get(rid)
	require.NoError(h.t, err)
	require.True(h.t, found, "request %s", rid)
	return st
}

// checkFold requires I5 for every request the harness knows: the stored
// state equals a fresh fold of the log, and the decider's own state.
func (h *harness) checkFold() {
	h.t.Helper()
	for rid := range h.log {
		got := h.get(rid)
		require.Equal(h.t, h.replay(rid), got, "Get(%s) is the fold of its events", rid)
		require.Equal(h.t, h.states[rid], got, "Get(%s) is the decider's state", rid)
	}
}

func TestStoreGetEqualsFold(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	var hooked int
	h.store.OnEvent = func(e *projection.Event, ev approval.Event, before, after approval.State) {
		hooked++
		require.Equal(t, ev.Sequence, after.Sequence)
		require.Equal(t, ev.Sequence-1, before.Sequence)
		require.Equal(t, h.states[ev.RequestID].Status, before.Status, "the state before the event, as the decider saw it")
		require.Empty(t, after.Refused, "the stored state holds no refusals")
		for id, o := range after.Outcomes {
			require.Nil(t, o.Refusal(), "the stored state holds no refusals: %s", id)
		}
	}
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }

	h.submit("approved", dave, at(0), 0)
	require.Equal(t, approval.ReasonSelfApproval, h.vote("approved", dave, approval.Approve, at(1)).Code)
	require.Nil(t, h.vote("approved", alice, approval.Approve, at(1)))
	require.Equal(t, approval.ReasonDuplicateVote, h.vote("approved", alice, approval.Reject, at(1)).Code)
	require.Nil(t, h.vote("approved", bob, approval.Approve, at(2)))
	require.Equal(t, approval.ReasonAlreadyDecided, h.vote("approved", carol, approval.Approve, at(3)).Code)

	h.submit("rejected", erin, at(4), 0)
	require.Equal(t, approval.ReasonNotEligible, h.vote("rejected", root, approval.Approve, at(5)).Code)
	require.Nil(t, h.vote("rejected", carol, approval.Reject, at(5)))

	h.submit("cancelled", dave, at(6), 0)
	require.Nil(t, h.do("cancelled", dave, approval.Cancel{Reason: "not today"}, at(7)).Refusal)

	h.submit("expired", dave, at(8), 10*time.Minute)
	require.Nil(t, h.vote("expired", alice, approval.Approve, at(9)))
	require.Nil(t, h.do("expired", approval.SystemDecider, approval.Expire{}, at(18)).Refusal)

	h.submit("late-vote", erin, at(10), 10*time.Minute)
	d := h.do("late-vote", bob, approval.Vote{Decision: approval.Approve}, at(30))
	require.Equal(t, approval.ReasonExpired, d.Refusal.Code)
	require.Len(t, d.Events, 2, "the expiry and the refusal, in one decision")

	h.submit("notified", dave, at(11), 0)
	note := approval.RecordNotification{Kind: approval.NotifyCard, Channel: "C1", TS: "1.2"}
	require.Nil(t, h.do("notified", gateway, note, at(12)).Refusal)
	require.Nil(t, h.do("notified", gateway, note, at(13)).Refusal, "recorded again: no event")

	require.Equal(t, approval.ReasonNotFound, h.vote("never-submitted", alice, approval.Approve, at(14)).Code)

	h.checkFold()
	require.Zero(t, h.store.Invalid.Load())
	total := 0
	for _, l := range h.log {
		total += len(l)
	}
	require.Equal(t, total, hooked)

	for rid, want := range map[string]approval.Status{
		"approved": approval.StatusApproved, "rejected": approval.StatusRejected, "cancelled": approval.StatusCancelled,
		"expired": approval.StatusExpired, "late-vote": approval.StatusExpired, "notified": approval.StatusPending,
		"never-submitted": approval.StatusNone,
	} {
		require.Equal(t, want, h.get(rid).Status, rid)
	}
	_, found, err := h.store.Get("nobody-named-this")
	require.NoError(t, err)
	require.False(t, found)
}

// TestStoreHistory: a request's history is its events in sequence order,
// each with its partition and offset and its value byte for byte (so the
// chain can be checked from it), and nothing of any other request.
func TestStoreHistory(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.submit("req-1", dave, t0, 0)
	h.submit("req-10", dave, t0, 0) // "req-1" is a prefix of its id
	require.Nil(t, h.vote("req-1", alice, approval.Approve, t0.Add(time.Minute)))
	require.Nil(t, h.vote("req-10", bob, approval.Reject, t0.Add(time.Minute)))
	require.Nil(t, h.vote("req-1", bob, approval.Approve, t0.Add(2*time.Minute)))
	// Another producer (a Java one, say) need not escape <, > and & as Go's
	// encoding/json does, nor be compact; a JSON re-encoding of the value
	// would change its bytes and break the chain.
	b := h.db.NewIndexedBatch()
	h.applyEnvelope(b, partition("req-10"), wire.Envelope{ID: wire.NewID(t0), Source: "assent/decider",
		Type: approval.TypeNotificationRecorded, Subject: "req-10", Time: t0.Add(3 * time.Minute), Actor: gateway,
		CommandID: "cmd-note", Sequence: "4", PrevHash: wire.GenesisHash,
		Data: []byte(`{"kind":"card","channel":"<#C1|deploys> & more","ts":"1.2"}`)})
	require.NoError(t, b.Commit(pebble.Sync))
	require.NoError(t, b.Close())
	require.Zero(t, h.store.Invalid.Load())
	require.Equal(t, h.replay("req-10"), h.get("req-10"))

	for _, rid := range []string{"req-1", "req-10"} {
		hist, err := h.store.History(rid)
		require.NoError(t, err)
		require.Len(t, hist, len(h.log[rid]))
		for i, s := range hist {
			l := h.log[rid][i]
			require.Equal(t, l.p, s.Partition)
			require.Equal(t, l.off, s.Offset)
			require.Equal(t, l.value, []byte(s.Value), "the value is kept byte for byte")
			env, err := wire.Unmarshal(s.Value)
			require.NoError(t, err)
			require.Equal(t, rid, env.Subject)
			require.Equal(t, strconv.Itoa(i+1), env.Sequence)
		}
	}
	hist, err := h.store.History("req-10")
	require.NoError(t, err)
	require.Contains(t, string(hist[3].Value), `"<#C1|deploys> & more"`)

	hist, err = h.store.History("nobody")
	require.NoError(t, err)
	require.Empty(t, hist)
}

// TestStoreHistoryOddRequestIDs: the decider records a command.rejected
// under any request id a command names, even one it refuses for holding a
// slash or a NUL; such an event must not appear in another request's
// history.
func TestStoreHistoryOddRequestIDs(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.submit("req", dave, t0, 0)
	odd := []string{"req/\x00\x00\x00\x00\x00\x00\x00\x01", "req\x00\x01", "req\x00", "req/0000000001"}
	for _, rid := range odd {
		d := h.do(rid, alice, approval.Vote{Decision: approval.Approve}, t0)
		require.Equal(t, approval.ReasonInvalid, d.Refusal.Code)
		require.Len(t, d.Events, 1)
	}
	hist, err := h.store.History("req")
	require.NoError(t, err)
	require.Len(t, hist, 1, "only req's own submit")
	for _, rid := range odd {
		hist, err := h.store.History(rid)
		require.NoError(t, err)
		require.Len(t, hist, 1, "%q has its own refusal", rid)
	}
	h.checkFold()
}

// TestStoreHistoryKeepsRepeatedSequence: a log that repeats a sequence
// (which Decide never writes) is folded as a replay would fold it, counted
// as invalid, and both events stay in the history.
func TestStoreHistoryKeepsRepeatedSequence(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.submit("req", dave, t0, 0)
	require.Nil(t, h.vote("req", alice, approval.Approve, t0.Add(time.Minute)))
	dup := approval.Event{RequestID: "req", CommandID: "cmd-dup", Actor: bob, Time: t0.Add(2 * time.Minute), Sequence: 2,
		Body: approval.VoteRecorded{Voter: bob, Decision: approval.Reject}}
	h.apply(dup)

	require.Equal(t, int64(1), h.store.Invalid.Load())
	hist, err := h.store.History("req")
	require.NoError(t, err)
	require.Len(t, hist, 3)
	require.Less(t, hist[1].Offset, hist[2].Offset, "equal sequences keep log order")
	require.Equal(t, h.replay("req"), h.get("req"))
}

// TestStoreSkipsUndecodableEvents: an event of an unknown type is counted
// and skipped, and the fold goes on.
func TestStoreSkipsUndecodableEvents(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.submit("req", dave, t0, 0)
	b := h.db.NewIndexedBatch()
	h.applyEnvelope(b, partition("req"), wire.Envelope{ID: wire.NewID(t0), Source: "assent/decider",
		Type: "dev.assent.request.escalated", Subject: "req", Time: t0, Sequence: "2"})
	require.NoError(t, b.Commit(pebble.Sync))
	require.NoError(t, b.Close())
	h.log["req"] = h.log["req"][:1] // the replay cannot decode it either
	require.Equal(t, int64(1), h.store.Invalid.Load())
	require.Equal(t, h.replay("req"), h.get("req"))

	// A checkpoint (no subject) belongs to the partition, not a request.
	b = h.db.NewIndexedBatch()
	h.applyEnvelope(b, 0, wire.Envelope{ID: wire.NewID(t0), Source: "assent/decider",
		Type: "dev.assent.log.checkpoint", Time: t0})
	require.NoError(t, b.Commit(pebble.Sync))
	require.NoError(t, b.Close())
	require.Equal(t, int64(1), h.store.Invalid.Load())
}

// listAll pages through List with the given page size and returns the
// request ids in order.
func listAll(t *testing.T, s *requests.Store, f requests.Filter) []string {
	t.Helper()
	var ids []string
	for pages := 0; ; pages++ {
		require.Less(t, pages, 1000, "List does not end")
		page, err := s.List(f)
		require.NoError(t, err)
		if f.Limit > 0 {
			require.LessOrEqual(t, len(page.Items), f.Limit)
		}
		if page.Next != "" {
			require.Len(t, page.Items, f.Limit, "only the last page may be short")
		}
		for _, st := range page.Items {
			ids = append(ids, st.RequestID)
		}
		if page.Next == "" {
			return ids
		}
		f.Cursor = page.Next
	}
}

func TestStoreList(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	// Twelve requests a minute apart, two of them at the same instant.
	var rids []string
	for i := range 12 {
		rid := "req-" + strconv.Itoa(i)
		requester := dave
		if i%3 == 0 {
			requester = erin
		}
		created := t0.Add(time.Duration(i) * time.Minute)
		if i == 7 {
			created = t0.Add(6 * time.Minute)
		}
		h.submit(rid, requester, created, 0)
		rids = append(rids, rid)
	}
	later := t0.Add(20 * time.Minute)
	require.Nil(t, h.vote("req-0", alice, approval.Approve, later))
	require.Nil(t, h.vote("req-0", bob, approval.Approve, later))  // approved
	require.Nil(t, h.vote("req-1", carol, approval.Reject, later)) // rejected
	require.Nil(t, h.do("req-2", dave, approval.Cancel{}, later).Refusal)
	require.Nil(t, h.vote("req-3", alice, approval.Approve, later)) // pending, alice voted
	require.Nil(t, h.vote("req-4", bob, approval.Reject, later))    // rejected
	require.Nil(t, h.vote("req-5", carol, approval.Approve, later)) // pending, carol voted

	// expected lists, newest first, what a filter should return.
	expected := func(keep func(approval.State) bool) []string {
		var sts []approval.State
		for _, rid := range rids {
			if st := h.states[rid]; keep(st) {
				sts = append(sts, st)
			}
		}
		slices.SortFunc(sts, func(a, b approval.State) int {
			if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
				return c
			}
			return -1 * compareStrings(a.RequestID, b.RequestID)
		})
		var out []string
		for _, st := range sts {
			out = append(out, st.RequestID)
		}
		return out
	}
	mayVote := func(p string) func(approval.State) bool {
		return func(st approval.State) bool {
			return st.Status == approval.StatusPending && st.Requester != p &&
				slices.Contains(st.Policy.Approvers, p) && !st.HasVoted(p)
		}
	}
	cases := []struct {
		name string
		f    requests.Filter
		keep func(approval.State) bool
	}{
		{"all", requests.Filter{}, func(approval.State) bool { return true }},
		{"pending", requests.Filter{Status: approval.StatusPending}, func(st approval.State) bool { return st.Status == approval.StatusPending }},
		{"rejected", requests.Filter{Status: approval.StatusRejected}, func(st approval.State) bool { return st.Status == approval.StatusRejected }},
		{"expired", requests.Filter{Status: approval.StatusExpired}, func(approval.State) bool { return false }},
		{"by dave", requests.Filter{Requester: dave}, func(st approval.State) bool { return st.Requester == dave }},
		{"by erin, pending", requests.Filter{Requester: erin, Status: approval.StatusPending},
			func(st approval.State) bool { return st.Requester == erin && st.Status == approval.StatusPending }},
		{"alice may vote", requests.Filter{Approver: alice}, mayVote(alice)},
		{"carol may vote", requests.Filter{Approver: carol}, mayVote(carol)},
		{"dave may vote", requests.Filter{Approver: dave}, mayVote(dave)},
		{"root may vote", requests.Filter{Approver: root}, mayVote(root)},
	}
	for _, c := range cases {
		want := expected(c.keep)
		for _, limit := range []int{1, 2, 3, 5, 50} {
			f := c.f
			f.Limit = limit
			got := listAll(t, h.store, f)
			require.Equal(t, want, got, "%s, %d a page", c.name, limit)
		}
	}

	// The approver index by hand: a vote or a decision drops the request.
	alices := listAll(t, h.store, requests.Filter{Approver: alice})
	require.NotContains(t, alices, "req-3", "alice voted")
	require.NotContains(t, alices, "req-0", "approved")
	require.Contains(t, alices, "req-5", "carol voted, not alice")
	require.Empty(t, listAll(t, h.store, requests.Filter{Approver: root}), "not eligible")
	daves := listAll(t, h.store, requests.Filter{Approver: dave})
	require.NotEmpty(t, daves)
	for _, rid := range daves {
		require.Equal(t, erin, h.states[rid].Requester, "dave never approves his own requests")
	}
	require.Nil(t, h.vote("req-5", bob, approval.Approve, later.Add(time.Minute))) // approved now
	require.NotContains(t, listAll(t, h.store, requests.Filter{Approver: alice}), "req-5")
	require.Equal(t, expected(mayVote(alice)), listAll(t, h.store, requests.Filter{Approver: alice, Limit: 2}))

	// Default page size.
	page, err := h.store.List(requests.Filter{})
	require.NoError(t, err)
	require.Len(t, page.Items, len(rids))
	require.Empty(t, page.Next)
	h.checkFold()
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func TestStoreListBadCursor(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for i := range 3 {
		h.submit("req-"+strconv.Itoa(i), dave, t0.Add(time.Duration(i)*time.Minute), 0)
	}
	page, err := h.store.List(requests.Filter{Status: approval.StatusPending, Limit: 1})
	require.NoError(t, err)
	require.NotEmpty(t, page.Next)

	for name, f := range map[string]requests.Filter{
		"not base64":        {Cursor: "%%%"},
		"not a key":         {Cursor: "aGVsbG8"},
		"another index":     {Requester: dave, Cursor: page.Next},
		"another term":      {Status: approval.StatusApproved, Cursor: page.Next},
		"the all index":     {Cursor: page.Next},
		"another approver":  {Approver: alice, Cursor: page.Next},
		"truncated":         {Status: approval.StatusPending, Cursor: page.Next[:4]},
		"empty after other": {Requester: erin, Cursor: page.Next},
	} {
		_, err := h.store.List(f)
		require.ErrorIs(t, err, requests.ErrBadCursor, name)
	}
	_, err = h.store.List(requests.Filter{Status: approval.StatusPending, Cursor: page.Next})
	require.NoError(t, err, "the cursor still works for its own query")
}

// TestStoreDue: the timers of a partition are the pending requests whose
// expires_at is at or before now, oldest first; a decision removes one.
func TestStoreDue(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	// Request ids by partition.
	byPart := map[int32][]string{}
	for i := 0; len(byPart[0]) < 4 || len(byPart[1]) < 1; i++ {
		rid := "due-" + strconv.Itoa(i)
		byPart[partition(rid)] = append(byPart[partition(rid)], rid)
	}
	a, b, c, d := byPart[0][0], byPart[0][1], byPart[0][2], byPart[0][3]
	x := byPart[1][0]
	h.submit(a, dave, t0, 10*time.Minute)
	h.submit(b, dave, t0, 20*time.Minute)
	h.submit(c, dave, t0, 30*time.Minute)
	h.submit(d, dave, t0.Add(time.Minute), 8*time.Minute) // expires before a, submitted after
	h.submit(x, dave, t0, 15*time.Minute)

	due := func(p int32, now time.Time, limit int) []string {
		t.Helper()
		ids, err := h.store.Due(p, now, limit)
		require.NoError(t, err)
		return ids
	}
	require.Empty(t, due(0, t0.Add(5*time.Minute), 10))
	require.Equal(t, []string{d, a}, due(0, t0.Add(10*time.Minute), 10), "expires_at == now is due")
	require.Equal(t, []string{d}, due(0, t0.Add(10*time.Minute-time.Nanosecond), 10))
	require.Equal(t, []string{d, a, b}, due(0, t0.Add(25*time.Minute), 10))
	require.Equal(t, []string{d, a}, due(0, t0.Add(time.Hour), 2), "at most limit")
	require.Equal(t, []string{x}, due(1, t0.Add(time.Hour), 10), "only the partition's own")
	require.Empty(t, due(2, t0.Add(time.Hour), 10))

	require.Nil(t, h.vote(a, alice, approval.Approve, t0.Add(time.Minute)))
	require.Equal(t, []string{d, a, b, c}, due(0, t0.Add(time.Hour), 10), "a vote short of quorum keeps the timer")
	require.Nil(t, h.vote(a, bob, approval.Approve, t0.Add(2*time.Minute)))
	require.Nil(t, h.do(d, approval.SystemDecider, approval.Expire{}, t0.Add(9*time.Minute)).Refusal)
	require.Nil(t, h.do(c, dave, approval.Cancel{}, t0.Add(3*time.Minute)).Refusal)
	require.Equal(t, approval.StatusExpired, h.get(d).Status)
	require.Equal(t, []string{b}, due(0, t0.Add(time.Hour), 10), "decided requests have no timer")
	require.Nil(t, h.do(b, approval.SystemDecider, approval.Expire{}, t0.Add(time.Hour)).Refusal)
	require.Empty(t, due(0, t0.Add(time.Hour), 10))
	h.checkFold()
}

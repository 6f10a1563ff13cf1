package chaos

import (
	"crypto/ed25519"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/codec"
	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/test/systest"
)

// A synthetic run with an insider: a log of one partition that the deciders
// sealed transaction by transaction (libs/wire), with forged decisions
// appended between their transactions by a plain producer, and histories by
// hand. The checker must judge only what a valid seal covers, and fail a
// run in which any client or replica was shown a forged outcome.

const insiderTopic = "chaos.events"

type sealedLog struct {
	t       *testing.T
	signer  *wire.Signer
	recs    []systest.Record
	head    string // the authenticated head: what the deciders extend
	states  map[string]approval.State
	decided map[string]time.Time // the deciders' decisions, by request
}

func newSealedLog(t *testing.T) (*sealedLog, *wire.KeyRing) {
	t.Helper()
	_, key, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	signer, err := wire.NewSigner("k1", key)
	require.NoError(t, err)
	ring := wire.NewKeyRing(map[string]ed25519.PublicKey{"k1": signer.Public()})
	return &sealedLog{t: t, signer: signer, head: wire.GenesisHash, states: map[string]approval.State{}, decided: map[string]time.Time{}}, ring
}

func (l *sealedLog) append(env wire.Envelope, transactional bool) int64 {
	v, err := wire.Marshal(env)
	require.NoError(l.t, err)
	env, err = wire.Unmarshal(v)
	require.NoError(l.t, err)
	r := systest.Record{Partition: 3, Offset: int64(len(l.recs)), Value: v, Envelope: env, Transactional: transactional, ProducerID: 1}
	if !transactional {
		r.ProducerID = 2
	}
	if env.Subject != "" {
		r.Event, err = codec.DomainEvent(env)
		require.NoError(l.t, err)
	}
	l.recs = append(l.recs, r)
	return r.Offset
}

// decide is one decider transaction: the command's events, then a seal.
func (l *sealedLog) decide(tc timed) {
	when := t0.Add(time.Duration(tc.sec * float64(time.Second)))
	d := approval.Decide(l.states[tc.c.RequestID], tc.c, testPolicies(), when)
	from := l.head
	for _, e := range d.Events {
		env, err := codec.EventEnvelope(e, "assent/decider", l.head)
		require.NoError(l.t, err)
		l.head = wire.Hash(l.recs[l.append(env, true)].Value)
		l.states[tc.c.RequestID] = approval.Evolve(l.states[tc.c.RequestID], e)
		if l.states[tc.c.RequestID].Status.Terminal() {
			l.decided[tc.c.RequestID] = when
		}
	}
	seal, err := wire.NewSeal(l.signer, "assent/decider", insiderTopic, 3, from, l.head, len(d.Events), when)
	require.NoError(l.t, err)
	l.head = wire.Hash(l.recs[l.append(seal, true)].Value)
}

// forge is the insider's plain producer: a well-formed decision with the
// next sequence, linked to the last record of the partition.
func (l *sealedLog) forge(rid string, outcome approval.Status, sec float64) Forgery {
	when := t0.Add(time.Duration(sec * float64(time.Second)))
	st := l.states[rid]
	e := approval.Event{RequestID: rid, CommandID: "forged-" + rid, Actor: "user:a@x", Time: when, Sequence: st.Sequence + 1,
		Body: approval.RequestApproved{Approvers: []string{"user:a@x"}}}
	if outcome == approval.StatusRejected {
		e.Body = approval.RequestRejected{Rejecters: []string{"user:a@x"}}
	}
	env, err := codec.EventEnvelope(e, "assent/decider", wire.Hash(l.recs[len(l.recs)-1].Value))
	require.NoError(l.t, err)
	off := l.append(env, false)
	return Forgery{Kind: ForgePlain, Request: rid, Outcome: string(outcome), Partition: 3, Offsets: []int64{off}, EventID: env.ID, Time: when}
}

func viewsOf(states map[string]approval.State, replicas ...string) map[string]map[string]View {
	out := map[string]map[string]View{}
	for _, replica := range replicas {
		out[replica] = map[string]View{}
		for rid, st := range states {
			v := View{Status: string(st.Status), Requester: st.Requester, Reason: st.Reason, Sequence: st.Sequence, DecidedBy: st.DecidedBy}
			v.Policy.Hash = st.Policy.Hash
			for _, vote := range st.Votes {
				v.Votes = append(v.Votes, struct {
					Voter    string `json:"voter"`
					Decision string `json:"decision"`
				}{vote.Voter, string(vote.Decision)})
			}
			out[replica][rid] = v
		}
	}
	return out
}

// insiderRun: r1 is forged approved while pending, then rejected by the
// deciders; r2 is forged approved, then approved by the deciders. Nobody
// was shown r1 approved, nor r2 approved before the deciders approved it.
func insiderRun(t *testing.T) Input {
	l, ring := newSealedLog(t)
	l.decide(sub("r1", "one", 1))
	l.decide(sub("r2", "one", 1.1))
	f1 := l.forge("r1", approval.StatusApproved, 2)
	f2 := l.forge("r2", approval.StatusApproved, 2.1)
	l.decide(vote("r1", "v-b", "user:b@x", approval.Reject, 3))
	l.decide(vote("r2", "v-a", "user:a@x", approval.Approve, 4))
	h := ops(
		Op{Kind: KindSubmit, Request: "r1", Command: "s-r1", Actor: "user:r@x", Content: "c1", Call: at(0.9), Return: at(1.2), Outcome: OK, HasView: true, Status: "pending", Replica: "api-1"},
		Op{Kind: KindSubmit, Request: "r2", Command: "s-r2", Actor: "user:r@x", Content: "c2", Call: at(1.0), Return: at(1.3), Outcome: OK, HasView: true, Status: "pending", Replica: "api-2"},
		// The insider's probes right after its forgeries: still pending.
		Op{Kind: KindRead, Request: "r1", Call: at(2.2), Return: at(2.3), Outcome: OK, HasView: true, Status: "pending", Replica: "api-1", Detail: "insider probe"},
		Op{Kind: KindRead, Request: "r1", Call: at(2.2), Return: at(2.3), Outcome: OK, HasView: true, Status: "pending", Replica: "api-2", Detail: "insider probe"},
		Op{Kind: KindRead, Request: "r2", Call: at(2.4), Return: at(2.5), Outcome: OK, HasView: true, Status: "pending", Replica: "api-1", Detail: "insider probe"},
		Op{Kind: KindVote, Request: "r1", Command: "v-b", Actor: "user:b@x", Decision: "reject", Call: at(2.9), Return: at(3.2), Outcome: OK, HasView: true, Status: "rejected", Votes: 1, Replica: "api-2"},
		Op{Kind: KindVote, Request: "r2", Command: "v-a", Actor: "user:a@x", Decision: "approve", Call: at(3.9), Return: at(4.2), Outcome: OK, HasView: true, Status: "approved", Votes: 1, Replica: "api-1"},
		Op{Kind: KindRead, Request: "r2", Call: at(4.5), Return: at(4.6), Outcome: OK, HasView: true, Status: "approved", Votes: 1, Replica: "api-2"},
	)
	return Input{Log: l.recs, Ops: h, Views: viewsOf(l.states, "api-1", "api-2"), Keys: ring, Topic: insiderTopic,
		Forgeries: []Forgery{f1, f2},
		Counters:  []Counter{{Replica: "api-1", At: t0.Add(2 * time.Second), Before: 0, After: 2}, {Replica: "api-2", At: t0.Add(2 * time.Second), Before: 0, After: 2}}}
}

func TestCheckPassesARunWithForgeriesNeverServed(t *testing.T) {
	t.Parallel()
	in := insiderRun(t)
	v := Check(in)
	require.Empty(t, v.Anomalies, summary(v))
	require.Equal(t, 0, v.Served)
	require.Equal(t, 2, v.Unauthenticated, "both forgeries are refused, and nothing else")
	require.Equal(t, approval.StatusRejected, v.Base.States["r1"].Status, "the fold is the deciders' log, not the forgery")
	require.Equal(t, approval.StatusApproved, v.Base.States["r2"].Status)

	// Without the keys, the same log read raw is broken: the checker must
	// authenticate to judge it.
	in.Keys = nil
	in.Forgeries, in.Counters = nil, nil
	require.NotEmpty(t, Check(in).Anomalies, "the raw log, forgeries folded in, breaks the chain and the sequences")
}

func TestCheckFailsWhenAForgeryIsServed(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		change func(in *Input)
		inv    string
		detail string
	}{
		{"a client was shown r1 approved, which only the forgery claims", func(in *Input) {
			in.Ops[3].Status = "approved"
		}, "FORGED", "a forged outcome was served"},
		{"a client was shown r2 approved before the deciders approved it", func(in *Input) {
			in.Ops[4].Status = "approved"
		}, "FORGED", "only at"},
		{"a vote answered with the forged outcome", func(in *Input) {
			in.Ops = append(in.Ops, Op{ID: 50, Kind: KindVote, Request: "r1", Command: "v-x", Actor: "user:b@x", Decision: "approve",
				Call: at(2.5), Return: at(2.6), Outcome: Refused, Code: "already_decided", HasView: true, Status: "approved", Replica: "api-1"})
			in.Ops[len(in.Ops)-1].Outcome = OK
		}, "FORGED", "a forged outcome was served"},
		{"a replica's final view shows the forged outcome", func(in *Input) {
			v := in.Views["api-2"]["r1"]
			v.Status = "approved"
			in.Views["api-2"]["r1"] = v
		}, "FORGED", "final view shows approved"},
		{"the checker is not told of a forgery: an unauthenticated record nobody explains", func(in *Input) {
			in.Forgeries = in.Forgeries[1:]
		}, "AUTH", "the insider did not write"},
		{"a record the deciders sealed listed as a forgery: authenticated", func(in *Input) {
			in.Forgeries = append(in.Forgeries, Forgery{Kind: ForgeCopy, Request: "r1", Outcome: "rejected", Partition: 3, Offsets: []int64{0}})
		}, "FORGED", "covered by a valid seal"},
		{"an api replica's violation counter did not rise", func(in *Input) {
			in.Counters[1].After = in.Counters[1].Before
		}, "AUTH", "did not rise"},
		{"an api replica's violation counter could not be read", func(in *Input) {
			in.Counters[0].Err = "connection refused"
		}, "AUTH", "could not read"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			in := insiderRun(t)
			c.change(&in)
			v := Check(in)
			var found []string
			for _, a := range v.Anomalies {
				if a.Invariant == c.inv && strings.Contains(a.Detail, c.detail) {
					found = append(found, a.String())
				}
			}
			require.NotEmpty(t, found, "want %s %q, got:%s", c.inv, c.detail, summary(v))
			if c.inv == "FORGED" && c.detail != "covered by a valid seal" {
				require.Equal(t, 1, v.Served, summary(v))
			}
		})
	}
}

func TestParseUnauthenticated(t *testing.T) {
	t.Parallel()
	v, found, err := parseUnauthenticated(strings.NewReader(`# HELP assent_consistency_violations_total x
# TYPE assent_consistency_violations_total counter
assent_consistency_violations_total{kind="fold"} 0
assent_consistency_violations_total{kind="unauthenticated"} 3
assent_consistency_violations_total{kind="unauthenticated",projection="b"} 2
`))
	require.NoError(t, err)
	require.True(t, found)
	require.InDelta(t, 5.0, v, 0)
	_, found, err = parseUnauthenticated(strings.NewReader("go_goroutines 7\n"))
	require.NoError(t, err)
	require.False(t, found)
}

package chaos

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/codec"
	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/test/systest"
)

// The checker is tested on synthetic runs: a log made by the real domain
// (each command decided at a given time), and client histories written by
// hand, some of which must pass and some of which must fail.

var t0 = time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)

// at is a time in the synthetic run, in seconds after t0.
func at(sec float64) int64 { return t0.Add(time.Duration(sec * float64(time.Second))).UnixNano() }

func testPolicies() approval.Policies {
	return approval.Policies{Rules: []approval.Policy{{
		Name: "two", Match: approval.Match{ActionTypes: []string{"two"}}, Approvers: []string{"user:a@x", "user:b@x", "user:c@x"},
		MinApprovals: 2, RejectThreshold: 1, TTL: approval.Duration(10 * time.Second),
	}, {
		Name: "one", Approvers: []string{"user:a@x", "user:b@x"}, MinApprovals: 1, RejectThreshold: 1,
		TTL: approval.Duration(10 * time.Second),
	}}}
}

type timed struct {
	c   approval.Command
	sec float64 // decision time
}

// logOf decides the commands in order, each at its time, and returns the
// chained log of one partition. With replay false, a command id that was
// already decided is decided again (a decider without dedupe).
func logOf(t *testing.T, dedupe bool, cmds ...timed) []systest.Record {
	t.Helper()
	states := map[string]approval.State{}
	head := wire.GenesisHash
	var out []systest.Record
	for _, tc := range cmds {
		st := states[tc.c.RequestID]
		if !dedupe {
			st.Outcomes = nil
		}
		d := approval.Decide(st, tc.c, testPolicies(), t0.Add(time.Duration(tc.sec*float64(time.Second))))
		for _, e := range d.Events {
			env, err := codec.EventEnvelope(e, "assent/decider", head)
			require.NoError(t, err)
			v, err := wire.Marshal(env)
			require.NoError(t, err)
			env, err = wire.Unmarshal(v)
			require.NoError(t, err)
			ev, err := codec.DomainEvent(env)
			require.NoError(t, err)
			out = append(out, systest.Record{Partition: 3, Offset: int64(len(out)), Value: v, Envelope: env, Event: ev})
			head = wire.Hash(v)
			states[tc.c.RequestID] = approval.Evolve(states[tc.c.RequestID], e)
		}
	}
	return out
}

func sub(rid, typ string, sec float64) timed {
	return timed{approval.Command{ID: "s-" + rid, RequestID: rid, Actor: "user:r@x", Body: approval.Submit{
		Action: approval.Action{Type: typ, Resource: "x", Environment: "prod"}, Reason: "r"}}, sec}
}

func vote(rid, cid, voter string, d approval.VoteDecision, sec float64) timed {
	return timed{approval.Command{ID: cid, RequestID: rid, Actor: voter, Body: approval.Vote{Decision: d}}, sec}
}

func cancel(rid, cid, by string, sec float64) timed {
	return timed{approval.Command{ID: cid, RequestID: rid, Actor: by, Body: approval.Cancel{}}, sec}
}

// ops numbers the operations.
func ops(list ...Op) []Op {
	for i := range list {
		list[i].ID = int64(i + 1)
		list[i].Client = i % 4
	}
	return list
}

func invariants(v Verdict) []string {
	var out []string
	for _, a := range v.Anomalies {
		out = append(out, a.Invariant)
	}
	return out
}

func summary(v Verdict) string {
	s := ""
	for _, a := range v.Anomalies {
		s += "\n" + a.String()
	}
	return s
}

// cleanRun is a run with every kind of operation and nothing wrong: a
// submit, an ineligible vote, a duplicate sent to two replicas, a vote with
// an unknown outcome that took effect, stale reads, and a request that
// expired.
func cleanRun(t *testing.T) Input {
	log := logOf(t, true,
		sub("r1", "two", 1),
		vote("r1", "v-c", "user:z@x", approval.Approve, 2.1),
		vote("r1", "v-a", "user:a@x", approval.Approve, 3.1),
		vote("r1", "v-a", "user:a@x", approval.Approve, 3.2), // the duplicate, deduplicated
		vote("r1", "v-b", "user:b@x", approval.Approve, 5.5), // the unknown outcome
		sub("r2", "one", 1),
		timed{approval.Command{ID: "expire:r2", RequestID: "r2", Actor: approval.SystemDecider, Body: approval.Expire{}}, 11.2},
		vote("r2", "v-late", "user:a@x", approval.Approve, 12.1),
	)
	h := ops(
		Op{Kind: KindSubmit, Request: "r1", Command: "s-r1", Actor: "user:r@x", Content: "c1", Call: at(0.9), Return: at(1.2), Outcome: OK, HasView: true, Status: "pending", Replica: "api-1"},
		Op{Kind: KindRead, Request: "r1", Call: at(1.0), Return: at(1.1), Outcome: OK, HasView: true, Status: "", Replica: "api-2"},
		Op{Kind: KindVote, Request: "r1", Command: "v-c", Actor: "user:z@x", Decision: "approve", Call: at(2), Return: at(2.2), Outcome: Refused, Code: "not_eligible"},
		Op{Kind: KindVote, Request: "r1", Command: "v-a", Actor: "user:a@x", Decision: "approve", Call: at(3), Return: at(3.3), Outcome: OK, HasView: true, Status: "pending", Votes: 1, Replica: "api-1"},
		Op{Kind: KindVote, Request: "r1", Command: "v-a", Actor: "user:a@x", Decision: "approve", Call: at(3), Return: at(3.4), Outcome: OK, HasView: true, Status: "pending", Votes: 1, Replica: "api-2"},
		Op{Kind: KindRead, Request: "r1", Call: at(3.5), Return: at(3.6), Outcome: OK, HasView: true, Status: "pending", Votes: 0, Replica: "api-2"}, // stale, before api-2 showed the vote: allowed? no: see below
		Op{Kind: KindVote, Request: "r1", Command: "v-b", Actor: "user:b@x", Decision: "approve", Call: at(5), Return: at(8), Outcome: Unknown},
		Op{Kind: KindRead, Request: "r1", Call: at(9), Return: at(9.1), Outcome: OK, HasView: true, Status: "approved", Votes: 2, Replica: "api-1"},
		Op{Kind: KindSubmit, Request: "r2", Command: "s-r2", Actor: "user:r@x", Content: "c2", Call: at(0.8), Return: at(1.3), Outcome: Accepted},
		Op{Kind: KindRead, Request: "r2", Call: at(11.5), Return: at(11.6), Outcome: OK, HasView: true, Status: "expired", Replica: "api-1"},
		Op{Kind: KindVote, Request: "r2", Command: "v-late", Actor: "user:a@x", Decision: "approve", Call: at(12), Return: at(12.3), Outcome: Refused, Code: "already_decided"},
		Op{Kind: KindNegative, Request: "neg-1", Call: at(4), Return: at(4.1), HTTP: 401, Expect: 401, Outcome: Refused, Code: "unauthenticated", Detail: "no token"},
	)
	// The stale read at 3.5 shows 0 votes on api-2 after api-2 answered
	// the duplicate with 1 vote at 3.4: that is a replica going backwards.
	// Make it a read of api-3, which had not caught up yet: allowed.
	h[5].Replica = "api-3"
	views := map[string]map[string]View{"api-1": {}, "api-2": {}}
	res := systest.Check(log, nil)
	for rid, st := range res.States {
		v := View{Status: string(st.Status), Requester: st.Requester, Reason: st.Reason, Sequence: st.Sequence, DecidedBy: st.DecidedBy}
		v.Policy.Hash = st.Policy.Hash
		for _, vote := range st.Votes {
			v.Votes = append(v.Votes, struct {
				Voter    string `json:"voter"`
				Decision string `json:"decision"`
			}{vote.Voter, string(vote.Decision)})
		}
		views["api-1"][rid], views["api-2"][rid] = v, v
	}
	return Input{Log: log, Ops: h, Views: views}
}

func TestCheckPassesACleanRun(t *testing.T) {
	t.Parallel()
	in := cleanRun(t)
	v := Check(in)
	require.Empty(t, v.Anomalies, summary(v))
	require.Equal(t, 2, v.LinChecked)
	require.Equal(t, approval.StatusApproved, v.Base.States["r1"].Status)
	require.Equal(t, approval.StatusExpired, v.Base.States["r2"].Status)
}

func TestCheckFindsEachAnomaly(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		change func(t *testing.T, in *Input)
		want   string
	}{
		{"I1: an acknowledged vote never decided", func(t *testing.T, in *Input) {
			in.Ops = append(in.Ops, Op{ID: 99, Kind: KindVote, Request: "r1", Command: "v-lost", Actor: "user:c@x", Decision: "approve",
				Call: at(4), Return: at(4.2), Outcome: Accepted})
		}, "I1"},
		{"I2: a decider without dedupe decides a duplicate again", func(t *testing.T, in *Input) {
			in.Log = logOf(t, false,
				sub("r1", "two", 1),
				vote("r1", "v-a", "user:a@x", approval.Approve, 3.1),
				vote("r1", "v-a", "user:a@x", approval.Approve, 3.2))
			in.Ops = in.Ops[:5]
			in.Views = nil
		}, "I2"},
		{"I3: a client told not_eligible for a vote the log counted", func(t *testing.T, in *Input) {
			in.Ops[3].Outcome, in.Ops[3].Code, in.Ops[3].HasView = Refused, "not_eligible", false
		}, "I3"},
		{"I3: a client shown a terminal status the log does not have", func(t *testing.T, in *Input) {
			in.Ops[7].Status = "rejected"
		}, "I3"},
		{"I5: a replica's view differs from the fold", func(t *testing.T, in *Input) {
			v := in.Views["api-2"]["r1"]
			v.Sequence--
			in.Views["api-2"]["r1"] = v
		}, "I5"},
		{"I5: a replica misses a request", func(t *testing.T, in *Input) {
			delete(in.Views["api-1"], "r2")
		}, "I5"},
		{"LIN: a vote's answer does not show an earlier acknowledged vote", func(t *testing.T, in *Input) {
			// Both votes acknowledged, the second well after the first,
			// yet its view shows one vote and no decision.
			in.Ops[6].Outcome, in.Ops[6].Return, in.Ops[6].HasView, in.Ops[6].Status, in.Ops[6].Votes, in.Ops[6].Replica =
				OK, at(6), true, "pending", 1, "api-1"
		}, "LIN"},
		{"LIN: expired seen before expires_at", func(t *testing.T, in *Input) {
			in.Ops[9].Call, in.Ops[9].Return, in.Ops[9].Replica = at(5), at(5.1), "api-3"
		}, "LIN"},
		{"LIN: a vote refused duplicate_vote though nobody had voted", func(t *testing.T, in *Input) {
			// The client that sent the first copy of v-a was told ok; this
			// one, a new command by c, says c had voted already.
			in.Ops = append(in.Ops, Op{ID: 98, Kind: KindVote, Request: "r1", Command: "v-c2", Actor: "user:c@x", Decision: "approve",
				Call: at(2.5), Return: at(2.8), Outcome: Refused, Code: "duplicate_vote"})
		}, "LIN"},
		{"MONO: a replica's view goes backwards", func(t *testing.T, in *Input) {
			in.Ops[5].Replica = "api-2"
		}, "MONO"},
		{"SEC: a negative was accepted", func(t *testing.T, in *Input) {
			in.Ops[11].HTTP = 201
		}, "SEC"},
		{"SEC: a negative reached the commands topic", func(t *testing.T, in *Input) {
			env, err := codec.CommandEnvelope(approval.Command{ID: "x", RequestID: "neg-1", Actor: "user:r@x", Body: approval.Cancel{}}, "assent/api")
			require.NoError(t, err)
			in.Commands = []systest.Record{{Partition: 1, Offset: 7, Envelope: env}}
		}, "SEC"},
		{"FLOOD: a vote told rate_limited reached the commands topic", func(t *testing.T, in *Input) {
			in.Ops = append(in.Ops, Op{ID: 97, Kind: KindVote, Request: "r1", Command: "v-429", Actor: "user:z@x", Decision: "approve",
				Call: at(2.3), Return: at(2.31), Outcome: Refused, Code: "rate_limited", HTTP: 429, Hostile: true})
			env, err := codec.CommandEnvelope(approval.Command{ID: "v-429", RequestID: "r1", Actor: "user:z@x", Body: approval.Vote{Decision: approval.Approve}}, "assent/api")
			require.NoError(t, err)
			in.Commands = []systest.Record{{Partition: 3, Offset: 7, Envelope: env}}
		}, "FLOOD"},
		{"I4 and I6 from test/systest: a tampered record", func(t *testing.T, in *Input) {
			in.Log[1].Envelope.PrevHash = wire.GenesisHash
		}, "I6"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := cleanRun(t)
			tc.change(t, &in)
			v := Check(in)
			require.Contains(t, invariants(v), tc.want, summary(v))
			for _, a := range v.Anomalies {
				if a.Invariant == tc.want && a.Invariant != "SEC" && a.Request != "" {
					require.Equal(t, int32(3), a.Partition, "the anomaly names the partition: %s", a)
					require.NotEmpty(t, a.Offsets, "the anomaly names offsets: %s", a)
				}
			}
		})
	}
}

func TestModelTreatsUnknownAsPossiblyTakingEffect(t *testing.T) {
	t.Parallel()
	p := params{requester: "user:r@x", approvers: []string{"user:a@x", "user:b@x"}, quorum: 1, rejections: 1, expiresAt: at(100)}
	submit := &Op{Kind: KindSubmit, Request: "r", Command: "s", Content: "c", Call: at(0), Return: at(1), Outcome: OK}
	unknown := &Op{Kind: KindVote, Request: "r", Command: "v", Actor: "user:a@x", Decision: "approve", Call: at(2), Return: at(3), Outcome: Unknown}
	approved := &Op{Kind: KindRead, Request: "r", Call: at(4), Return: at(5), Outcome: OK, HasView: true, Status: "approved", Votes: 1}
	pending := &Op{Kind: KindRead, Request: "r", Call: at(4), Return: at(5), Outcome: OK, HasView: true, Status: "pending"}

	res, _ := linearizable(p, []*Op{submit, unknown, approved}, time.Second)
	require.Equal(t, "Ok", string(res), "the unknown vote took effect")
	res, _ = linearizable(p, []*Op{submit, unknown, pending}, time.Second)
	require.Equal(t, "Ok", string(res), "or it did not")
	// But an approval nobody could have caused is not linearizable.
	res, why := linearizable(p, []*Op{submit, approved}, time.Second)
	require.Equal(t, "Illegal", string(res))
	require.Contains(t, why, "longest linearizable prefix")
	// A later vote by b, told ok and shown still pending: a's unknown vote
	// cannot be placed anywhere to explain it (a's vote would approve).
	b := &Op{Kind: KindVote, Request: "r", Command: "vb", Actor: "user:b@x", Decision: "reject", Call: at(6), Return: at(7), Outcome: OK, HasView: true, Status: "rejected", Votes: 1}
	res, _ = linearizable(p, []*Op{submit, unknown, b}, time.Second)
	require.Equal(t, "Ok", string(res), "b rejected first, a's vote came after and was refused")
	seen := &Op{Kind: KindRead, Request: "r", Call: at(8), Return: at(9), Outcome: OK, HasView: true, Status: "approved", Votes: 1}
	res, _ = linearizable(p, []*Op{submit, unknown, b, seen}, time.Second)
	require.Equal(t, "Illegal", string(res), "once rejected, never approved")
}

func TestModelExpiry(t *testing.T) {
	t.Parallel()
	p := params{requester: "user:r@x", approvers: []string{"user:a@x"}, quorum: 1, rejections: 1, expiresAt: at(10)}
	submit := &Op{Kind: KindSubmit, Request: "r", Command: "s", Content: "c", Call: at(0), Return: at(1), Outcome: OK}
	op := func(kind Kind, actor string, call, ret float64, outcome Outcome, code string) *Op {
		return &Op{Kind: kind, Request: "r", Command: fmt.Sprint(kind, actor, call), Actor: actor, Decision: "approve",
			Call: at(call), Return: at(ret), Outcome: outcome, Code: code}
	}
	for _, tc := range []struct {
		name string
		op   *Op
		want string
	}{
		{"a vote after expires_at is refused as expired", op(KindVote, "user:a@x", 11, 12, Refused, "expired"), "Ok"},
		{"or as already decided once the timer fired", op(KindVote, "user:a@x", 11, 12, Refused, "already_decided"), "Ok"},
		{"but never counted", op(KindVote, "user:a@x", 11, 12, OK, ""), "Illegal"},
		{"a vote refused by the api's rate limit changes nothing, before", op(KindVote, "user:a@x", 5, 6, Refused, "rate_limited"), "Ok"},
		{"or after", op(KindVote, "user:a@x", 11, 12, Refused, "rate_limited"), "Ok"},
		{"a vote before expires_at counts", op(KindVote, "user:a@x", 5, 6, OK, ""), "Ok"},
		{"and is never refused as expired", op(KindVote, "user:a@x", 5, 6, Refused, "expired"), "Illegal"},
		{"a stranger's cancel after expires_at may be forbidden", op(KindCancel, "user:z@x", 11, 12, Refused, "forbidden"), "Ok"},
		{"the requester's is expired", op(KindCancel, "user:r@x", 11, 12, Refused, "expired"), "Ok"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, _ := linearizable(p, []*Op{submit, tc.op}, time.Second)
			require.Equal(t, tc.want, string(res))
		})
	}
}

// TestCheckPassesAFlood: the hostile client's flood of refused votes, more
// than a state remembers (approval.MaxRefusedOutcomes), one of them
// answered 202 and later forgotten by the state, one rate limited and
// never written, then the request approved. Nothing is wrong: I1 finds the
// forgotten refusal in the log, and LIN leaves the flood out.
func TestCheckPassesAFlood(t *testing.T) {
	t.Parallel()
	n := approval.MaxRefusedOutcomes + 44
	cmds := []timed{sub("r1", "two", 1)}
	h := []Op{{Kind: KindSubmit, Request: "r1", Command: "s-r1", Actor: "user:r@x", Content: "c1", Call: at(0.9), Return: at(1.2), Outcome: OK, HasView: true, Status: "pending", Replica: "api-1"}}
	for i := range n {
		cid := fmt.Sprintf("flood-%d", i)
		sec := 2 + float64(i)/1000
		cmds = append(cmds, vote("r1", cid, "user:z@x", approval.Approve, sec))
		op := Op{Kind: KindVote, Request: "r1", Command: cid, Actor: "user:z@x", Decision: "approve", Call: at(sec - 0.0005), Return: at(sec + 0.0005),
			Outcome: Refused, Code: "not_eligible", Hostile: true}
		if i == 0 {
			op.Outcome, op.Code = Accepted, ""
		}
		h = append(h, op)
	}
	h = append(h, Op{Kind: KindVote, Request: "r1", Command: "v-429", Actor: "user:z@x", Decision: "approve", Call: at(2.5), Return: at(2.51),
		Outcome: Refused, Code: "rate_limited", HTTP: 429, Hostile: true})
	cmds = append(cmds, vote("r1", "v-a", "user:a@x", approval.Approve, 3.1), vote("r1", "v-b", "user:b@x", approval.Approve, 3.5))
	h = append(h,
		Op{Kind: KindVote, Request: "r1", Command: "v-a", Actor: "user:a@x", Decision: "approve", Call: at(3), Return: at(3.2), Outcome: OK, HasView: true, Status: "pending", Votes: 1, Replica: "api-1"},
		Op{Kind: KindVote, Request: "r1", Command: "v-b", Actor: "user:b@x", Decision: "approve", Call: at(3.4), Return: at(3.6), Outcome: OK, HasView: true, Status: "approved", Votes: 2, Replica: "api-1"})
	in := Input{Log: logOf(t, true, cmds...), Ops: ops(h...)}
	v := Check(in)
	require.Empty(t, v.Anomalies, summary(v))
	_, remembered := v.Base.States["r1"].Outcomes["flood-0"]
	require.False(t, remembered, "the state forgot the oldest refusal, so I1 had to find it in the log")
	require.Equal(t, approval.StatusApproved, v.Base.States["r1"].Status)
	require.Equal(t, 1, v.LinChecked)

	// The same run with the accepted vote missing from the log is I1.
	in.Log = logOf(t, true, slices.Delete(slices.Clone(cmds), 1, 2)...)
	v = Check(in)
	require.Contains(t, invariants(v), "I1", summary(v))
}

package systest

import (
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/codec"
	"github.com/assent-dev/assent/libs/wire"
)

var t0 = time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)

func policies() approval.Policies {
	return approval.Policies{Rules: []approval.Policy{{
		Name: "p", Approvers: []string{"user:a@x", "user:b@x"}, MinApprovals: 1, RejectThreshold: 1,
		TTL: approval.Duration(time.Hour),
	}}}
}

// logOf decides the commands in order and returns the chained log, as one
// partition would hold it.
func logOf(t *testing.T, cmds ...approval.Command) []Record {
	t.Helper()
	states := map[string]approval.State{}
	head := wire.GenesisHash
	var out []Record
	for _, c := range cmds {
		d := approval.Decide(states[c.RequestID], c, policies(), t0)
		for _, e := range d.Events {
			out = append(out, record(t, int64(len(out)), e, head))
			head = wire.Hash(out[len(out)-1].Value)
			states[c.RequestID] = approval.Evolve(states[c.RequestID], e)
		}
	}
	return out
}

func record(t *testing.T, off int64, e approval.Event, prev string) Record {
	t.Helper()
	env, err := codec.EventEnvelope(e, "assent/decider", prev)
	require.NoError(t, err)
	v, err := wire.Marshal(env)
	require.NoError(t, err)
	env, err = wire.Unmarshal(v)
	require.NoError(t, err)
	ev, err := codec.DomainEvent(env)
	require.NoError(t, err)
	return Record{Offset: off, Value: v, Envelope: env, Event: ev}
}

func submit(id string) approval.Command {
	return approval.Command{ID: "s-" + id, RequestID: id, Actor: "user:r@x", Body: approval.Submit{
		Action: approval.Action{Type: "deploy", Resource: "x", Environment: "prod"}, Reason: "r"}}
}

func vote(id, voter string) approval.Command {
	return approval.Command{ID: "v-" + id + voter, RequestID: id, Actor: voter, Body: approval.Vote{Decision: approval.Approve}}
}

func TestCheckPassesACleanLog(t *testing.T) {
	t.Parallel()
	log := logOf(t, submit("r1"), submit("r2"), vote("r1", "user:a@x"), vote("r1", "user:b@x"), vote("r2", "user:r@x"))
	res := Check(log, []Acked{{RequestID: "r1", CommandID: "v-r1user:a@x"}, {RequestID: "r2", CommandID: "v-r2user:r@x"}})
	require.Empty(t, res.Anomalies, res.Summary())
	require.Equal(t, 2, res.Requests)
	require.Equal(t, 1, res.Terminal[approval.StatusApproved])
}

func TestCheckFindsEachAnomaly(t *testing.T) {
	t.Parallel()
	base := logOf(t, submit("r1"), vote("r1", "user:a@x"))
	require.Empty(t, Check(base, nil).Anomalies)

	t.Run("I1 lost command", func(t *testing.T) {
		res := Check(base, []Acked{{RequestID: "r1", CommandID: "never-seen"}})
		require.Len(t, res.Anomalies, 1)
		require.Equal(t, "I1", res.Anomalies[0].Invariant)
	})
	t.Run("I2 and I3 a duplicated decision", func(t *testing.T) {
		log := append([]Record(nil), base...)
		for _, r := range base[1:] { // the vote and the approval again, with later sequences
			e := r.Event
			e.Sequence += 2
			log = append(log, record(t, int64(len(log)), e, wire.Hash(log[len(log)-1].Value)))
		}
		res := Check(log, nil)
		kinds := map[string]bool{}
		for _, a := range res.Anomalies {
			kinds[a.Invariant] = true
		}
		require.True(t, kinds["I2"] && kinds["I3"] && kinds["I4"], res.Summary())
	})
	t.Run("I6 a broken link", func(t *testing.T) {
		log := append([]Record(nil), base...)
		log[1] = record(t, 1, log[1].Event, wire.GenesisHash)
		res := Check(log, nil)
		require.NotEmpty(t, res.Anomalies)
		require.Equal(t, "I6", res.Anomalies[0].Invariant)
		require.Equal(t, int64(1), res.Anomalies[0].Offset)
	})
	t.Run("a sequence gap", func(t *testing.T) {
		log := []Record{base[0], record(t, 1, func() approval.Event { e := base[1].Event; e.Sequence = 5; return e }(), wire.Hash(base[0].Value))}
		res := Check(log, nil)
		require.Equal(t, "SEQ", res.Anomalies[0].Invariant)
	})
}

// A log whose run ends with a seal: Check counts no anomaly for it,
// CheckSeals authenticates it, and a forged seal, or a record no seal
// covers, is an I6 anomaly.
func TestCheckSeals(t *testing.T) {
	t.Parallel()
	log := logOf(t, submit("r1"), vote("r1", "user:a@x"))
	for i := range log {
		log[i].Transactional, log[i].ProducerID = true, 1
	}
	_, key, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	signer, err := wire.NewSigner("k1", key)
	require.NoError(t, err)
	ring := wire.NewKeyRing(map[string]ed25519.PublicKey{"k1": signer.Public()})
	withSeal := func(s *wire.Signer, count int) []Record {
		last := log[len(log)-1]
		env, err := wire.NewSeal(s, "assent/decider", "events", 0, wire.GenesisHash, wire.Hash(last.Value), count, t0)
		require.NoError(t, err)
		v, err := wire.Marshal(env)
		require.NoError(t, err)
		env, err = wire.Unmarshal(v)
		require.NoError(t, err)
		return append(append([]Record(nil), log...), Record{Offset: last.Offset + 1, Value: v, Envelope: env, Transactional: true, ProducerID: 1})
	}

	good := withSeal(signer, len(log))
	require.Empty(t, Check(good, nil).Anomalies)
	n, anomalies := CheckSeals(good, "events", ring)
	require.Equal(t, 1, n)
	require.Empty(t, anomalies)

	_, otherKey, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	forger, err := wire.NewSigner("k1", otherKey)
	require.NoError(t, err)
	_, anomalies = CheckSeals(withSeal(forger, len(log)), "events", ring)
	require.Len(t, anomalies, 1+len(log), "the forged seal, and the records it cannot cover")
	require.Equal(t, "I6", anomalies[0].Invariant)
	require.Contains(t, anomalies[0].Detail, "does not verify")

	_, anomalies = CheckSeals(withSeal(signer, 1), "events", ring)
	require.NotEmpty(t, anomalies, "a seal over a run of another length covers nothing")
}

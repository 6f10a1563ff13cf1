package systest

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/codec"
	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/test/kafkatest"
)

// forgeryParts is the events topic's partition count in the forgery test:
// every forgery goes to partition forgeryTarget; forgeryOther is where the
// record copied from another partition comes from.
const (
	forgeryParts  = 3
	forgeryTarget = int32(0)
	forgeryOther  = int32(1)
)

// TestIntegrationForgeriesAreNeverServed is issue 12's real-cluster
// forgery test. It runs a decider and two api replicas as the built
// binaries on the SASL cluster, and then, as an insider who holds the
// broker-admin credentials, forges each kind of record the issue lists.
// For each one it asserts, with one fresh request per kind:
//
//   - no api replica ever serves it: each replica's GET /v1/requests/{id}
//     is polled from before the forgery until after the next decider
//     transaction on that partition, and never shows the forged outcome;
//   - every reader counts it (assent_consistency_violations_total{kind=
//     "unauthenticated"} rises on both api replicas and on the decider), or,
//     for a forged command, the decider refuses it with command.rejected
//     reason unauthenticated and the request is unchanged;
//   - the built `auditor verify` exits 2 with a BREAK line naming the
//     partition, the offset of every forged record and the kind;
//   - the decider goes on deciding another request on that partition.
//
// It prints the FORGERY TABLE and writes it to $ASSENT_ARTIFACTS_DIR (or a
// temporary directory) as forgery-table.txt.
func TestIntegrationForgeriesAreNeverServed(t *testing.T) {
	topics := kafkatest.NewTopics(t, forgeryParts)
	kcfg := kafkatest.Config(t, "forgery-test")
	bin := Build(t, "api", "decider", "auditor")
	root := RepoRoot()
	common := []string{
		"ASSENT_KAFKA_BROKERS=" + joinComma(kcfg.Brokers),
		"ASSENT_COMMANDS_TOPIC=" + topics.Commands,
		"ASSENT_EVENTS_TOPIC=" + topics.Events,
		fmt.Sprintf("ASSENT_PARTITIONS=%d", forgeryParts),
	}
	policyFile := filepath.Join(root, "infra/policies/example.yaml")
	dec := NewProc(t, bin+"/decider", "decider-1", append(slices.Clone(common),
		"ASSENT_DECIDER_GROUP=forgery-"+topics.Commands, "ASSENT_POLICY_FILE="+policyFile)...)
	apiEnv := append(slices.Clone(common), "ASSENT_TOKENS_FILE="+filepath.Join(root, "infra/tokens/demo-tokens.yaml"))
	apis := []*Proc{NewProc(t, bin+"/api", "api-1", apiEnv...), NewProc(t, bin+"/api", "api-2", apiEnv...)}
	// The audit service is a reader too: it lists what it did not apply
	// under the request (/v1/audit/requests/{id}).
	audit := NewProc(t, bin+"/auditor", "auditor-1", slices.Clone(common)...)
	audit.Args = []string{"serve"}
	procs := append([]*Proc{dec, audit}, apis...)
	for _, p := range procs {
		p.Start()
	}
	ready, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	for _, p := range procs {
		require.NoError(t, p.WaitReady(ready))
	}

	f := &forger{
		t: t, events: topics.Events, commands: topics.Commands, apis: apis, dec: dec, audit: audit,
		keys: DemoKeys(t), auditor: bin + "/auditor", policyFile: policyFile, common: common,
		plain: rawClient(t),
	}
	ids := map[string]int{}
	rid := func(kind string, p int32) string {
		for {
			ids[kind]++
			id := fmt.Sprintf("forgery-%s-%d", kind, ids[kind])
			if wire.Partition([]byte(id), forgeryParts) == p {
				return id
			}
		}
	}

	// A request decided on the other partition, whose sealed transaction
	// the copy forgery takes.
	copied := rid("copied", forgeryOther)
	f.submitAndApprove(copied)

	var table []forgeryRow
	for _, k := range []forgeryKind{
		{name: "plain producer", detail: "a non-transactional request.approved with the next sequence and the right prevhash",
			forge: func(f *forger, rid string, before partitionState) []forged {
				v := f.approved(rid, before.seq+1, before.head)
				return f.producePlain(forgeryTarget, rid, v)
			}},
		{name: "transactional producer, another id", detail: "the same request.approved, in a committed transaction of another transactional id",
			forge: func(f *forger, rid string, before partitionState) []forged {
				return f.produceTxn(forgeryTarget, keyed(rid, f.approved(rid, before.seq+1, before.head)))
			}},
		{name: "seal by an unknown key", detail: "request.approved and a seal over it signed by a fresh key that claims the demo key id " + DemoKeyID,
			forge: func(f *forger, rid string, before partitionState) []forged {
				v := f.approved(rid, before.seq+1, before.head)
				_, key, err := ed25519.GenerateKey(nil)
				require.NoError(f.t, err)
				impostor, err := wire.NewSigner(DemoKeyID, key)
				require.NoError(f.t, err)
				seal, err := wire.NewSeal(impostor, "assent/decider", f.events, forgeryTarget, before.head, wire.Hash(v), 1, time.Now())
				require.NoError(f.t, err)
				return f.produceTxn(forgeryTarget, keyed(rid, v), keyed("", marshal(f.t, seal)))
			}},
		{name: "old valid seal replayed", detail: "request.approved followed by a byte copy of the partition's first (valid) seal",
			forge: func(f *forger, rid string, before partitionState) []forged {
				require.NotEmpty(f.t, before.firstSeal, "the partition has a seal to replay")
				return f.produceTxn(forgeryTarget, keyed(rid, f.approved(rid, before.seq+1, before.head)), keyed("", before.firstSeal))
			}},
		{name: "copied from another partition", watch: copied,
			detail: "a byte copy of the sealed transaction that approved " + copied + " on partition 1 (its records and its valid seal)",
			forge: func(f *forger, _ string, _ partitionState) []forged {
				run := f.lastRunOf(forgeryOther, copied)
				return f.produceTxn(forgeryTarget, run...)
			}},
		{name: "reordered pair", detail: "vote.recorded by alice then request.approved, chained in that order, written approved first",
			forge: func(f *forger, rid string, before partitionState) []forged {
				vote := f.event(rid, before.seq+1, before.head, "user:alice@example.com",
					approval.VoteRecorded{Voter: "user:alice@example.com", Decision: approval.Approve})
				appr := f.approved(rid, before.seq+2, wire.Hash(vote))
				return f.produceTxn(forgeryTarget, keyed(rid, appr), keyed(rid, vote))
			}},
		// Authenticated commands (docs/architecture.md): the decider
		// refuses a command whose signature is missing, or whose signer
		// may not act as its actor; only a key with on_behalf may name
		// another principal.
		{name: "command naming another principal, unsigned", command: true,
			detail: "a vote (approve) by user:alice@example.com produced straight to the commands topic, with no signature",
			forge: func(f *forger, rid string, _ partitionState) []forged {
				return f.produceCommand(rid, "user:alice@example.com", approval.Vote{Decision: approval.Approve}, "")
			}},
		{name: "command naming another principal, signed without on_behalf", command: true,
			detail: "a vote (approve) by user:alice@example.com signed with billing's own key (a backend's, no on_behalf)",
			forge: func(f *forger, rid string, _ partitionState) []forged {
				return f.produceCommand(rid, "user:alice@example.com", approval.Vote{Decision: approval.Approve}, ServiceBilling)
			}},
	} {
		row := forgeryRow{kind: k.name, detected: "-", where: "-", served: "not observed: the subtest failed first"}
		t.Run(k.name, func(t *testing.T) {
			f.run(t, k, rid(slug(k.name), forgeryTarget), &row)
		})
		table = append(table, row)
	}

	// A replica that starts afresh reads every forgery in one catch-up:
	// it serves each watched request as the others do, and counts every
	// forged event record exactly once.
	fresh := NewProc(t, bin+"/api", "api-3", apiEnv...)
	fresh.Start()
	ready, cancel = context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	require.NoError(t, fresh.WaitReady(ready))
	for _, w := range f.watched {
		assert.Equal(t, f.view(t, apis[0], w), f.view(t, fresh, w), "%s, rebuilt from the log, serves %s as api-1 does", fresh.Name, w)
	}
	n, err := scrape(t, fresh.URL()+"/metrics", `assent_consistency_violations_total{kind="unauthenticated"}`)
	require.NoError(t, err)
	assert.Equal(t, float64(f.forgedEvents), n, "%s counts every forged event record once", fresh.Name)
	served := "never"
	if !f.freshSame(fresh) {
		served = "DIFFERS from api-1 (see above)"
	}
	table = append(table, forgeryRow{kind: "every forged event, read afresh",
		detected: fmt.Sprintf("%s, started after the forgeries and rebuilt from the log, counted %g of the %d forged event records", fresh.Name, n, f.forgedEvents),
		where:    fmt.Sprintf("events p%d", forgeryTarget), served: served})
	f.writeTable(table)
}

// forgeryKind is one forgery: forge writes it and returns what it wrote.
type forgeryKind struct {
	name, detail string
	// watch is the request whose views must not change; the fresh
	// request of the kind when empty.
	watch string
	// command: the forgery is a command, which the decider must refuse.
	command bool
	forge   func(f *forger, rid string, before partitionState) []forged
}

// forged is one record the insider wrote.
type forged struct {
	topic     string
	partition int32
	offset    int64
	id        string // the envelope id
	subject   string // the request it names, if any
}

type forgeryRow struct {
	kind, detected, where, served string
}

// forger is the insider, and the test's view of the system.
type forger struct {
	t                *testing.T
	events, commands string
	apis             []*Proc
	dec              *Proc
	audit            *Proc
	watched          []string // every request watched for a forged event
	forgedEvents     int      // forged records written to the events topic
	keys             *wire.KeyRing
	auditor          string
	policyFile       string
	common           []string
	plain            *kgo.Client
}

// partitionState is what an insider reading the target partition knows.
type partitionState struct {
	head      string // the hash of the last authenticated record
	seq       int    // the watched request's last sequence
	firstSeal []byte // the first seal of the partition, byte for byte
}

func (f *forger) run(t *testing.T, k forgeryKind, rid string, row *forgeryRow) {
	parent := f.t
	f.t = t
	defer func() { f.t = parent }()
	watch := k.watch
	if watch == "" {
		watch = rid
		f.submit(rid)
		f.waitView(t, rid, func(v map[string]any) bool { return v["status"] == "pending" }, "pending")
	}
	if !k.command {
		f.watched = append(f.watched, watch)
	}
	base := f.view(t, f.apis[0], watch)
	require.Equal(t, base, f.view(t, f.apis[1], watch), "both replicas agree before the forgery")
	before := f.partition(t, forgeryTarget, watch)
	require.Equal(t, jsonInt(base["sequence"]), before.seq, "the view is the authenticated fold")
	counters := f.counters(t)
	const refusedSeries = "assent_decider_unauthenticated_commands_total"
	refusedBefore, err := scrape(t, f.dec.URL()+"/metrics", refusedSeries)
	require.NoError(t, err)

	w := f.watchViews(watch, base, k.command)
	recs := k.forge(f, rid, before)
	require.NotEmpty(t, recs)
	t.Logf("%s (%s): wrote %s", k.name, k.detail, describe(recs))
	if !k.command {
		f.forgedEvents += len(recs)
	}
	row.where = fmt.Sprintf("%s p%d@%s", shortTopic(recs[0].topic), recs[0].partition, offsetsOf(recs))

	// The next legitimate decider transaction on the partition: another
	// request submitted and approved after the forgery, which also shows
	// the decider goes on deciding there.
	next := rid + "-next"
	for wire.Partition([]byte(next), forgeryParts) != forgeryTarget {
		next += "x"
	}
	f.submitAndApprove(next)
	// Poll a little past it, then close the window.
	time.Sleep(300 * time.Millisecond)
	served := w.close()
	t.Logf("%s: %d polls of %s across the replicas from before the forgery to after %s was approved", k.name, w.total(), watch, next)
	require.Empty(t, w.errors(), "every poll of every replica answered 200")
	require.Positive(t, w.total())
	row.served = "never"
	if len(served) > 0 {
		row.served = "YES: " + strings.Join(served, "; ")
	}
	// Not fatal: what detected it still goes in the table.
	assert.Empty(t, served, "no replica ever serves the forged outcome")
	if !k.command {
		for _, p := range f.apis {
			assert.Equal(t, base, f.view(t, p, watch), "%s: the view is as it was", p.Name)
		}
	}

	var detected []string
	defer func() { row.detected = strings.Join(detected, ", ") }()
	if k.command {
		// The decider refuses it with command.rejected reason unauthenticated.
		// Refused under the record's own id, so that a forgery can never
		// take the id of a command its rightful author will send; the id
		// it claims is never decided.
		recordID := fmt.Sprintf("kafka:%s/%d/%d", recs[0].topic, recs[0].partition, recs[0].offset)
		code, outcome := f.rejection(t, forgeryTarget, rid, recordID, recs[0].id)
		if code != "" {
			detected = append(detected, fmt.Sprintf("decider: command.rejected %s (events p%d@%s)", code, forgeryTarget, outcome))
		} else {
			detected = append(detected, fmt.Sprintf("NOT refused: the decider decided it (events p%d: %s)", forgeryTarget, outcome))
		}
		require.Equal(t, string(approval.ReasonUnauthenticated), code, "the decider refuses the forged command as unauthenticated; it wrote %s", outcome)
		// And counts it (the alert AssentUnauthenticatedCommands fires on it).
		refused, err := scrape(t, f.dec.URL()+"/metrics", refusedSeries)
		require.NoError(t, err)
		detected = append(detected, fmt.Sprintf("%s %s +%g", f.dec.Name, refusedSeries, refused-refusedBefore))
		assert.Greater(t, refused, refusedBefore, "%s: %s rises", f.dec.Name, refusedSeries)
		for _, p := range f.apis {
			v := f.view(t, p, watch)
			assert.Equal(t, []any{base["status"], base["votes"], base["decided_by"]}, []any{v["status"], v["votes"], v["decided_by"]},
				"%s: the request is unchanged but for the rejection", p.Name)
		}
		return
	}
	// Every reader counts it.
	now := counters
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		now = f.counters(t)
		rose := 0
		for name, n := range counters {
			if now[name] > n {
				rose++
			}
		}
		if rose == len(counters) {
			break
		}
	}
	for _, name := range []string{f.apis[0].Name, f.apis[1].Name, f.dec.Name, f.audit.Name} {
		detected = append(detected, fmt.Sprintf("%s +%g", name, now[name]-counters[name]))
	}
	for name, n := range counters {
		assert.Greater(t, now[name], n, "%s: assent_consistency_violations_total{kind=\"unauthenticated\"} rises within 20s", name)
	}
	// The audit service lists each forged record that names the request.
	listed := f.auditListed(t, watch, recs)
	detected = append(detected, fmt.Sprintf("%s lists %s", f.audit.Name, listed))
	// auditor verify exits 2, naming each forged offset and the kind.
	breaks := f.verify(t)
	detected = append(detected, "auditor verify exit 2: "+f.breakSummary(breaks, recs))
	for _, r := range recs {
		b, ok := breaks[[2]int64{int64(r.partition), r.offset}]
		require.True(t, ok, "auditor verify names partition %d offset %d; it printed %v", r.partition, r.offset, breaks)
		require.Equal(t, wire.KindUnauthenticated, b.kind, "at %d@%d: %s", r.partition, r.offset, b.line)
		require.Equal(t, r.id, b.event, b.line)
	}
}

// freshSame says whether a replica serves every request watched for a
// forged event as api-1 does.
func (f *forger) freshSame(p *Proc) bool {
	for _, w := range f.watched {
		if fmt.Sprint(f.view(f.t, f.apis[0], w)) != fmt.Sprint(f.view(f.t, p, w)) {
			return false
		}
	}
	return true
}

// auditListed waits until the audit service's GET /v1/audit/requests/{rid}
// has verification status "unauthenticated" and lists, with partition and
// offset, every forged record about rid (seals name no request). It
// returns the offsets listed.
func (f *forger) auditListed(t *testing.T, rid string, recs []forged) string {
	t.Helper()
	var want []string
	for _, r := range recs {
		if r.subject == rid {
			want = append(want, fmt.Sprintf("%d@%d", r.partition, r.offset))
		}
	}
	require.NotEmpty(t, want, "a forgery names the request")
	var (
		got    []string
		status any
	)
	c := &Client{URLs: []string{f.audit.URL()}}
	listed := func() bool {
		resp, err := c.Do(t.Context(), 0, "GET", "/v1/audit/requests/"+rid, nil, 1)
		if err != nil || resp.Status != 200 {
			return false
		}
		v, _ := resp.Body["verification"].(map[string]any)
		status = v["status"]
		got = got[:0]
		list, _ := v["unauthenticated"].([]any)
		for _, x := range list {
			m, _ := x.(map[string]any)
			got = append(got, fmt.Sprintf("%d@%d", jsonInt(m["partition"]), jsonInt(m["offset"])))
		}
		for _, w := range want {
			if !slices.Contains(got, w) {
				return false
			}
		}
		return status == "unauthenticated"
	}
	for deadline := time.Now().Add(20 * time.Second); !listed(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("the audit service lists %v as unauthenticated under %s within 20s: status %v, listed %v", want, rid, status, got)
			return fmt.Sprintf("NOT %v (status %v, listed %v)", want, status, got)
		}
	}
	return strings.Join(want, ",")
}

// rawClient is the insider's plain producer: the admin's credentials, no
// transactions, records go where the insider says.
func rawClient(t *testing.T) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append(kafkatest.Auth(t), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()))...)
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	return cl
}

type keyedValue struct {
	key   string
	value []byte
}

func keyed(key string, value []byte) keyedValue { return keyedValue{key, value} }

func marshal(t *testing.T, env wire.Envelope) []byte {
	t.Helper()
	v, err := wire.Marshal(env)
	require.NoError(t, err)
	return v
}

// event is a well-formed event of the watched request, as the decider
// would write it.
func (f *forger) event(rid string, seq int, prev, actor string, body approval.EventBody) []byte {
	now := time.Now().UTC()
	env, err := codec.EventEnvelope(approval.Event{RequestID: rid, CommandID: wire.NewID(now), Actor: actor, Time: now,
		Sequence: seq, Body: body}, "assent/decider", prev)
	require.NoError(f.t, err)
	v := marshal(f.t, env)
	back, err := wire.Unmarshal(v)
	require.NoError(f.t, err)
	_, err = codec.DomainEvent(back)
	require.NoError(f.t, err, "the forgery is well formed")
	return v
}

func (f *forger) approved(rid string, seq int, prev string) []byte {
	return f.event(rid, seq, prev, "user:alice@example.com", approval.RequestApproved{Approvers: []string{"user:alice@example.com"}})
}

func (f *forger) producePlain(p int32, key string, value []byte) []forged {
	ctx, cancel := context.WithTimeout(f.t.Context(), 30*time.Second)
	defer cancel()
	r := &kgo.Record{Topic: f.events, Partition: p, Key: []byte(key), Value: value, Headers: structured()}
	require.NoError(f.t, f.plain.ProduceSync(ctx, r).FirstErr())
	return []forged{{topic: f.events, partition: p, offset: r.Offset, id: envID(f.t, value), subject: key}}
}

// produceTxn writes the records in one committed transaction of a
// transactional id that is not a decider's.
func (f *forger) produceTxn(p int32, recs ...keyedValue) []forged {
	var random [4]byte
	_, _ = rand.Read(random[:])
	cl, err := kgo.NewClient(append(kafkatest.Auth(f.t), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.TransactionalID("insider-"+hex.EncodeToString(random[:])), kgo.RequiredAcks(kgo.AllISRAcks()))...)
	require.NoError(f.t, err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(f.t.Context(), 30*time.Second)
	defer cancel()
	require.NoError(f.t, cl.BeginTransaction())
	var out []forged
	for _, kv := range recs {
		r := &kgo.Record{Topic: f.events, Partition: p, Value: kv.value, Headers: structured()}
		if kv.key != "" {
			r.Key = []byte(kv.key)
		}
		require.NoError(f.t, cl.ProduceSync(ctx, r).FirstErr())
		out = append(out, forged{topic: f.events, partition: p, offset: r.Offset, id: envID(f.t, kv.value), subject: kv.key})
	}
	require.NoError(f.t, cl.EndTransaction(ctx, kgo.TryCommit))
	return out
}

// produceCommand writes a command straight to the commands topic, in the
// partition the request's key hashes to, as the api would: unsigned, or
// signed with the demo key of service signer.
func (f *forger) produceCommand(rid, actor string, body approval.CommandBody, signer string) []forged {
	now := time.Now().UTC()
	env, err := codec.CommandEnvelope(approval.Command{ID: wire.NewID(now), RequestID: rid, Actor: actor, Time: now, Body: body}, "assent/api")
	require.NoError(f.t, err)
	if signer != "" {
		env = SignCommand(f.t, signer, env)
	}
	v := marshal(f.t, env)
	p := wire.Partition([]byte(rid), forgeryParts)
	ctx, cancel := context.WithTimeout(f.t.Context(), 30*time.Second)
	defer cancel()
	r := &kgo.Record{Topic: f.commands, Partition: p, Key: []byte(rid), Value: v, Headers: structured()}
	require.NoError(f.t, f.plain.ProduceSync(ctx, r).FirstErr())
	return []forged{{topic: f.commands, partition: p, offset: r.Offset, id: env.CommandID, subject: rid}}
}

// structured is the header of a CloudEvent in structured mode, which every
// Assent record carries: the forgeries are well formed.
func structured() []kgo.RecordHeader {
	return []kgo.RecordHeader{{Key: wire.HeaderContentType, Value: []byte(wire.ContentType)}}
}

func envID(t *testing.T, v []byte) string {
	t.Helper()
	env, err := wire.Unmarshal(v)
	require.NoError(t, err)
	return env.ID
}

// authenticated reads partition p of the events topic and returns the
// records a reader applies (through wire.Authenticator), in order.
func (f *forger) authenticated(t *testing.T, p int32) []Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	log, err := ReadLog(ctx, kafkatest.Config(t, "forgery-insider"), f.events)
	require.NoError(t, err)
	var recs []Record
	for _, r := range log {
		if r.Partition == p {
			recs = append(recs, r)
		}
	}
	byOffset := map[int64]Record{}
	auth := wire.NewAuthenticator(f.keys, f.events, p, wire.GenesisHash)
	var applied []Record
	take := func(res wire.Result) {
		for _, it := range res.Apply {
			applied = append(applied, byOffset[it.Record.Offset])
		}
	}
	for _, r := range recs {
		byOffset[r.Offset] = r
		take(auth.Add(wire.Item{Record: wire.Record{Topic: f.events, Partition: p, Offset: r.Offset, Value: r.Value,
			Transactional: r.Transactional, ProducerID: r.ProducerID}, Env: r.Envelope, Hash: wire.Hash(r.Value)}, r.Err))
	}
	return applied
}

// partition is what the insider reads from partition p before forging:
// the authenticated head, the watched request's last sequence and the
// partition's first seal.
func (f *forger) partition(t *testing.T, p int32, watch string) partitionState {
	t.Helper()
	var st partitionState
	for _, r := range f.authenticated(t, p) {
		st.head = wire.Hash(r.Value)
		if r.Envelope.Type == wire.TypeSeal && st.firstSeal == nil {
			st.firstSeal = r.Value
		}
		if r.Envelope.Subject == watch && r.Event.Sequence > st.seq {
			st.seq = r.Event.Sequence
		}
	}
	if p != wire.Partition([]byte(watch), forgeryParts) {
		// The watched request lives elsewhere: its sequence is there.
		for _, r := range f.authenticated(t, wire.Partition([]byte(watch), forgeryParts)) {
			if r.Envelope.Subject == watch && r.Event.Sequence > st.seq {
				st.seq = r.Event.Sequence
			}
		}
	}
	require.NotEmpty(t, st.head, "partition %d has authenticated records", p)
	return st
}

// lastRunOf returns, byte for byte, the sealed transaction on partition p
// that holds the last event of rid: its records and its seal.
func (f *forger) lastRunOf(p int32, rid string) []keyedValue {
	applied := f.authenticated(f.t, p)
	last := -1
	for i, r := range applied {
		if r.Envelope.Subject == rid {
			last = i
		}
	}
	require.GreaterOrEqual(f.t, last, 0, "%s has events on partition %d", rid, p)
	start, end := last, last
	for start > 0 && applied[start-1].Envelope.Type != wire.TypeSeal {
		start--
	}
	for applied[end].Envelope.Type != wire.TypeSeal {
		end++
	}
	var out []keyedValue
	for _, r := range applied[start : end+1] {
		out = append(out, keyed(r.Envelope.Subject, r.Value))
	}
	return out
}

// rejection waits for the decider's answer to a forged command on
// partition p: the reason code of the command.rejected written under
// refusedAs and that event's offset, or no code and the events written
// under the id it claims instead.
func (f *forger) rejection(t *testing.T, p int32, rid, refusedAs, claimed string) (code, outcome string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var events []string
		for _, r := range f.authenticated(t, p) {
			if r.Envelope.Subject != rid || r.Event.CommandID != refusedAs && r.Event.CommandID != claimed {
				continue
			}
			if rj, ok := r.Event.Body.(approval.CommandRejected); ok && r.Event.CommandID == refusedAs {
				return string(rj.Code), strconv.FormatInt(r.Offset, 10)
			}
			events = append(events, fmt.Sprintf("%s@%d", strings.TrimPrefix(r.Envelope.Type, "dev.assent."), r.Offset))
		}
		if len(events) > 0 {
			return "", strings.Join(events, ", ")
		}
		if time.Now().After(deadline) {
			t.Fatalf("no outcome for the command %s of %s (record %s) within 20s", claimed, rid, refusedAs)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// submit submits rid through the first api replica, as service:billing.
func (f *forger) submit(rid string) {
	t := f.t
	c := &Client{URLs: []string{f.apis[0].URL(), f.apis[1].URL()}, Token: "demo-billing"}
	resp, err := c.Do(t.Context(), 0, "POST", "/v1/requests", map[string]any{
		"request_id": rid, "reason": "forgery test",
		"action": map[string]any{"type": "deploy", "resource": "services/billing/api", "environment": "production"},
	}, 10)
	require.NoError(t, err)
	require.Contains(t, []int{201, 202}, resp.Status, "submit %s: %s", rid, resp.Raw)
}

// submitAndApprove submits rid, has alice approve it, and waits until
// both replicas serve it approved.
func (f *forger) submitAndApprove(rid string) {
	t := f.t
	f.submit(rid)
	f.waitView(t, rid, func(v map[string]any) bool { return v["status"] == "pending" }, "pending")
	c := &Client{URLs: []string{f.apis[1].URL(), f.apis[0].URL()}, Token: "demo-alice"}
	resp, err := c.Do(t.Context(), 0, "POST", "/v1/requests/"+rid+"/votes", map[string]any{"decision": "approve"}, 10)
	require.NoError(t, err)
	require.Contains(t, []int{200, 202}, resp.Status, "vote on %s: %s", rid, resp.Raw)
	f.waitView(t, rid, func(v map[string]any) bool { return v["status"] == "approved" }, "approved")
}

// waitView waits until every replica's view of rid satisfies ok.
func (f *forger) waitView(t *testing.T, rid string, ok func(map[string]any) bool, what string) {
	t.Helper()
	for _, p := range f.apis {
		var last map[string]any
		require.Eventually(t, func() bool {
			last = f.tryView(t, p, rid)
			return last != nil && ok(last)
		}, 30*time.Second, 50*time.Millisecond, "%s serves %s %s: last %v", p.Name, rid, what, last)
	}
}

func (f *forger) tryView(t *testing.T, p *Proc, rid string) map[string]any {
	t.Helper()
	c := &Client{URLs: []string{p.URL()}, Token: "demo-billing"}
	resp, err := c.Do(t.Context(), 0, "GET", "/v1/requests/"+rid, nil, 1)
	if err != nil || resp.Status != 200 {
		return nil
	}
	return resp.Body
}

// view is the part of a replica's view a forgery could change.
func (f *forger) view(t *testing.T, p *Proc, rid string) map[string]any {
	t.Helper()
	v := f.tryView(t, p, rid)
	require.NotNil(t, v, "%s serves %s", p.Name, rid)
	return essentials(v)
}

func essentials(v map[string]any) map[string]any {
	return map[string]any{"status": v["status"], "sequence": v["sequence"], "votes": fmt.Sprint(v["votes"]), "decided_by": fmt.Sprint(v["decided_by"])}
}

// viewWatch polls every replica's view of one request until closed.
type viewWatch struct {
	stop   chan struct{}
	wg     sync.WaitGroup
	mu     sync.Mutex
	polls  int
	served []string
	errs   []string
}

// watchViews polls each replica's GET /v1/requests/{id} of rid. For a
// forged event the view must stay exactly base; for a forged command the
// decider answers with a command.rejected (a new sequence), so the view
// must stay pending with the same votes and no decision.
func (f *forger) watchViews(rid string, base map[string]any, command bool) *viewWatch {
	w := &viewWatch{stop: make(chan struct{})}
	for _, p := range f.apis {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			hc := &http.Client{Timeout: 5 * time.Second}
			for {
				select {
				case <-w.stop:
					return
				default:
				}
				c := &Client{URLs: []string{p.URL()}, Token: "demo-billing", HTTP: hc}
				resp, err := c.Do(context.Background(), 0, "GET", "/v1/requests/"+rid, nil, 1)
				w.mu.Lock()
				w.polls++
				switch {
				case err != nil:
					w.errs = append(w.errs, fmt.Sprintf("%s: %v", p.Name, err))
				case resp.Status != 200:
					w.errs = append(w.errs, fmt.Sprintf("%s: %d %s", p.Name, resp.Status, resp.Raw))
				default:
					got := essentials(resp.Body)
					changed := fmt.Sprint(got) != fmt.Sprint(base)
					if command {
						changed = got["status"] != base["status"] || got["votes"] != base["votes"] || got["decided_by"] != base["decided_by"]
					}
					if changed && !slices.ContainsFunc(w.served, func(s string) bool { return strings.HasPrefix(s, p.Name+" ") }) {
						w.served = append(w.served, fmt.Sprintf("%s served status %v, sequence %v, votes %v (was %v, %v, %v)", p.Name,
							got["status"], got["sequence"], got["votes"], base["status"], base["sequence"], base["votes"]))
					}
				}
				w.mu.Unlock()
				time.Sleep(10 * time.Millisecond)
			}
		}()
	}
	return w
}

func (w *viewWatch) close() []string {
	close(w.stop)
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.served)
}

func (w *viewWatch) total() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.polls
}

func (w *viewWatch) errors() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.errs)
}

// counters scrapes assent_consistency_violations_total{kind=
// "unauthenticated"} from each api replica and the decider.
func (f *forger) counters(t *testing.T) map[string]float64 {
	t.Helper()
	out, err := f.tryCounters(t)
	require.NoError(t, err)
	return out
}

func (f *forger) tryCounters(t *testing.T) (map[string]float64, error) {
	out := map[string]float64{}
	for _, p := range append([]*Proc{f.dec, f.audit}, f.apis...) {
		n, err := scrape(t, p.URL()+"/metrics", `assent_consistency_violations_total{kind="unauthenticated"}`)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.Name, err)
		}
		out[p.Name] = n
	}
	return out, nil
}

func scrape(t *testing.T, url, series string) (float64, error) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }() // read-only
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(rest), 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%s has no %s", url, series)
}

type verifyBreak struct {
	kind, event, line string
}

var breakLine = regexp.MustCompile(`^BREAK partition (\d+) offset (\d+) event (\S+): ([a-z]+): `)

// verify runs the built auditor verify over the events topic; it must
// exit 2. It returns the breaks it printed by partition and offset.
func (f *forger) verify(t *testing.T) map[[2]int64]verifyBreak {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, f.auditor, "verify", "--quiet")
	cmd.Env = append(append(os.Environ(), f.common...), "ASSENT_AUDIT_KEYS_FILE="+DemoKeysFile(), "ASSENT_POLICY_FILE="+f.policyFile)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	require.True(t, errors.As(err, &exit), "auditor verify ran and failed: %v\n%s\n%s", err, stdout.String(), stderr.String())
	require.Equal(t, 2, exit.ExitCode(), "auditor verify exits 2 on a forgery:\n%s\n%s", stdout.String(), stderr.String())
	out := map[[2]int64]verifyBreak{}
	for line := range strings.SplitSeq(stdout.String(), "\n") {
		m := breakLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		p, _ := strconv.ParseInt(m[1], 10, 32)
		o, _ := strconv.ParseInt(m[2], 10, 64)
		out[[2]int64{p, o}] = verifyBreak{kind: m[4], event: m[3], line: line}
	}
	return out
}

func (f *forger) breakSummary(breaks map[[2]int64]verifyBreak, recs []forged) string {
	var parts []string
	for _, r := range recs {
		b := breaks[[2]int64{int64(r.partition), r.offset}]
		kind := b.kind
		if kind == "" {
			kind = "NOT REPORTED"
		}
		parts = append(parts, fmt.Sprintf("@%d %s", r.offset, kind))
	}
	return strings.Join(parts, " ")
}

func describe(recs []forged) string {
	var parts []string
	for _, r := range recs {
		parts = append(parts, fmt.Sprintf("%s p%d@%d (event %s)", r.topic, r.partition, r.offset, r.id))
	}
	return strings.Join(parts, ", ")
}

func offsetsOf(recs []forged) string {
	var parts []string
	for _, r := range recs {
		parts = append(parts, strconv.FormatInt(r.offset, 10))
	}
	return strings.Join(parts, ",")
}

// slug is name in lower-case letters, digits and '-'.
func slug(name string) string {
	return strings.Map(func(r rune) rune {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			return r
		}
		return '-'
	}, strings.ToLower(name))
}

// shortTopic is "events" or "commands".
func shortTopic(topic string) string {
	return topic[strings.LastIndex(topic, ".")+1:]
}

// writeTable logs the forgery table and writes it to the artifacts
// directory ($ASSENT_ARTIFACTS_DIR, else a temporary one).
func (f *forger) writeTable(rows []forgeryRow) {
	t := f.t
	var b strings.Builder
	b.WriteString("FORGERY TABLE\n")
	b.WriteString("| kind | where detected | partition@offset | served by any replica |\n| --- | --- | --- | --- |\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", r.kind, r.detected, r.where, r.served)
	}
	t.Log("\n" + b.String())
	dir := os.Getenv("ASSENT_ARTIFACTS_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	require.NoError(t, os.MkdirAll(dir, 0o750))
	path := filepath.Join(dir, "forgery-table.md")
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o600))
	t.Logf("forgery table written to %s", path)
}

package core_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/cockroachdb/datadriven"
	"github.com/cockroachdb/pebble/v2"
	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/codec"
	"github.com/assent-dev/assent/libs/projection"
	"github.com/assent-dev/assent/libs/projection/requests"
	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/services/decider/internal/core"
)

// TestScenarios runs the scenario files in testdata: each is a sequence of
// commands to the core, with the output it must print. Run with
// -rewrite to regenerate the expected output after a deliberate change,
// and read the diff.
//
// The verbs:
//
//	assign P...              take command partitions (new epochs)
//	revoke P...              give them up
//	stop P WHY...            stop deciding P: records are missing
//	stopped                  the stopped partitions, with why
//	claims                   list the partitions not caught up, with epochs
//	catch-up                 catch up every claim against the log as projected
//	catch-up-stale P EPOCH   catch P up with a claim of an old epoch
//	begin                    start a transaction at the clock's time
//	command ID REQ TYPE ACTOR [k=v...]   decide a command record, signed by
//	                         the api's key unless sign=billing|stranger|none;
//	                         also time=RFC3339, requester=P, tamper
//	garbage REQ              decide a record that is not a CloudEvent
//	timers                   the timers ask for expiries; decided in the open transaction, if any
//	seal                     seal the run each partition got in the transaction
//	commit                   the transaction commits: its records get offsets (if it failed, it aborts, as the adapter does)
//	abort                    the transaction aborts: it is dropped
//	apply                    the projection applies everything committed
//	tick DURATION            the clock moves on
//	state REQ                the request as the decider would load it
//	corrupt-state REQ        the store's value of the request's state stops decoding
//	expect-head P            the partition's head, and whether it is the log's
//	log P                    the committed records of events partition P
func TestScenarios(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		h := newHarness(t)
		datadriven.RunTest(t, path, h.run)
	})
}

// partitions is small, so that scenarios can name them.
const partitions = 4

type logged struct {
	value []byte
	hash  string
}

type harness struct {
	t       *testing.T
	now     time.Time
	core    *core.Core
	store   *requests.Store
	db      *pebble.DB
	log     map[int32][]logged // committed records of each events partition
	next    map[int32]int64    // what the projection has applied
	heads   map[int32]string   // the projection's chain heads
	txn     *core.Txn
	offset  map[int32]int64 // command offsets, per partition
	claims  []core.Claim
	signer  *wire.Signer
	decided []string
	// keys sign commands as services do: "api" (on_behalf), "billing"
	// (no role, retired at 13:00), "stranger" (not published).
	keys map[string]*wire.Signer
}

type progress struct{ h *harness }

func (p progress) Next(part int32) int64 { return p.h.next[part] }

func newHarness(t *testing.T) *harness {
	db, err := pebble.Open(filepath.Join(t.TempDir(), "store"), &pebble.Options{Logger: quiet{}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	store := &requests.Store{}
	store.Attach(db)
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i)
	}
	signer, err := wire.NewSigner("test", ed25519.NewKeyFromSeed(key))
	require.NoError(t, err)
	keys := map[string]*wire.Signer{}
	for i, name := range []string{"api", "billing", "stranger"} {
		seed := make([]byte, 32)
		seed[0] = byte(i + 1)
		keys[name], err = wire.NewSigner(name+"-key", ed25519.NewKeyFromSeed(seed))
		require.NoError(t, err)
	}
	services, err := wire.ParseServiceKeyRing([]byte(fmt.Sprintf(`{"format": "assent-service-keys-v1", "keys": [
	  {"key_id": "api-key", "algorithm": "ed25519", "public_key": %q, "principal": "service:api", "roles": ["on_behalf"]},
	  {"key_id": "billing-key", "algorithm": "ed25519", "public_key": %q, "principal": "service:billing", "not_after": "2026-01-01T13:00:00Z"}]}`,
		base64.StdEncoding.EncodeToString(keys["api"].Public()), base64.StdEncoding.EncodeToString(keys["billing"].Public()))))
	require.NoError(t, err)
	h := &harness{
		t: t, now: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC), store: store, db: db,
		log: map[int32][]logged{}, next: map[int32]int64{}, heads: map[int32]string{}, offset: map[int32]int64{}, signer: signer,
		keys: keys,
	}
	pols := approval.Policies{Admins: []string{"user:root@example.com"}, Rules: []approval.Policy{{
		Name: "deploys", Approvers: []string{"user:alice@example.com", "user:bob@example.com", "user:carol@example.com"},
		MinApprovals: 2, RejectThreshold: 1, TTL: approval.Duration(time.Hour),
	}}}
	h.core = core.New(core.Config{
		Topic: "events", Partitions: partitions, Source: "assent/decider", Policies: func() approval.Policies { return pols },
		Signer:      signer,
		CommandKeys: wire.CommandKeys{Services: services, Deciders: wire.NewKeyRing(map[string]ed25519.PublicKey{"test": signer.Public()})},
		Observe: func(typ string, d approval.Decision, _ time.Time) {
			switch {
			case d.Replayed:
				h.decided = append(h.decided, "replayed")
			case d.Refusal != nil:
				h.decided = append(h.decided, "refused "+string(d.Refusal.Code))
			default:
				h.decided = append(h.decided, "accepted")
			}
		},
		Skipped:     func(reason string, in core.In) { h.decided = append(h.decided, "skipped "+reason) },
		Quarantined: func(in core.In, err error) { h.decided = append(h.decided, "quarantined: "+err.Error()) },
	}, store, progress{h})
	return h
}

func (h *harness) run(t *testing.T, d *datadriven.TestData) string {
	var out strings.Builder
	args := func() []string {
		var a []string
		for _, arg := range d.CmdArgs {
			s := arg.Key
			if len(arg.Vals) > 0 {
				s += "=" + strings.Join(arg.Vals, ",")
			}
			a = append(a, s)
		}
		return a
	}()
	parts := func(a []string) []int32 {
		var ps []int32
		for _, s := range a {
			n, err := strconv.ParseInt(s, 10, 32)
			require.NoError(t, err)
			ps = append(ps, int32(n))
		}
		return ps
	}
	switch d.Cmd {
	case "assign":
		h.core.Assign(parts(args))
		h.owned(&out)
	case "revoke":
		h.core.Revoke(parts(args))
		h.owned(&out)
	case "stop":
		require.GreaterOrEqual(t, len(args), 2, "stop P WHY...")
		fmt.Fprintf(&out, "%v\n", h.core.Stop(parts(args[:1])[0], strings.Join(args[1:], " ")))
	case "stopped":
		st := h.core.Stopped()
		for _, p := range sortedParts(st) {
			fmt.Fprintf(&out, "p%d: %s\n", p, st[p])
		}
	case "claims":
		h.claims = h.core.NotCaughtUp()
		for _, c := range h.claims {
			fmt.Fprintf(&out, "p%d epoch %d\n", c.Partition, c.Epoch)
		}
	case "catch-up":
		for _, c := range h.core.NotCaughtUp() {
			fmt.Fprintf(&out, "p%d: %v\n", c.Partition, h.core.CaughtUp(c, h.projectedHead(c.Partition)))
		}
	case "catch-up-stale":
		require.Len(t, args, 2)
		p := parts(args[:1])[0]
		epoch, err := strconv.ParseUint(args[1], 10, 64)
		require.NoError(t, err)
		fmt.Fprintf(&out, "p%d: %v\n", p, h.core.CaughtUp(core.Claim{Partition: p, Epoch: epoch}, h.projectedHead(p)))
	case "begin":
		require.Nil(t, h.txn, "a transaction is already open")
		h.txn = h.core.Begin(h.now)
	case "command":
		require.GreaterOrEqual(t, len(args), 4, "command ID REQ TYPE ACTOR [k=v...]")
		h.txn.Command(h.commandRecord(t, args[0], args[1], args[2], args[3], args[4:]))
		h.flushDecided(&out)
	case "flood":
		// flood RID N ACTOR PREFIX: N votes of ACTOR with new ids
		// PREFIX-1..N, and how many of each outcome.
		require.Len(t, args, 4, "flood RID N ACTOR PREFIX")
		n, err := strconv.Atoi(args[1])
		require.NoError(t, err)
		counts := map[string]int{}
		for i := 1; i <= n; i++ {
			h.txn.Command(h.commandRecord(t, fmt.Sprintf("%s-%d", args[3], i), args[0], "vote", args[2], []string{"decision=approve"}))
			for _, d := range h.decided {
				counts[d]++
			}
			h.decided = nil
		}
		for _, k := range slices.Sorted(maps.Keys(counts)) {
			fmt.Fprintf(&out, "%s x%d\n", k, counts[k])
		}
	case "garbage":
		rid := args[0]
		p := wire.Partition([]byte(rid), partitions)
		h.offset[p]++
		h.txn.Command(core.In{Partition: p, Offset: h.offset[p] - 1, Key: []byte(rid), Value: []byte("{not json"),
			DecodeErr: fmt.Errorf("%w: not JSON", wire.ErrInvalidEnvelope)})
		h.flushDecided(&out)
	case "timers":
		// The timers ask for expiries; the commands go through the
		// commands topic and come back to the owner, who decides them in
		// the open transaction.
		cmds, err := h.core.Timers(h.now)
		require.NoError(t, err)
		for _, c := range cmds {
			fmt.Fprintf(&out, "asked %s %s\n", c.ID, c.Actor)
			env, err := codec.CommandEnvelope(c, "assent/decider")
			require.NoError(t, err)
			env, err = wire.SignCommand(h.signer, env) // the decider's key signs its timers' commands
			require.NoError(t, err)
			value, err := wire.Marshal(env)
			require.NoError(t, err)
			p := wire.Partition([]byte(c.RequestID), partitions)
			h.offset[p]++
			if h.txn != nil {
				h.txn.Command(core.In{Partition: p, Offset: h.offset[p] - 1, Key: []byte(c.RequestID), Value: value, Envelope: env})
			}
		}
		h.flushDecided(&out)
	case "seal":
		h.txn.Seal()
	case "commit":
		require.NotNil(t, h.txn)
		if err := h.txn.Err(); err != nil {
			// As the adapter does: a transaction that failed aborts.
			fmt.Fprintf(&out, "error: %v\naborted instead\n", err)
			for _, o := range h.txn.Records() {
				fmt.Fprintf(&out, "dropped %s\n", describe(o, -1))
			}
			h.txn = nil
			break
		}
		quiet := len(args) > 0 && args[0] == "quiet" // a count instead of every record
		for i, o := range h.txn.Records() {
			off := int64(len(h.log[o.Partition]))
			h.log[o.Partition] = append(h.log[o.Partition], logged{value: o.Value, hash: wire.Hash(o.Value)})
			h.txn.Produced(i, off)
			if !quiet {
				fmt.Fprintf(&out, "%s\n", describe(o, off))
			}
		}
		if quiet {
			fmt.Fprintf(&out, "%d records\n", len(h.txn.Records()))
		}
		h.core.Commit(h.txn)
		h.txn = nil
	case "abort":
		require.NotNil(t, h.txn)
		for _, o := range h.txn.Records() {
			fmt.Fprintf(&out, "dropped %s\n", describe(o, -1))
		}
		if err := h.txn.Err(); err != nil {
			fmt.Fprintf(&out, "error: %v\n", err)
		}
		h.txn = nil
	case "apply":
		h.apply(t)
		for _, p := range sortedParts(h.next) {
			fmt.Fprintf(&out, "p%d next %d\n", p, h.next[p])
		}
	case "tick":
		dur, err := time.ParseDuration(args[0])
		require.NoError(t, err)
		h.now = h.now.Add(dur)
	case "state":
		tx := h.core.Begin(h.now) // loads through the overlay, as a transaction would
		st, err := core.Load(h.core, tx, args[0])
		require.NoError(t, err)
		fmt.Fprintf(&out, "%s seq %d", st.Status, st.Sequence)
		for _, v := range st.Votes {
			fmt.Fprintf(&out, " %s:%s", strings.TrimSuffix(strings.TrimPrefix(v.Voter, "user:"), "@example.com"), v.Decision)
		}
		out.WriteString("\n")
	case "corrupt-state":
		// The requests store keeps a request's state under "r/<id>".
		require.NoError(t, h.db.Set([]byte("r/"+args[0]), []byte("{not a state"), pebble.Sync))
		_, _, err := h.store.Get(args[0])
		require.Error(t, err, "the state of %s no longer decodes", args[0])
	case "expect-head":
		p := parts(args)[0]
		head, ok := h.core.HeadOf(p)
		if !ok {
			fmt.Fprintf(&out, "p%d: not owned or not caught up\n", p)
			break
		}
		want := wire.GenesisHash
		if l := h.log[p]; len(l) > 0 {
			want = l[len(l)-1].hash
		}
		fmt.Fprintf(&out, "p%d: head is the log's last record: %v\n", p, head == want)
	case "log":
		p := parts(args)[0]
		prev := wire.GenesisHash
		keys := wire.NewKeyRing(map[string]ed25519.PublicKey{"test": h.signer.Public()})
		for off, r := range h.log[p] {
			env, err := wire.Unmarshal(r.value)
			require.NoError(t, err)
			link := "ok"
			if env.PrevHash != prev {
				link = "BROKEN"
			}
			if env.Type == wire.TypeSeal {
				s, err := wire.VerifySeal(keys, "events", p, env)
				fmt.Fprintf(&out, "%d seal count=%d verifies=%v link=%s\n", off, s.Count, err == nil, link)
			} else {
				fmt.Fprintf(&out, "%d %s %s seq=%s link=%s\n", off, shortType(env.Type), env.Subject, env.Sequence, link)
			}
			prev = r.hash
		}
	case "owned":
		h.owned(&out)
	default:
		t.Fatalf("unknown verb %q", d.Cmd)
	}
	return out.String()
}

func (h *harness) owned(out *strings.Builder) {
	o := h.core.Owned()
	var ps []int32
	for p := range o {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	for _, p := range ps {
		fmt.Fprintf(out, "p%d caught-up=%v\n", p, o[p])
	}
}

func (h *harness) flushDecided(out *strings.Builder) {
	for _, d := range h.decided {
		fmt.Fprintln(out, d)
	}
	h.decided = nil
}

// projectedHead is where the projection says partition p's authenticated
// chain ends: the hash of the last record applied.
func (h *harness) projectedHead(p int32) string {
	l := h.log[p][:h.next[p]]
	if len(l) == 0 {
		return wire.GenesisHash
	}
	return l[len(l)-1].hash
}

func (h *harness) apply(t *testing.T) {
	b := h.db.NewIndexedBatch()
	defer func() { _ = b.Close() }()
	for p, l := range h.log {
		for off := h.next[p]; off < int64(len(l)); off++ {
			r := l[off]
			env, err := wire.Unmarshal(r.value)
			require.NoError(t, err)
			prev := h.heads[p]
			if prev == "" {
				prev = wire.GenesisHash
			}
			e := &projection.Event{Partition: p, Offset: off, Value: r.value, Hash: r.hash, PrevHead: prev, Envelope: env}
			require.NoError(t, h.store.Apply(b, e))
			require.NoError(t, projection.KeepRecords(b, []projection.Event{*e})) // as the runner does
			h.heads[p] = r.hash
		}
		h.next[p] = int64(len(l))
	}
	require.NoError(t, b.Commit(pebble.NoSync))
}

func (h *harness) commandRecord(t *testing.T, id, rid, typ, actor string, kv []string) core.In {
	opts := map[string]string{}
	for _, s := range kv {
		k, v, _ := strings.Cut(s, "=")
		opts[k] = v
	}
	var body approval.CommandBody
	switch typ {
	case "submit":
		body = approval.Submit{Action: approval.Action{Type: "deploy", Resource: "svc/api", Environment: "production"}, Reason: "release"}
	case "vote":
		body = approval.Vote{Decision: approval.VoteDecision(opts["decision"]), Comment: opts["comment"]}
	case "cancel":
		body = approval.Cancel{}
	case "expire":
		body = approval.Expire{}
	default:
		t.Fatalf("unknown command type %q", typ)
	}
	if r, ok := opts["requester"]; ok {
		sub := body.(approval.Submit)
		sub.Requester = r
		body = sub
	}
	at := h.now
	if s, ok := opts["time"]; ok {
		var err error
		at, err = time.Parse(time.RFC3339, s)
		require.NoError(t, err)
	}
	cmd := approval.Command{ID: id, RequestID: rid, Actor: actor, Time: at, Body: body}
	env, err := codec.CommandEnvelope(cmd, "assent/test")
	require.NoError(t, err)
	// sign=KEY signs with one of h.keys (default api, which has
	// on_behalf), sign=none not at all; tamper changes the data after.
	if key := opts["sign"]; key != "none" {
		if key == "" {
			key = "api"
		}
		require.Contains(t, h.keys, key)
		env, err = wire.SignCommand(h.keys[key], env)
		require.NoError(t, err)
	}
	if _, ok := opts["tamper"]; ok {
		env.Data = []byte(strings.Replace(string(env.Data), "release", "rElease", 1))
		env.Data = []byte(strings.Replace(string(env.Data), "approve", "reject", 1))
	}
	value, err := wire.Marshal(env)
	require.NoError(t, err)
	p := wire.Partition([]byte(rid), partitions)
	if s, ok := opts["partition"]; ok {
		n, err := strconv.ParseInt(s, 10, 32)
		require.NoError(t, err)
		p = int32(n)
	}
	h.offset[p]++
	return core.In{Partition: p, Offset: h.offset[p] - 1, Key: []byte(rid), Value: value, Envelope: env}
}

func describe(o core.Out, off int64) string {
	env, err := wire.Unmarshal(o.Value)
	if err != nil {
		return "undecodable"
	}
	where := fmt.Sprintf("p%d", o.Partition)
	if off >= 0 {
		where += fmt.Sprintf("@%d", off)
	}
	if o.Seal {
		s, err := wire.DecodeSeal(env)
		if err != nil {
			return where + " bad seal"
		}
		return fmt.Sprintf("%s seal count=%d", where, s.Count)
	}
	return fmt.Sprintf("%s %s %s seq=%s", where, shortType(env.Type), env.Subject, env.Sequence)
}

func shortType(t string) string {
	return strings.TrimPrefix(strings.TrimPrefix(t, "dev.assent.request."), "dev.assent.")
}

func sortedParts[V any](m map[int32]V) []int32 {
	var ps []int32
	for p := range m {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
	return ps
}

// quiet drops Pebble's informational logs.
type quiet struct{}

func (quiet) Infof(string, ...any)           {}
func (quiet) Errorf(string, ...any)          {}
func (quiet) Fatalf(format string, a ...any) { panic(fmt.Sprintf(format, a...)) }

// TestAForgeryAlwaysFitsInAnEvent: what an unauthenticated command claims
// (its id, actor and type) is the forger's to choose, so the refusal
// clips it: a command of nearly a megabyte still gets a small
// command.rejected, which Kafka takes, rather than a transaction that can
// never commit.
func TestAForgeryAlwaysFitsInAnEvent(t *testing.T) {
	h := newHarness(t)
	h.core.Assign([]int32{0, 1, 2, 3})
	for _, c := range h.core.NotCaughtUp() {
		require.True(t, h.core.CaughtUp(c, wire.GenesisHash))
	}
	huge := "user:" + strings.Repeat("é", 300_000) + "@example.com"
	in := h.commandRecord(t, strings.Repeat("c", 100_000), "r1", "vote", huge, []string{"sign=none", "decision=approve"})
	in.Envelope.Type = "dev.assent.command." + strings.Repeat("x", 100_000)
	txn := h.core.Begin(h.now)
	txn.Command(in)
	require.Equal(t, []string{"refused unauthenticated"}, h.decided)
	txn.Seal()
	require.NoError(t, txn.Err())
	require.Len(t, txn.Records(), 2, "the refusal and its seal")
	require.Less(t, len(txn.Records()[0].Value), 4096)
	env, err := wire.Unmarshal(txn.Records()[0].Value)
	require.NoError(t, err)
	e, err := codec.DomainEvent(env)
	require.NoError(t, err)
	rej := e.Body.(approval.CommandRejected)
	require.Equal(t, approval.ReasonUnauthenticated, rej.Code)
	require.Equal(t, approval.SystemDecider, e.Actor)
	require.True(t, utf8.ValidString(rej.Detail), "clipped on a rune boundary")
	require.Contains(t, rej.Detail, "not signed")
}

package chaos

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/codec"
	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/test/systest"
)

// Insider is the insider nemesis of issue 12: someone holding the Kafka
// admin password (a leaked super user) who appends forged decisions to the
// events topic for requests the workload created and that are still
// pending. It follows the topic as a reader does (wire.Authenticator), so
// that each forgery is well-formed: the next sequence of the request, and
// a prevhash that is the hash of the record before it.
//
// Every forgery is recorded (Forgeries) for the checker, which proves that
// no client and no replica was ever shown one (checkForgeries). After each
// forgery the insider reads the request from every api replica for a
// while, as a backend waiting on it would, and records those reads in the
// history; and around each fault it reads every api replica's
// assent_consistency_violations_total{kind="unauthenticated"}, which must
// rise (Counters).
type Insider struct {
	Kafka      eventlog.Config // with the admin credentials
	Topic      string          // the events topic
	Partitions int32
	Prefix     string // the workload's request ids start with it
	Keys       *wire.KeyRing
	APIs       []*Proc
	Rec        *Recorder
	Logf       func(string, ...any)

	mu        sync.Mutex
	auth      map[int32]*wire.Authenticator
	last      map[int32]string // hash of the last record read, authenticated or not
	seal      map[int32][]byte // the last valid seal's record value
	states    map[string]approval.State
	partOf    map[string]int32
	decided   map[string][]wire.Envelope // recent authenticated decisions, by event type
	targeted  map[string]bool
	forgeries []Forgery
	counters  []Counter
	n         int
	rng       *mrand.Rand
	forger    *wire.Signer
	stop      context.CancelFunc
	done      chan struct{}
	tailErr   error
}

// Start follows the events topic from its start until Close.
func (in *Insider) Start(ctx context.Context) error {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("chaos: insider key: %w", err)
	}
	// The decider key's id, with a key nobody published.
	if in.forger, err = wire.NewSigner(systest.DemoKeyID, key); err != nil {
		return err
	}
	in.auth, in.last, in.seal = map[int32]*wire.Authenticator{}, map[int32]string{}, map[int32][]byte{}
	in.states, in.partOf, in.decided, in.targeted = map[string]approval.State{}, map[string]int32{}, map[string][]wire.Envelope{}, map[string]bool{}
	in.rng = mrand.New(mrand.NewPCG(uint64(time.Now().UnixNano()), 12)) //nolint:gosec // G404: which request to forge, not a secret
	start := map[int32]kgo.Offset{}
	for p := range in.Partitions {
		start[p] = kgo.NewOffset().AtStart()
		in.auth[p] = wire.NewAuthenticator(in.Keys, in.Topic, p, wire.GenesisHash)
		in.last[p] = wire.GenesisHash
	}
	cl, err := eventlog.NewClient(in.Kafka, kgo.KeepControlRecords(), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{in.Topic: start}))
	if err != nil {
		return err
	}
	ctx, in.stop = context.WithCancel(ctx)
	in.done = make(chan struct{})
	go func() {
		defer close(in.done)
		defer cl.Close()
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			in.mu.Lock()
			fs.EachRecord(in.add)
			in.mu.Unlock()
		}
	}()
	return nil
}

// Close stops following the topic.
func (in *Insider) Close() {
	if in.stop != nil {
		in.stop()
		<-in.done
	}
}

// add takes one record of the topic (in.mu held).
func (in *Insider) add(r *kgo.Record) {
	wr := eventlog.WireRecord(r)
	it := wire.Item{Record: wr}
	var decodeErr error
	if !wr.Control {
		it.Hash = wire.Hash(wr.Value)
		in.last[r.Partition] = it.Hash
		it.Env, decodeErr = wire.DecodeRecord(wr)
	}
	a := in.auth[r.Partition]
	if a == nil {
		return
	}
	for _, x := range a.Add(it, decodeErr).Apply {
		if x.Env.Type == wire.TypeSeal {
			in.seal[r.Partition] = x.Record.Value
			continue
		}
		e, err := codec.DomainEvent(x.Env)
		if err != nil {
			continue
		}
		in.states[e.RequestID] = approval.Evolve(in.states[e.RequestID], e)
		in.partOf[e.RequestID] = r.Partition
		if t := x.Env.Type; t == approval.TypeRequestApproved || t == approval.TypeRequestRejected {
			in.decided[t] = append(in.decided[t], x.Env)
			if len(in.decided[t]) > 64 {
				in.decided[t] = in.decided[t][1:]
			}
		}
	}
}

// Forgeries are the forgeries injected so far.
func (in *Insider) Forgeries() []Forgery {
	in.mu.Lock()
	defer in.mu.Unlock()
	return slices.Clone(in.forgeries)
}

// Counters are the api replicas' violation counters around each fault.
func (in *Insider) Counters() []Counter {
	in.mu.Lock()
	defer in.mu.Unlock()
	return slices.Clone(in.counters)
}

// Inject is one insider fault: a forgery of every kind, each on another
// pending request, each followed by reads of that request from every api
// replica; then it waits (bounded) until every api replica has counted
// unauthenticated records. It returns what it did, for the fault's note.
func (in *Insider) Inject(ctx context.Context) (string, error) {
	began := time.Now()
	before := map[string]float64{}
	errs := map[string]error{}
	for _, p := range in.APIs {
		before[p.Name], errs[p.Name] = scrapeUnauthenticated(ctx, p)
	}
	var done []string
	var err error
	for _, kind := range ForgeryKinds {
		var f Forgery
		if f, err = in.forge(ctx, kind); err != nil {
			break
		}
		done = append(done, fmt.Sprintf("%s %s %s p%d@%v", f.Kind, f.Request, f.Outcome, f.Partition, f.Offsets))
		in.probe(ctx, f.Request)
	}
	// Every replica counts what it refused; wait until each has.
	after := map[string]float64{}
	for deadline := time.Now().Add(20 * time.Second); ; {
		risen := true
		for _, p := range in.APIs {
			if errs[p.Name] != nil {
				continue
			}
			v, e := scrapeUnauthenticated(ctx, p)
			if e == nil {
				after[p.Name] = v
			}
			risen = risen && e == nil && v > before[p.Name]
		}
		if risen || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		sleep(ctx, 250*time.Millisecond)
	}
	in.mu.Lock()
	for _, p := range in.APIs {
		c := Counter{Replica: p.Name, At: began, Before: before[p.Name], After: after[p.Name]}
		if errs[p.Name] != nil {
			c.Err = errs[p.Name].Error()
		}
		in.counters = append(in.counters, c)
	}
	in.mu.Unlock()
	return strings.Join(done, "; "), err
}

// target picks a pending request of the workload's that was not forged
// yet, preferring one without votes, waiting (bounded) for one.
func (in *Insider) target(ctx context.Context) (string, approval.State, int32, error) {
	for deadline := time.Now().Add(20 * time.Second); ; {
		in.mu.Lock()
		var fresh, voted []string
		for rid, st := range in.states {
			if st.Status != approval.StatusPending || in.targeted[rid] || !strings.HasPrefix(rid, in.Prefix+"-") ||
				time.Until(st.Policy.ExpiresAt) < time.Second {
				continue
			}
			if len(st.Votes) == 0 {
				fresh = append(fresh, rid)
			} else {
				voted = append(voted, rid)
			}
		}
		pick := fresh
		if len(pick) == 0 {
			pick = voted
		}
		if len(pick) > 0 {
			slices.Sort(pick)
			rid := pick[in.rng.IntN(len(pick))]
			in.targeted[rid] = true
			st, p := in.states[rid], in.partOf[rid]
			in.mu.Unlock()
			return rid, st, p, nil
		}
		in.mu.Unlock()
		if time.Now().After(deadline) || ctx.Err() != nil {
			return "", approval.State{}, 0, errors.New("chaos: insider: no pending request of the workload's for 20s")
		}
		sleep(ctx, 50*time.Millisecond)
	}
}

// forge writes one forgery of kind.
func (in *Insider) forge(ctx context.Context, kind string) (Forgery, error) {
	rid, st, p, err := in.target(ctx)
	if err != nil {
		return Forgery{}, err
	}
	in.mu.Lock()
	in.n++
	outcome := approval.StatusApproved
	if in.n%2 == 0 {
		outcome = approval.StatusRejected
	}
	prev, authHead, seal := in.last[p], in.auth[p].Head(), slices.Clone(in.seal[p])
	var copied *wire.Envelope
	if kind == ForgeCopy {
		typ := approval.TypeRequestApproved
		if outcome == approval.StatusRejected {
			typ = approval.TypeRequestRejected
		}
		if ds := in.decided[typ]; len(ds) > 0 {
			c := ds[len(ds)-1]
			copied = &c
		}
	}
	in.mu.Unlock()

	now := time.Now().UTC()
	var env wire.Envelope
	if copied != nil {
		// Another request's decision, as the deciders wrote and sealed it,
		// re-addressed: only the subject, sequence and link change.
		env = *copied
		env.Subject, env.Sequence, env.PrevHash = rid, strconv.Itoa(st.Sequence+1), prev
	} else {
		// A decision of its own (also a copy's, before the deciders have
		// decided any request that way).
		e := approval.Event{RequestID: rid, CommandID: wire.NewID(now), Time: now, Sequence: st.Sequence + 1}
		deciders := st.Policy.Approvers
		if outcome == approval.StatusApproved {
			deciders = deciders[:min(len(deciders), max(st.Policy.MinApprovals, 1))]
			e.Body = approval.RequestApproved{Approvers: deciders}
		} else {
			deciders = deciders[:min(len(deciders), max(st.Policy.RejectThreshold, 1))]
			e.Body = approval.RequestRejected{Rejecters: deciders}
		}
		if len(deciders) > 0 {
			e.Actor = deciders[0]
		}
		if env, err = codec.EventEnvelope(e, "assent/decider", prev); err != nil {
			return Forgery{}, err
		}
	}
	rec, err := eventlog.NewRecord(in.Topic, env)
	if err != nil {
		return Forgery{}, err
	}
	recs := []*kgo.Record{rec}
	switch kind {
	case ForgeUnknownKey:
		s, err := wire.NewSeal(in.forger, "assent/decider", in.Topic, p, authHead, wire.Hash(rec.Value), 1, now)
		if err != nil {
			return Forgery{}, err
		}
		sr, err := eventlog.NewRecord(in.Topic, s)
		if err != nil {
			return Forgery{}, err
		}
		sr.Partition = p
		recs = append(recs, sr)
	case ForgeCopy:
		if seal != nil {
			recs = append(recs, &kgo.Record{Topic: in.Topic, Partition: p, Value: seal,
				Headers: []kgo.RecordHeader{{Key: wire.HeaderContentType, Value: []byte(wire.ContentType)}}})
		}
	}
	var opts []kgo.Opt
	if kind != ForgePlain {
		opts = append(opts, kgo.TransactionalID(in.Prefix+"-insider"), kgo.TransactionTimeout(10*time.Second))
	}
	cl, err := eventlog.NewClient(in.Kafka, opts...)
	if err != nil {
		return Forgery{}, err
	}
	defer cl.Close()
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if kind != ForgePlain {
		if err := cl.BeginTransaction(); err != nil {
			return Forgery{}, fmt.Errorf("chaos: insider: %w", err)
		}
	}
	f := Forgery{Kind: kind, Request: rid, Outcome: string(outcome), Partition: p, EventID: env.ID, Sequence: st.Sequence + 1}
	// One at a time, in order: the seal must follow the event.
	for _, r := range recs {
		res := cl.ProduceSync(pctx, r)
		if err := res.FirstErr(); err != nil {
			if kind != ForgePlain {
				_ = cl.EndTransaction(context.WithoutCancel(pctx), kgo.TryAbort)
			}
			return Forgery{}, fmt.Errorf("chaos: insider: produce the %s forgery: %w", kind, err)
		}
		got := res[0].Record
		if got.Partition != p {
			return Forgery{}, fmt.Errorf("chaos: insider: the forgery of %s went to partition %d, not %d", rid, got.Partition, p)
		}
		f.Offsets = append(f.Offsets, got.Offset)
	}
	if kind != ForgePlain {
		if err := cl.EndTransaction(pctx, kgo.TryCommit); err != nil {
			return Forgery{}, fmt.Errorf("chaos: insider: commit the %s forgery: %w", kind, err)
		}
	}
	f.Time = time.Now()
	in.mu.Lock()
	in.forgeries = append(in.forgeries, f)
	in.mu.Unlock()
	if in.Logf != nil {
		in.Logf("insider: %s", f)
	}
	return f, nil
}

// probe reads rid from every api replica a few times over two seconds, as
// a backend waiting for the decision would, and records each read.
func (in *Insider) probe(ctx context.Context, rid string) {
	hc := &http.Client{Timeout: 5 * time.Second}
	began := time.Now()
	for _, d := range []time.Duration{100 * time.Millisecond, 500 * time.Millisecond, 1200 * time.Millisecond, 2 * time.Second} {
		sleep(ctx, time.Until(began.Add(d)))
		for i, p := range in.APIs {
			op := Op{Kind: KindRead, Via: "api", Request: rid, Client: 1000 + i, Replica: p.URL(), Call: time.Now().UnixNano(), Detail: "insider probe"}
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL()+"/v1/requests/"+rid, nil)
			if err != nil {
				continue
			}
			req.Header.Set("Authorization", "Bearer "+billing.token)
			resp, err := hc.Do(req)
			op.Return = time.Now().UnixNano()
			if err != nil {
				op.Outcome = Unknown
				in.Rec.Add(op)
				continue
			}
			raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			_ = resp.Body.Close()
			op.HTTP = resp.StatusCode
			switch {
			case resp.StatusCode >= 500:
				op.Outcome = Unknown
			case resp.StatusCode == http.StatusOK:
				op.Outcome = OK
				(&client{}).view(&op, raw)
			case resp.StatusCode == http.StatusNotFound:
				op.Outcome, op.HasView = OK, true
			default:
				op.Outcome, op.Detail = Refused, "insider probe: "+string(raw)
			}
			in.Rec.Add(op)
		}
	}
}

// scrapeUnauthenticated reads an api replica's
// assent_consistency_violations_total{kind="unauthenticated"} (the sum of
// its series), retrying for a few seconds.
func scrapeUnauthenticated(ctx context.Context, p *Proc) (float64, error) {
	hc := &http.Client{Timeout: 5 * time.Second}
	var last error
	for i := 0; i < 20 && ctx.Err() == nil; i++ {
		if i > 0 {
			sleep(ctx, 500*time.Millisecond)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL()+"/metrics", nil)
		if err != nil {
			return 0, err
		}
		resp, err := hc.Do(req)
		if err != nil {
			last = err
			continue
		}
		v, found, err := parseUnauthenticated(resp.Body)
		_ = resp.Body.Close()
		switch {
		case err != nil:
			last = err
		case resp.StatusCode != http.StatusOK:
			last = fmt.Errorf("/metrics answered %d", resp.StatusCode)
		case !found:
			return 0, fmt.Errorf("%s /metrics has no assent_consistency_violations_total{kind=\"unauthenticated\"}", p.Name)
		default:
			return v, nil
		}
	}
	if last == nil {
		last = ctx.Err()
	}
	return 0, fmt.Errorf("%s /metrics: %w", p.Name, last)
}

func parseUnauthenticated(r io.Reader) (float64, bool, error) {
	sc := bufio.NewScanner(io.LimitReader(r, 8<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var sum float64
	found := false
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "assent_consistency_violations_total{") || !strings.Contains(line, `kind="unauthenticated"`) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, false, fmt.Errorf("metric line %q: %w", line, err)
		}
		sum += v
		found = true
	}
	return sum, found, sc.Err()
}

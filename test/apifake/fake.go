// Package apifake stands in for Kafka, the decider and the projection runner
// in the api's component tests, so that handlers run against the real
// domain and the real request store without a cluster.
//
// Send makes a command "durable", decides it with approval.Decide against
// the repository's example policy file, encodes the events as the decider
// does (CloudEvents, hash chain), and folds them into a requests.Store on
// an in-memory Pebble through Store.Apply, waking watchers after each
// batch as projection.Runner does. Its knobs make sends fail (before or
// after the command is written), hold commands undecided (so writes time
// out), or decide them late.
package apifake

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/assent-dev/assent/test/tb"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/codec"
	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/policy"
	"github.com/assent-dev/assent/libs/projection"
	"github.com/assent-dev/assent/libs/projection/requests"
	"github.com/assent-dev/assent/libs/wire"
)

// Partitions of the fake topics.
const Partitions = 12

// Log is the fake. It implements app.Sender, app.Projection and, through
// Store, app.Store.
type Log struct {
	Store *requests.Store

	db       *pebble.DB
	policies approval.Policies
	wg       sync.WaitGroup

	// Knobs; set them before a Send, never while one runs.
	Fail  error         // Send returns it, and nothing is written
	Hold  atomic.Bool   // Send succeeds, but the command is never decided
	Delay time.Duration // how long after Send the command is decided
	Clock atomic.Pointer[time.Time]
	// FailAfterWrite: Send writes the command (and it is decided as
	// usual), then returns this error: an acknowledgement lost on its way
	// back, which leaves the writer unable to tell whether it landed.
	FailAfterWrite error
	// Signer signs every command sent, as a service's command.Kafka sender
	// does (default: the api's demo command key, infra/keys).
	Signer *wire.Signer

	mu       sync.Mutex
	sent     []wire.Envelope
	watchers map[string][]chan struct{}
	heads    map[int32]string
	offsets  map[int32]int64
	notReady atomic.Bool
}

// RepoRoot is the root of this checkout.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "../.."))
}

// New returns a fake deciding with infra/policies/example.yaml. It is
// closed when the test ends, after every pending decision.
func New(t tb.TB) *Log {
	t.Helper()
	pols, err := policy.Load(filepath.Join(RepoRoot(), "infra/policies/example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := pebble.Open("", &pebble.Options{FS: vfs.NewMem(), Logger: quiet{}})
	if err != nil {
		t.Fatal(err)
	}
	l := &Log{
		Store: &requests.Store{}, db: db, policies: pols,
		watchers: map[string][]chan struct{}{}, heads: map[int32]string{}, offsets: map[int32]int64{},
	}
	if l.Signer, err = wire.LoadSigner("demo-api-2026-01", filepath.Join(RepoRoot(), "infra/keys/demo-api.key.pem")); err != nil {
		t.Fatal(err)
	}
	l.Store.Attach(db)
	t.Cleanup(func() {
		l.wg.Wait()
		_ = db.Close()
	})
	return l
}

// Now is the fake decider's clock: the time set with SetNow, else the
// real time.
func (l *Log) Now() time.Time {
	if p := l.Clock.Load(); p != nil {
		return *p
	}
	return time.Now().UTC()
}

// SetNow sets the fake decider's clock.
func (l *Log) SetNow(t time.Time) { l.Clock.Store(&t) }

// SetReady sets what Ready reports (true at first).
func (l *Log) SetReady(ready bool) { l.notReady.Store(!ready) }

// Ready implements app.Projection.
func (l *Log) Ready() bool { return !l.notReady.Load() }

// Sent returns the commands sent so far, as decoded from their records.
func (l *Log) Sent() []wire.Envelope {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]wire.Envelope(nil), l.sent...)
}

// Send implements app.Sender.
func (l *Log) Send(_ context.Context, env wire.Envelope) error {
	if l.Fail != nil {
		return l.Fail
	}
	env, err := wire.SignCommand(l.Signer, env)
	if err != nil {
		return err
	}
	// Round-trip through a record, as the decider would see it.
	rec, err := eventlog.NewRecord("commands", env)
	if err != nil {
		return err
	}
	got, err := eventlog.DecodeRecord(rec)
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.sent = append(l.sent, got)
	l.mu.Unlock()
	if l.Hold.Load() {
		return l.FailAfterWrite
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		if l.Delay > 0 {
			time.Sleep(l.Delay)
		}
		if err := l.decide(got); err != nil {
			panic(fmt.Sprintf("fake: decide: %v", err)) // a broken fake must not pass a test
		}
	}()
	return l.FailAfterWrite
}

// Settle waits until every command sent so far has been decided. Call it
// when no Send runs.
func (l *Log) Settle() { l.wg.Wait() }

// Expire decides the decider's timer command for a request.
func (l *Log) Expire(rid string) error {
	c := approval.Command{ID: "expire:" + rid, RequestID: rid, Actor: approval.SystemDecider, Time: l.Now(), Body: approval.Expire{}}
	l.mu.Lock()
	defer l.mu.Unlock()
	st, _, err := l.Store.Get(rid)
	if err != nil {
		return err
	}
	return l.append(rid, approval.Decide(st, c, l.policies, l.Now()).Events)
}

func (l *Log) decide(env wire.Envelope) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	rid := env.Subject
	st, _, err := l.Store.Get(rid)
	if err != nil {
		return err
	}
	now := l.Now()
	c, err := codec.DomainCommand(env)
	var d approval.Decision
	var r *approval.Refusal
	switch {
	case errors.As(err, &r):
		d = approval.Refuse(st, c, env.Type, r, now)
	case err != nil:
		return err
	default:
		d = approval.Decide(st, c, l.policies, now)
	}
	return l.append(rid, d.Events)
}

// append writes events as one batch and wakes the request's watchers.
// l.mu is held.
func (l *Log) append(rid string, events []approval.Event) error {
	if len(events) == 0 {
		return nil
	}
	p := wire.Partition([]byte(rid), Partitions)
	b := l.db.NewIndexedBatch()
	defer func() { _ = b.Close() }()
	for _, e := range events {
		chain := wire.NewChain(l.heads[p])
		head := chain.Head
		env, err := codec.EventEnvelope(e, "assent/decider", head)
		if err != nil {
			return err
		}
		value, err := chain.Next(env)
		if err != nil {
			return err
		}
		rec := eventlog.RecordOf("events", []byte(e.RequestID), value)
		got, err := eventlog.DecodeRecord(rec)
		if err != nil {
			return err
		}
		pe := &projection.Event{
			Partition: p, Offset: l.offsets[p], Value: rec.Value,
			Hash: chain.Head, PrevHead: head, Envelope: got,
		}
		if err := l.Store.Apply(b, pe); err != nil {
			return err
		}
		if err := projection.KeepRecords(b, []projection.Event{*pe}); err != nil { // as the runner does
			return err
		}
		l.heads[p] = pe.Hash
		l.offsets[p]++
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return err
	}
	for _, ch := range l.watchers[rid] {
		close(ch)
	}
	delete(l.watchers, rid)
	return nil
}

// Watch implements app.Projection, as projection.Runner.Watch does.
func (l *Log) Watch(subject string) (<-chan struct{}, func()) {
	ch := make(chan struct{})
	l.mu.Lock()
	l.watchers[subject] = append(l.watchers[subject], ch)
	l.mu.Unlock()
	return ch, func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		list := l.watchers[subject]
		for i, c := range list {
			if c == ch {
				l.watchers[subject] = append(list[:i:i], list[i+1:]...)
				break
			}
		}
		if len(l.watchers[subject]) == 0 {
			delete(l.watchers, subject)
		}
	}
}

// quiet keeps Pebble's informational lines out of test output.
type quiet struct{}

func (quiet) Infof(string, ...any)         {}
func (quiet) Errorf(f string, args ...any) { fmt.Printf("pebble: "+f+"\n", args...) }
func (quiet) Fatalf(f string, args ...any) { panic(fmt.Sprintf("pebble: "+f, args...)) }

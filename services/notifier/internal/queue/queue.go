// Package queue is the notifier's projection of the events topic: the
// request store every reader keeps (libs/projection/requests), and beside
// it the deliveries, derived from the same events in the same batches.
//
// # The queue is a function of the log
//
// A delivery is one event of one request to one webhook or email target.
// It is pending from the moment the event that calls for it is applied
// (a submission, a vote, a decision, an expiry or a cancellation, for the
// targets of the policy snapshot that want it; see approval.NotifyTarget)
// until a notification.recorded note with the outcome delivered or
// dead_letter for the same target, event and generation is applied. A
// replay note makes it pending again, one generation later.
//
// So the set of pending deliveries is fixed by the events topic alone:
// every replica projects every partition and holds the same set, a
// replica that was killed finds it again in its own store (or rebuilds it
// from the log), and the replica that takes over a partition finds the
// deliveries the dead one had not finished. Nothing about a delivery
// lives only in memory but its attempt count and its next attempt time.
package queue

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/cockroachdb/pebble/v2"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/projection"
	"github.com/assent-dev/assent/libs/projection/requests"
	"github.com/assent-dev/assent/libs/wire"
)

// Entry is one delivery: an event of a request to one target.
type Entry struct {
	Partition  int32                     `json:"partition"`
	Offset     int64                     `json:"offset"` // of the event
	RequestID  string                    `json:"request"`
	Sequence   int                       `json:"sequence"`
	EventID    string                    `json:"event"` // the webhook-id
	EventType  string                    `json:"type"`
	EventTime  time.Time                 `json:"time"`
	Kind       approval.NotificationKind `json:"kind"`   // webhook or email
	Target     string                    `json:"target"` // the URL or the address
	Recipient  string                    `json:"recipient,omitempty"`
	Generation int                       `json:"generation"`
	// ReplayedAt is when the current generation was asked for by a
	// replay; its retry horizon runs from then.
	ReplayedAt time.Time `json:"replayed_at,omitzero"`
}

// Start is when the delivery's current generation became due.
func (e Entry) Start() time.Time {
	if e.ReplayedAt.After(e.EventTime) {
		return e.ReplayedAt
	}
	return e.EventTime
}

// Key identifies the delivery, whatever its generation.
func (e Entry) Key() string {
	return fmt.Sprintf("%d/%s/%d/%s/%s", e.Partition, e.RequestID, e.Sequence, e.Kind, e.Target)
}

// TargetKey names the target: deliveries to it share its rate limit and
// its circuit breaker.
func (e Entry) TargetKey() string { return string(e.Kind) + " " + e.Target }

// Channel is the target as notes name it: the URL or the address, or, for
// a URL longer than a note's field, "sha256:" and its hash.
func (e Entry) Channel() string { return ChannelOf(e.Target) }

// ChannelOf names a target within a note's limits (printable, at most
// approval.MaxFieldLen bytes).
func ChannelOf(target string) string {
	if len(target) <= approval.MaxFieldLen && strings.IndexFunc(target, func(r rune) bool { return !unicode.IsPrint(r) }) < 0 {
		return target
	}
	sum := sha256.Sum256([]byte(target))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Store is the projection.Handler of the notifier.
type Store struct {
	Requests requests.Store
	db       *pebble.DB
	// Invalid counts delivery notes that match no delivery: a replay of a
	// delivery this store never had. It should read zero.
	Invalid atomic.Int64

	batch *pebble.Batch // during Apply and ApplyBatch
	err   error         // the first write of a delivery that failed in them
}

// New returns a store; Attach it to the runner's database once opened.
func New() *Store {
	s := &Store{}
	s.Requests.OnEvent = s.onEvent
	return s
}

// Version names the layout of the store: the request store's and the
// deliveries'.
func (s *Store) Version() string { return "notifier/1+" + s.Requests.Version() }

// KeepsRecords asks the runner to keep the log's records, from which the
// requests store serves a request's history and Event a delivery's event
// (projection.RecordKeeper): Requests is a field, so its own method is not
// the Store's.
func (*Store) KeepsRecords() bool { return true }

// Attach gives the store the database to read from.
func (s *Store) Attach(db *pebble.DB) {
	s.db = db
	s.Requests.Attach(db)
}

// Apply folds one event into the request store and the deliveries.
func (s *Store) Apply(b *pebble.Batch, e *projection.Event) error {
	s.batch, s.err = b, nil
	defer func() { s.batch = nil }()
	if err := s.Requests.Apply(b, e); err != nil {
		return err
	}
	return s.err
}

// ApplyBatch folds a run of events (projection.BatchHandler), the path
// the runner takes: the request store folds them as its own ApplyBatch
// does (each request's state read and written once per call), and the
// deliveries are written as each event is folded, from the same states
// (OnEvent), into the same batch. It leaves the store as Apply of each
// event in turn would (TestApplyBatchEqualsApply): a delivery note reads
// the deliveries through b, which holds those written earlier in the
// batch.
func (s *Store) ApplyBatch(b *pebble.Batch, events []projection.Event) error {
	s.batch, s.err = b, nil
	defer func() { s.batch = nil }()
	if err := s.Requests.ApplyBatch(b, events); err != nil {
		return err
	}
	return s.err
}

// Prepare decodes an event ahead of ApplyBatch (projection.Preparer), as
// the request store does.
func (s *Store) Prepare(e *projection.Event) any { return s.Requests.Prepare(e) }

// Committed lets go of what the request store kept of the batch just
// committed (projection.Committer).
func (s *Store) Committed() { s.Requests.Committed() }

// onEvent is called by the request store with the state before and after.
func (s *Store) onEvent(e *projection.Event, ev approval.Event, _, after approval.State) {
	if s.err != nil {
		return
	}
	if note, ok := ev.Body.(approval.NotificationRecorded); ok {
		if note.Kind.Delivery() {
			s.err = s.applyNote(e.Partition, ev.RequestID, note, ev.Time)
		}
		return
	}
	for _, entry := range Deliveries(after, ev, e.Partition, e.Offset, e.Envelope.ID) {
		if s.err = s.put(entry); s.err != nil {
			return
		}
	}
}

// Deliveries lists what an event calls for: one entry per target of the
// request's policy that wants this event.
func Deliveries(st approval.State, ev approval.Event, partition int32, offset int64, eventID string) []Entry {
	var out []Entry
	seen := map[string]bool{}
	add := func(kind approval.NotificationKind, target, recipient string) {
		k := string(kind) + " " + target
		if target == "" || seen[k] {
			return
		}
		seen[k] = true
		out = append(out, Entry{
			Partition: partition, Offset: offset, RequestID: ev.RequestID, Sequence: ev.Sequence,
			EventID: eventID, EventType: ev.Body.EventType(), EventTime: ev.Time.UTC(),
			Kind: kind, Target: target, Recipient: recipient,
		})
	}
	for _, t := range st.Policy.Notify {
		if !t.Wants(ev.Body.EventType()) {
			continue
		}
		switch t.Kind {
		case "webhook":
			add(approval.NotifyWebhook, t.Target, "")
		case "email":
			switch t.Target {
			case "approvers":
				for _, p := range st.Policy.Approvers {
					if p != st.Requester {
						if addr := emailOf(p); addr != "" {
							add(approval.NotifyEmail, addr, p)
						}
					}
				}
			case "requester":
				if addr := emailOf(st.Requester); addr != "" {
					add(approval.NotifyEmail, addr, st.Requester)
				}
			default:
				add(approval.NotifyEmail, t.Target, "")
			}
		default: // Slack is the gateway's
		}
	}
	return out
}

// emailOf is the address of a user principal whose id is one.
func emailOf(principal string) string {
	kind, id, ok := strings.Cut(principal, ":")
	if !ok || kind != approval.KindUser || !strings.Contains(id, "@") {
		return ""
	}
	return id
}

// Keys. Pending deliveries are indexed by partition, then request and
// sequence, so that one partition's, or one request's, are one range
// scan in order. Every delivery ever made is kept by request and event,
// for a replay.
func appendEscaped(k []byte, s string) []byte {
	for i := range len(s) {
		k = append(k, s[i])
		if s[i] == 0x00 {
			k = append(k, 0xff)
		}
	}
	return append(k, 0x00, 0x01)
}

func pendingPartition(p int32) []byte {
	return binary.BigEndian.AppendUint32([]byte("n/p/"), uint32(p)) //nolint:gosec // a partition is never negative
}

func pendingRequest(p int32, rid string) []byte { return appendEscaped(pendingPartition(p), rid) }

func pendingKey(e Entry) []byte {
	k := binary.BigEndian.AppendUint64(pendingRequest(e.Partition, e.RequestID), uint64(e.Sequence)) //nolint:gosec // sequences start at 1
	k = appendEscaped(k, string(e.Kind))
	return appendEscaped(k, e.Target)
}

func deliveryRequest(rid string) []byte { return appendEscaped([]byte("n/d/"), rid) }

func deliveryKey(e Entry) []byte {
	k := appendEscaped(deliveryRequest(e.RequestID), e.EventID)
	k = appendEscaped(k, string(e.Kind))
	return appendEscaped(k, e.Target)
}

func (s *Store) put(e Entry) error {
	v, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("queue: encode: %w", err)
	}
	if err := s.batch.Set(pendingKey(e), v, nil); err != nil {
		return fmt.Errorf("queue: write: %w", err)
	}
	if err := s.batch.Set(deliveryKey(e), v, nil); err != nil {
		return fmt.Errorf("queue: write: %w", err)
	}
	return nil
}

// applyNote ends a delivery (delivered, dead_letter) or starts it again
// (replay).
func (s *Store) applyNote(p int32, rid string, note approval.NotificationRecorded, at time.Time) error {
	entries, err := scan[Entry](s.batch, deliveryRequest(rid))
	if err != nil {
		return err
	}
	i := slices.IndexFunc(entries, func(e Entry) bool {
		return e.EventID == note.TS && e.Kind == note.Kind && e.Channel() == note.Channel
	})
	if i < 0 {
		s.Invalid.Add(1)
		return nil
	}
	e := entries[i]
	if e.Partition != p || e.Generation != note.Generation {
		return nil // an outcome of another generation: the current one stands
	}
	switch note.Outcome {
	case approval.Delivered, approval.DeadLetter:
		if err := s.batch.Delete(pendingKey(e), nil); err != nil {
			return fmt.Errorf("queue: delete: %w", err)
		}
		return nil
	case approval.ReplayAsked:
		e.Generation++
		e.ReplayedAt = at.UTC()
		return s.put(e)
	default:
		return nil
	}
}

type reader interface {
	NewIter(o *pebble.IterOptions) (*pebble.Iterator, error)
}

func scan[T any](r reader, prefix []byte) ([]T, error) {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: projection.PrefixEnd(prefix)})
	if err != nil {
		return nil, fmt.Errorf("queue: scan: %w", err)
	}
	defer it.Close() //nolint:errcheck // a read
	var out []T
	for it.First(); it.Valid(); it.Next() {
		var v T
		if err := json.Unmarshal(it.Value(), &v); err != nil {
			return nil, fmt.Errorf("queue: decode %q: %w", it.Key(), err)
		}
		out = append(out, v)
	}
	return out, it.Error()
}

// Pending returns the pending deliveries of a partition, by request and
// sequence.
func (s *Store) Pending(p int32) ([]Entry, error) { return scan[Entry](s.db, pendingPartition(p)) }

// PendingOf returns the pending deliveries of one request, by sequence.
func (s *Store) PendingOf(p int32, rid string) ([]Entry, error) {
	return scan[Entry](s.db, pendingRequest(p, rid))
}

// IsPending reports whether the delivery is still pending in the given
// generation.
func (s *Store) IsPending(e Entry) (bool, error) {
	v, closer, err := s.db.Get(pendingKey(e))
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("queue: read: %w", err)
	}
	defer closer.Close() //nolint:errcheck // a read
	var got Entry
	if err := json.Unmarshal(v, &got); err != nil {
		return false, fmt.Errorf("queue: decode: %w", err)
	}
	return got.Generation == e.Generation, nil
}

// Deliveries returns every delivery ever due for a request, in the
// generation it is in now.
func (s *Store) DeliveriesOf(rid string) ([]Entry, error) {
	return scan[Entry](s.db, deliveryRequest(rid))
}

// Event returns the stored bytes of the event a delivery is about.
func (s *Store) Event(e Entry) ([]byte, error) {
	raw, found, err := projection.Record(s.db, e.Partition, e.Offset)
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	if !found {
		return nil, fmt.Errorf("queue: event %s of %s is not in the store", e.EventID, e.RequestID)
	}
	// The record at that place is the entry's event, or the store is not
	// what wrote the entry.
	env, err := wire.Unmarshal(raw)
	if err != nil || env.ID != e.EventID || env.Subject != e.RequestID {
		return nil, fmt.Errorf("queue: the record at %d@%d is not event %s of %s", e.Partition, e.Offset, e.EventID, e.RequestID)
	}
	return raw, nil
}

// Package export streams events out of the log for auditors, as JSON
// lines or CSV, each with its partition, offset and hash, and replays one
// request to show its state as of any time. It reads the log itself, not a
// projection: what it prints is what Kafka holds.
package export

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/codec"
	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/services/auditor/internal/logread"
)

// Filter selects events. Zero fields select everything.
type Filter struct {
	From, To time.Time // event time in [From, To)
	Request  string    // subject
	Actor    string
}

// Match reports whether env passes f.
func (f Filter) Match(env wire.Envelope) bool {
	switch {
	case !f.From.IsZero() && env.Time.Before(f.From):
		return false
	case !f.To.IsZero() && !env.Time.Before(f.To):
		return false
	case f.Request != "" && env.Subject != f.Request:
		return false
	case f.Actor != "" && env.Actor != f.Actor:
		return false
	}
	return true
}

// Row is one exported event.
type Row struct {
	Partition int32           `json:"partition"`
	Offset    int64           `json:"offset"`
	Hash      string          `json:"hash"`
	Event     json.RawMessage `json:"event"` // the record value, byte for byte
	env       wire.Envelope
}

// Scan calls fn with every authenticated event that passes f (a valid seal
// signed with keys covers it, see wire.Authenticator), partition by
// partition in offset order (a request's events are all in one partition,
// so with f.Request only that one is read). Records no valid seal covers
// are not exported: run verify to see them.
func Scan(ctx context.Context, cfg eventlog.Config, topic string, keys *wire.KeyRing, f Filter, fn func(Row) error) error {
	admCl, err := eventlog.NewClient(cfg)
	if err != nil {
		return err
	}
	defer admCl.Close()
	bounds, err := logread.Describe(ctx, kadm.NewClient(admCl), topic)
	if err != nil {
		return err
	}
	parts := logread.Partitions(bounds)
	if f.Request != "" {
		parts = []int32{wire.Partition([]byte(f.Request), len(bounds))}
	}
	for _, p := range parts {
		b := bounds[p]
		s := &sink{topic: topic, f: f, fn: fn, auth: wire.NewAuthenticator(keys, topic, p, wire.GenesisHash)}
		if b.Start > 0 {
			s.auth = wire.NewAuthenticator(keys, topic, p, "") // the log starts later: trust the first complete seal
		}
		err := logread.Read(ctx, cfg, topic, map[int32]int64{p: b.Start}, map[int32]int64{p: b.End}, map[int32]logread.Sink{p: s})
		if err != nil {
			return fmt.Errorf("export: %w", err)
		}
	}
	return nil
}

type sink struct {
	topic string
	f     Filter
	fn    func(Row) error
	auth  *wire.Authenticator
}

func (s *sink) Records(recs []*kgo.Record) error {
	for _, r := range recs {
		it := wire.Item{Record: eventlog.WireRecord(r)}
		var err error
		if !r.Attrs.IsControl() {
			it.Hash = wire.Hash(r.Value)
			it.Env, err = eventlog.DecodeRecord(r)
		}
		for _, x := range s.auth.Add(it, err).Apply {
			if s.f.Request != "" && x.Env.Subject != s.f.Request {
				continue
			}
			if !s.f.Match(x.Env) {
				continue
			}
			if err := s.fn(Row{Partition: x.Record.Partition, Offset: x.Record.Offset, Hash: x.Hash, Event: x.Record.Value, env: x.Env}); err != nil {
				return err
			}
		}
	}
	return nil
}

// Formats.
const (
	FormatJSONL = "jsonl"
	FormatCSV   = "csv"
)

// CSVHeader is the first line of a CSV export.
var CSVHeader = []string{"partition", "offset", "hash", "id", "time", "type", "subject", "actor", "commandid", "sequence", "prevhash", "data"}

// Writer writes rows in one format. It is safe for one goroutine.
type Writer struct {
	format string
	w      io.Writer
	csv    *csv.Writer
	mu     sync.Mutex
	N      int
}

// NewWriter returns a writer for format, or an error naming the formats.
func NewWriter(w io.Writer, format string) (*Writer, error) {
	switch format {
	case FormatJSONL:
		return &Writer{format: format, w: w}, nil
	case FormatCSV:
		cw := csv.NewWriter(w)
		if err := cw.Write(CSVHeader); err != nil {
			return nil, fmt.Errorf("export: %w", err)
		}
		return &Writer{format: format, w: w, csv: cw}, nil
	}
	return nil, fmt.Errorf("export: format %q: use jsonl or csv", format)
}

// Write writes one row.
func (x *Writer) Write(r Row) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.N++
	if x.csv != nil {
		e := r.env
		return x.csv.Write([]string{strconv.Itoa(int(r.Partition)), strconv.FormatInt(r.Offset, 10), r.Hash, e.ID,
			e.Time.Format(time.RFC3339Nano), e.Type, e.Subject, e.Actor, e.CommandID, e.Sequence, e.PrevHash, string(e.Data)})
	}
	line, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	_, err = x.w.Write(append(line, '\n'))
	return err
}

// Flush flushes a CSV writer.
func (x *Writer) Flush() error {
	if x.csv != nil {
		x.csv.Flush()
		return x.csv.Error()
	}
	return nil
}

// ErrUnknownRequest is returned by StateAt for a request with no event at
// or before the time asked.
var ErrUnknownRequest = errors.New("export: no event of this request at or before that time")

// AsOf is a request replayed up to a time.
type AsOf struct {
	RequestID string         `json:"request_id"`
	At        time.Time      `json:"at"`
	Events    int            `json:"events"`      // events applied
	Partition int32          `json:"partition"`   // where they are
	Offset    int64          `json:"last_offset"` // of the last event applied
	State     approval.State `json:"state"`
}

// StateAt replays request rid's events whose time is at or before at.
func StateAt(ctx context.Context, cfg eventlog.Config, topic string, keys *wire.KeyRing, rid string, at time.Time) (AsOf, error) {
	out := AsOf{RequestID: rid, At: at, Offset: -1}
	err := Scan(ctx, cfg, topic, keys, Filter{Request: rid}, func(r Row) error {
		if r.env.Time.After(at) || r.env.Subject == "" {
			return nil // later, or a seal
		}
		ev, err := codec.DomainEvent(r.env)
		if err != nil {
			return fmt.Errorf("export: %s/%d@%d: %w", topic, r.Partition, r.Offset, err)
		}
		out.State = approval.Evolve(out.State, ev)
		out.Events++
		out.Partition, out.Offset = r.Partition, r.Offset
		return nil
	})
	if err != nil {
		return out, err
	}
	if out.Events == 0 {
		return out, fmt.Errorf("%w: %s at %s", ErrUnknownRequest, rid, at.Format(time.RFC3339Nano))
	}
	return out, nil
}

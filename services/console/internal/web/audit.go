package web

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/auditindex"
	"github.com/assent-dev/assent/libs/codec"
	"github.com/assent-dev/assent/libs/wire"
)

// eventTypes are the types an auditor can search for.
var eventTypes = []string{
	approval.TypeRequestSubmitted, approval.TypeVoteRecorded, approval.TypeRequestApproved, approval.TypeRequestRejected,
	approval.TypeRequestExpired, approval.TypeRequestCancelled, approval.TypeCommandRejected, approval.TypeNotificationRecorded,
	wire.TypeSeal,
}

// auditQuery is the search form: actor, type and a time range [From, To).
type auditQuery struct {
	Actor, Type string
	From, To    time.Time
	FromText    string // as typed, to show the form again
	ToText      string
	Cursor      string
}

// parseTime reads a time from a form: RFC 3339, or what a datetime-local
// input sends ("2026-01-02T15:04" or with seconds), taken as UTC.
func parseTime(v string) (time.Time, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, errors.New("use a time such as 2026-01-02T15:04:05Z (UTC)")
}

// query reads the search parameters; problems come back one per field.
func readAuditQuery(q url.Values) (auditQuery, map[string]string) {
	a := auditQuery{Type: q.Get("type"), FromText: q.Get("from"), ToText: q.Get("to"), Cursor: q.Get("cursor")}
	problems := map[string]string{}
	if actor := strings.TrimSpace(q.Get("actor")); actor != "" {
		p, err := approval.NormalizePrincipal(actor)
		if err != nil {
			problems["actor"] = "Enter an email, or a principal such as service:billing."
		}
		a.Actor = p
	}
	if a.Type != "" && !slices.Contains(eventTypes, a.Type) {
		problems["type"] = "Choose an event type from the list."
	}
	var err error
	if a.From, err = parseTime(a.FromText); err != nil {
		problems["from"] = "From: " + err.Error() + "."
	}
	if a.To, err = parseTime(a.ToText); err != nil {
		problems["to"] = "To: " + err.Error() + "."
	}
	if !a.From.IsZero() && !a.To.IsZero() && !a.From.Before(a.To) {
		problems["to"] = "To must be after From."
	}
	if len(a.Cursor) > 512 {
		problems["cursor"] = "This page link is not valid; search again."
	}
	return a, problems
}

func (a auditQuery) values() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"actor": a.Actor, "type": a.Type, "from": a.FromText, "to": a.ToText} {
		if s != "" {
			v.Set(k, s)
		}
	}
	return v
}

// eventRow is one search result.
type eventRow struct {
	Partition int32
	Offset    int64
	Hash      string
	Type      string
	Time      time.Time
	Actor     string
	Subject   string
}

type auditData struct {
	Query      auditQuery
	Searched   bool
	Problems   map[string]string
	Rows       []eventRow
	Next       string // the next page's query string
	ExportCSV  string
	ExportJSON string
	Types      []string
	Partitions []auditindex.PartitionStatus
	Breaks     int
	Sealed     int // partitions with a valid seal
}

func (s *Server) audit(w http.ResponseWriter, r *http.Request, v *viewer) {
	if !s.ready(w, r) {
		return
	}
	q := r.URL.Query()
	a, problems := readAuditQuery(q)
	d := auditData{Query: a, Problems: problems, Types: eventTypes, Searched: q.Has("search") || len(q) > 0}
	status := http.StatusOK
	if len(problems) > 0 {
		status = http.StatusUnprocessableEntity
	} else if d.Searched {
		rows, next, err := s.cfg.Audit.Events(auditindex.Query{Actor: a.Actor, Type: a.Type, From: a.From, To: a.To, Cursor: a.Cursor, Limit: 50})
		if errors.Is(err, auditindex.ErrBadCursor) {
			d.Problems = map[string]string{"cursor": "This page link is not valid; search again."}
			status = http.StatusBadRequest
		} else if err != nil {
			s.internal(w, r, err)
			return
		}
		for _, row := range rows {
			env, err := wire.Unmarshal(row.Event)
			if err != nil {
				continue
			}
			d.Rows = append(d.Rows, eventRow{Partition: row.Partition, Offset: row.Offset, Hash: row.Hash, Type: env.Type,
				Time: env.Time, Actor: env.Actor, Subject: env.Subject})
		}
		vals := a.values()
		if next != "" {
			nv := a.values()
			nv.Set("cursor", next)
			d.Next = "/audit?" + nv.Encode()
		}
		vals.Set("format", "csv")
		d.ExportCSV = "/audit/export?" + vals.Encode()
		vals.Set("format", "jsonl")
		d.ExportJSON = "/audit/export?" + vals.Encode()
	}
	parts, err := s.cfg.Audit.Partitions(s.cfg.Partitions)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	d.Partitions = parts
	for _, p := range parts {
		d.Breaks += len(p.Breaks) + int(p.Rejected)
		if p.SealOffset >= 0 {
			d.Sealed++
		}
	}
	s.render(w, r, status, "audit", page{Title: "Audit", Nav: "audit", Viewer: v, Data: d})
}

// exportWriter writes rows as `auditor export` does: the same CSV
// columns and JSON lines, byte for byte (the browser test compares them).
type exportWriter struct {
	csv  *csv.Writer
	w    io.Writer
	rows int
}

var csvHeader = []string{"partition", "offset", "hash", "id", "time", "type", "subject", "actor", "commandid", "sequence", "prevhash", "data"}

func newExportWriter(w io.Writer, format string) (*exportWriter, error) {
	if format == "jsonl" {
		return &exportWriter{w: w}, nil
	}
	cw := csv.NewWriter(w)
	return &exportWriter{csv: cw, w: w}, cw.Write(csvHeader)
}

func (x *exportWriter) write(row auditindex.Row, e wire.Envelope) error {
	x.rows++
	if x.csv != nil {
		return x.csv.Write([]string{strconv.Itoa(int(row.Partition)), strconv.FormatInt(row.Offset, 10), row.Hash, e.ID,
			e.Time.Format(time.RFC3339Nano), e.Type, e.Subject, e.Actor, e.CommandID, e.Sequence, e.PrevHash, string(e.Data)})
	}
	line, err := json.Marshal(row)
	if err != nil {
		return err
	}
	_, err = x.w.Write(append(line, '\n'))
	return err
}

func (x *exportWriter) flush() error {
	if x.csv != nil {
		x.csv.Flush()
		return x.csv.Error()
	}
	return nil
}

var errTruncated = errors.New("export: row cap reached")

// export streams the events of the search, every partition in offset
// order, as CSV or JSON lines.
func (s *Server) export(w http.ResponseWriter, r *http.Request, v *viewer) {
	if !s.ready(w, r) {
		return
	}
	q := r.URL.Query()
	a, problems := readAuditQuery(q)
	format := q.Get("format")
	if format != "csv" && format != "jsonl" {
		problems["format"] = "Choose csv or jsonl."
	}
	if len(problems) > 0 {
		var msgs []string
		for _, m := range problems {
			msgs = append(msgs, m)
		}
		slices.Sort(msgs)
		s.fail(w, r, http.StatusUnprocessableEntity, "The export could not start", strings.Join(msgs, " "))
		return
	}
	select {
	case s.exports <- struct{}{}:
		defer func() { <-s.exports }()
	default:
		w.Header().Set("Retry-After", "30")
		s.fail(w, r, http.StatusServiceUnavailable, "Exports are busy", "Two exports are running on this replica; try again in a minute.")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Minute)
	defer cancel()
	name := "assent-audit." + format
	if format == "csv" {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	} else {
		w.Header().Set("Content-Type", "application/jsonl; charset=utf-8")
	}
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Trailer", "Assent-Export-Rows, Assent-Export-Truncated")
	rc := http.NewResponseController(w)
	x, err := newExportWriter(w, format)
	if err == nil {
		for p := range s.cfg.Partitions {
			err = s.cfg.Audit.Scan(p, func(row auditindex.Row, e wire.Envelope) error {
				if err := ctx.Err(); err != nil {
					return err
				}
				switch {
				case !a.From.IsZero() && e.Time.Before(a.From),
					!a.To.IsZero() && !e.Time.Before(a.To),
					a.Actor != "" && e.Actor != a.Actor,
					a.Type != "" && e.Type != a.Type:
					return nil
				}
				if x.rows >= s.cfg.ExportMaxRows {
					return errTruncated
				}
				_ = rc.SetWriteDeadline(time.Now().Add(30 * time.Second))
				return x.write(row, e)
			})
			if err != nil {
				break
			}
		}
	}
	if ferr := x.flush(); err == nil {
		err = ferr
	}
	outcome := "complete"
	switch {
	case errors.Is(err, errTruncated):
		outcome = "truncated"
		w.Header().Set("Assent-Export-Truncated", "true")
	case err != nil:
		outcome = "failed"
		s.cfg.Logger.Warn("export failed", "principal", v.Principal, "rows", x.rows, "err", err)
	}
	w.Header().Set("Assent-Export-Rows", strconv.Itoa(x.rows))
	s.cfg.Metrics.Exports.WithLabelValues(format, outcome).Inc()
	s.cfg.Metrics.ExportRows.Add(float64(x.rows))
	s.cfg.Logger.Info("export", "principal", v.Principal, "format", format, "rows", x.rows, "outcome", outcome,
		"actor", a.Actor, "type", a.Type, "from", a.FromText, "to", a.ToText)
}

type stateData struct {
	RequestID    string
	AtText       string
	At           time.Time
	Problems     map[string]string
	Found        bool
	State        approval.State
	Details      []detail
	Events       int
	Partition    int32
	LastOffset   int64
	Verification auditindex.Verification
}

// stateAt replays a request's events up to a time, from the audit
// projection, through the domain's own Evolve.
func (s *Server) stateAt(w http.ResponseWriter, r *http.Request, v *viewer) {
	if !s.ready(w, r) {
		return
	}
	q := r.URL.Query()
	d := stateData{RequestID: strings.TrimSpace(q.Get("request")), AtText: q.Get("at"), Problems: map[string]string{}, LastOffset: -1}
	if !validRequestID(d.RequestID) {
		d.Problems["request"] = "Enter a request id."
	}
	at, err := parseTime(d.AtText)
	switch {
	case err != nil:
		d.Problems["at"] = "At: " + err.Error() + "."
	case at.IsZero():
		d.Problems["at"] = "Enter a time."
	}
	d.At = at
	if len(d.Problems) > 0 {
		s.render(w, r, http.StatusUnprocessableEntity, "state", page{Title: "A request at a time", Nav: "audit", Viewer: v, Data: d})
		return
	}
	req, err := s.cfg.Audit.Request(d.RequestID)
	if err != nil && !errors.Is(err, auditindex.ErrNotFound) {
		s.internal(w, r, err)
		return
	}
	for i, env := range req.Envelopes {
		if env.Time.After(at) {
			continue
		}
		ev, err := codec.DomainEvent(env)
		if err != nil {
			s.internal(w, r, fmt.Errorf("request %s event %d: %w", d.RequestID, i, err))
			return
		}
		d.State = approval.Evolve(d.State, ev)
		d.Events++
		d.Partition, d.LastOffset = req.Events[i].Partition, req.Events[i].Offset
	}
	d.Found = d.Events > 0
	d.Details = details(d.State.Action.Details)
	d.Verification = req.Verification
	status := http.StatusOK
	if !d.Found {
		status = http.StatusNotFound
	}
	s.render(w, r, status, "state", page{Title: "A request at a time", Nav: "audit", Viewer: v, Data: d})
}

package web

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/auditindex"
	"github.com/assent-dev/assent/libs/projection/requests"
	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/services/console/internal/session"
)

// pageSize is how many requests a list shows at once.
const pageSize = 50

// validRequestID is the api's rule: 1 to 128 printable characters without
// spaces or slashes.
func validRequestID(id string) bool {
	if id == "" || len(id) > approval.MaxIDLen || strings.ContainsAny(id, " /") {
		return false
	}
	for _, r := range id {
		if r < 0x20 || r == 0x7f || r == '\uFFFD' {
			return false
		}
	}
	return true
}

// detail is one line of an action's details, as text.
type detail struct{ Key, Value string }

// details turns the action's details (a JSON object, as submitted) into
// key/value lines of plain text: nothing in them is ever markup or a link.
func details(raw json.RawMessage) []detail {
	if len(bytes.TrimSpace(raw)) == 0 || string(raw) == "null" {
		return nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return []detail{{Key: "details", Value: string(raw)}}
	}
	out := make([]detail, 0, len(obj))
	for k, v := range obj {
		var s string
		if json.Unmarshal(v, &s) != nil {
			var buf bytes.Buffer
			if json.Compact(&buf, v) == nil {
				s = buf.String()
			} else {
				s = string(v)
			}
		}
		out = append(out, detail{Key: k, Value: s})
	}
	slices.SortFunc(out, func(a, b detail) int { return strings.Compare(a.Key, b.Key) })
	return out
}

// item is one request in a list.
type item struct {
	Key       string // a DOM id suffix
	ID        string
	State     approval.State
	Approvals int
	Nonce     string
}

type listData struct {
	Items   []item
	Next    string
	CSRF    string
	Now     time.Time
	Version string
	Status  string // mine's filters
	Type    string
	Scanned bool // mine: the type filter stopped at its scan bound
}

// version is a digest of what a live fragment shows, so that a stream
// sends only changes.
func version(b string) string {
	h := sha256.Sum256([]byte(b))
	return hex.EncodeToString(h[:8])
}

func (s *Server) inboxData(v *viewer, cursor string) (listData, error) {
	pg, err := s.cfg.Store.List(requests.Filter{Approver: v.Principal, Limit: pageSize, Cursor: cursor})
	if err != nil {
		return listData{}, err
	}
	d := listData{CSRF: v.CSRFToken(), Now: s.cfg.Now(), Next: pg.Next}
	for i, st := range pg.Items {
		a, _ := st.Tally()
		d.Items = append(d.Items, item{Key: fmt.Sprintf("r%d", i), ID: st.RequestID, State: st, Approvals: a, Nonce: session.RandomToken()})
	}
	return d, nil
}

func (s *Server) inbox(w http.ResponseWriter, r *http.Request, v *viewer) {
	if !s.ready(w, r) {
		return
	}
	cursor := r.URL.Query().Get("cursor")
	d, err := s.inboxData(v, cursor)
	if errors.Is(err, requests.ErrBadCursor) {
		s.fail(w, r, http.StatusBadRequest, "Bad page link", "This page link is not valid; start from the first page.")
		return
	}
	if err != nil {
		s.internal(w, r, err)
		return
	}
	if cursor == "" {
		frag, err := fragment("inbox", "inbox-list", d)
		if err != nil {
			s.internal(w, r, err)
			return
		}
		d.Version = version(stripNonces(frag))
	}
	s.render(w, r, http.StatusOK, "inbox", page{Title: "Inbox", Nav: "inbox", Viewer: v, Flash: flash(r), Data: d})
}

// statuses a person can filter by.
var statuses = []approval.Status{approval.StatusPending, approval.StatusApproved, approval.StatusRejected, approval.StatusExpired, approval.StatusCancelled}

// mineScan bounds how many requests a type filter reads for one page.
const mineScan = 2000

func (s *Server) mineData(v *viewer, status, typ, cursor string) (listData, error) {
	d := listData{CSRF: v.CSRFToken(), Now: s.cfg.Now(), Status: status, Type: typ}
	f := requests.Filter{Requester: v.Principal, Status: approval.Status(status), Limit: pageSize, Cursor: cursor}
	scanned := 0
	for {
		pg, err := s.cfg.Store.List(f)
		if err != nil {
			return d, err
		}
		for _, st := range pg.Items {
			if typ != "" && st.Action.Type != typ {
				continue
			}
			a, _ := st.Tally()
			d.Items = append(d.Items, item{Key: fmt.Sprintf("r%d", len(d.Items)), ID: st.RequestID, State: st, Approvals: a})
		}
		scanned += len(pg.Items)
		d.Next = pg.Next
		if typ == "" || pg.Next == "" || len(d.Items) >= pageSize {
			return d, nil
		}
		if scanned >= mineScan {
			d.Scanned = true
			return d, nil
		}
		f.Cursor = pg.Next
	}
}

func (s *Server) mineQuery(w http.ResponseWriter, r *http.Request) (status, typ string, ok bool) {
	q := r.URL.Query()
	status, typ = q.Get("status"), strings.TrimSpace(q.Get("type"))
	if status != "" && !slices.Contains(statuses, approval.Status(status)) {
		s.fail(w, r, http.StatusBadRequest, "Unknown status", "Choose a status from the list.")
		return "", "", false
	}
	if len(typ) > approval.MaxFieldLen {
		s.fail(w, r, http.StatusBadRequest, "Action type too long", fmt.Sprintf("An action type is at most %d characters.", approval.MaxFieldLen))
		return "", "", false
	}
	return status, typ, true
}

func (s *Server) mine(w http.ResponseWriter, r *http.Request, v *viewer) {
	if !s.ready(w, r) {
		return
	}
	status, typ, ok := s.mineQuery(w, r)
	if !ok {
		return
	}
	cursor := r.URL.Query().Get("cursor")
	d, err := s.mineData(v, status, typ, cursor)
	if errors.Is(err, requests.ErrBadCursor) {
		s.fail(w, r, http.StatusBadRequest, "Bad page link", "This page link is not valid; start from the first page.")
		return
	}
	if err != nil {
		s.internal(w, r, err)
		return
	}
	if cursor == "" {
		frag, err := fragment("mine", "mine-list", d)
		if err != nil {
			s.internal(w, r, err)
			return
		}
		d.Version = version(stripNonces(frag))
	}
	s.render(w, r, http.StatusOK, "mine", page{Title: "My requests", Nav: "mine", Viewer: v, Flash: flash(r), Data: struct {
		listData
		Statuses []approval.Status
	}{d, statuses}})
}

// approver is one eligible approver and what they did.
type approver struct {
	Who      string
	Decision approval.VoteDecision // "" if not voted
}

// timelineEvent is one event of a request, where it is in the log.
type timelineEvent struct {
	Sequence  string
	Type      string
	Time      time.Time
	Actor     string
	Partition int32
	Offset    int64
	Hash      string
}

// requestData is everything the request page shows.
type requestData struct {
	ID           string
	State        approval.State
	Details      []detail
	Approvers    []approver
	Approvals    int
	Rejections   int
	Timeline     []timelineEvent
	Verification *auditindex.Verification
	VerifyNote   string
	CanVote      bool
	CanCancel    bool
	IsRequester  bool
	Nonce        string
	CSRF         string
	Now          time.Time
	Version      string
	Live         bool // the page follows the projection (not a form's answer)
	VoteError    string
	CancelError  string
	Comment      string
}

// mayRead is who may see a request: its requester, its approvers and
// voters, admins and auditors. Anyone else is told it does not exist.
func mayRead(v *viewer, st approval.State) bool {
	return v.Auditor || v.Admin || st.Requester == v.Principal || slices.Contains(st.Policy.Approvers, v.Principal) || st.HasVoted(v.Principal)
}

func (s *Server) requestData(v *viewer, rid string) (requestData, error) {
	st, found, err := s.cfg.Store.Get(rid)
	if err != nil {
		return requestData{}, err
	}
	if !found || st.Status == approval.StatusNone || !mayRead(v, st) {
		return requestData{}, errNotFound
	}
	now := s.cfg.Now()
	d := requestData{ID: rid, State: st, Details: details(st.Action.Details), CSRF: v.CSRFToken(), Now: now, Nonce: session.RandomToken()}
	d.Approvals, d.Rejections = st.Tally()
	for _, a := range st.Policy.Approvers {
		ap := approver{Who: a}
		for _, vote := range st.Votes {
			if vote.Voter == a {
				ap.Decision = vote.Decision
			}
		}
		d.Approvers = append(d.Approvers, ap)
	}
	d.IsRequester = st.Requester == v.Principal
	pending := st.Status == approval.StatusPending
	d.CanVote = pending && !d.IsRequester && slices.Contains(st.Policy.Approvers, v.Principal) && !st.HasVoted(v.Principal)
	d.CanCancel = pending && (d.IsRequester || v.Admin)

	hist, err := s.cfg.Store.History(rid)
	if err != nil {
		return d, err
	}
	for _, h := range hist {
		env, err := wire.Unmarshal(h.Value)
		if err != nil {
			continue
		}
		d.Timeline = append(d.Timeline, timelineEvent{
			Sequence: env.Sequence, Type: env.Type, Time: env.Time, Actor: env.Actor,
			Partition: h.Partition, Offset: h.Offset, Hash: wire.Hash(h.Value),
		})
	}
	// The chain's status comes from the audit projection, which checks
	// every link of the partition, and applies only what a valid seal covers.
	ar, err := s.cfg.Audit.Request(rid)
	switch {
	case errors.Is(err, auditindex.ErrNotFound):
		d.VerifyNote = "The audit projection has not read this request's events yet."
	case err != nil:
		return d, err
	default:
		d.Verification = &ar.Verification
	}
	return d, nil
}

func (s *Server) request(w http.ResponseWriter, r *http.Request, v *viewer) {
	if !s.ready(w, r) {
		return
	}
	rid := r.PathValue("id")
	if !validRequestID(rid) {
		s.fail(w, r, http.StatusNotFound, "No such request", "There is no request with this id, or you may not see it.")
		return
	}
	d, err := s.requestData(v, rid)
	if errors.Is(err, errNotFound) {
		s.fail(w, r, http.StatusNotFound, "No such request", "There is no request with this id, or you may not see it.")
		return
	}
	if err != nil {
		s.internal(w, r, err)
		return
	}
	d.Live = true
	s.showRequest(w, r, v, http.StatusOK, d)
}

func (s *Server) showRequest(w http.ResponseWriter, r *http.Request, v *viewer, status int, d requestData) {
	frag, err := fragment("request", "request-live", d)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	d.Version = version(stripNonces(frag))
	title := d.State.Action.Type + " " + d.State.Action.Resource
	s.render(w, r, status, "request", page{Title: title, Viewer: v, Flash: flash(r), Data: d})
}

// flashes are the fixed messages a redirect may ask for (?done=).
var flashes = map[string]string{
	"approve":   "Your approval is recorded.",
	"reject":    "Your rejection is recorded.",
	"cancel":    "The request is cancelled.",
	"recorded":  "Your vote is stored in the log and will be counted; the page updates when it is.",
	"cancelled": "Your cancel is stored in the log and will be applied; the page updates when it is.",
}

func flash(r *http.Request) string { return flashes[r.URL.Query().Get("done")] }

// ready answers 503 while the projections catch up.
func (s *Server) ready(w http.ResponseWriter, r *http.Request) bool {
	if s.cfg.Projection.Ready() {
		return true
	}
	w.Header().Set("Retry-After", "2")
	s.fail(w, r, http.StatusServiceUnavailable, "Starting up", "This replica is still reading the event log. Reload in a few seconds.")
	return false
}

func (s *Server) internal(w http.ResponseWriter, r *http.Request, err error) {
	s.cfg.Logger.Error("request failed", "route", r.Pattern, "err", err)
	s.fail(w, r, http.StatusInternalServerError, "Something went wrong", "The console could not read what this page needs. It has been logged; try again.")
}

// stripNonces removes what changes with every render without changing
// what a fragment shows (the per-render form nonces, the countdowns'
// text), so that a fragment's version changes only when its content does.
func stripNonces(frag string) string {
	frag = strip(frag, `name="nonce" value="`, `"`)
	return strip(frag, `data-left>`, `<`)
}

// strip removes what lies between every start marker and the next end
// marker.
func strip(frag, start, end string) string {
	var b strings.Builder
	for {
		i := strings.Index(frag, start)
		if i < 0 {
			b.WriteString(frag)
			return b.String()
		}
		b.WriteString(frag[:i+len(start)])
		rest := frag[i+len(start):]
		j := strings.Index(rest, end)
		if j < 0 {
			return b.String()
		}
		frag = rest[j:]
	}
}

package chaos

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/assent-dev/assent/libs/approval"
)

// Outcome is how an operation ended, as the client saw it.
type Outcome string

// The outcomes. Accepted and Unknown are both "indeterminate" to the
// linearizability checker (the operation may take effect at any point
// after its call); Accepted additionally promises that the command is
// durable, which I1 checks.
const (
	OK       Outcome = "ok"       // a 2xx carrying the outcome
	Refused  Outcome = "refused"  // a 4xx with a reason code
	Accepted Outcome = "accepted" // a 2xx without the outcome: an API 202, a Slack click's 200
	Unknown  Outcome = "unknown"  // a timeout, a connection error, a 5xx after every retry
)

// Kind is what an operation did.
type Kind string

// The kinds of operation.
const (
	KindSubmit   Kind = "submit"
	KindVote     Kind = "vote" // over the API, or a Slack click (Via "slack")
	KindCancel   Kind = "cancel"
	KindRead     Kind = "read"     // GET /v1/requests/{id}
	KindNegative Kind = "negative" // a security negative: must be refused and never reach the log
)

// Op is one operation of the history: what a client asked, when, and what
// it was told. Times are Unix nanoseconds on the machine's wall clock,
// which the decider's event times share.
type Op struct {
	ID       int64   `json:"id"`
	Client   int     `json:"client"`
	Kind     Kind    `json:"kind"`
	Via      string  `json:"via,omitempty"` // "api" or "slack"
	Request  string  `json:"request"`
	Command  string  `json:"command,omitempty"` // the command id (Assent-Command-Id, or derived)
	Actor    string  `json:"actor,omitempty"`   // who acts: the requester, the voter, the canceller
	Decision string  `json:"decision,omitempty"`
	Content  string  `json:"content,omitempty"` // a submit's content, to tell resubmits from conflicts
	Admin    bool    `json:"admin,omitempty"`   // the canceller is an admin
	Replica  string  `json:"replica,omitempty"` // the base URL that answered
	Call     int64   `json:"call"`
	Return   int64   `json:"return"`
	Outcome  Outcome `json:"outcome"`
	Code     string  `json:"code,omitempty"` // the reason code of a refusal
	HTTP     int     `json:"http,omitempty"`
	Expect   int     `json:"expect,omitempty"` // a negative's expected HTTP status
	HasView  bool    `json:"has_view,omitempty"`
	Status   string  `json:"status,omitempty"` // the status in the view ("" for a 404)
	Votes    int     `json:"votes,omitempty"`  // votes in the view
	// ExpiresAt is the deadline in the view (Unix nanoseconds), 0 when
	// there is none.
	ExpiresAt int64  `json:"expires_at,omitempty"`
	Detail    string `json:"detail,omitempty"`
	// Hostile marks a vote of the hostile client's flood (Hostile): the
	// linearizability check leaves these out (a refused vote changes
	// nothing but its own outcome, which I1 and I3 check one by one), and
	// FLOOD checks that none it was told was rate limited reached Kafka.
	Hostile bool `json:"hostile,omitempty"`
}

// Indeterminate reports whether the client does not know the outcome.
func (o Op) Indeterminate() bool { return o.Outcome == Accepted || o.Outcome == Unknown }

// Write reports whether the operation sends a command.
func (o Op) Write() bool {
	return o.Kind == KindSubmit || o.Kind == KindVote || o.Kind == KindCancel
}

func (o Op) String() string {
	s := fmt.Sprintf("op %d %s %s", o.ID, o.Kind, o.Request)
	if o.Actor != "" {
		s += " by " + o.Actor
	}
	if o.Decision != "" {
		s += " " + o.Decision
	}
	if o.Via == "slack" {
		s += " (slack)"
	}
	s += fmt.Sprintf(" [%s, %s] -> %s", time.Unix(0, o.Call).UTC().Format("15:04:05.000"),
		time.Unix(0, o.Return).UTC().Format("15:04:05.000"), o.Outcome)
	if o.Code != "" {
		s += " " + o.Code
	}
	if o.HasView {
		s += fmt.Sprintf(" view{%s, %d votes}", statusName(o.Status), o.Votes)
	}
	if o.Replica != "" {
		s += " @" + o.Replica
	}
	return s
}

func statusName(s string) string {
	if s == "" {
		return "absent"
	}
	return s
}

// WriteHistory writes ops as JSON lines.
func WriteHistory(w io.Writer, ops []Op) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	for _, o := range ops {
		if err := enc.Encode(o); err != nil {
			return fmt.Errorf("chaos: write history: %w", err)
		}
	}
	return bw.Flush()
}

// ReadHistory reads a history written by WriteHistory.
func ReadHistory(path string) ([]Op, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("chaos: read history: %w", err)
	}
	defer func() { _ = f.Close() }() // read-only
	var ops []Op
	dec := json.NewDecoder(f)
	for {
		var o Op
		if err := dec.Decode(&o); err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("chaos: read history %s: %w", path, err)
		}
		ops = append(ops, o)
	}
	return ops, nil
}

// View is the part of an API request view that the checker compares with
// a fold of the log (I5).
type View struct {
	Status    string `json:"status"`
	Requester string `json:"requester"`
	Reason    string `json:"reason"`
	Sequence  int    `json:"sequence"`
	Votes     []struct {
		Voter    string `json:"voter"`
		Decision string `json:"decision"`
	} `json:"votes"`
	DecidedBy []string `json:"decided_by"`
	Policy    struct {
		Hash string `json:"hash"`
	} `json:"policy"`
}

// Diff says how the view differs from the fold, or "" if it does not.
func (v View) Diff(st approval.State) string {
	switch {
	case v.Status != string(st.Status):
		return fmt.Sprintf("status %s, fold %s", statusName(v.Status), statusName(string(st.Status)))
	case v.Sequence != st.Sequence:
		return fmt.Sprintf("sequence %d, fold %d", v.Sequence, st.Sequence)
	case v.Requester != st.Requester || v.Reason != st.Reason:
		return "requester or reason differ"
	case v.Policy.Hash != st.Policy.Hash:
		return "policy snapshot differs"
	case len(v.Votes) != len(st.Votes):
		return fmt.Sprintf("%d votes, fold %d", len(v.Votes), len(st.Votes))
	case !slices.Equal(v.DecidedBy, st.DecidedBy) && (len(v.DecidedBy) > 0 || len(st.DecidedBy) > 0):
		return fmt.Sprintf("decided by %v, fold %v", v.DecidedBy, st.DecidedBy)
	}
	for i, vote := range v.Votes {
		if vote.Voter != st.Votes[i].Voter || vote.Decision != string(st.Votes[i].Decision) {
			return fmt.Sprintf("vote %d is %s %s, fold %s %s", i, vote.Voter, vote.Decision, st.Votes[i].Voter, st.Votes[i].Decision)
		}
	}
	return ""
}

package systest

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/wire"
)

// Anomaly is one violated invariant.
type Anomaly struct {
	Invariant string // I1, I2, ...
	Request   string
	Partition int32
	Offset    int64
	Detail    string
}

func (a Anomaly) String() string {
	return fmt.Sprintf("%s request %s at %d@%d: %s", a.Invariant, a.Request, a.Partition, a.Offset, a.Detail)
}

// Acked is a command a client was told had been accepted (a 2xx).
type Acked struct {
	RequestID string
	CommandID string
	// Resubmit is set for a submit that may be an identical resubmit: the
	// API may answer it without producing a command, or produce one that is
	// decided as a no-op and leaves no event. Its request must exist.
	Resubmit bool
}

// Result is what Check found.
type Result struct {
	Events   int
	Requests int
	Terminal map[approval.Status]int
	States   map[string]approval.State // the fold of every request
	// Decided holds every command id that has an event in the log, by
	// request. A state remembers only its latest refusals
	// (approval.MaxRefusedOutcomes), so I1 looks here, not in
	// State.Outcomes.
	Decided   map[string]map[string]bool
	Anomalies []Anomaly
}

// Check verifies the invariants over a log read by ReadLog.
func Check(log []Record, acked []Acked) Result {
	res := Result{Terminal: map[approval.Status]int{}, States: map[string]approval.State{}, Decided: map[string]map[string]bool{}}
	add := func(inv string, r Record, format string, args ...any) {
		res.Anomalies = append(res.Anomalies, Anomaly{Invariant: inv, Request: r.Envelope.Subject,
			Partition: r.Partition, Offset: r.Offset, Detail: fmt.Sprintf(format, args...)})
	}
	heads := map[int32]string{}
	seen := map[string]bool{} // subject/commandid/type
	for _, r := range log {
		// I6: the chain links.
		head, ok := heads[r.Partition]
		if !ok {
			head = wire.GenesisHash
		}
		heads[r.Partition] = wire.Hash(r.Value)
		if r.Err != nil {
			add("I7", r, "undecodable event: %v", r.Err)
			continue
		}
		if r.Envelope.PrevHash != head {
			add("I6", r, "prevhash %s, want %s", r.Envelope.PrevHash, head)
		}
		if r.Envelope.Subject == "" {
			continue // a checkpoint
		}
		res.Events++
		e := r.Event
		before := res.States[e.RequestID]
		if e.Sequence != before.Sequence+1 {
			add("SEQ", r, "sequence %d after %d", e.Sequence, before.Sequence)
		}
		key := e.RequestID + "\x00" + e.CommandID + "\x00" + e.Body.EventType()
		if seen[key] {
			add("I2", r, "command %s produced a second %s", e.CommandID, e.Body.EventType())
		}
		seen[key] = true
		if before.Status.Terminal() {
			switch e.Body.(type) {
			case approval.CommandRejected, approval.NotificationRecorded:
			default:
				add("I3", r, "%s after the request was %s", e.Body.EventType(), before.Status)
			}
		}
		if v, ok := e.Body.(approval.VoteRecorded); ok {
			switch {
			case v.Voter == before.Requester:
				add("I4", r, "self-approval by %s", v.Voter)
			case !slices.Contains(before.Policy.Approvers, v.Voter):
				add("I4", r, "vote by %s, who is not in the snapshot", v.Voter)
			case before.HasVoted(v.Voter):
				add("I4", r, "second vote by %s", v.Voter)
			}
		}
		if a, ok := e.Body.(approval.RequestApproved); ok {
			if n, _ := before.Tally(); n < before.Policy.MinApprovals || len(a.Approvers) < before.Policy.MinApprovals {
				add("I4", r, "approved with %d approvals, quorum %d", n, before.Policy.MinApprovals)
			}
		}
		res.States[e.RequestID] = approval.Evolve(before, e)
		if e.CommandID != "" {
			if res.Decided[e.RequestID] == nil {
				res.Decided[e.RequestID] = map[string]bool{}
			}
			res.Decided[e.RequestID][e.CommandID] = true
		}
	}
	for _, st := range res.States {
		if st.Status != approval.StatusNone {
			res.Requests++
		}
		if st.Status.Terminal() {
			res.Terminal[st.Status]++
		}
	}
	// I1: every acknowledged command has an outcome.
	for _, a := range acked {
		st := res.States[a.RequestID]
		if res.Decided[a.RequestID][a.CommandID] {
			continue
		}
		if a.Resubmit && st.Status != approval.StatusNone {
			continue
		}
		res.Anomalies = append(res.Anomalies, Anomaly{Invariant: "I1", Request: a.RequestID, Partition: -1, Offset: -1,
			Detail: fmt.Sprintf("acknowledged command %s has no outcome in the log", a.CommandID)})
	}
	sort.SliceStable(res.Anomalies, func(i, j int) bool { return res.Anomalies[i].Invariant < res.Anomalies[j].Invariant })
	return res
}

// Summary is a short human-readable report.
func (r Result) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d events, %d requests, terminal %v, %d anomalies", r.Events, r.Requests, r.Terminal, len(r.Anomalies))
	for i, a := range r.Anomalies {
		if i == 20 {
			fmt.Fprintf(&b, "\n  ... and %d more", len(r.Anomalies)-20)
			break
		}
		b.WriteString("\n  " + a.String())
	}
	return b.String()
}

// CheckSeals authenticates a log read by ReadLog from topic the way every
// reader does (wire.Authenticator, the second half of I6): every record
// must be covered by a valid seal signed with one of keys. It returns the
// number of seals and an I6 anomaly for every record no seal covers.
func CheckSeals(log []Record, topic string, keys *wire.KeyRing) (int, []Anomaly) {
	var (
		n         int
		anomalies []Anomaly
	)
	auth := map[int32]*wire.Authenticator{}
	collect := func(res wire.Result) {
		for _, x := range res.Apply {
			if x.Env.Type == wire.TypeSeal {
				n++
			}
		}
		for _, rj := range append(res.Rejected, func() []wire.Rejection {
			if res.Gap != nil {
				return []wire.Rejection{*res.Gap}
			}
			return nil
		}()...) {
			anomalies = append(anomalies, Anomaly{Invariant: "I6", Request: rj.Env.Subject, Partition: rj.Record.Partition,
				Offset: rj.Record.Offset, Detail: rj.Kind + ": " + rj.Reason})
		}
	}
	for _, r := range log {
		a := auth[r.Partition]
		if a == nil {
			a = wire.NewAuthenticator(keys, topic, r.Partition, wire.GenesisHash)
			auth[r.Partition] = a
		}
		it := wire.Item{Record: wire.Record{Topic: topic, Partition: r.Partition, Offset: r.Offset, Value: r.Value,
			Transactional: r.Transactional, ProducerID: r.ProducerID}, Env: r.Envelope, Hash: wire.Hash(r.Value)}
		collect(a.Add(it, r.Err))
	}
	for _, a := range auth {
		collect(a.Flush())
	}
	return n, anomalies
}

package chaos

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/test/systest"
)

// Anomaly is one violated invariant, with where to look: the request, and
// the partition and offsets of the events involved (Partition -1 when the
// anomaly is about what a client saw rather than a record).
type Anomaly struct {
	Invariant string  `json:"invariant"`
	Request   string  `json:"request,omitempty"`
	Partition int32   `json:"partition"`
	Offsets   []int64 `json:"offsets,omitempty"`
	Ops       []int64 `json:"ops,omitempty"` // operation ids of the history
	Detail    string  `json:"detail"`
}

func (a Anomaly) String() string {
	s := a.Invariant
	if a.Request != "" {
		s += " request " + a.Request
	}
	if a.Partition >= 0 {
		s += fmt.Sprintf(" partition %d offsets %v", a.Partition, a.Offsets)
	}
	if len(a.Ops) > 0 {
		s += fmt.Sprintf(" ops %v", a.Ops)
	}
	return s + ": " + a.Detail
}

// Input is everything the checker judges.
type Input struct {
	// Log is the whole events topic, read with read_committed after the run.
	Log []systest.Record
	// Commands is the whole commands topic (only its subjects are used: no
	// security negative may have reached it).
	Commands []systest.Record
	// Ops is every client's history.
	Ops []Op
	// Views are each API replica's views of every request at the end,
	// by replica name then request id (I5).
	Views map[string]map[string]View
	// LinTimeout bounds porcupine per request (default 10s).
	LinTimeout time.Duration
	// Keys are the published decider keys, and Topic the events topic's
	// name (seals sign it): the checker judges only what a valid seal
	// covers, as every reader does. Without Keys the whole log is taken
	// as authenticated (synthetic logs without seals).
	Keys  *wire.KeyRing
	Topic string
	// Forgeries are the records the insider wrote, and Counters the api
	// replicas' violation counters around each insider fault.
	Forgeries []Forgery
	Counters  []Counter
}

// Verdict is what the checker found.
type Verdict struct {
	Base      systest.Result // the log-only checks of test/systest
	Anomalies []Anomaly
	// Linearizability: requests checked, and those porcupine gave up on.
	LinChecked, LinTimedOut int
	// Unauthenticated is how many records of the log no valid seal
	// covers, Served how many forgeries some client or replica was shown.
	Unauthenticated, Served int
}

// Check proves the invariants of docs/architecture.md over a run:
//
//   - I1: every command acknowledged with a 2xx (an outcome, a 202, a Slack
//     click's 200) has an outcome in the log (test/systest);
//   - I2: no command id was decided twice: its events are one run of
//     consecutive sequence numbers, never split by another command's
//     (stronger than test/systest's per-type check, which a redelivered
//     vote refused as duplicate_vote would pass);
//   - I3: at most one terminal event per request (test/systest), and no
//     outcome a client was told contradicts the log: a refusal's code, an
//     acceptance, a terminal status seen in any view;
//   - I4: no self-approval, no vote outside the snapshot, none counted
//     twice, no approval short of the quorum (test/systest);
//   - I5: every API replica's view of every request equals the fold;
//   - I6: the chain links (test/systest); SEQ: gapless sequences;
//   - LIN: each request's history is linearizable (porcupine, model.go),
//     the hostile client's refused flood left out;
//   - FLOOD: no write refused as rate_limited reached either topic;
//   - MONO: no replica's view of a request ever goes backwards;
//   - SEC: every security negative was refused, and none reached either
//     topic;
//   - FORGED, AUTH: the log's records that no valid seal covers are the
//     insider's, and none of its forgeries was ever served
//     (checkForgeries).
//
// With Keys, everything but SEC is judged on the authenticated log only
// (Authenticated), which is what every reader applies.
func Check(in Input) Verdict {
	if in.LinTimeout <= 0 {
		in.LinTimeout = 10 * time.Second
	}
	var acked []systest.Acked
	for _, op := range in.Ops {
		if op.Write() && op.Command != "" && (op.Outcome == OK || op.Outcome == Accepted) {
			acked = append(acked, systest.Acked{RequestID: op.Request, CommandID: op.Command, Resubmit: op.Kind == KindSubmit})
		}
	}
	log := in.Log
	var refused []Unauthenticated
	if in.Keys != nil {
		log, refused = Authenticated(in.Log, in.Topic, in.Keys)
	}
	v := Verdict{Base: systest.Check(log, acked), Unauthenticated: len(refused)}
	idx := indexLog(log)
	for _, a := range v.Base.Anomalies {
		if a.Offset < 0 {
			v.Anomalies = append(v.Anomalies, located(a.Invariant, a.Request, idx, nil, nil, "%s", a.Detail))
			continue
		}
		v.Anomalies = append(v.Anomalies, Anomaly{Invariant: a.Invariant, Request: a.Request, Partition: a.Partition,
			Offsets: []int64{a.Offset}, Detail: a.Detail})
	}
	v.Anomalies = append(v.Anomalies, checkDecidedOnce(log)...)
	v.Anomalies = append(v.Anomalies, checkTold(in.Ops, v.Base.States, idx)...)
	v.Anomalies = append(v.Anomalies, checkViews(in.Views, v.Base.States, idx)...)
	v.Anomalies = append(v.Anomalies, checkMonotonic(in.Ops, idx)...)
	v.Anomalies = append(v.Anomalies, checkNegatives(in.Ops, in.Log, in.Commands)...)
	v.Anomalies = append(v.Anomalies, checkFlood(in.Ops, in.Log, in.Commands)...)
	forged, served := checkForgeries(in, log, refused, v.Base.States, idx)
	v.Anomalies = append(v.Anomalies, forged...)
	v.Served = served
	lin, checked, timedOut := checkLinearizable(in.Ops, v.Base.States, idx, in.LinTimeout)
	v.Anomalies = append(v.Anomalies, lin...)
	v.LinChecked, v.LinTimedOut = checked, timedOut
	sort.SliceStable(v.Anomalies, func(i, j int) bool { return v.Anomalies[i].Invariant < v.Anomalies[j].Invariant })
	return v
}

// where is the partition and offsets of a request's events.
type where struct {
	partition int32
	offsets   []int64
	byCommand map[string][]int64
}

func indexLog(log []systest.Record) map[string]*where {
	idx := map[string]*where{}
	for _, r := range log {
		if r.Err != nil || r.Envelope.Subject == "" {
			continue
		}
		w := idx[r.Envelope.Subject]
		if w == nil {
			w = &where{partition: r.Partition, byCommand: map[string][]int64{}}
			idx[r.Envelope.Subject] = w
		}
		w.offsets = append(w.offsets, r.Offset)
		w.byCommand[r.Event.CommandID] = append(w.byCommand[r.Event.CommandID], r.Offset)
	}
	return idx
}

func located(inv, rid string, idx map[string]*where, offsets []int64, ops []int64, format string, args ...any) Anomaly {
	a := Anomaly{Invariant: inv, Request: rid, Partition: -1, Offsets: offsets, Ops: ops, Detail: fmt.Sprintf(format, args...)}
	if w := idx[rid]; w != nil {
		a.Partition = w.partition
		if a.Offsets == nil {
			a.Offsets = w.offsets
		}
	}
	if len(a.Offsets) > 12 {
		a.Offsets = append(slices.Clone(a.Offsets[:6]), a.Offsets[len(a.Offsets)-6:]...)
	}
	return a
}

// checkDecidedOnce is I2: a command's events are one decision. One
// decision is a run of consecutive events of the request; a refusal
// (command.rejected) ends it and follows nothing but the expiry that time
// alone caused.
func checkDecidedOnce(log []systest.Record) []Anomaly {
	type cmdKey struct{ rid, cid string }
	var out []Anomaly
	last := map[string]string{} // request → command id of its last event
	types := map[cmdKey][]string{}
	first := map[cmdKey]int64{}
	for _, r := range log {
		if r.Err != nil || r.Envelope.Subject == "" || r.Event.CommandID == "" {
			continue
		}
		k := cmdKey{r.Envelope.Subject, r.Event.CommandID}
		typ := r.Event.Body.EventType()
		prev, seen := types[k]
		again := ""
		switch {
		case seen && last[k.rid] != k.cid:
			again = "after other commands' events"
		case slices.Contains(prev, approval.TypeCommandRejected):
			again = "after its refusal"
		case typ == approval.TypeCommandRejected && slices.ContainsFunc(prev, func(t string) bool { return t != approval.TypeRequestExpired }):
			again = "refused after it was accepted"
		}
		if again != "" {
			out = append(out, Anomaly{Invariant: "I2", Request: k.rid, Partition: r.Partition, Offsets: []int64{first[k], r.Offset},
				Detail: fmt.Sprintf("command %s was decided twice: %s at offset %d %s (its first event is at offset %d)",
					k.cid, typ, r.Offset, again, first[k])})
		}
		if !seen {
			first[k] = r.Offset
		}
		types[k] = append(prev, typ)
		last[k.rid] = k.cid
	}
	return out
}

// checkTold is I3's client side: what each client was told agrees with the
// log.
func checkTold(ops []Op, states map[string]approval.State, idx map[string]*where) []Anomaly {
	var out []Anomaly
	for _, op := range ops {
		st := states[op.Request]
		if op.HasView && approval.Status(op.Status).Terminal() && op.Status != string(st.Status) {
			out = append(out, located("I3", op.Request, idx, nil, []int64{op.ID},
				"a client was shown %s, the log says %s: %s", op.Status, statusName(string(st.Status)), op))
		}
		if !op.Write() || op.Command == "" || op.Indeterminate() {
			continue
		}
		o, known := st.Outcomes[op.Command]
		if !known {
			continue // I1 (test/systest) covers an acknowledged command without an outcome
		}
		var cmdOffsets []int64
		if w := idx[op.Request]; w != nil {
			cmdOffsets = w.byCommand[op.Command]
		}
		switch {
		case op.Outcome == OK && o.Code != "":
			out = append(out, located("I3", op.Request, idx, cmdOffsets, []int64{op.ID},
				"a client was told %s succeeded; the log refused command %s as %s", op.Kind, op.Command, o.Code))
		case op.Outcome == Refused && string(o.Code) != op.Code:
			got := string(o.Code)
			if got == "" {
				got = "accepted"
			}
			out = append(out, located("I3", op.Request, idx, cmdOffsets, []int64{op.ID},
				"a client was told %s was refused as %s; the log says %s for command %s", op.Kind, op.Code, got, op.Command))
		}
	}
	return out
}

// checkViews is I5.
func checkViews(views map[string]map[string]View, states map[string]approval.State, idx map[string]*where) []Anomaly {
	var out []Anomaly
	for _, replica := range slices.Sorted(mapsKeys(views)) {
		vs := views[replica]
		for _, rid := range slices.Sorted(mapsKeys(states)) {
			st := states[rid]
			if st.Status == approval.StatusNone {
				continue
			}
			view, ok := vs[rid]
			if !ok {
				out = append(out, located("I5", rid, idx, nil, nil, "%s does not show the request", replica))
				continue
			}
			if d := view.Diff(st); d != "" {
				out = append(out, located("I5", rid, idx, nil, nil, "%s: %s", replica, d))
			}
		}
		for rid := range vs {
			if states[rid].Status == approval.StatusNone {
				out = append(out, located("I5", rid, idx, nil, nil, "%s shows a request that is not in the log", replica))
			}
		}
	}
	return out
}

func mapsKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// rank orders statuses: absent, pending, decided.
func rank(status string) int {
	switch {
	case status == "":
		return 0
	case status == string(approval.StatusPending):
		return 1
	default:
		return 2
	}
}

// checkMonotonic is MONO: on each replica, a view that was asked for after
// another returned is never older.
func checkMonotonic(ops []Op, idx map[string]*where) []Anomaly {
	type key struct{ rid, replica string }
	seen := map[key][]Op{}
	for _, op := range ops {
		if op.HasView && op.Replica != "" && op.Outcome == OK {
			k := key{op.Request, op.Replica}
			seen[k] = append(seen[k], op)
		}
	}
	var out []Anomaly
	for k, obs := range seen {
		sort.Slice(obs, func(i, j int) bool { return obs[i].Return < obs[j].Return })
		// The newest view returned before each call.
		for j, b := range obs {
			for _, a := range obs[:j] {
				if a.Return >= b.Call {
					continue
				}
				backwards := rank(b.Status) < rank(a.Status) ||
					rank(a.Status) == 2 && b.Status != a.Status ||
					a.Status == b.Status && b.Votes < a.Votes
				if backwards {
					out = append(out, located("MONO", k.rid, idx, nil, []int64{a.ID, b.ID},
						"%s went backwards: %s then %s", k.replica, a, b))
					break
				}
			}
		}
	}
	return out
}

// checkNegatives is SEC.
func checkNegatives(ops []Op, events, commands []systest.Record) []Anomaly {
	var out []Anomaly
	negative := map[string]bool{}
	for _, op := range ops {
		if op.Kind != KindNegative {
			continue
		}
		if op.Request != "" {
			negative[op.Request] = true
		}
		if op.HTTP < 400 || op.HTTP >= 500 || op.Expect != 0 && op.HTTP != op.Expect {
			out = append(out, Anomaly{Invariant: "SEC", Request: op.Request, Partition: -1, Ops: []int64{op.ID},
				Detail: fmt.Sprintf("%s: answered %d, want %d (%s)", op.Detail, op.HTTP, op.Expect, op.Code)})
		}
	}
	for name, recs := range map[string][]systest.Record{"events": events, "commands": commands} {
		for _, r := range recs {
			if negative[r.Envelope.Subject] {
				out = append(out, Anomaly{Invariant: "SEC", Request: r.Envelope.Subject, Partition: r.Partition, Offsets: []int64{r.Offset},
					Detail: fmt.Sprintf("a refused request reached the %s topic: %s", name, r.Envelope.Type)})
			}
		}
	}
	return out
}

// checkFlood is FLOOD: a write the api refused as rate_limited (the
// hostile client's flood) wrote nothing: its command id is in neither
// topic.
func checkFlood(ops []Op, events, commands []systest.Record) []Anomaly {
	var out []Anomaly
	limited := map[string]Op{}
	for _, op := range ops {
		if op.Write() && op.Code == codeRateLimited && op.Command != "" {
			limited[op.Command] = op
		}
	}
	if len(limited) == 0 {
		return nil
	}
	for name, recs := range map[string][]systest.Record{"events": events, "commands": commands} {
		for _, r := range recs {
			if op, ok := limited[r.Envelope.CommandID]; ok {
				out = append(out, Anomaly{Invariant: "FLOOD", Request: r.Envelope.Subject, Partition: r.Partition, Offsets: []int64{r.Offset},
					Ops: []int64{op.ID}, Detail: fmt.Sprintf("a %s the client was told was rate limited (429) reached the %s topic: %s, command %s",
						op.Kind, name, r.Envelope.Type, op.Command)})
			}
		}
	}
	return out
}

// checkLinearizable is LIN: porcupine on each request's history.
func checkLinearizable(ops []Op, states map[string]approval.State, idx map[string]*where, timeout time.Duration) ([]Anomaly, int, int) {
	byRequest := map[string][]*Op{}
	for i := range ops {
		op := &ops[i]
		if op.Kind == KindNegative || op.Request == "" || op.Hostile {
			continue
		}
		byRequest[op.Request] = append(byRequest[op.Request], op)
	}
	var out []Anomaly
	checked, timedOut := 0, 0
	for _, rid := range slices.Sorted(mapsKeys(byRequest)) {
		rops := byRequest[rid]
		res, why := linearizable(paramsOf(states[rid]), rops, timeout)
		checked++
		switch res {
		case porcupine.Illegal:
			ids := make([]int64, 0, len(rops))
			var lines []string
			for _, op := range rops {
				ids = append(ids, op.ID)
				lines = append(lines, "\n      "+op.String())
			}
			out = append(out, located("LIN", rid, idx, nil, ids,
				"the history is not linearizable; %s\n    history:%s", why, strings.Join(lines, "")))
		case porcupine.Unknown:
			timedOut++
		case porcupine.Ok:
		}
	}
	return out, checked, timedOut
}

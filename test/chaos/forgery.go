package chaos

import (
	"fmt"
	"slices"
	"time"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/test/systest"
)

// The kinds of forgery the insider injects (see insider.go).
const (
	// ForgePlain: a well-formed decision event with the next sequence and
	// a correct prevhash, from a plain (idempotent, non-transactional)
	// producer: the attack of issue 12.
	ForgePlain = "plain"
	// ForgeTransactional: the same, from a transactional producer with a
	// transactional id of its own, committed.
	ForgeTransactional = "transactional"
	// ForgeUnknownKey: the same in a transaction that ends with a seal
	// over it, signed by a key nobody published under the decider key's
	// id.
	ForgeUnknownKey = "unknown-key"
	// ForgeCopy: the decision event of another request, re-addressed to
	// the target (its id, time, actor, command id and data kept), then the
	// partition's last valid seal replayed verbatim.
	ForgeCopy = "copy"
)

// ForgeryKinds are the kinds, in the order an insider fault injects them.
var ForgeryKinds = []string{ForgePlain, ForgeTransactional, ForgeUnknownKey, ForgeCopy}

// Forgery is one set of records the insider appended to the events topic:
// a decision event claiming Outcome for Request, and any seal written
// after it (Offsets lists the event's offset first).
type Forgery struct {
	Kind      string    `json:"kind"`
	Request   string    `json:"request"`
	Outcome   string    `json:"outcome"` // approved or rejected
	Partition int32     `json:"partition"`
	Offsets   []int64   `json:"offsets"`
	EventID   string    `json:"event_id"`
	Sequence  int       `json:"sequence"`
	Time      time.Time `json:"time"` // when Kafka acknowledged it
}

func (f Forgery) String() string {
	return fmt.Sprintf("%s forgery of %s %s at partition %d offsets %v (%s)", f.Kind, f.Request, f.Outcome, f.Partition, f.Offsets,
		f.Time.UTC().Format("15:04:05.000"))
}

// Counter is one api replica's assent_consistency_violations_total
// {kind="unauthenticated"} before an insider fault and once it had
// risen (or when the wait for it ended).
type Counter struct {
	Replica string    `json:"replica"`
	At      time.Time `json:"at"` // when the fault began
	Before  float64   `json:"before"`
	After   float64   `json:"after"`
	Err     string    `json:"error,omitempty"`
}

// Unauthenticated is a record of the events topic that no valid seal
// covers, as a reader finds it (wire.Authenticator).
type Unauthenticated struct {
	Partition int32
	Offset    int64
	Subject   string
	Kind      string // wire.KindUnauthenticated, KindInvalid, KindGap
	Reason    string
}

// Authenticated splits a log read by systest.ReadLog from topic the way
// every reader does (wire.Authenticator, from the start of each
// partition): the records a valid seal covers, in log order, and the
// others. Control records are not in the log: a transaction's records
// that no seal covers are refused when a later seal passes over them or
// at the end of the log.
func Authenticated(log []systest.Record, topic string, keys *wire.KeyRing) ([]systest.Record, []Unauthenticated) {
	type at struct {
		p int32
		o int64
	}
	applied := map[at]bool{}
	var refused []Unauthenticated
	collect := func(res wire.Result) {
		for _, x := range res.Apply {
			applied[at{x.Record.Partition, x.Record.Offset}] = true
		}
		rejs := res.Rejected
		if res.Gap != nil {
			rejs = append(rejs, *res.Gap)
		}
		for _, rj := range rejs {
			refused = append(refused, Unauthenticated{Partition: rj.Record.Partition, Offset: rj.Record.Offset,
				Subject: rj.Env.Subject, Kind: rj.Kind, Reason: rj.Reason})
		}
	}
	auth := map[int32]*wire.Authenticator{}
	for _, r := range log {
		a := auth[r.Partition]
		if a == nil {
			a = wire.NewAuthenticator(keys, topic, r.Partition, wire.GenesisHash)
			auth[r.Partition] = a
		}
		collect(a.Add(wire.Item{Record: wire.Record{Topic: topic, Partition: r.Partition, Offset: r.Offset, Value: r.Value,
			Transactional: r.Transactional, ProducerID: r.ProducerID}, Env: r.Envelope, Hash: wire.Hash(r.Value)}, r.Err))
	}
	for _, p := range slices.Sorted(mapsKeys(auth)) {
		collect(auth[p].Flush())
	}
	var out []systest.Record
	for _, r := range log {
		if applied[at{r.Partition, r.Offset}] {
			out = append(out, r)
		}
	}
	return out, refused
}

// checkForgeries proves that no forgery was ever served (FORGED) and that
// the log holds nothing else unauthenticated (AUTH):
//
//   - every record no valid seal covers is one the insider wrote (a record
//     of the deciders' that a reader refuses is a defect: AUTH);
//   - every record the insider wrote is refused (FORGED);
//   - no operation of the history observed a forged outcome: a view of
//     the request with the status the forgery claims, unless the deciders'
//     authenticated log decided the request that way, and then only from
//     the time they decided it (FORGED);
//   - no replica's final view shows it (FORGED; I5 compares the rest);
//   - after each insider fault, every api replica's
//     assent_consistency_violations_total{kind="unauthenticated"} rose
//     (AUTH).
//
// It returns the anomalies and how many forgeries were served.
func checkForgeries(in Input, auth []systest.Record, refused []Unauthenticated, states map[string]approval.State, idx map[string]*where) ([]Anomaly, int) {
	type at struct {
		p int32
		o int64
	}
	var out []Anomaly
	forged := map[at]*Forgery{}
	for i := range in.Forgeries {
		for _, o := range in.Forgeries[i].Offsets {
			forged[at{in.Forgeries[i].Partition, o}] = &in.Forgeries[i]
		}
	}
	isRefused := map[at]bool{}
	for _, u := range refused {
		isRefused[at{u.Partition, u.Offset}] = true
		if forged[at{u.Partition, u.Offset}] == nil {
			out = append(out, Anomaly{Invariant: "AUTH", Request: u.Subject, Partition: u.Partition, Offsets: []int64{u.Offset},
				Detail: fmt.Sprintf("a record that no valid seal covers, and that the insider did not write: %s: %s", u.Kind, u.Reason)})
		}
	}
	isAuth := map[at]bool{}
	// decidedAt is when the deciders decided each request, by status.
	type decision struct {
		rid    string
		status string
	}
	decidedAt := map[decision]time.Time{}
	for _, r := range auth {
		isAuth[at{r.Partition, r.Offset}] = true
		switch r.Event.Body.(type) {
		case approval.RequestApproved:
			decidedAt[decision{r.Envelope.Subject, string(approval.StatusApproved)}] = r.Envelope.Time
		case approval.RequestRejected:
			decidedAt[decision{r.Envelope.Subject, string(approval.StatusRejected)}] = r.Envelope.Time
		}
	}
	served := 0
	for _, f := range in.Forgeries {
		for _, o := range f.Offsets {
			switch {
			case isAuth[at{f.Partition, o}]:
				out = append(out, Anomaly{Invariant: "FORGED", Request: f.Request, Partition: f.Partition, Offsets: []int64{o},
					Detail: fmt.Sprintf("the %s is covered by a valid seal: the checker authenticated a record the insider wrote", f)})
			case !isRefused[at{f.Partition, o}]:
				out = append(out, Anomaly{Invariant: "FORGED", Request: f.Request, Partition: f.Partition, Offsets: []int64{o},
					Detail: fmt.Sprintf("the %s is not in the log read back, though Kafka acknowledged it", f)})
			}
		}
		legit := string(states[f.Request].Status)
		when, legitimate := decidedAt[decision{f.Request, f.Outcome}]
		var ids []int64
		var first *Op
		for i := range in.Ops {
			op := &in.Ops[i]
			if op.Request != f.Request || !op.HasView || op.Outcome != OK || op.Status != f.Outcome {
				continue
			}
			if legitimate && op.Return >= when.UnixNano() {
				continue // the deciders decided it so before the view was returned
			}
			ids = append(ids, op.ID)
			if first == nil {
				first = op
			}
		}
		servedHere := first != nil
		if first != nil {
			why := fmt.Sprintf("the deciders' authenticated log says %s", statusName(legit))
			if legitimate {
				why = fmt.Sprintf("the deciders decided it so only at %s, after that view returned", when.UTC().Format("15:04:05.000"))
			}
			out = append(out, located("FORGED", f.Request, idx, f.Offsets, ids,
				"a forged outcome was served: %d operation(s) observed %s, which the %s claims; %s; first: %s",
				len(ids), f.Outcome, f, why, first))
		}
		for _, replica := range slices.Sorted(mapsKeys(in.Views)) {
			if v, ok := in.Views[replica][f.Request]; ok && v.Status == f.Outcome && legit != f.Outcome {
				servedHere = true
				out = append(out, located("FORGED", f.Request, idx, f.Offsets, nil,
					"a forged outcome was served: %s's final view shows %s, which only the %s claims; the deciders' authenticated log says %s",
					replica, f.Outcome, f, statusName(legit)))
			}
		}
		if servedHere {
			served++
		}
	}
	for _, c := range in.Counters {
		switch {
		case c.Err != "":
			out = append(out, Anomaly{Invariant: "AUTH", Partition: -1, Detail: fmt.Sprintf(
				"%s: could not read assent_consistency_violations_total{kind=\"unauthenticated\"} around the insider fault at %s: %s",
				c.Replica, c.At.UTC().Format("15:04:05"), c.Err)})
		case c.After <= c.Before:
			out = append(out, Anomaly{Invariant: "AUTH", Partition: -1, Detail: fmt.Sprintf(
				"%s: assent_consistency_violations_total{kind=\"unauthenticated\"} did not rise after the insider fault at %s (%g before, %g after)",
				c.Replica, c.At.UTC().Format("15:04:05"), c.Before, c.After)})
		}
	}
	return out, served
}

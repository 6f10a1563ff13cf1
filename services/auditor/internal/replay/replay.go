// Package replay checks the events log against the domain: every event
// must be what approval.Decide produces from the command that caused it,
// against the state its request had before. A leaked signing key can seal
// any record; it cannot make an illegal decision (an approval short of the
// quorum, a vote by the requester or by someone the policy snapshot does
// not name, a second decision, an expiry before the deadline) pass the
// replay.
//
// # Commands from events
//
// The events topic does not carry the commands (they are on the commands
// topic, kept for days), so each run of a request's events that share a
// command id is turned back into the command that caused it: a
// request.submitted into the submit it snapshots, a vote.recorded into a
// vote by its actor, a request.cancelled into a cancel, a
// notification.recorded into the record-notification, a request.expired
// under command.ExpireID into the decider's expire command, and a
// command.rejected into a command of its type by its actor. Decide runs on
// the state before the run, at the run's time, with the policy snapshot of
// the request.submitted; its events must equal the run: types, actors,
// command ids, times, sequences and data. Every event of one command
// carries the same command id and follows the previous one in sequence
// (docs/architecture.md, I2), so a run ends where the next command id
// starts.
//
// # What the log cannot tell
//
// Some of what Decide reads is not in the log, and the replay says so
// rather than guessing:
//
//   - The live policy file: the request.submitted's content_hash and the
//     snapshot's hash are taken as recorded (the submit's own TTL and the
//     policy's match are not in the log), and a submit refused no_policy
//     or conflict, or any command refused invalid (its body is not in the
//     log), is checked only for where it may occur.
//   - The admins, who may cancel any request: the policy file's admins
//     when Rules.Admins is known, else a cancel by someone other than the
//     requester is counted in Replayer.UncheckedCancels.
//   - A command refused unauthenticated (docs/architecture.md,
//     "Authenticated commands") is not in the log either: its refusal,
//     under the record's own id and by system:decider, is legal anywhere.
//   - A refusal's detail text is not compared (it is for people, and its
//     wording may change between versions); its code is.
//
// # Memory
//
// A pending request keeps its full approval.State and the values of its
// events (to save them for the next run, see Request.Pending). A decided
// request, or one never submitted, keeps only its status and sequence:
// after a decision only command.rejected (already_decided and the like)
// and notification.recorded are legal, and Decide checks both against the
// status alone. So the command-id dedupe and the card dedupe of a decided
// request are not replayed (a repeated command id there adds no decision).
package replay

import (
	"fmt"
	"strings"
	"time"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/command"
)

// Item is one authenticated event of a request.
type Item struct {
	Offset int64
	ID     string // the envelope id
	Event  approval.Event
	Value  []byte // the record value, kept while the request is pending
}

// Finding is an event the domain would not have produced.
type Finding struct {
	Offset  int64
	EventID string
	Reason  string
}

// Rules are what Decide reads that the log does not hold.
type Rules struct {
	// Admins may cancel any request (the admins of the deciders' policy
	// file). Checked only when AdminsKnown.
	Admins      []string
	AdminsKnown bool
}

// Replayer replays the requests of one partition; it is not safe for
// concurrent use.
type Replayer struct {
	rules Rules
	// UncheckedCancels counts cancels by someone other than the
	// requester that could not be checked: the admins are not known.
	UncheckedCancels int64

	spare []*live            // of requests decided, to reuse (see recycle)
	rule  [1]approval.Policy // the policy a submit is decided under
}

// maxSpare bounds the lives kept for reuse: one is taken for each request
// submitted and given back when it is decided.
const maxSpare = 64

// New returns a Replayer.
func New(rules Rules) *Replayer { return &Replayer{rules: rules} }

// Request is the replay of one request. The zero Request has seen nothing.
// A decided request, or one never submitted, costs its status and
// sequence; only a pending one, or one in the middle of a command's
// events, has more (live).
type Request struct {
	status approval.Status
	seq    int
	broken bool // a finding was reported: the rest is not replayed
	live   *live
}

type live struct {
	full   *approval.State // while pending: the state before the current run
	values [][]byte        // while pending: the values of its events, in order
	run    []Item          // the events of the current command, not yet complete
	want   []approval.Event
	known  bool             // want is known: the run's command is
	last   []approval.Event // while pending: the events of the last command, for a reason
	buf    *approval.State  // the memory of full, kept by recycle
}

// newLive returns a live for a request, reusing one recycle gave back.
func (rp *Replayer) newLive() *live {
	n := len(rp.spare)
	if n == 0 {
		return &live{}
	}
	l := rp.spare[n-1]
	rp.spare[n-1], rp.spare = nil, rp.spare[:n-1]
	return l
}

// recycle takes back the live of a request that no longer needs one (it
// was decided), so that replaying a request does not allocate its
// slices and state anew each time. Nothing else points to them: the
// values and events it held are cleared, and the state was the request's
// own (approval.EvolveOwned).
func (rp *Replayer) recycle(l *live) {
	if len(rp.spare) >= maxSpare {
		return
	}
	clear(l.values)
	clear(l.run)
	clear(l.last)
	buf := l.full
	if buf == nil {
		buf = l.buf
	}
	*l = live{values: l.values[:0], run: l.run[:0], last: l.last[:0], buf: buf}
	rp.spare = append(rp.spare, l)
}

// Resume returns the Request of a request saved while pending: its events
// so far, already verified, folded again.
func Resume(events []approval.Event, values [][]byte) Request {
	st := approval.Fold(events)
	r := Request{status: st.Status, seq: st.Sequence}
	if st.Status == approval.StatusPending {
		r.live = &live{full: &st, values: values}
	}
	return r
}

// Tombstone returns the Request of a request saved when it was not
// pending: decided, or never submitted.
func Tombstone(status approval.Status, seq int) Request { return Request{status: status, seq: seq} }

// Sequence is the sequence of the last event replayed in full.
func (r *Request) Sequence() int { return r.seq }

// Pending returns the values of a pending request's events, which Resume
// needs to go on from where this run stops; nil for any other request.
func (r *Request) Pending() [][]byte {
	if r.live == nil || r.live.full == nil {
		return nil
	}
	return r.live.values
}

// Stop stops replaying the request: its next events are not checked. The
// caller stops it when it found another break (a gap in the sequence, an
// undecodable event), after which the state is not known.
func (r *Request) Stop() { r.broken, r.live = true, nil }

// state is the request's state before the current run.
func (r *Request) state(rid string) approval.State {
	if r.live != nil && r.live.full != nil {
		return *r.live.full
	}
	return approval.State{RequestID: rid, Status: r.status, Sequence: r.seq}
}

// decideOptions are how the replay runs Decide: without the hashes of a
// request.submitted, which compareSubmitted does not compare (see the
// package comment: the log cannot reproduce them), and with the snapshot
// sharing the slices of the policy decide builds from the recorded
// snapshot (nothing changes either; the events Decide returns are only
// compared).
var decideOptions = approval.DecideOptions{NoHashes: true, SharePolicy: true}

// maxRun bounds a run: Decide emits at most two events per command.
const maxRun = 4

// Add replays the next event of the request and returns what it found.
func (rp *Replayer) Add(r *Request, it Item) []Finding {
	if r.broken {
		return nil
	}
	if r.live == nil {
		r.live = rp.newLive()
	}
	l := r.live
	if len(l.run) > 0 && l.run[0].Event.CommandID != it.Event.CommandID {
		return rp.incomplete(r) // what this command emitted is not all Decide emits
	}
	l.run = append(l.run, it)
	if len(l.run) > maxRun {
		return r.fail(it, "more than %d events under command id %q: Decide emits at most two for one command", maxRun, it.Event.CommandID)
	}
	return rp.check(r)
}

// Close ends the request's replay at the end of the log: a run still open
// there is incomplete (a command's events commit together, in one
// transaction with the seal that covers them).
func (rp *Replayer) Close(r *Request) []Finding {
	if r.broken || r.live == nil || len(r.live.run) == 0 {
		return nil
	}
	return rp.incomplete(r)
}

func (r *Request) fail(it Item, format string, args ...any) []Finding {
	e := it.Event
	r.Stop()
	return []Finding{{Offset: it.Offset, EventID: it.ID,
		Reason: fmt.Sprintf("request %s: %s (sequence %d): ", e.RequestID, short(e.Body), e.Sequence) + fmt.Sprintf(format, args...)}}
}

// incomplete reports the open run when the next command starts or the
// log ends.
func (rp *Replayer) incomplete(r *Request) []Finding {
	l := r.live
	first, last := l.run[0].Event, l.run[len(l.run)-1]
	if !l.known {
		return r.fail(last, "an expiry under command id %q, which is not the decider's expire command (%s), must be followed by the command.rejected of the vote or cancel that found the request expired; the command's events end here",
			first.CommandID, command.ExpireID(first.RequestID))
	}
	return r.fail(last, "the events of %s end here, but Decide also emits %s", describe(first, l.want), types(l.want[len(l.run):]))
}

// check matches the open run against what Decide emits for its command.
func (rp *Replayer) check(r *Request) []Finding {
	l := r.live
	first := l.run[0].Event
	if len(l.last) > 0 && l.last[0].CommandID == first.CommandID {
		// More events under a command that is complete.
		return r.fail(l.run[0], "Decide emits only %s for %s", types(l.last), describe(l.last[0], l.last))
	}
	if !l.known {
		want, why, wait := rp.decide(r.state(first.RequestID), l.run)
		switch {
		case wait:
			return nil
		case why != "":
			return r.fail(l.run[len(l.run)-1], "%s", why)
		}
		l.want, l.known = want, true
	}
	for i, it := range l.run {
		switch {
		case i < len(l.want):
			if d := compare(l.want[i], it.Event); d != "" {
				if cr, refused := l.want[len(l.want)-1].Body.(approval.CommandRejected); refused && !isRefusal(it.Event) {
					return r.fail(it, "Decide refuses %s: %s: %s", describe(first, l.want), cr.Code, refusalDetail(r.status, cr))
				}
				return r.fail(it, "not what Decide emits for %s: %s", describe(first, l.want), d)
			}
		case len(l.want) == 0:
			return r.fail(it, "Decide adds nothing for %s: %s", describe(first, nil), nothingReason(r.state(first.RequestID), first))
		default:
			return r.fail(it, "Decide emits only %s for %s", types(l.want), describe(first, l.want))
		}
	}
	if len(l.run) < len(l.want) {
		return nil // the rest of the command's events are still to come
	}
	rp.apply(r)
	return nil
}

// apply folds a complete, legal run into the request. Once the request is
// no longer pending, only its status and sequence are kept.
func (rp *Replayer) apply(r *Request) {
	l := r.live
	// The state is the request's own: r.state copies *l.full, which is
	// set to the result below or dropped, and Decide only read it.
	st := r.state(l.run[0].Event.RequestID)
	wasPending := l.full != nil
	for _, it := range l.run {
		st = approval.EvolveOwned(st, it.Event)
	}
	r.status, r.seq = st.Status, st.Sequence
	if st.Status != approval.StatusPending {
		r.live = nil
		rp.recycle(l)
		return
	}
	if !wasPending {
		clear(l.values)
		l.values = l.values[:0]
	}
	l.last = l.last[:0]
	for _, it := range l.run {
		l.values = append(l.values, it.Value)
		l.last = append(l.last, it.Event)
	}
	if l.full == nil {
		l.full, l.buf = l.buf, nil
		if l.full == nil {
			l.full = new(approval.State)
		}
	}
	*l.full = st // nothing else points to the state before: it is a copy everywhere else
	clear(l.run) // the values stay in l.values only
	l.run, l.want, l.known = l.run[:0], nil, false
}

// decide reconstructs the run's command and returns the events Decide
// emits for it, or why no command can produce the run; wait is true when
// the command is not known yet.
func (rp *Replayer) decide(before approval.State, run []Item) (want []approval.Event, why string, wait bool) {
	first, last := run[0].Event, run[len(run)-1].Event
	cmd := approval.Command{ID: first.CommandID, RequestID: first.RequestID, Actor: first.Actor, Time: first.Time}
	ps := approval.Policies{Admins: rp.rules.Admins}
	if cr, isRefusal := last.Body.(approval.CommandRejected); isRefusal {
		cmd.Actor = last.Actor
		return rp.refusal(before, cmd, cr, last.Time)
	}
	switch b := first.Body.(type) {
	case approval.RequestSubmitted:
		cmd.Body = approval.Submit{Action: b.Action, Reason: b.Reason, Requester: b.Requester, TTL: b.Policy.TTL}
		rp.rule[0] = approval.Policy{Name: b.Policy.Name, Approvers: b.Policy.Approvers, MinApprovals: b.Policy.MinApprovals,
			RejectThreshold: b.Policy.RejectThreshold, TTL: b.Policy.TTL, Notify: b.Policy.Notify}
		ps.Rules = rp.rule[:] // Decide keeps nothing of it: the snapshot it emits copies the slices
	case approval.VoteRecorded:
		cmd.Body = approval.Vote{Decision: b.Decision, Comment: b.Comment}
	case approval.RequestCancelled:
		cmd.Body = approval.Cancel{Reason: b.Reason}
		ps.Admins = rp.cancelAdmins(before, cmd.Actor, true)
	case approval.NotificationRecorded:
		cmd.Body = approval.RecordNotification(b)
	case approval.RequestExpired:
		if first.CommandID != command.ExpireID(first.RequestID) {
			// Decide writes an expiry under another command's id only
			// before refusing that vote or cancel as expired.
			if len(run) > 1 {
				return nil, fmt.Sprintf("an expiry under command id %q, which is not the decider's expire command (%s), must be followed by the command.rejected of the vote or cancel that found the request expired, not by %s",
					first.CommandID, command.ExpireID(first.RequestID), short(last.Body)), false
			}
			return nil, "", true
		}
		cmd.Body = approval.Expire{}
	case approval.RequestApproved, approval.RequestRejected:
		return nil, "no command starts with it: Decide emits it only after the vote.recorded that decides, under the same command id", false
	case approval.CommandRejected: // the last event: handled above
	default:
		return nil, fmt.Sprintf("an event of type %T, which Decide never emits", b), false
	}
	return approval.DecideWith(before, cmd, ps, first.Time, decideOptions).Events, "", false
}

// cancelAdmins returns the admins to decide a cancel by actor with. When
// the admins are not known, an admin is assumed where the log says the
// cancel passed the admin check (and counted as unchecked), and not where
// it says it was refused forbidden.
func (rp *Replayer) cancelAdmins(before approval.State, actor string, assumeAdmin bool) []string {
	if rp.rules.AdminsKnown || actor == before.Requester || before.Status != approval.StatusPending || !assumeAdmin {
		return rp.rules.Admins
	}
	rp.UncheckedCancels++
	return []string{actor}
}

// refusal returns what Decide emits for a command the log records as
// refused. The body of a refused command is not in the log: a command
// with a valid body of its type stands in for it, which is refused for
// the same reason whenever that reason is not about the body. A refusal
// that is (invalid for any command, no_policy and conflict for a submit)
// is reproduced with approval.Refuse, and only where it may occur is
// checked.
func (rp *Replayer) refusal(before approval.State, cmd approval.Command, cr approval.CommandRejected, at time.Time) ([]approval.Event, string, bool) {
	refuse := func() ([]approval.Event, string, bool) {
		return approval.Refuse(before, cmd, cr.CommandType, &approval.Refusal{Code: cr.Code, Detail: cr.Detail}, at).Events, "", false
	}
	if cr.Code == approval.ReasonUnauthenticated && cmd.Actor == approval.SystemDecider && strings.HasPrefix(cmd.ID, "kafka:") {
		// A command no published key that may speak for its actor signed:
		// the decider refuses it before the domain, whatever the state,
		// under its record's id (docs/architecture.md, "Authenticated
		// commands"). The replay cannot check the signature (the command
		// is not in the log), only that the refusal changes nothing.
		return refuse()
	}
	ps := approval.Policies{Admins: rp.rules.Admins}
	switch cr.CommandType {
	case approval.TypeSubmit:
		switch cr.Code {
		case approval.ReasonInvalid:
			return refuse()
		case approval.ReasonConflict:
			if before.Status == approval.StatusNone {
				return nil, fmt.Sprintf("a submit refused %s, but request %s does not exist yet: Decide refuses a submit as a conflict only when the request exists with other content", cr.Code, cmd.RequestID), false
			}
			return refuse()
		case approval.ReasonNoPolicy:
			if before.Status != approval.StatusNone {
				return nil, fmt.Sprintf("a submit refused %s, but request %s exists: Decide refuses a submit of an existing request as a conflict, or adds nothing", cr.Code, cmd.RequestID), false
			}
			return refuse()
		case approval.ReasonUnauthenticated, approval.ReasonForbidden, approval.ReasonNotFound, approval.ReasonNotEligible,
			approval.ReasonSelfApproval, approval.ReasonDuplicateVote, approval.ReasonAlreadyDecided, approval.ReasonExpired:
			// Codes Decide may give any command: checked below.
		default:
		}
		cmd.Body = approval.Submit{Action: approval.Action{Type: "replay", Resource: "replay", Environment: "replay"}, Reason: "replay"}
	case approval.TypeVote:
		if cr.Code == approval.ReasonInvalid {
			return refuse()
		}
		cmd.Body = approval.Vote{Decision: approval.Approve}
	case approval.TypeCancel:
		if cr.Code == approval.ReasonInvalid {
			return refuse()
		}
		cmd.Body = approval.Cancel{}
		ps.Admins = rp.cancelAdmins(before, cmd.Actor, cr.Code != approval.ReasonForbidden)
	case approval.TypeRecordNotification:
		if cr.Code == approval.ReasonInvalid {
			return refuse()
		}
		// A delivery outcome: no dedupe against earlier notes, so Decide
		// refuses it or records it.
		cmd.Body = approval.RecordNotification{Kind: approval.NotifyWebhook, Channel: "replay", TS: "replay", Outcome: approval.Delivered, At: at}
	case approval.TypeExpire:
		if cr.Code == approval.ReasonInvalid {
			return refuse()
		}
		cmd.Body = approval.Expire{}
	default:
		// A record the decider could not decode, or of an unknown type:
		// refused invalid without reaching Decide.
		if cr.Code != approval.ReasonInvalid {
			return nil, fmt.Sprintf("a command of type %q refused %s: a command that is not one of the domain's is refused invalid", cr.CommandType, cr.Code), false
		}
		return refuse()
	}
	return approval.DecideWith(before, cmd, ps, at, decideOptions).Events, "", false
}

// describe names the command a run stands for, for a reason. want, if
// known, is what Decide emits for it: its last event names a refused
// command's type and actor (an expiry before a refusal is the decider's).
func describe(e approval.Event, want []approval.Event) string {
	what, actor := "the command", e.Actor
	switch b := e.Body.(type) {
	case approval.RequestSubmitted:
		what = "the submit"
	case approval.VoteRecorded:
		what = "the " + string(b.Decision) + " vote"
	case approval.RequestCancelled:
		what = "the cancel"
	case approval.NotificationRecorded:
		what = "the record-notification"
	case approval.RequestExpired:
		what = "the expire command"
	case approval.CommandRejected:
		what = "the " + commandName(b.CommandType) + " command"
	case approval.RequestApproved, approval.RequestRejected:
	default:
	}
	if len(want) > 0 {
		last := want[len(want)-1]
		if cr, ok := last.Body.(approval.CommandRejected); ok {
			what, actor = "the "+commandName(cr.CommandType)+" command", last.Actor
		}
	}
	return fmt.Sprintf("%s %s by %s at %s", what, e.CommandID, actor, e.Time.Format(time.RFC3339Nano))
}

func commandName(typ string) string { return strings.TrimPrefix(typ, "dev.assent.command.") }

func isRefusal(e approval.Event) bool {
	_, ok := e.Body.(approval.CommandRejected)
	return ok
}

// refusalDetail is Decide's detail, except for already_decided, whose
// detail names who decided and when: a decided request keeps only its
// status here.
func refusalDetail(status approval.Status, cr approval.CommandRejected) string {
	if cr.Code == approval.ReasonAlreadyDecided {
		return "the request is already " + string(status)
	}
	return cr.Detail
}

// nothingReason says why Decide adds nothing for a command.
func nothingReason(before approval.State, e approval.Event) string {
	if _, seen := before.Outcomes[e.CommandID]; seen {
		return "its command id was already decided"
	}
	switch e.Body.(type) {
	case approval.RequestExpired:
		switch {
		case before.Status != approval.StatusPending:
			return fmt.Sprintf("the request is %s, not pending", statusName(before.Status))
		case e.Time.Before(before.Policy.ExpiresAt):
			return fmt.Sprintf("it expires at %s", before.Policy.ExpiresAt.Format(time.RFC3339Nano))
		}
	case approval.RequestSubmitted:
		return "the request exists with the same content"
	case approval.NotificationRecorded:
		return "the same message was already recorded"
	}
	return "no change"
}

func statusName(s approval.Status) string {
	if s == approval.StatusNone {
		return "not submitted"
	}
	return string(s)
}

// short is an event type without its prefix, as people say it.
func short(b approval.EventBody) string { return strings.TrimPrefix(b.EventType(), "dev.assent.") }

func types(es []approval.Event) string {
	if len(es) == 0 {
		return "nothing"
	}
	names := make([]string, len(es))
	for i, e := range es {
		names[i] = short(e.Body)
	}
	return "[" + strings.Join(names, ", ") + "]"
}

package approval

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits on user text, so that no command can bloat a state, an event or a
// Slack card. They are part of the API and documented in the schemas.
const (
	MaxFieldLen   = 256       // action type, resource, environment, digest
	MaxReasonLen  = 2000      // reason, comment
	MaxDetailsLen = 16 * 1024 // details, as JSON
	MaxIDLen      = 128       // request and command ids
)

// Decision is what Decide concluded.
type Decision struct {
	// Events to append, in order, with sequences already assigned. When the
	// command is refused, the last event is the command.rejected that
	// records the refusal; an expiry that time alone caused may precede it.
	Events []Event
	// Refusal is set when the command was refused.
	Refusal *Refusal
	// Replayed is set when the command id was already decided: Events is
	// empty and Refusal is the original refusal, if there was one.
	Replayed bool
}

// Decide decides one command against the state of its request. It is pure:
// now is the decision time, and nothing outside the arguments is read.
func Decide(s State, c Command, ps Policies, now time.Time) Decision {
	return DecideWith(s, c, ps, now, DecideOptions{})
}

// DecideOptions change what Decide computes, never what it decides: the
// events and refusals are the same with any options, except for the
// fields an option names.
type DecideOptions struct {
	// NoHashes leaves the content_hash and the policy's hash of a
	// request.submitted empty where the decision does not depend on them:
	// a submit that opens a request. (A resubmit is still hashed: whether
	// it is a no-op or a conflict is decided by comparing hashes.) The
	// auditor's domain replay sets it: it cannot check either hash (they
	// hash the submit's own TTL and the live policy, which the log does
	// not hold) and computing them was most of the cost of replaying a
	// submit. The decider never sets it.
	NoHashes bool
	// SharePolicy lets a request.submitted's snapshot share the policy's
	// approvers and notify targets where Decide would copy them unchanged
	// (the approvers already sorted without repeats), for a caller that
	// changes neither: the auditor's replay, which builds the policy from
	// a snapshot it only reads and only compares the events Decide
	// returns. The decider never sets it.
	SharePolicy bool
}

// DecideWith is Decide with options.
func DecideWith(s State, c Command, ps Policies, now time.Time, opts DecideOptions) Decision {
	if o, seen := replayed(s, c); seen {
		return Decision{Replayed: true, Refusal: o.Refusal()}
	}
	d := decider{s: s, c: c, now: now.UTC(), opts: opts}
	if r := d.checkEnvelope(); r != nil {
		return d.refused(r)
	}
	switch b := c.Body.(type) {
	case Submit:
		return d.submit(b, ps)
	case Vote:
		return d.vote(b)
	case Cancel:
		return d.cancel(b, ps)
	case RecordNotification:
		return d.recordNotification(b)
	case Expire:
		return d.expire()
	default:
		return d.refused(refuse(ReasonInvalid, "unknown command %T", c.Body))
	}
}

// Refuse records the refusal of a command that never reached Decide, such
// as one whose data could not be decoded. c.Body may be nil; typ is the
// command's wire type as received.
func Refuse(s State, c Command, typ string, r *Refusal, now time.Time) Decision {
	d := decider{s: s, c: c, now: now.UTC(), typ: typ}
	return d.refused(r)
}

// decider accumulates the events of one decision.
type decider struct {
	s      State
	c      Command
	now    time.Time
	typ    string // the wire type, when Body is nil
	opts   DecideOptions
	events []Event
}

func (d *decider) emit(actor string, b EventBody) {
	if d.events == nil {
		d.events = make([]Event, 0, 2) // a decision has one or two events
	}
	d.events = append(d.events, Event{
		RequestID: d.c.RequestID,
		CommandID: d.c.ID,
		Actor:     actor,
		Time:      d.now,
		Sequence:  d.s.Sequence + len(d.events) + 1,
		Body:      b,
	})
}

func (d *decider) done() Decision { return Decision{Events: d.events} }

func (d *decider) refused(r *Refusal) Decision {
	typ := d.typ
	if d.c.Body != nil {
		typ = d.c.Body.CommandType()
	}
	d.emit(d.c.Actor, CommandRejected{CommandID: d.c.ID, CommandType: typ, Code: r.Code, Detail: r.Detail})
	return Decision{Events: d.events, Refusal: r}
}

func (d *decider) checkEnvelope() *Refusal {
	switch {
	case d.c.ID == "" || len(d.c.ID) > MaxIDLen || !printable(d.c.ID):
		return refuse(ReasonInvalid, "command id must be 1 to %d printable characters", MaxIDLen)
	case d.c.RequestID == "" || len(d.c.RequestID) > MaxIDLen || !printable(d.c.RequestID) || strings.ContainsAny(d.c.RequestID, " /"):
		return refuse(ReasonInvalid, "request id must be 1 to %d printable characters without spaces or slashes", MaxIDLen)
	case d.c.Actor == "":
		return refuse(ReasonUnauthenticated, "the command has no actor")
	}
	kind, _, err := ParsePrincipal(d.c.Actor)
	if err != nil {
		return refuse(ReasonUnauthenticated, "actor: %v", err)
	}
	_, isExpire := d.c.Body.(Expire)
	if (kind == KindSystem) != isExpire {
		return refuse(ReasonForbidden, "only the decider's timer may act as a system principal, and only to expire")
	}
	return nil
}

// expiredByTime emits the expiry that time alone has caused, if any, and
// reports whether it did. Rules hold at decision time (I4): a vote that
// arrives after expires_at must not count, even if the timer is late.
func (d *decider) expiredByTime() bool {
	if d.s.Status == StatusPending && !d.now.Before(d.s.Policy.ExpiresAt) {
		d.emit(SystemDecider, RequestExpired{ExpiresAt: d.s.Policy.ExpiresAt})
		return true
	}
	return false
}

func (d *decider) alreadyDecided() *Refusal {
	by := ""
	if len(d.s.DecidedBy) > 0 {
		by = " by " + strings.Join(d.s.DecidedBy, ", ")
	}
	return refuse(ReasonAlreadyDecided, "request %s is already %s%s at %s",
		d.s.RequestID, d.s.Status, by, d.s.DecidedAt.Format(time.RFC3339))
}

func (d *decider) submit(b Submit, ps Policies) Decision {
	if b.Requester == "" {
		b.Requester = d.c.Actor
	}
	if r := validateSubmit(b); r != nil {
		return d.refused(r)
	}
	b.Action.Details, _ = NormalizeDetails(b.Action.Details) // validated above; stored canonical
	if d.s.Status != StatusNone {
		if d.s.ContentHash == ContentHash(b) {
			return d.done() // an identical resubmit is a no-op
		}
		return d.refused(refuse(ReasonConflict, "request %s already exists with different content", d.c.RequestID))
	}
	p, ok := ps.Find(b.Action)
	if !ok {
		return d.refused(refuse(ReasonNoPolicy, "no policy matches action type %q on %q in %q",
			b.Action.Type, b.Action.Resource, b.Action.Environment))
	}
	approvers := p.Approvers
	if !d.opts.SharePolicy || !isSortedSet(approvers) {
		approvers = sortedSet(approvers)
	}
	others := len(approvers)
	if slices.Contains(approvers, b.Requester) {
		others--
	}
	if others < p.MinApprovals {
		return d.refused(refuse(ReasonNoPolicy, "policy %q matches, but only %d approvers other than the requester are eligible and it needs %d",
			p.Name, others, p.MinApprovals))
	}
	ttl := p.TTL
	if b.TTL > 0 && b.TTL < ttl {
		ttl = b.TTL
	}
	notify := p.Notify
	if !d.opts.SharePolicy {
		notify = slices.Clone(notify)
	}
	var hash, policyHash string
	if !d.opts.NoHashes {
		hash, policyHash = ContentHash(b), p.Hash()
	}
	d.emit(d.c.Actor, RequestSubmitted{
		Action:      b.Action,
		Reason:      b.Reason,
		Requester:   b.Requester,
		ContentHash: hash,
		Policy: PolicySnapshot{
			Name:            p.Name,
			Hash:            policyHash,
			Approvers:       approvers,
			MinApprovals:    p.MinApprovals,
			RejectThreshold: max(p.RejectThreshold, 1),
			TTL:             ttl,
			ExpiresAt:       d.now.Add(time.Duration(ttl)),
			Notify:          notify,
		},
	})
	return d.done()
}

// sortedSet returns a sorted copy of list without repeats:
// slices.Compact(slices.Sorted(slices.Values(list))), without the sort
// when list is already sorted without repeats (a policy snapshot's
// approvers are, and so are most policies').
func sortedSet(list []string) []string {
	if !isSortedSet(list) {
		return slices.Compact(slices.Sorted(slices.Values(list)))
	}
	return slices.Clone(list)
}

// isSortedSet reports whether list is sorted without repeats and not
// empty (sortedSet returns nil for an empty list, however it is made).
func isSortedSet(list []string) bool {
	for i := 1; i < len(list); i++ {
		if list[i-1] >= list[i] {
			return false
		}
	}
	return len(list) > 0
}

func validateSubmit(b Submit) *Refusal {
	for _, f := range []struct{ name, v string }{
		{"action.type", b.Action.Type},
		{"action.resource", b.Action.Resource},
		{"action.environment", b.Action.Environment},
	} {
		if r := checkText(f.name, f.v, 1, MaxFieldLen); r != nil {
			return r
		}
	}
	if r := checkText("action.digest", b.Action.Digest, 0, MaxFieldLen); r != nil {
		return r
	}
	if r := checkText("reason", b.Reason, 1, MaxReasonLen); r != nil {
		return r
	}
	if _, err := NormalizeDetails(b.Action.Details); err != nil {
		return refuse(ReasonInvalid, "action.details: %v", err)
	}
	if kind, _, err := ParsePrincipal(b.Requester); err != nil {
		return refuse(ReasonInvalid, "requester: %v", err)
	} else if kind == KindSystem {
		return refuse(ReasonInvalid, "requester: %s: a system principal cannot request approval", b.Requester)
	}
	if b.TTL < 0 {
		return refuse(ReasonInvalid, "ttl must be positive, got %s", b.TTL)
	}
	return nil
}

func checkText(name, v string, minLen, maxLen int) *Refusal {
	switch {
	case len(v) < minLen:
		return refuse(ReasonInvalid, "%s is required", name)
	case len(v) > maxLen:
		return refuse(ReasonInvalid, "%s is %d bytes; at most %d are allowed", name, len(v), maxLen)
	case !utf8.ValidString(v):
		return refuse(ReasonInvalid, "%s is not valid UTF-8", name)
	case name != "reason" && name != "comment" && !printable(v):
		return refuse(ReasonInvalid, "%s contains control characters", name)
	}
	return nil
}

// NormalizeDetails checks that details are a JSON object within the size
// limit and returns them in canonical form (sorted keys, no spaces), so
// that equal content hashes equally whatever the client's formatting.
func NormalizeDetails(raw json.RawMessage) (json.RawMessage, error) {
	if len(bytes.TrimSpace(raw)) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil, nil
	}
	if len(raw) > MaxDetailsLen {
		return nil, refuse(ReasonInvalid, "%d bytes; at most %d are allowed", len(raw), MaxDetailsLen)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // keep large integers exact
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, refuse(ReasonInvalid, "not JSON: %v", err)
	}
	if _, ok := v.(map[string]any); !ok {
		return nil, refuse(ReasonInvalid, "must be a JSON object")
	}
	out, err := json.Marshal(v)
	if err != nil {
		return nil, refuse(ReasonInvalid, "%v", err)
	}
	return out, nil
}

// ContentHash identifies what a submit asks for, so that a resubmit of the
// same request id can be told apart from a different request reusing it.
func ContentHash(b Submit) string {
	details, err := NormalizeDetails(b.Action.Details)
	if err != nil {
		details = b.Action.Details // invalid details never reach a hash that is stored
	}
	canon := struct {
		Type, Resource, Environment, Digest, Reason, Requester, TTL string
		Details                                                     json.RawMessage
	}{b.Action.Type, b.Action.Resource, b.Action.Environment, b.Action.Digest, b.Reason, b.Requester, b.TTL.String(), details}
	enc, err := json.Marshal(canon)
	if err != nil {
		panic("approval: content hash: " + err.Error()) // only strings and valid JSON
	}
	sum := sha256.Sum256(enc)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func (d *decider) vote(b Vote) Decision {
	if b.Decision != Approve && b.Decision != Reject {
		return d.refused(refuse(ReasonInvalid, "decision must be approve or reject, got %q", b.Decision))
	}
	if r := checkText("comment", b.Comment, 0, MaxReasonLen); r != nil {
		return d.refused(r)
	}
	switch {
	case d.s.Status == StatusNone:
		return d.refused(refuse(ReasonNotFound, "request %s does not exist", d.c.RequestID))
	case d.s.Status.Terminal():
		return d.refused(d.alreadyDecided())
	case d.expiredByTime():
		return d.refused(refuse(ReasonExpired, "request %s expired at %s", d.c.RequestID, d.s.Policy.ExpiresAt.Format(time.RFC3339)))
	case d.c.Actor == d.s.Requester:
		return d.refused(refuse(ReasonSelfApproval, "%s requested %s and cannot vote on it; cancel it instead", d.c.Actor, d.c.RequestID))
	case !slices.Contains(d.s.Policy.Approvers, d.c.Actor):
		return d.refused(refuse(ReasonNotEligible, "%s is not an eligible approver under policy %q", d.c.Actor, d.s.Policy.Name))
	case d.s.HasVoted(d.c.Actor):
		return d.refused(refuse(ReasonDuplicateVote, "%s has already voted on %s", d.c.Actor, d.c.RequestID))
	}
	d.emit(d.c.Actor, VoteRecorded{Voter: d.c.Actor, Decision: b.Decision, Comment: b.Comment})
	// The tally with this vote counted, from the state as it is: evolving
	// it would copy its outcomes for one count.
	approvals, rejections := d.s.Tally()
	if b.Decision == Approve {
		approvals++
	} else {
		rejections++
	}
	switch {
	case approvals >= d.s.Policy.MinApprovals:
		d.emit(d.c.Actor, RequestApproved{Approvers: voters(d.s, Approve, d.c.Actor, b.Decision)})
	case rejections >= max(d.s.Policy.RejectThreshold, 1):
		d.emit(d.c.Actor, RequestRejected{Rejecters: voters(d.s, Reject, d.c.Actor, b.Decision), Comment: b.Comment})
	}
	return d.done()
}

// voters lists, in voting order, who voted decision in s and then, if its
// decision matches, the voter of the vote being decided.
func voters(s State, decision VoteDecision, voter string, vote VoteDecision) []string {
	var out []string
	for _, v := range s.Votes {
		if v.Decision == decision {
			out = append(out, v.Voter)
		}
	}
	if vote == decision {
		out = append(out, voter)
	}
	return out
}

func (d *decider) cancel(b Cancel, ps Policies) Decision {
	if r := checkText("reason", b.Reason, 0, MaxReasonLen); r != nil {
		return d.refused(r)
	}
	switch {
	case d.s.Status == StatusNone:
		return d.refused(refuse(ReasonNotFound, "request %s does not exist", d.c.RequestID))
	case d.s.Status.Terminal():
		return d.refused(d.alreadyDecided())
	case d.c.Actor != d.s.Requester && !ps.IsAdmin(d.c.Actor):
		return d.refused(refuse(ReasonForbidden, "only the requester or an admin may cancel %s", d.c.RequestID))
	case d.expiredByTime():
		return d.refused(refuse(ReasonExpired, "request %s expired at %s", d.c.RequestID, d.s.Policy.ExpiresAt.Format(time.RFC3339)))
	}
	d.emit(d.c.Actor, RequestCancelled{By: d.c.Actor, Reason: b.Reason})
	return d.done()
}

func (d *decider) recordNotification(b RecordNotification) Decision {
	if b.Kind.Delivery() {
		return d.recordDelivery(b)
	}
	switch {
	case b.Kind != NotifyCard && b.Kind != NotifyDM:
		return d.refused(refuse(ReasonInvalid, "kind must be card, dm, webhook or email, got %q", b.Kind))
	case b.Outcome != "" || b.Reason != "" || b.Attempts != 0 || !b.At.IsZero() || b.Generation != 0:
		return d.refused(refuse(ReasonInvalid, "outcome, reason, attempts, at and generation are for webhook and email deliveries"))
	case checkText("channel", b.Channel, 1, MaxFieldLen) != nil || checkText("ts", b.TS, 1, MaxFieldLen) != nil:
		return d.refused(refuse(ReasonInvalid, "channel and ts are required, at most %d printable characters each", MaxFieldLen))
	case b.Recipient != "" && principalKind(b.Recipient) == "":
		return d.refused(refuse(ReasonInvalid, "recipient %q is not a principal", b.Recipient))
	case principalKind(d.c.Actor) != KindService:
		return d.refused(refuse(ReasonForbidden, "only a service may record notifications, not %s", d.c.Actor))
	case d.s.Status == StatusNone:
		return d.refused(refuse(ReasonNotFound, "request %s does not exist", d.c.RequestID))
	}
	for _, n := range d.s.Notes {
		if !n.Kind.Delivery() && n.Channel == b.Channel && n.TS == b.TS {
			return d.done() // already recorded through another command id
		}
	}
	d.emit(d.c.Actor, NotificationRecorded(b))
	return d.done()
}

// recordDelivery records the outcome of a webhook or email delivery. Every
// outcome is a fact of its own (a dead letter, its replay, then a delivery
// of the same event to the same target), so nothing is folded into an
// earlier note: the command id alone makes a retried record one event.
func (d *decider) recordDelivery(b RecordNotification) Decision {
	switch {
	case b.Outcome != Delivered && b.Outcome != DeadLetter && b.Outcome != ReplayAsked:
		return d.refused(refuse(ReasonInvalid, "outcome must be delivered, dead_letter or replay, got %q", b.Outcome))
	case checkText("channel", b.Channel, 1, MaxFieldLen) != nil || checkText("ts", b.TS, 1, MaxFieldLen) != nil:
		return d.refused(refuse(ReasonInvalid, "channel (the target) and ts (the event id) are required, at most %d printable characters each", MaxFieldLen))
	case checkText("reason", b.Reason, 0, MaxReasonLen) != nil:
		return d.refused(refuse(ReasonInvalid, "reason is at most %d bytes of UTF-8", MaxReasonLen))
	case b.Attempts < 0 || b.Generation < 0:
		return d.refused(refuse(ReasonInvalid, "attempts and generation cannot be negative"))
	case b.Outcome != ReplayAsked && b.At.IsZero():
		return d.refused(refuse(ReasonInvalid, "a delivery outcome needs at, when it happened"))
	case b.Recipient != "" && principalKind(b.Recipient) == "":
		return d.refused(refuse(ReasonInvalid, "recipient %q is not a principal", b.Recipient))
	case principalKind(d.c.Actor) != KindService:
		return d.refused(refuse(ReasonForbidden, "only a service may record notifications, not %s", d.c.Actor))
	case d.s.Status == StatusNone:
		return d.refused(refuse(ReasonNotFound, "request %s does not exist", d.c.RequestID))
	}
	b.At = b.At.UTC()
	d.emit(d.c.Actor, NotificationRecorded(b))
	return d.done()
}

func (d *decider) expire() Decision {
	// The timer may fire late, early or twice; only a pending request whose
	// time is up changes.
	d.expiredByTime()
	return d.done()
}

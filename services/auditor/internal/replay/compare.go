package replay

import (
	"bytes"
	"fmt"
	"slices"
	"time"

	"github.com/assent-dev/assent/libs/approval"
)

// compare returns how the recorded event got differs from the event want
// that Decide emits, or "" when they are the same. It compares field by
// field (no reflection, no allocation when equal: it runs on every event)
// and skips only what the log cannot reproduce (see the package comment).
func compare(want, got approval.Event) string {
	if want.Body.EventType() != got.Body.EventType() {
		return fmt.Sprintf("Decide emits %s there, not %s", short(want.Body), short(got.Body))
	}
	switch {
	case want.Actor != got.Actor:
		return diff("actor", want.Actor, got.Actor)
	case want.CommandID != got.CommandID:
		return diff("commandid", want.CommandID, got.CommandID)
	case !want.Time.Equal(got.Time):
		return diff("time", want.Time.Format(time.RFC3339Nano), got.Time.Format(time.RFC3339Nano))
	case want.Sequence != got.Sequence:
		return diff("sequence", want.Sequence, got.Sequence)
	}
	switch w := want.Body.(type) {
	case approval.RequestSubmitted:
		return compareSubmitted(w, got.Body.(approval.RequestSubmitted))
	case approval.VoteRecorded:
		g := got.Body.(approval.VoteRecorded)
		switch {
		case w.Voter != g.Voter:
			return diff("voter", w.Voter, g.Voter)
		case w.Decision != g.Decision:
			return diff("decision", w.Decision, g.Decision)
		case w.Comment != g.Comment:
			return diff("comment", w.Comment, g.Comment)
		}
	case approval.RequestApproved:
		if g := got.Body.(approval.RequestApproved); !slices.Equal(w.Approvers, g.Approvers) {
			return diff("approvers", w.Approvers, g.Approvers)
		}
	case approval.RequestRejected:
		g := got.Body.(approval.RequestRejected)
		switch {
		case !slices.Equal(w.Rejecters, g.Rejecters):
			return diff("rejecters", w.Rejecters, g.Rejecters)
		case w.Comment != g.Comment:
			return diff("comment", w.Comment, g.Comment)
		}
	case approval.RequestExpired:
		if g := got.Body.(approval.RequestExpired); !w.ExpiresAt.Equal(g.ExpiresAt) {
			return diff("expires_at", w.ExpiresAt.Format(time.RFC3339Nano), g.ExpiresAt.Format(time.RFC3339Nano))
		}
	case approval.RequestCancelled:
		g := got.Body.(approval.RequestCancelled)
		switch {
		case w.By != g.By:
			return diff("by", w.By, g.By)
		case w.Reason != g.Reason:
			return diff("reason", w.Reason, g.Reason)
		}
	case approval.CommandRejected:
		// The detail is text for people; the code is the outcome.
		g := got.Body.(approval.CommandRejected)
		switch {
		case w.Code != g.Code:
			return fmt.Sprintf("Decide refuses it %s, the log says %s", w.Code, g.Code)
		case w.CommandID != g.CommandID:
			return diff("command_id", w.CommandID, g.CommandID)
		case w.CommandType != g.CommandType:
			return diff("command_type", w.CommandType, g.CommandType)
		}
	case approval.NotificationRecorded:
		g := got.Body.(approval.NotificationRecorded)
		if !w.At.Equal(g.At) {
			return diff("at", w.At.Format(time.RFC3339Nano), g.At.Format(time.RFC3339Nano))
		}
		w.At, g.At = time.Time{}, time.Time{}
		if w != g {
			return fmt.Sprintf("the notification differs: Decide records %+v, the log has %+v", w, g)
		}
	default:
		return fmt.Sprintf("an event of type %T, which Decide never emits", w)
	}
	return ""
}

// compareSubmitted compares a request.submitted, except its content_hash
// and the policy's hash: the submit's own TTL and the policy's match,
// which they hash, are not in the log.
func compareSubmitted(w, g approval.RequestSubmitted) string {
	wa, ga := w.Action, g.Action
	wp, gp := w.Policy, g.Policy
	switch {
	case wa.Type != ga.Type:
		return diff("action.type", wa.Type, ga.Type)
	case wa.Resource != ga.Resource:
		return diff("action.resource", wa.Resource, ga.Resource)
	case wa.Environment != ga.Environment:
		return diff("action.environment", wa.Environment, ga.Environment)
	case wa.Digest != ga.Digest:
		return diff("action.digest", wa.Digest, ga.Digest)
	case !bytes.Equal(wa.Details, ga.Details):
		return diff("action.details", string(wa.Details), string(ga.Details))
	case w.Reason != g.Reason:
		return diff("reason", w.Reason, g.Reason)
	case w.Requester != g.Requester:
		return diff("requester", w.Requester, g.Requester)
	case wp.Name != gp.Name:
		return diff("policy.name", wp.Name, gp.Name)
	case !slices.Equal(wp.Approvers, gp.Approvers):
		return diff("policy.approvers (sorted, without repeats)", wp.Approvers, gp.Approvers)
	case wp.MinApprovals != gp.MinApprovals:
		return diff("policy.min_approvals", wp.MinApprovals, gp.MinApprovals)
	case wp.RejectThreshold != gp.RejectThreshold:
		return diff("policy.reject_threshold", wp.RejectThreshold, gp.RejectThreshold)
	case wp.TTL != gp.TTL:
		return diff("policy.ttl", wp.TTL, gp.TTL)
	case !wp.ExpiresAt.Equal(gp.ExpiresAt):
		return diff("policy.expires_at (the time plus the TTL)", wp.ExpiresAt.Format(time.RFC3339Nano), gp.ExpiresAt.Format(time.RFC3339Nano))
	case !slices.EqualFunc(wp.Notify, gp.Notify, func(a, b approval.NotifyTarget) bool {
		return a.Kind == b.Kind && a.Target == b.Target && slices.Equal(a.Events, b.Events)
	}):
		return diff("policy.notify", wp.Notify, gp.Notify)
	}
	return ""
}

func diff(field string, want, got any) string {
	return fmt.Sprintf("%s is %v in the log, Decide emits %v", field, got, want)
}

// Package card renders what approvers see in Slack: the approval card, the
// requester's outcome message, the reject modal and the replies to a click.
// It is pure: a request's state in, Block Kit out, with the clock passed
// in.
//
// # Escaping and limits
//
// Everything a requester typed (resource, reason, details) is escaped for
// mrkdwn, so "<!channel>" or a fake link renders as text, and cut to
// Slack's limits (3,000 characters per text object, 150 per header, 2,000
// per button value), so a long SQL statement never makes chat.postMessage
// fail with invalid_blocks.
//
// # Metadata
//
// Every message carries message metadata of type "assent_request" naming
// the request and the kind of message. That is what lets a gateway that
// does not know whether its chat.postMessage went through find the message
// in conversations.history instead of posting it twice.
package card

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/slack-go/slack"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/slackport"
)

// The ids that Slack echoes back to the gateway are slackport's.
const (
	ActionApprove  = slackport.ActionApprove
	ActionReject   = slackport.ActionReject
	CallbackReject = slackport.CallbackReject
	ReasonBlock    = slackport.ReasonBlock
	ReasonAction   = slackport.ReasonAction
	// MetadataType is the message metadata event type of every message.
	MetadataType = "assent_request"
)

// The kinds of message, in the metadata.
const (
	KindCard    = "card"    // a channel or DM card with buttons
	KindOutcome = "outcome" // the DM telling the requester the outcome
)

// Slack's limits (https://api.slack.com/reference/block-kit/blocks).
const (
	maxText      = 3000
	maxHeader    = 150
	maxFieldText = 2000
	maxFallback  = 4000
	maxDetails   = 1500
)

// Message is a rendered message: blocks, the notification fallback text,
// and metadata.
type Message struct {
	Text     string
	Blocks   []slack.Block
	Metadata slack.SlackMetadata
}

// Options returns the chat.postMessage / chat.update options.
func (m Message) Options() []slack.MsgOption {
	return []slack.MsgOption{slack.MsgOptionText(m.Text, false), slack.MsgOptionBlocks(m.Blocks...), slack.MsgOptionMetadata(m.Metadata)}
}

// Metadata names the request and the kind of message.
func Metadata(requestID, kind string) slack.SlackMetadata {
	return slack.SlackMetadata{EventType: MetadataType, EventPayload: map[string]any{"request_id": requestID, "kind": kind}}
}

// Escape makes user text safe inside mrkdwn: &, < and > are the only
// characters Slack asks to escape, and escaping < is what stops mentions
// and links.
func Escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// Truncate cuts s to at most n characters (runes), marking the cut.
func Truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// Who shows a principal without its kind: "user:alice@example.com" →
// "alice@example.com", "service:billing" → "billing (service)".
func Who(principal string) string {
	kind, name, ok := strings.Cut(principal, ":")
	switch {
	case !ok:
		return principal
	case kind == "user":
		return name
	default:
		return name + " (" + kind + ")"
	}
}

func whoList(ps []string) string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = Who(p)
	}
	return strings.Join(out, ", ")
}

// slackDate renders a time in the reader's own time zone, with a UTC
// fallback for clients that cannot.
func slackDate(t time.Time) string {
	return fmt.Sprintf("<!date^%d^{date_short_pretty} {time}|%s>", t.Unix(), t.UTC().Format("2006-01-02 15:04 UTC"))
}

func mrkdwn(s string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.MarkdownType, Truncate(s, maxText), false, false)
}

func plain(s string, n int) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.PlainTextType, Truncate(s, n), false, false)
}

// Tally is "1 of 2 approvals: alice@example.com".
func Tally(st approval.State) string {
	var approvers, rejecters []string
	for _, v := range st.Votes {
		if v.Decision == approval.Approve {
			approvers = append(approvers, v.Voter)
		} else {
			rejecters = append(rejecters, v.Voter)
		}
	}
	s := fmt.Sprintf("%d of %d approvals", len(approvers), st.Policy.MinApprovals)
	if len(approvers) > 0 {
		s += ": " + whoList(approvers)
	}
	if len(rejecters) > 0 {
		s += fmt.Sprintf(" · %d rejection(s): %s", len(rejecters), whoList(rejecters))
	}
	return s
}

// Outcome is one line saying how a decided request ended, or "" while it is
// pending.
func Outcome(st approval.State) string {
	by := whoList(st.DecidedBy)
	at := slackDate(st.DecidedAt)
	switch st.Status {
	case approval.StatusApproved:
		return fmt.Sprintf(":white_check_mark: *Approved* by %s, %s", Escape(by), at)
	case approval.StatusRejected:
		s := fmt.Sprintf(":x: *Rejected* by %s, %s", Escape(by), at)
		for _, v := range st.Votes {
			if v.Decision == approval.Reject && v.Comment != "" {
				s += "\n>" + Escape(Truncate(strings.ReplaceAll(v.Comment, "\n", " "), 500))
				break
			}
		}
		return s
	case approval.StatusExpired:
		return fmt.Sprintf(":hourglass: *Expired* unanswered, %s", at)
	case approval.StatusCancelled:
		return fmt.Sprintf(":no_entry_sign: *Cancelled* by %s, %s", Escape(by), at)
	case approval.StatusPending, approval.StatusNone:
		return ""
	default:
		return ""
	}
}

// title is the header: "deploy payments/api in production".
func title(a approval.Action) string {
	return fmt.Sprintf("%s %s in %s", a.Type, a.Resource, a.Environment)
}

// Card renders the approval card for a request in its current state: the
// buttons while it is pending, the outcome once it is decided.
func Card(st approval.State) Message {
	a := st.Action
	head := "Approval needed: " + title(a)
	if st.Status.Terminal() {
		head = fmt.Sprintf("%s: %s", statusWord(st.Status), title(a))
	}
	blocks := []slack.Block{
		slack.NewHeaderBlock(plain(head, maxHeader)),
		slack.NewSectionBlock(nil, []*slack.TextBlockObject{
			mrkdwn("*Action*\n" + Escape(Truncate(a.Type, 200))),
			mrkdwn("*Environment*\n" + Escape(Truncate(a.Environment, 200))),
			mrkdwn("*Resource*\n" + Escape(Truncate(a.Resource, 500))),
			mrkdwn("*Requester*\n" + Escape(Who(st.Requester))),
			mrkdwn("*Policy*\n" + Escape(st.Policy.Name)),
			mrkdwn("*Expires*\n" + slackDate(st.Policy.ExpiresAt)),
		}, nil),
		slack.NewSectionBlock(mrkdwn("*Reason*\n"+Escape(Truncate(st.Reason, maxText-20))), nil, nil),
	}
	if d := details(a); d != "" {
		blocks = append(blocks, slack.NewSectionBlock(mrkdwn(d), nil, nil))
	}
	blocks = append(blocks, slack.NewContextBlock("tally", mrkdwn(Escape(Tally(st)))))
	if st.Status.Terminal() {
		blocks = append(blocks, slack.NewSectionBlock(mrkdwn(Outcome(st)), nil, nil))
	} else {
		approve := slack.NewButtonBlockElement(ActionApprove, Truncate(st.RequestID, maxFieldText), plain("Approve", 75)).
			WithStyle(slack.StylePrimary).
			WithConfirm(slack.NewConfirmationBlockObject(plain("Approve?", 100),
				mrkdwn("Approve "+Escape(Truncate(title(a), 250))+" for "+Escape(Who(st.Requester))+"?"),
				plain("Approve", 30), plain("Not yet", 30)))
		reject := slack.NewButtonBlockElement(ActionReject, Truncate(st.RequestID, maxFieldText), plain("Reject…", 75)).
			WithStyle(slack.StyleDanger).
			WithConfirm(slack.NewConfirmationBlockObject(plain("Reject?", 100),
				mrkdwn("You will be asked for a reason."), plain("Reject", 30), plain("Back", 30)))
		blocks = append(blocks, slack.NewActionBlock("decide", approve, reject))
	}
	text := fmt.Sprintf("%s, requested by %s: %s", head, Who(st.Requester), Tally(st))
	if st.Status.Terminal() {
		text = fmt.Sprintf("%s, requested by %s", head, Who(st.Requester))
	}
	return Message{Text: Truncate(text, maxFallback), Blocks: blocks, Metadata: Metadata(st.RequestID, KindCard)}
}

// details shows the action's details (a SQL statement, a diff summary) and
// digest as code, escaped, without a way to close the code block early.
func details(a approval.Action) string {
	var parts []string
	if len(a.Details) > 0 && string(a.Details) != "null" && string(a.Details) != "{}" {
		d := string(a.Details)
		var pretty any
		if json.Unmarshal(a.Details, &pretty) == nil {
			var b strings.Builder
			enc := json.NewEncoder(&b)
			enc.SetEscapeHTML(false) // Escape does it, for mrkdwn
			enc.SetIndent("", "  ")
			if enc.Encode(pretty) == nil {
				d = strings.TrimSuffix(b.String(), "\n")
			}
		}
		d = strings.ReplaceAll(Truncate(d, maxDetails), "```", "'''")
		parts = append(parts, "*Details*\n```"+Escape(d)+"```")
	}
	if a.Digest != "" {
		parts = append(parts, "*Digest* `"+Escape(strings.ReplaceAll(a.Digest, "`", "'"))+"`")
	}
	return strings.Join(parts, "\n")
}

func statusWord(s approval.Status) string {
	switch s {
	case approval.StatusApproved:
		return "Approved"
	case approval.StatusRejected:
		return "Rejected"
	case approval.StatusExpired:
		return "Expired"
	case approval.StatusCancelled:
		return "Cancelled"
	case approval.StatusPending, approval.StatusNone:
		return "Pending"
	default:
		return string(s)
	}
}

// OutcomeDM is the direct message to the requester once a request is
// decided.
func OutcomeDM(st approval.State) Message {
	line := Outcome(st)
	text := fmt.Sprintf("Your request %s: %s", title(st.Action), strings.ToLower(statusWord(st.Status)))
	return Message{
		Text: Truncate(text, maxFallback),
		Blocks: []slack.Block{
			slack.NewSectionBlock(mrkdwn("Your request *"+Escape(Truncate(title(st.Action), 500))+"*\n"+line), nil, nil),
			slack.NewContextBlock("request", mrkdwn("Request `"+Escape(st.RequestID)+"` · "+Escape(Tally(st)))),
		},
		Metadata: Metadata(st.RequestID, KindOutcome),
	}
}

// RejectMetadata travels in the reject modal's private_metadata.
type RejectMetadata = slackport.RejectMetadata

// RejectModal asks for the reason of a rejection.
func RejectModal(st approval.State, md RejectMetadata) slack.ModalViewRequest {
	b, _ := json.Marshal(md) // two strings
	input := slack.NewPlainTextInputBlockElement(plain("Why are you rejecting it?", 150), ReasonAction)
	input.Multiline = true
	input.MinLength = 1
	input.MaxLength = approval.MaxReasonLen
	return slack.ModalViewRequest{
		Type:            slack.VTModal,
		CallbackID:      CallbackReject,
		PrivateMetadata: string(b),
		Title:           plain("Reject request", 24),
		Submit:          plain("Reject", 24),
		Close:           plain("Cancel", 24),
		Blocks: slack.Blocks{BlockSet: []slack.Block{
			slack.NewSectionBlock(mrkdwn(rejectQuestion(st)), nil, nil),
			slack.NewInputBlock(ReasonBlock, plain("Reason", 150), nil, input),
		}},
	}
}

func rejectQuestion(st approval.State) string {
	if st.Status == approval.StatusNone {
		return "Reject this request?"
	}
	return "Reject *" + Escape(Truncate(title(st.Action), 500)) + "* requested by " + Escape(Who(st.Requester)) + "?"
}

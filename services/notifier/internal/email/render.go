// Package email renders a request's events as emails (a text part and an
// HTML part) and sends them over SMTP with STARTTLS and authentication,
// through go-mail: no MIME is built by hand here.
package email

import (
	"bytes"
	"fmt"
	htmltemplate "html/template"
	"net/url"
	"slices"
	"strings"
	texttemplate "text/template"
	"time"
	"unicode"

	"github.com/assent-dev/assent/libs/approval"
)

// Links are where a reader can see the request, when configured.
type Links struct {
	// Console is a URL template where {id} is replaced by the request id,
	// such as https://console.example.com/requests/{id}.
	Console string
	// API is the base URL of the HTTP API, such as https://assent.example.com.
	API string
}

// Message is a rendered email.
type Message struct {
	Subject string
	Text    string
	HTML    string
}

// view is what the templates see. Every string in it is the request's
// data as the log has it: html/template escapes it in the HTML part, and
// the text part is plain text.
type view struct {
	Headline  string
	Action    approval.Action
	Details   string
	Requester string
	Reason    string
	Approvers []string
	Needed    int
	Deadline  string
	Status    string
	Outcome   string
	Comment   string
	Votes     []string
	Console   string
	API       string
	RequestID string
	EventID   string
}

// maxLine bounds the one-line fields (the subject, the action's parts).
const maxLine = 200

// Render renders the email about an event of the request (whose current
// state is st).
func Render(st approval.State, eventType, eventID string, links Links) (Message, error) {
	v := view{
		Action:    st.Action,
		Requester: st.Requester,
		Reason:    st.Reason,
		Needed:    st.Policy.MinApprovals,
		Deadline:  st.Policy.ExpiresAt.UTC().Format(time.RFC1123),
		RequestID: st.RequestID,
		EventID:   eventID,
	}
	if len(st.Action.Details) > 0 {
		v.Details = string(st.Action.Details)
	}
	for _, a := range st.Policy.Approvers {
		if a != st.Requester {
			v.Approvers = append(v.Approvers, a)
		}
	}
	for _, vote := range st.Votes {
		line := fmt.Sprintf("%s: %s", vote.Voter, vote.Decision)
		if vote.Comment != "" {
			line += " (" + vote.Comment + ")"
		}
		v.Votes = append(v.Votes, line)
	}
	what := oneLine(fmt.Sprintf("%s %s in %s", st.Action.Type, st.Action.Resource, st.Action.Environment))
	switch eventType {
	case approval.TypeRequestSubmitted:
		v.Headline = "Approval needed: " + what
	case approval.TypeVoteRecorded:
		a, r := st.Tally()
		v.Headline = fmt.Sprintf("Vote on %s (%d of %d approvals, %d rejections)", what, a, st.Policy.MinApprovals, r)
	case approval.TypeRequestApproved, approval.TypeRequestRejected, approval.TypeRequestCancelled, approval.TypeRequestExpired:
		status := strings.TrimPrefix(eventType, "dev.assent.request.")
		v.Headline = strings.ToUpper(status[:1]) + status[1:] + ": " + what
		v.Status = status
		if len(st.DecidedBy) > 0 {
			v.Outcome = fmt.Sprintf("%s by %s at %s", status, strings.Join(st.DecidedBy, ", "), st.DecidedAt.UTC().Format(time.RFC1123))
		} else {
			v.Outcome = fmt.Sprintf("%s at %s", status, st.DecidedAt.UTC().Format(time.RFC1123))
		}
		if i := slices.IndexFunc(st.Votes, func(x approval.VoteView) bool { return x.Decision == approval.Reject }); i >= 0 && status == "rejected" {
			v.Comment = st.Votes[i].Comment
		}
	default:
		return Message{}, fmt.Errorf("email: no email for %s", eventType)
	}
	if links.Console != "" {
		v.Console = strings.ReplaceAll(links.Console, "{id}", url.PathEscape(st.RequestID))
	}
	if links.API != "" {
		v.API = strings.TrimRight(links.API, "/") + "/v1/requests/" + url.PathEscape(st.RequestID)
	}
	var text, html bytes.Buffer
	if err := textTmpl.Execute(&text, v); err != nil {
		return Message{}, fmt.Errorf("email: text: %w", err)
	}
	if err := htmlTmpl.Execute(&html, v); err != nil {
		return Message{}, fmt.Errorf("email: html: %w", err)
	}
	return Message{Subject: "[Assent] " + oneLine(v.Headline), Text: text.String(), HTML: html.String()}, nil
}

// oneLine makes a header-safe line: no CR, LF or other control
// characters (so no header can be injected, whatever go-mail does), at
// most maxLine runes.
func oneLine(s string) string {
	var b strings.Builder
	n := 0
	for _, r := range strings.ToValidUTF8(s, "?") {
		if n >= maxLine {
			b.WriteString("…")
			break
		}
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			r = ' '
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}

// indent lines after the first, so that a multi-line reason stays inside
// its field in the text part.
func indent(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\n            ")
}

var funcs = map[string]any{"oneLine": oneLine, "indent": indent}

var textTmpl = texttemplate.Must(texttemplate.New("text").Funcs(funcs).Parse(`{{.Headline | oneLine}}
{{if .Outcome}}
Outcome:    {{.Outcome | oneLine}}{{if .Comment}}
Comment:    {{.Comment | indent}}{{end}}
{{end}}
Action:     {{.Action.Type | oneLine}} {{.Action.Resource | oneLine}} in {{.Action.Environment | oneLine}}{{if .Action.Digest}}
Digest:     {{.Action.Digest | oneLine}}{{end}}{{if .Details}}
Details:    {{.Details | indent}}{{end}}
Requester:  {{.Requester}}
Reason:     {{.Reason | indent}}
Approvers:  {{range $i, $a := .Approvers}}{{if $i}}, {{end}}{{$a}}{{end}} ({{.Needed}} needed)
Deadline:   {{.Deadline}}{{if .Votes}}
Votes:{{range .Votes}}
  - {{.}}{{end}}{{end}}
{{if .Console}}
Open:       {{.Console}}{{end}}{{if .API}}
API:        {{.API}}{{end}}

Request {{.RequestID}}, event {{.EventID}}.
This message was sent by Assent; replies are not read.
`))

var htmlTmpl = htmltemplate.Must(htmltemplate.New("html").Funcs(funcs).Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{{.Headline | oneLine}}</title></head>
<body style="font-family: sans-serif">
<h2>{{.Headline | oneLine}}</h2>
{{if .Outcome}}<p><strong>Outcome:</strong> {{.Outcome}}</p>{{if .Comment}}<p><strong>Comment:</strong> {{.Comment}}</p>{{end}}{{end}}
<table cellpadding="4">
<tr><th align="left">Action</th><td>{{.Action.Type}} <code>{{.Action.Resource}}</code> in {{.Action.Environment}}</td></tr>
{{if .Action.Digest}}<tr><th align="left">Digest</th><td><code>{{.Action.Digest}}</code></td></tr>{{end}}
{{if .Details}}<tr><th align="left">Details</th><td><pre>{{.Details}}</pre></td></tr>{{end}}
<tr><th align="left">Requester</th><td>{{.Requester}}</td></tr>
<tr><th align="left">Reason</th><td style="white-space: pre-wrap">{{.Reason}}</td></tr>
<tr><th align="left">Approvers</th><td>{{range $i, $a := .Approvers}}{{if $i}}, {{end}}{{$a}}{{end}} ({{.Needed}} needed)</td></tr>
<tr><th align="left">Deadline</th><td>{{.Deadline}}</td></tr>
{{if .Votes}}<tr><th align="left">Votes</th><td><ul>{{range .Votes}}<li>{{.}}</li>{{end}}</ul></td></tr>{{end}}
</table>
{{if .Console}}<p><a href="{{.Console}}">Open the request</a></p>{{end}}
{{if .API}}<p>API: <a href="{{.API}}">{{.API}}</a></p>{{end}}
<p style="color: #666; font-size: small">Request {{.RequestID}}, event {{.EventID}}. This message was sent by Assent; replies are not read.</p>
</body></html>
`))

package email_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/services/notifier/internal/email"
)

// FuzzTemplates renders emails from hostile request text: the subject
// never carries a line break (no header can be injected), and the HTML
// part never carries markup from the request.
func FuzzTemplates(f *testing.F) {
	f.Add("deploy", "services/api", "production", "ship it", "user:dave@example.com", "https://c.example.com/{id}")
	f.Add("x\r\nBcc: a@b.c", "<img src=x onerror=alert(1)>", "prod\u2028Subject: hi", hostile, "user:<b>@x", "javascript:alert(1)")
	f.Fuzz(func(t *testing.T, typ, resource, env, reason, requester, console string) {
		st := state()
		st.Action = approval.Action{Type: typ, Resource: resource, Environment: env}
		st.Reason, st.Requester = reason, requester
		for _, et := range []string{approval.TypeRequestSubmitted, approval.TypeRequestApproved} {
			m, err := email.Render(st, et, "e-1", email.Links{Console: console})
			if err != nil {
				t.Fatal(err)
			}
			if strings.ContainsAny(m.Subject, "\r\n") || strings.ContainsRune(m.Subject, '\u2028') {
				t.Fatalf("subject %q has a line break", m.Subject)
			}
			if !utf8.ValidString(m.Subject) {
				t.Fatalf("subject %q is not UTF-8", m.Subject)
			}
			for _, s := range []string{typ, resource, env, reason, requester} {
				if strings.ContainsAny(s, "<>") && len(s) > 1 && strings.Contains(m.HTML, s) {
					t.Fatalf("HTML carries %q unescaped", s)
				}
			}
			if strings.Contains(m.HTML, "javascript:") && strings.Contains(m.HTML, `href="javascript:`) {
				t.Fatal("a javascript: link")
			}
		}
	})
}

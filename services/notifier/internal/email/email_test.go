package email_test

import (
	"bytes"
	"crypto/x509"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/services/notifier/internal/delivery"
	"github.com/assent-dev/assent/services/notifier/internal/email"
	"github.com/assent-dev/assent/services/notifier/internal/queue"
	"github.com/assent-dev/assent/test/notifyrig"
)

const hostile = "ship it\r\nBcc: victim@example.com\r\n\r\n<script>alert(1)</script><a href=\"https://evil.example\">click</a>"

func state() approval.State {
	at := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	return approval.State{
		RequestID: "r-1", Status: approval.StatusPending, Requester: "user:dave@example.com", Reason: hostile,
		Action: approval.Action{Type: "deploy", Resource: "services/payments\r\nX-Evil: 1", Environment: "production"},
		Policy: approval.PolicySnapshot{Approvers: []string{"user:alice@example.com", "user:bob@example.com", "user:dave@example.com"},
			MinApprovals: 1, ExpiresAt: at.Add(time.Hour)},
		CreatedAt: at,
	}
}

// parts parses a message the way a mail client does.
func parts(t *testing.T, raw []byte) (*mail.Message, map[string]string) {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	require.NoError(t, err)
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	require.NoError(t, err)
	require.Equal(t, "multipart/alternative", mt)
	out := map[string]string{}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		b, err := io.ReadAll(p) // multipart decodes quoted-printable
		require.NoError(t, err)
		out[ct] = string(b)
	}
	return msg, out
}

func TestSendOverSTARTTLSWithAuth(t *testing.T) {
	t.Parallel()
	cert, pem, err := notifyrig.Cert()
	require.NoError(t, err)
	srv, err := notifyrig.NewSMTPServer(cert, "notifier", "s3cret-password")
	require.NoError(t, err)
	defer srv.Close()
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(pem))
	host, port, _ := net.SplitHostPort(srv.Addr)
	p, _ := strconv.Atoi(port)
	cfg := email.Config{Host: host, Port: p, Username: "notifier", Password: "s3cret-password", From: "assent@example.com", Auth: "PLAIN",
		RootCAs: pool, Timeout: 5 * time.Second, Links: email.Links{Console: "https://console.example.com/requests/{id}", API: "https://assent.example.com"}}
	s := email.New(cfg)
	j := delivery.Job{Entry: queue.Entry{RequestID: "r-1", EventID: "e-1", EventType: approval.TypeRequestSubmitted, Kind: approval.NotifyEmail, Target: "alice@example.com"}, State: state()}

	res := s.Send(t.Context(), j)
	require.Equal(t, delivery.Delivered, res.Verdict, res.Reason)
	mails := srv.Mails()
	require.Len(t, mails, 1)
	require.True(t, mails[0].TLS, "the session switched to TLS before authenticating")
	require.Equal(t, "notifier", mails[0].User)
	require.Equal(t, []string{"alice@example.com"}, mails[0].To, "the hostile reason added no recipient")
	msg, body := parts(t, mails[0].Data)
	require.Empty(t, msg.Header.Get("Bcc"))
	require.Empty(t, msg.Header.Get("X-Evil"))
	dec := new(mime.WordDecoder)
	subject, err := dec.DecodeHeader(msg.Header.Get("Subject"))
	require.NoError(t, err)
	require.Equal(t, "[Assent] Approval needed: deploy services/payments  X-Evil: 1 in production", subject)
	require.Equal(t, "<e-1.", msg.Header.Get("Message-Id")[:5])

	text, html := body["text/plain"], body["text/html"]
	for _, want := range []string{"Requester:  user:dave@example.com", "user:alice@example.com, user:bob@example.com (1 needed)",
		"Sat, 21 Nov 2026 11:00:00 UTC", "https://console.example.com/requests/r-1", "https://assent.example.com/v1/requests/r-1", "<script>alert(1)</script>"} {
		require.Contains(t, text, want, "the text part is plain text")
	}
	require.NotContains(t, text, "user:dave@example.com, ", "the requester cannot approve")
	require.Contains(t, html, "&lt;script&gt;alert(1)&lt;/script&gt;")
	require.NotContains(t, html, "<script>")
	require.NotContains(t, html, `href="https://evil.example"`)
	require.Contains(t, html, `href="https://console.example.com/requests/r-1"`)

	t.Run("a refused recipient is permanent", func(t *testing.T) {
		srv.RejectRcpt("nobody@example.com")
		j := j
		j.Target = "nobody@example.com"
		res := s.Send(t.Context(), j)
		require.Equal(t, delivery.Permanent, res.Verdict, res.Reason)
		require.Contains(t, res.Reason, "550")
	})
	t.Run("a wrong password is retried, and never shown", func(t *testing.T) {
		bad := cfg
		bad.Password = "not-the-password"
		res := email.New(bad).Send(t.Context(), j)
		require.Equal(t, delivery.Retry, res.Verdict)
		require.NotContains(t, res.Reason, "not-the-password")
	})
	t.Run("an untrusted certificate is refused", func(t *testing.T) {
		untrusting := cfg
		untrusting.RootCAs = x509.NewCertPool()
		res := email.New(untrusting).Send(t.Context(), j)
		require.Equal(t, delivery.Retry, res.Verdict)
		require.Len(t, srv.Mails(), 1, "nothing was sent without a verified TLS session")
	})
}

func TestRenderEveryEvent(t *testing.T) {
	t.Parallel()
	st := state()
	st.Status, st.DecidedBy, st.DecidedAt = approval.StatusRejected, []string{"user:bob@example.com"}, st.CreatedAt.Add(time.Minute)
	st.Votes = []approval.VoteView{{Voter: "user:bob@example.com", Decision: approval.Reject, Comment: "<b>not now</b>"}}
	for _, typ := range []string{approval.TypeRequestSubmitted, approval.TypeVoteRecorded, approval.TypeRequestApproved,
		approval.TypeRequestRejected, approval.TypeRequestExpired, approval.TypeRequestCancelled} {
		m, err := email.Render(st, typ, "e-1", email.Links{})
		require.NoError(t, err, typ)
		require.NotContains(t, m.Subject, "\n")
		require.NotContains(t, m.HTML, "<b>not now</b>")
		require.NotContains(t, m.Text, "Open:", "no link without a console")
	}
	m, err := email.Render(st, approval.TypeRequestRejected, "e-1", email.Links{})
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(m.Subject, "[Assent] Rejected: deploy"), m.Subject)
	require.Contains(t, m.Text, "rejected by user:bob@example.com")
	require.Contains(t, m.HTML, "&lt;b&gt;not now&lt;/b&gt;")
	_, err = email.Render(st, approval.TypeCommandRejected, "e-1", email.Links{})
	require.Error(t, err)
}

package email

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	mail "github.com/wneessen/go-mail"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/services/notifier/internal/delivery"
)

// Config configures the SMTP sender.
type Config struct {
	Host     string
	Port     int
	Username string
	Password string // never logged
	From     string
	// Auth is the SASL mechanism: PLAIN, LOGIN, CRAM-MD5, SCRAM-SHA-256, ...
	// or AUTODISCOVER (the strongest the server offers).
	Auth    string
	RootCAs *x509.CertPool // nil: the system's
	Timeout time.Duration
	Links   Links
	// Domain names the Message-ID's right-hand side.
	Domain string
}

// Sender sends emails. Every message is one SMTP session: STARTTLS is
// required (a server that does not offer it is refused), the certificate
// is verified, and the session authenticates before sending.
type Sender struct{ cfg Config }

// New returns a Sender.
func New(cfg Config) *Sender {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Auth == "" {
		cfg.Auth = string(mail.SMTPAuthAutoDiscover)
	}
	if cfg.Domain == "" {
		cfg.Domain = "assent.invalid"
	}
	return &Sender{cfg: cfg}
}

// MessageID is the same for every attempt at one delivery, so that a mail
// client shows a duplicate (after an attempt whose outcome was unknown)
// as one message.
func MessageID(j delivery.Job, domain string) string {
	sum := sha256.Sum256([]byte(j.Target))
	return fmt.Sprintf("%s.%s.%d@%s", j.EventID, hex.EncodeToString(sum[:6]), j.Generation, domain)
}

// Build renders the job into a message.
func (s *Sender) Build(j delivery.Job) (*mail.Msg, error) {
	m, err := Render(j.State, j.EventType, j.EventID, s.cfg.Links)
	if err != nil {
		return nil, err
	}
	msg := mail.NewMsg()
	if err := msg.From(s.cfg.From); err != nil {
		return nil, fmt.Errorf("email: from: %w", err)
	}
	if err := msg.To(j.Target); err != nil {
		return nil, fmt.Errorf("email: to: %w", err)
	}
	msg.Subject(m.Subject)
	msg.SetMessageIDWithValue(MessageID(j, s.cfg.Domain))
	msg.SetDateWithValue(time.Now())
	msg.SetGenHeader(mail.HeaderXMailer, "assent-notifier")
	msg.SetGenHeader("Auto-Submitted", "auto-generated")
	msg.SetGenHeader("X-Assent-Request", oneLine(j.RequestID))
	msg.SetGenHeader("X-Assent-Event", oneLine(j.EventID))
	msg.SetBodyString(mail.TypeTextPlain, m.Text)
	msg.AddAlternativeString(mail.TypeTextHTML, m.HTML)
	return msg, nil
}

// Send makes one attempt.
func (s *Sender) Send(ctx context.Context, j delivery.Job) delivery.Result {
	if s.cfg.Host == "" {
		return delivery.Result{Verdict: delivery.Permanent, Reason: "no SMTP server is configured (ASSENT_NOTIFIER_SMTP_HOST)"}
	}
	msg, err := s.Build(j)
	if err != nil {
		return delivery.Result{Verdict: delivery.Permanent, Reason: err.Error()}
	}
	c, err := mail.NewClient(s.cfg.Host,
		mail.WithPort(s.cfg.Port),
		mail.WithTLSPolicy(mail.TLSMandatory),
		mail.WithTLSConfig(&tls.Config{ServerName: s.cfg.Host, RootCAs: s.cfg.RootCAs, MinVersion: tls.VersionTLS12}),
		mail.WithSMTPAuth(mail.SMTPAuthType(s.cfg.Auth)),
		mail.WithUsername(s.cfg.Username),
		mail.WithPassword(s.cfg.Password),
		mail.WithTimeout(s.cfg.Timeout),
		mail.WithHELO(s.cfg.Domain),
	)
	if err != nil {
		return delivery.Result{Verdict: delivery.Permanent, Reason: "SMTP settings: " + err.Error()}
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	if err := c.DialAndSendWithContext(ctx, msg); err != nil {
		return classify(ctx, err)
	}
	return delivery.Result{Verdict: delivery.Delivered, Status: 250}
}

// classify sorts an SMTP failure: a 5xx answer to the recipient or the
// message is permanent; a 4xx, a connection or TLS failure and a timeout
// are retried. A timeout after the message was handed over is an unknown
// outcome, whose retry carries the same Message-ID.
func classify(ctx context.Context, err error) delivery.Result {
	r := delivery.Result{Verdict: delivery.Retry, Reason: reasonOf(err)}
	var se *mail.SendError
	var nerr net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil || (errors.As(err, &nerr) && nerr.Timeout()):
		r.TimedOut = true
		r.Reason = "timed out talking to the SMTP server"
	case errors.As(err, &se):
		r.Status = se.ErrorCode()
		if !se.IsTemp() && (se.Reason == mail.ErrSMTPRcptTo || se.Reason == mail.ErrSMTPData || se.Reason == mail.ErrSMTPMailFrom || se.Reason == mail.ErrSMTPDataClose) && r.Status >= 500 {
			r.Verdict = delivery.Permanent
		}
	}
	return r
}

// reasonOf keeps an error's text printable and bounded; go-mail's errors
// name the server's answer, never the password.
func reasonOf(err error) string {
	s := oneLine(err.Error())
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return "SMTP: " + strings.TrimSpace(s)
}

// Kind is what this sender delivers.
const Kind = approval.NotifyEmail

package service_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/mail"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/codec"
	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/schemas"
	"github.com/assent-dev/assent/test/kafkatest"
	"github.com/assent-dev/assent/test/notifyrig"
	"github.com/assent-dev/assent/test/systest"
)

// The secrets of the receivers; "ok" is in the middle of a rotation: the
// notifier signs with both, the receiver still knows only the old one.
const (
	secretNew = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD" //nolint:gosec // a test key
	secretOld = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" //nolint:gosec // the specification's example key
	adminTok  = "integration-admin-token-0123456789"
	horizon   = 40 * time.Second
)

var receiverNames = []string{"ok", "flaky", "dead", "storm", "slow", "fast", "hold", "outage"}

type notifyRig struct {
	kafka     eventlog.Config
	topics    eventlog.TopicSpec
	rx        map[string]*notifyrig.Receiver
	smtp      *notifyrig.SMTPServer
	notifiers []*systest.Proc
	decider   *systest.Proc
}

func newNotifyRig(t *testing.T) *notifyRig {
	topics := kafkatest.NewTopics(t, 12)
	brokers := kafkatest.Brokers(t)
	bin := systest.Build(t, "decider", "notifier")
	dir := t.TempDir()
	cert, pem, err := notifyrig.Cert()
	require.NoError(t, err)
	r := &notifyRig{kafka: kafkatest.Config(t, ""), topics: topics, rx: map[string]*notifyrig.Receiver{}}
	var secrets, policies strings.Builder
	policies.WriteString("version: 1\npolicies:\n")
	for _, name := range receiverNames {
		secret := secretNew
		if name == "ok" {
			secret = secretOld
		}
		rx, err := notifyrig.NewReceiver(cert, secret, "/hook/"+name)
		require.NoError(t, err)
		t.Cleanup(rx.Close)
		r.rx[name] = rx
		if name == "ok" {
			_, _ = fmt.Fprintf(&secrets, "%s: [%s, %s]\n", rx.URL, secretNew, secretOld)
		} else {
			_, _ = fmt.Fprintf(&secrets, "%s: %s\n", rx.URL, secretNew)
		}
		if name == "fast" {
			continue // it shares slow's policy
		}
		_, _ = fmt.Fprintf(&policies, "  - name: %s\n    match: {action: [deploy], environment: [production], resource: \"%s/**\"}\n", name, name)
		policies.WriteString("    approvers: {users: [alice@example.com, bob@example.com]}\n    min_approvals: 1\n    ttl: 1h\n    notify:\n")
		_, _ = fmt.Fprintf(&policies, "      - webhook: %s\n", rx.URL)
		switch name {
		case "ok":
			policies.WriteString("      - email: approvers\n      - email: requester\n")
		case "slow":
			_, _ = fmt.Fprintf(&policies, "      - webhook: %s/hook/fast\n", "https://"+strings.TrimPrefix(strings.TrimSuffix(rx.URL, "/hook/slow"), "https://"))
		}
	}
	// fast listens on its own port: point slow's second target at it.
	pol := strings.Replace(policies.String(), strings.TrimSuffix(r.rx["slow"].URL, "/hook/slow")+"/hook/fast", r.rx["fast"].URL, 1)
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
		return p
	}
	r.smtp, err = notifyrig.NewSMTPServer(cert, "notifier", "smtp-password-never-logged")
	require.NoError(t, err)
	t.Cleanup(r.smtp.Close)
	smtpHost, smtpPort, _ := net.SplitHostPort(r.smtp.Addr)

	common := []string{
		"ASSENT_KAFKA_BROKERS=" + strings.Join(brokers, ","),
		"ASSENT_COMMANDS_TOPIC=" + topics.Commands,
		"ASSENT_EVENTS_TOPIC=" + topics.Events,
		"ASSENT_PARTITIONS=12",
	}
	r.decider = systest.NewProc(t, bin+"/decider", "decider", append(slices.Clone(common),
		"ASSENT_DECIDER_GROUP=dec-"+topics.Commands,
		"ASSENT_INSTANCE_ID=decider-"+topics.Commands,
		"ASSENT_POLICY_FILE="+write("policy.yaml", pol))...)
	env := append(slices.Clone(common),
		"ASSENT_NOTIFIER_GROUP=ntf-"+topics.Events,
		"ASSENT_NOTIFIER_SECRETS_FILE="+write("secrets.yaml", secrets.String()),
		"ASSENT_NOTIFIER_CA_FILE="+write("ca.pem", string(pem)),
		"ASSENT_NOTIFIER_ALLOW_NETS=127.0.0.0/8",
		"ASSENT_NOTIFIER_HORIZON="+horizon.String(),
		"ASSENT_NOTIFIER_RETRY_BASE=200ms",
		"ASSENT_NOTIFIER_RETRY_MAX=2s",
		"ASSENT_NOTIFIER_HTTP_TIMEOUT=2s",
		"ASSENT_NOTIFIER_SMTP_HOST="+smtpHost,
		"ASSENT_NOTIFIER_SMTP_PORT="+smtpPort,
		"ASSENT_NOTIFIER_SMTP_USERNAME=notifier",
		"ASSENT_NOTIFIER_SMTP_PASSWORD_FILE="+write("smtp-password", "smtp-password-never-logged\n"),
		"ASSENT_NOTIFIER_SMTP_FROM=assent@example.com",
		"ASSENT_NOTIFIER_CONSOLE_URL=https://console.example.com/requests/{id}",
		"ASSENT_NOTIFIER_ADMIN_TOKEN_FILE="+write("admin-token", adminTok),
	)
	for _, name := range []string{"n1", "n2"} {
		r.notifiers = append(r.notifiers, systest.NewProc(t, bin+"/notifier", name, env...))
	}
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	for _, p := range append([]*systest.Proc{r.decider}, r.notifiers...) {
		p.Start()
	}
	for _, p := range append([]*systest.Proc{r.decider}, r.notifiers...) {
		require.NoError(t, p.WaitReady(ctx))
	}
	return r
}

// send puts a command in the commands topic, as any client could.
func (r *notifyRig) send(t *testing.T, rid, actor string, body approval.CommandBody) {
	t.Helper()
	cl, err := eventlog.NewClient(r.kafka)
	require.NoError(t, err)
	defer cl.Close()
	env, err := codec.CommandEnvelope(approval.Command{ID: wire.NewID(time.Now()), RequestID: rid, Actor: actor, Time: time.Now().UTC(), Body: body}, "assent/test")
	require.NoError(t, err)
	env = systest.SignCommand(t, systest.ServiceAPI, env) // the api's key may name anyone
	require.NoError(t, eventlog.Produce(t.Context(), cl, r.topics.Commands, env))
}

const reasonHostile = "release <b>42</b>\r\nBcc: mallory@example.com"

func (r *notifyRig) submit(t *testing.T, resource string) string {
	t.Helper()
	rid := wire.NewID(time.Now())
	r.send(t, rid, "user:dave@example.com", approval.Submit{
		Action: approval.Action{Type: "deploy", Resource: resource, Environment: "production"}, Reason: reasonHostile})
	return rid
}

func (r *notifyRig) approve(t *testing.T, rid string) {
	t.Helper()
	r.send(t, rid, "user:alice@example.com", approval.Vote{Decision: approval.Approve})
}

// log reads the events topic and folds each request.
func (r *notifyRig) states(t *testing.T) map[string]approval.State {
	t.Helper()
	log, err := systest.ReadLog(t.Context(), r.kafka, r.topics.Events)
	require.NoError(t, err)
	evs := map[string][]approval.Event{}
	for _, rec := range log {
		if rec.Envelope.Subject != "" && rec.Err == nil {
			evs[rec.Envelope.Subject] = append(evs[rec.Envelope.Subject], rec.Event)
		}
	}
	out := map[string]approval.State{}
	for rid, e := range evs {
		out[rid] = approval.Fold(e)
	}
	return out
}

// notes returns the request's delivery notes to a target.
func notes(st approval.State, target string) []approval.NotificationRecorded {
	var out []approval.NotificationRecorded
	for _, n := range st.Notes {
		if n.Kind.Delivery() && n.Channel == target {
			out = append(out, n)
		}
	}
	return out
}

func eventuallyT(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting until %s", limit, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// accepted returns the types accepted by a receiver for a request, in
// the order it accepted them.
func accepted(rx *notifyrig.Receiver, rid string) []string {
	var out []string
	for _, d := range rx.Accepted() {
		if d.Subject == rid {
			out = append(out, strings.TrimPrefix(d.Type, "dev.assent.request."))
		}
	}
	return out
}

func metricOf(t *testing.T, p *systest.Proc, series string) float64 {
	t.Helper()
	resp, err := http.Get(p.URL() + "/metrics")
	if err != nil {
		return 0 // a killed replica
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` ([0-9.e+]+)$`).FindSubmatch(b)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

func (r *notifyRig) metricSum(t *testing.T, series string) float64 {
	var sum float64
	for _, p := range r.notifiers {
		sum += metricOf(t, p, series)
	}
	return sum
}

// TestIntegrationNotifier runs a decider and two notifier processes on
// the real Kafka cluster, delivering to real HTTPS receivers that verify
// signatures and to a real SMTP server, through failures.
func TestIntegrationNotifier(t *testing.T) {
	r := newNotifyRig(t)

	t.Run("kill -9 of the notifier in the middle of a delivery", func(t *testing.T) {
		rx := r.rx["hold"]
		rx.Hold(1)
		rid := r.submit(t, "hold/app")
		eventuallyT(t, 60*time.Second, "a notifier is delivering and the receiver holds it", func() bool { return rx.Held() == 1 })
		victim := slices.IndexFunc(r.notifiers, func(p *systest.Proc) bool {
			return metricOf(t, p, "assent_notifier_pending_deliveries") > 0
		})
		require.GreaterOrEqual(t, victim, 0, "the replica delivering shows it pending")
		began := time.Now()
		r.notifiers[victim].Kill()
		// The receiver notices that the sender went away before it could
		// answer: the killed replica never saw an answer.
		eventuallyT(t, 30*time.Second, "the held request's connection is gone", func() bool { return rx.Held() == 0 })
		rx.Release()
		eventuallyT(t, 60*time.Second, "the other replica takes the delivery over", func() bool { return len(accepted(rx, rid)) == 1 })
		took := time.Since(began)
		eventuallyT(t, 30*time.Second, "the delivery is recorded", func() bool {
			ns := notes(r.states(t)[rid], rx.URL)
			return len(ns) == 1 && ns[0].Outcome == approval.Delivered
		})
		acc, rec := rx.Duplicates()
		require.Equal(t, 0, acc, "the receiver accepted the event once")
		require.Equal(t, 1, rec, "it saw a second copy: the retry of the attempt the killed replica never saw answered")
		ds := rx.Deliveries()
		require.Equal(t, ds[0].ID, ds[1].ID, "the retry carries the same webhook-id")
		require.False(t, ds[0].Answered)
		t.Logf("kill -9 during a delivery: taken over and delivered %s after the kill; per receiver: %d duplicate accepted, %d copy received again (same webhook-id %s)",
			took.Round(time.Millisecond), acc, rec, ds[0].ID)

		r.notifiers[victim].Start()
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		defer cancel()
		require.NoError(t, r.notifiers[victim].WaitReady(ctx))
	})

	// The dead receiver is down from now to the end: its delivery ends in
	// the dead letter when the horizon passes, while the rest goes on.
	r.rx["dead"].Down()
	deadRID := r.submit(t, "dead/app")
	deadSince := time.Now()

	t.Run("every target gets every event, in order, recorded in the log", func(t *testing.T) {
		var rids []string
		for i := range 5 {
			rid := r.submit(t, fmt.Sprintf("ok/app-%d", i))
			rids = append(rids, rid)
		}
		for _, rid := range rids {
			r.approve(t, rid)
		}
		rx := r.rx["ok"]
		for _, rid := range rids {
			eventuallyT(t, 60*time.Second, "the webhook gets the submission and the approval", func() bool { return len(accepted(rx, rid)) == 2 })
			require.Equal(t, []string{"submitted", "approved"}, accepted(rx, rid))
		}
		require.Empty(t, rx.BadSignatures(), "every signature verified with the old key during the rotation")
		acc, _ := rx.Duplicates()
		require.Zero(t, acc)

		// Email: the approvers get the submission and the outcome, the
		// requester only the outcome.
		want := map[string]int{"alice@example.com": 10, "bob@example.com": 10, "dave@example.com": 5}
		eventuallyT(t, 60*time.Second, "every email is sent", func() bool {
			got := map[string]int{}
			for _, m := range r.smtp.Mails() {
				got[m.To[0]]++
			}
			return got["alice@example.com"] >= 10 && got["bob@example.com"] >= 10 && got["dave@example.com"] >= 5
		})
		// A mail counts once per Message-ID: the notifier gives every
		// attempt at one delivery the same one, so a second copy is the
		// retry of an attempt whose outcome it never learned (a send
		// that timed out after the server had the message), the only
		// duplicate allowed; a second delivery would have a new id.
		got, ids, retried := map[string]int{}, map[string]bool{}, 0
		for _, m := range r.smtp.Mails() {
			require.True(t, m.TLS)
			require.Len(t, m.To, 1, "the hostile reason added no recipient")
			msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
			require.NoError(t, err)
			id := msg.Header.Get("Message-Id")
			require.NotEmpty(t, id, "every mail has a Message-ID")
			key := m.To[0] + " " + id
			if ids[key] {
				retried++
				continue
			}
			ids[key] = true
			got[m.To[0]]++
			require.Empty(t, msg.Header.Get("Bcc"), "the hostile reason added no header")
			_, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
			require.NoError(t, err)
			mr := multipart.NewReader(msg.Body, params["boundary"])
			var kinds []string
			for {
				part, err := mr.NextPart()
				if errors.Is(err, io.EOF) {
					break
				}
				require.NoError(t, err)
				b, err := io.ReadAll(part)
				require.NoError(t, err)
				ct, _, _ := mime.ParseMediaType(part.Header.Get("Content-Type"))
				kinds = append(kinds, ct)
				if ct == "text/html" {
					require.Contains(t, string(b), "release &lt;b&gt;42&lt;/b&gt;")
					require.NotContains(t, string(b), "<b>42</b>", "no markup from the reason")
				} else {
					require.Contains(t, string(b), "Reason:     release <b>42</b>", "plain text as written")
				}
			}
			require.Equal(t, []string{"text/plain", "text/html"}, kinds)
		}
		require.Equal(t, want, got, "one mail per recipient per event (by Message-ID)")
		t.Logf("email: %d copies received again, each with the Message-ID of a mail already received", retried)

		eventuallyT(t, 30*time.Second, "every outcome is in the log", func() bool {
			sts := r.states(t)
			for _, rid := range rids {
				st := sts[rid]
				if len(notes(st, rx.URL)) != 2 || len(notes(st, "alice@example.com")) != 2 || len(notes(st, "dave@example.com")) != 1 {
					return false
				}
			}
			return true
		})
		sts := r.states(t)
		for _, rid := range rids {
			for _, n := range notes(sts[rid], rx.URL) {
				require.Equal(t, approval.Delivered, n.Outcome)
				require.False(t, n.At.IsZero())
				require.GreaterOrEqual(t, n.Attempts, 1)
			}
			require.Equal(t, "user:alice@example.com", notes(sts[rid], "alice@example.com")[0].Recipient)
		}
	})

	t.Run("a receiver that fails five times, then recovers", func(t *testing.T) {
		rx := r.rx["flaky"]
		rx.FailNext(5, http.StatusServiceUnavailable)
		rid := r.submit(t, "flaky/app")
		r.approve(t, rid)
		eventuallyT(t, 60*time.Second, "both events are delivered", func() bool { return len(accepted(rx, rid)) == 2 })
		require.Equal(t, []string{"submitted", "approved"}, accepted(rx, rid), "the approval waited for the submission")
		require.Len(t, rx.Deliveries(), 7, "five failures, then the two events")
		eventuallyT(t, 30*time.Second, "recorded", func() bool { return len(notes(r.states(t)[rid], rx.URL)) == 2 })
		first := notes(r.states(t)[rid], rx.URL)[0]
		require.Equal(t, 6, first.Attempts, "the submission took six attempts")
	})

	t.Run("a storm of 429s is waited out", func(t *testing.T) {
		rx := r.rx["storm"]
		before := r.metricSum(t, `assent_notifier_attempts_total{kind="webhook",result="rate_limited"}`)
		rx.LimitNext(6, "1")
		var rids []string
		for i := range 3 {
			rid := r.submit(t, fmt.Sprintf("storm/app-%d", i))
			rids = append(rids, rid)
			r.approve(t, rid)
		}
		for _, rid := range rids {
			eventuallyT(t, 60*time.Second, "delivered after the storm", func() bool { return len(accepted(rx, rid)) == 2 })
			require.Equal(t, []string{"submitted", "approved"}, accepted(rx, rid))
		}
		require.Equal(t, 6.0, r.metricSum(t, `assent_notifier_attempts_total{kind="webhook",result="rate_limited"}`)-before, "every 429 was seen")
		acc, _ := rx.Duplicates()
		require.Zero(t, acc)
	})

	t.Run("a slow receiver delays nobody else, and a timed-out delivery is retried with its id", func(t *testing.T) {
		slow, fast := r.rx["slow"], r.rx["fast"]
		slow.Delay(3 * time.Second) // longer than the 2s timeout
		rid := r.submit(t, "slow/app")
		eventuallyT(t, 30*time.Second, "the fast receiver has it", func() bool { return len(accepted(fast, rid)) == 1 })
		require.Empty(t, accepted(slow, rid), "the fast one did not wait for the slow one")
		eventuallyT(t, 30*time.Second, "the slow receiver got it and timed out", func() bool { return len(slow.Deliveries()) >= 1 })
		slow.Delay(500 * time.Millisecond) // slow, but in time now
		eventuallyT(t, 30*time.Second, "the slow receiver accepts a retry", func() bool { return len(accepted(slow, rid)) == 1 })
		acc, rec := slow.Duplicates()
		require.Zero(t, acc)
		require.GreaterOrEqual(t, rec, 1, "the timed-out attempt was sent again")
		for _, d := range slow.Deliveries() {
			require.Equal(t, slow.Deliveries()[0].ID, d.ID, "every retry carries the same webhook-id")
		}
		require.GreaterOrEqual(t, r.metricSum(t, `assent_notifier_attempts_total{kind="webhook",result="timeout"}`), 1.0)
	})

	t.Run("a receiver down for a while gets everything, in order, once back", func(t *testing.T) {
		rx := r.rx["outage"]
		rx.Down()
		var rids []string
		for i := range 10 {
			rid := r.submit(t, fmt.Sprintf("outage/app-%d", i))
			rids = append(rids, rid)
			r.approve(t, rid)
		}
		outage := 15 * time.Second
		time.Sleep(outage) // the outage itself, not a wait for an outcome
		require.NoError(t, rx.Up())
		back := time.Now()
		eventuallyT(t, 30*time.Second, "everything is delivered", func() bool {
			for _, rid := range rids {
				if len(accepted(rx, rid)) != 2 {
					return false
				}
			}
			return true
		})
		drain := time.Since(back)
		for _, rid := range rids {
			require.Equal(t, []string{"submitted", "approved"}, accepted(rx, rid))
		}
		acc, _ := rx.Duplicates()
		require.Zero(t, acc)
		t.Logf("after a %s outage, %d deliveries drained %s after the receiver came back", outage, 2*len(rids), drain.Round(time.Millisecond))
	})

	t.Run("a receiver down for the whole test ends in the dead letter, and a replay delivers it", func(t *testing.T) {
		rx := r.rx["dead"]
		eventuallyT(t, horizon+60*time.Second-time.Since(deadSince), "the dead letter is recorded", func() bool {
			return len(r.states(t)[deadRID].DeadLetters()) == 1
		})
		dl := r.states(t)[deadRID].DeadLetters()[0]
		require.Equal(t, approval.NotifyWebhook, dl.Kind)
		require.Equal(t, rx.URL, dl.Channel)
		require.Contains(t, dl.Reason, "retry horizon")
		require.GreaterOrEqual(t, time.Since(deadSince), horizon)

		// Replay it, once the receiver is back.
		require.NoError(t, rx.Up())
		body, _ := json.Marshal(map[string]string{"request": deadRID, "event": dl.TS, "target": rx.URL, "reason": "ops@example.com: the receiver is fixed"})
		req, err := http.NewRequest(http.MethodPost, r.notifiers[0].URL()+"/v1/replays", bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer wrong-token-wrong-token")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_ = resp.Body.Close()
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		req, err = http.NewRequest(http.MethodPost, r.notifiers[0].URL()+"/v1/replays", bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+adminTok)
		resp, err = http.DefaultClient.Do(req)
		require.NoError(t, err)
		_ = resp.Body.Close()
		require.Equal(t, http.StatusAccepted, resp.StatusCode)
		eventuallyT(t, 60*time.Second, "the replay is delivered", func() bool { return len(accepted(rx, deadRID)) == 1 })
		eventuallyT(t, 30*time.Second, "and recorded", func() bool {
			ns := notes(r.states(t)[deadRID], rx.URL)
			return len(ns) == 3 && ns[1].Outcome == approval.ReplayAsked && ns[2].Outcome == approval.Delivered && ns[2].Generation == 1
		})
		require.Empty(t, r.states(t)[deadRID].DeadLetters())
	})

	t.Run("every command the notifiers wrote is valid and none was refused", func(t *testing.T) {
		v, err := schemas.NewValidator()
		require.NoError(t, err)
		cmds, err := systest.ReadLog(t.Context(), r.kafka, r.topics.Commands)
		require.NoError(t, err)
		n := 0
		for _, rec := range cmds {
			if rec.Envelope.Source == "assent/notifier" {
				n++
				require.NoError(t, v.Validate(rec.Value))
			}
		}
		require.Positive(t, n)
		for rid, st := range r.states(t) {
			for id, o := range st.Outcomes {
				require.Empty(t, o.Code, "command %s of %s was refused: %s", id, rid, o.Detail)
			}
		}
		for _, p := range r.notifiers {
			logs, err := os.ReadFile(p.Log)
			require.NoError(t, err)
			require.NotContains(t, string(logs), "smtp-password-never-logged")
			require.NotContains(t, string(logs), strings.TrimPrefix(secretNew, "whsec_"))
			require.NotContains(t, string(logs), adminTok)
		}
	})
}

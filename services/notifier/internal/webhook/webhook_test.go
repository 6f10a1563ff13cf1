package webhook_test

import (
	"context"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/services/notifier/internal/delivery"
	"github.com/assent-dev/assent/services/notifier/internal/queue"
	"github.com/assent-dev/assent/services/notifier/internal/webhook"
	"github.com/assent-dev/assent/test/notifyrig"
)

// The example of the Standard Webhooks specification: its secret, id,
// timestamp and payload give this signature.
func TestSignMatchesTheSpecificationsExample(t *testing.T) {
	t.Parallel()
	sec, err := webhook.ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	require.NoError(t, err)
	got := webhook.Sign([]webhook.Secret{sec}, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, []byte(`{"test": 2432232314}`))
	require.Equal(t, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", got)
}

func TestRotationSignsWithEverySecret(t *testing.T) {
	t.Parallel()
	oldS, newS := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
	a, err := webhook.ParseSecret(newS)
	require.NoError(t, err)
	b, err := webhook.ParseSecret(oldS)
	require.NoError(t, err)
	now := time.Now()
	body := []byte(`{"x":1}`)
	h := http.Header{}
	h.Set("webhook-id", "e-1")
	h.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
	h.Set("webhook-signature", webhook.Sign([]webhook.Secret{a, b}, "e-1", now.Unix(), body))
	require.Len(t, strings.Fields(h.Get("webhook-signature")), 2)
	// A receiver holding either key verifies; one holding neither does not.
	require.NoError(t, notifyrig.Verify(oldS, h, body, now, time.Minute))
	require.NoError(t, notifyrig.Verify(newS, h, body, now, time.Minute))
	require.Error(t, notifyrig.Verify("whsec_dGhpcyBpcyBub3QgdGhlIGtleSBhdCBhbGwsIG5vLg==", h, body, now, time.Minute))
	require.Error(t, notifyrig.Verify(oldS, h, []byte(`{"x":2}`), now, time.Minute), "a changed body")
	require.Error(t, notifyrig.Verify(oldS, h, body, now.Add(10*time.Minute), 5*time.Minute), "a stale timestamp")
}

func TestSecretsNeverShowTheKey(t *testing.T) {
	t.Parallel()
	s, err := webhook.ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	require.NoError(t, err)
	require.NotContains(t, s.String(), "MfKQ")
	_, err = webhook.ParseSecrets([]byte("https://a.example.com/h: whsec_not-base64-SECRETVALUE\n"))
	require.Error(t, err)
	require.NotContains(t, err.Error(), "SECRETVALUE", "an error about a secret does not repeat it")
	_, err = webhook.ParseSecrets([]byte("https://a.example.com/h: [whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n"))
	require.Error(t, err)
	require.NotContains(t, err.Error(), "MfKQ9r8G", "a YAML error does not quote the line")
	m, err := webhook.ParseSecrets([]byte("https://a.example.com/h:\n  - whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n  - whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD\nhttps://b.example.com/h: whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD\n"))
	require.NoError(t, err)
	require.Len(t, m["https://a.example.com/h"], 2)
	require.Len(t, m["https://b.example.com/h"], 1)
}

func TestSecretsFileIsReadAgainWhenItChanges(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "secrets.yaml")
	require.NoError(t, os.WriteFile(path, []byte("https://a.example.com/h: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n"), 0o600))
	s, err := webhook.LoadSecrets(path)
	require.NoError(t, err)
	require.Len(t, s.For("https://a.example.com/h"), 1)
	require.NoError(t, os.WriteFile(path, []byte("https://a.example.com/h: [whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw, whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD]\n"), 0o600))
	future := time.Now().Add(time.Minute)
	require.NoError(t, os.Chtimes(path, future, future))
	deadline := time.Now().Add(10 * time.Second)
	for len(s.For("https://a.example.com/h")) != 2 {
		require.True(t, time.Now().Before(deadline), "the rotation was never read")
		time.Sleep(50 * time.Millisecond)
	}
}

func TestAllowed(t *testing.T) {
	t.Parallel()
	loop := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	for addr, want := range map[string]bool{
		"93.184.216.34": true, "2606:2800:220:1::": true,
		"127.0.0.1": false, "::1": false, "10.1.2.3": false, "172.16.0.1": false, "192.168.1.1": false,
		"169.254.169.254": false, "fe80::1": false, "fd00::1": false, "0.0.0.0": false, "100.64.0.1": false,
		"::ffff:127.0.0.1": false, "::ffff:10.0.0.1": false, "224.0.0.1": false, "64:ff9b::a00:1": false,
	} {
		require.Equal(t, want, webhook.Allowed(netip.MustParseAddr(addr), nil), addr)
	}
	require.True(t, webhook.Allowed(netip.MustParseAddr("127.0.0.1"), loop))
	require.True(t, webhook.Allowed(netip.MustParseAddr("::ffff:127.0.0.1"), loop))
	require.False(t, webhook.Allowed(netip.MustParseAddr("10.0.0.1"), loop))
}

func TestClassify(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for status, want := range map[int]delivery.Verdict{
		200: delivery.Delivered, 204: delivery.Delivered, 400: delivery.Permanent, 401: delivery.Permanent,
		404: delivery.Permanent, 410: delivery.Permanent, 408: delivery.Retry, 429: delivery.Retry,
		500: delivery.Retry, 503: delivery.Retry, 301: delivery.Retry,
	} {
		require.Equal(t, want, webhook.Classify(status, "", nil, now).Verdict, status)
	}
	r := webhook.Classify(429, "7", []byte("slow down\r\nX-Injected: yes"), now)
	require.True(t, r.RateLimited)
	require.Equal(t, 7*time.Second, r.RetryAfter)
	require.NotContains(t, r.Reason, "\n")
	require.Equal(t, 30*time.Second, webhook.ParseRetryAfter(now.Add(30*time.Second).Format(http.TimeFormat), now))
	require.Equal(t, webhook.MaxRetryAfter, webhook.ParseRetryAfter("99999999", now))
	require.Zero(t, webhook.ParseRetryAfter("soon", now))
	require.Zero(t, webhook.ParseRetryAfter("-5", now))
}

// job is a submitted event to deliver to url.
func job(t *testing.T, url string) delivery.Job {
	t.Helper()
	ev := []byte(`{"specversion":"1.0","id":"01a1fd8c-6a9c-7bae-9c62-ddc59cdb5ae6","source":"assent/decider","type":"dev.assent.request.approved","subject":"r-1","time":"2026-11-21T10:00:00Z","datacontenttype":"application/json","actor":"user:alice@example.com","commandid":"c-1","sequence":"2","prevhash":"sha256:77baeb4d8db3bf59a5995709f55c6ad82345bdc6f239470ee6393ad156a2cefb","data":{"approvers":["user:alice@example.com"]}}`)
	return delivery.Job{Entry: queue.Entry{RequestID: "r-1", EventID: "01a1fd8c-6a9c-7bae-9c62-ddc59cdb5ae6", Kind: approval.NotifyWebhook, Target: url,
		EventType: approval.TypeRequestApproved}, Event: ev, Attempt: 1}
}

func rig(t *testing.T) (*notifyrig.Receiver, *x509.CertPool, *webhook.Secrets) {
	t.Helper()
	cert, pem, err := notifyrig.Cert()
	require.NoError(t, err)
	rx, err := notifyrig.NewReceiver(cert, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "/hook")
	require.NoError(t, err)
	t.Cleanup(rx.Close)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(pem))
	path := filepath.Join(t.TempDir(), "s.yaml")
	require.NoError(t, os.WriteFile(path, []byte(rx.URL+": whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n"), 0o600))
	secrets, err := webhook.LoadSecrets(path)
	require.NoError(t, err)
	return rx, pool, secrets
}

func TestSendToARealReceiver(t *testing.T) {
	t.Parallel()
	rx, pool, secrets := rig(t)
	loop := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	c := webhook.New(webhook.Config{Secrets: secrets, AllowNets: loop, RootCAs: pool, Timeout: time.Second})

	res := c.Send(t.Context(), job(t, rx.URL))
	require.Equal(t, delivery.Delivered, res.Verdict, res.Reason)
	got := rx.Accepted()
	require.Len(t, got, 1)
	require.Equal(t, "01a1fd8c-6a9c-7bae-9c62-ddc59cdb5ae6", got[0].ID)
	require.Equal(t, "r-1", got[0].Subject)
	require.Empty(t, rx.BadSignatures())

	t.Run("loopback is refused unless allowed", func(t *testing.T) {
		strict := webhook.New(webhook.Config{Secrets: secrets, RootCAs: pool, Timeout: time.Second})
		res := strict.Send(t.Context(), job(t, rx.URL))
		require.Equal(t, delivery.Permanent, res.Verdict)
		require.Contains(t, res.Reason, "loopback")
	})
	t.Run("TLS is verified", func(t *testing.T) {
		untrusting := webhook.New(webhook.Config{Secrets: secrets, AllowNets: loop, Timeout: time.Second})
		res := untrusting.Send(t.Context(), job(t, rx.URL))
		require.Equal(t, delivery.Retry, res.Verdict)
		require.Contains(t, res.Reason, "certificate")
	})
	t.Run("a target without a secret is refused", func(t *testing.T) {
		res := c.Send(t.Context(), job(t, rx.URL+"/other"))
		require.Equal(t, delivery.Permanent, res.Verdict)
		require.Contains(t, res.Reason, "no signing secret")
	})
	t.Run("a slow receiver times out: an unknown outcome", func(t *testing.T) {
		rx.Delay(3 * time.Second)
		defer rx.Delay(0)
		began := time.Now()
		res := c.Send(t.Context(), job(t, rx.URL))
		require.Less(t, time.Since(began), 2500*time.Millisecond)
		require.True(t, res.TimedOut)
		require.Equal(t, delivery.Retry, res.Verdict)
	})
}

func TestRedirectsAreNotFollowedAndAnswersAreBounded(t *testing.T) {
	t.Parallel()
	var followed bool
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/elsewhere" {
			followed = true
			return
		}
		if r.URL.Path == "/big" {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(strings.Repeat("A", 1<<20)))
			return
		}
		http.Redirect(w, r, "/elsewhere", http.StatusFound)
	}))
	defer srv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	path := filepath.Join(t.TempDir(), "s.yaml")
	require.NoError(t, os.WriteFile(path, []byte(srv.URL+"/hook: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n"+srv.URL+"/big: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n"), 0o600))
	secrets, err := webhook.LoadSecrets(path)
	require.NoError(t, err)
	c := webhook.New(webhook.Config{Secrets: secrets, AllowNets: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, RootCAs: pool, Timeout: 2 * time.Second})
	res := c.Send(context.Background(), job(t, srv.URL+"/hook"))
	require.Equal(t, 302, res.Status)
	require.Equal(t, delivery.Retry, res.Verdict)
	require.False(t, followed)
	res = c.Send(context.Background(), job(t, srv.URL+"/big"))
	require.Equal(t, delivery.Permanent, res.Verdict)
	require.Less(t, len(res.Reason), 300, "the answer is read within bounds and cut in the reason")
}

func TestBodyLeavesOutTheNotificationTargets(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "..", "schemas", "examples", "dev.assent.request.submitted.json"))
	require.NoError(t, err)
	require.Contains(t, string(b), `"notify"`)
	out, err := webhook.Body(b)
	require.NoError(t, err)
	require.NotContains(t, string(out), `"notify"`)
	require.Contains(t, string(out), `"id":"01a1fd8c-6a9c-7bae-9c62-ddc59cdb5ae6"`)
	approved, err := os.ReadFile(filepath.Join("..", "..", "..", "..", "schemas", "examples", "dev.assent.request.approved.json"))
	require.NoError(t, err)
	out, err = webhook.Body(approved)
	require.NoError(t, err)
	require.Equal(t, approved, out, "other events go byte for byte")
}

package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/services/notifier/internal/delivery"
)

// ErrForbiddenAddress is returned when a target resolves to an address the
// notifier may not call (loopback, link-local, private, ...).
var ErrForbiddenAddress = errors.New("the target resolves to a loopback, link-local or private address, which ASSENT_NOTIFIER_ALLOW_NETS does not allow")

// Config configures a Client.
type Config struct {
	Secrets *Secrets
	// Timeout bounds one call: connect, TLS, request and the response.
	Timeout time.Duration
	// AllowNets are the otherwise forbidden networks that may be called
	// (tests and a local demo allow 127.0.0.0/8).
	AllowNets []netip.Prefix
	// RootCAs, if set, replaces the system's roots (tests, a private CA).
	RootCAs *x509.CertPool
	// MaxResponse bounds how much of an answer is read.
	MaxResponse int64
	UserAgent   string
	Now         func() time.Time
}

// Client is the webhook Sender.
type Client struct {
	cfg  Config
	http *http.Client
}

// New returns a Client.
func New(cfg Config) *Client {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.MaxResponse <= 0 {
		cfg.MaxResponse = 4 << 10
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "assent-notifier/1"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	dialer := &net.Dialer{
		Timeout: cfg.Timeout,
		// Control sees the address actually dialled, after DNS: a name
		// that resolves (or is rebound) to a private address is refused.
		Control: func(_, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return err
			}
			ip, err := netip.ParseAddr(host)
			if err != nil {
				return fmt.Errorf("dial %s: %w", address, ErrForbiddenAddress)
			}
			if !Allowed(ip, cfg.AllowNets) {
				return ErrForbiddenAddress
			}
			return nil
		},
	}
	tr := &http.Transport{
		Proxy:                  nil, // a proxy would dial for us, past the address check
		DialContext:            dialer.DialContext,
		TLSClientConfig:        &tls.Config{RootCAs: cfg.RootCAs, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    cfg.Timeout,
		ResponseHeaderTimeout:  cfg.Timeout,
		ExpectContinueTimeout:  time.Second,
		MaxIdleConnsPerHost:    8,
		IdleConnTimeout:        90 * time.Second,
		ForceAttemptHTTP2:      true,
		MaxResponseHeaderBytes: 16 << 10,
	}
	return &Client{cfg: cfg, http: &http.Client{
		Transport: tr,
		Timeout:   cfg.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // never follow: a redirect is an answer
		},
	}}
}

// Allowed reports whether an address may be called: a public unicast
// address, or one in the allowed networks.
func Allowed(ip netip.Addr, allow []netip.Prefix) bool {
	ip = ip.Unmap()
	for _, p := range allow {
		if p.Contains(ip) {
			return true
		}
	}
	switch {
	case !ip.IsValid(), ip.IsLoopback(), ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast(),
		ip.IsPrivate(), ip.IsUnspecified(), ip.IsMulticast(), ip.IsInterfaceLocalMulticast():
		return false
	}
	for _, p := range specialNets {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// specialNets are the ranges Go's predicates leave out that are not the
// public internet either.
var specialNets = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),      // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),  // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),   // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"),  // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),    // reserved, broadcast
	netip.MustParsePrefix("64:ff9b::/96"),   // NAT64 can reach private IPv4
	netip.MustParsePrefix("64:ff9b:1::/48"), // local-use NAT64
	netip.MustParsePrefix("2002::/16"),      // 6to4 embeds any IPv4
	netip.MustParsePrefix("fec0::/10"),      // site-local, deprecated
	netip.MustParsePrefix("100::/64"),       // discard
	netip.MustParsePrefix("2001:db8::/32"),  // documentation
	netip.MustParsePrefix("192.88.99.0/24"), // 6to4 relay anycast
	netip.MustParsePrefix("169.254.0.0/16"), // link-local (also by IsLinkLocalUnicast)
	netip.MustParsePrefix("255.255.255.255/32"),
}

// Body is what a receiver gets: the event as a structured CloudEvent.
// Every event but a submission is sent byte for byte as the log holds it
// (a receiver may check its hash against the next event's prevhash); a
// submission's policy snapshot leaves out the notification targets, which
// may be private to others (other webhooks, addresses), as the API's
// request view does.
func Body(event []byte) ([]byte, error) {
	env, err := wire.Unmarshal(event)
	if err != nil {
		return nil, err
	}
	if env.Type != approval.TypeRequestSubmitted {
		return event, nil
	}
	body, err := approval.DecodeEventBody(env.Type, env.Data)
	if err != nil {
		return nil, err
	}
	sub := body.(approval.RequestSubmitted)
	sub.Policy.Notify = nil
	if env.Data, err = wire.MarshalData(sub); err != nil {
		return nil, err
	}
	return wire.Marshal(env)
}

// Send makes one attempt.
func (c *Client) Send(ctx context.Context, j delivery.Job) delivery.Result {
	secrets := c.cfg.Secrets.For(j.Target)
	if len(secrets) == 0 {
		return delivery.Result{Verdict: delivery.Permanent, Reason: "no signing secret is configured for this webhook (ASSENT_NOTIFIER_SECRETS_FILE)"}
	}
	body, err := Body(j.Event)
	if err != nil {
		return delivery.Result{Verdict: delivery.Permanent, Reason: "the event cannot be encoded: " + err.Error()}
	}
	u, err := url.Parse(j.Target)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		return delivery.Result{Verdict: delivery.Permanent, Reason: "the target is not an http(s) URL without credentials"}
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, j.Target, bytes.NewReader(body))
	if err != nil {
		return delivery.Result{Verdict: delivery.Permanent, Reason: "the target is not a valid request URL"}
	}
	ts := c.cfg.Now().Unix()
	req.Header.Set("Content-Type", "application/cloudevents+json")
	req.Header.Set("User-Agent", c.cfg.UserAgent)
	req.Header.Set("webhook-id", j.EventID)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("webhook-signature", Sign(secrets, j.EventID, ts, body))
	resp, err := c.http.Do(req)
	if err != nil {
		return failure(ctx, err)
	}
	defer resp.Body.Close() //nolint:errcheck // read and drained above
	excerpt, _ := io.ReadAll(io.LimitReader(resp.Body, c.cfg.MaxResponse))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // let the connection be reused
	return Classify(resp.StatusCode, resp.Header.Get("Retry-After"), excerpt, c.cfg.Now())
}

// Classify turns an answer into a verdict: 2xx is delivered; 408, 429 and
// every 5xx (and anything else that is not a 4xx) is retried, honouring
// Retry-After; any other 4xx is a permanent refusal.
func Classify(status int, retryAfter string, excerpt []byte, now time.Time) delivery.Result {
	r := delivery.Result{Status: status, RetryAfter: ParseRetryAfter(retryAfter, now)}
	switch {
	case status >= 200 && status < 300:
		r.Verdict = delivery.Delivered
		return r
	case status == http.StatusRequestTimeout || status == http.StatusTooManyRequests:
		r.Verdict = delivery.Retry
		r.RateLimited = status == http.StatusTooManyRequests
	case status >= 400 && status < 500:
		r.Verdict = delivery.Permanent
	default:
		r.Verdict = delivery.Retry
	}
	r.Reason = fmt.Sprintf("HTTP %d %s", status, http.StatusText(status))
	if s := Printable(excerpt, 200); s != "" {
		r.Reason += ": " + s
	}
	return r
}

// MaxRetryAfter caps what a receiver may ask for; the horizon still ends
// the delivery.
const MaxRetryAfter = time.Hour

// ParseRetryAfter reads Retry-After as seconds or an HTTP date.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		d = time.Duration(min(n, int64(MaxRetryAfter/time.Second))) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return max(0, min(d, MaxRetryAfter))
}

// failure classifies an error before any answer came.
func failure(ctx context.Context, err error) delivery.Result {
	r := delivery.Result{Verdict: delivery.Retry}
	var nerr net.Error
	switch {
	case errors.Is(err, ErrForbiddenAddress):
		r.Verdict = delivery.Permanent
		r.Reason = "refused: " + ErrForbiddenAddress.Error()
		return r
	case errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil || (errors.As(err, &nerr) && nerr.Timeout()):
		r.TimedOut = true
		r.Reason = "timed out waiting for the receiver"
		return r
	}
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err // the URL is the target: no need to repeat it
	}
	r.Reason = Printable([]byte(err.Error()), 300)
	return r
}

// Printable keeps at most n bytes of s, with control characters and
// invalid UTF-8 replaced, for a reason that goes into logs and the log.
func Printable(b []byte, n int) string {
	var out strings.Builder
	for _, r := range strings.ToValidUTF8(string(b), "?") {
		if out.Len() >= n {
			out.WriteString("…")
			break
		}
		if !unicode.IsPrint(r) {
			r = ' '
		}
		out.WriteRune(r)
	}
	return strings.TrimSpace(out.String())
}

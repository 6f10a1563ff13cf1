package assent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Defaults of the options.
const (
	DefaultMaxAttempts    = 6
	DefaultBackoffBase    = 100 * time.Millisecond
	DefaultBackoffMax     = 5 * time.Second
	DefaultRequestTimeout = 30 * time.Second
	// MaxWait is the longest long-poll the API serves; longer waits are
	// cut to it.
	MaxWait = 60 * time.Second
	// maxRetryAfter caps a server's Retry-After, so that a misconfigured
	// proxy cannot park a client for an hour.
	maxRetryAfter = time.Minute
	// maxBody bounds what the client reads of any response.
	maxBody = 32 << 20
)

// Client calls HTTP API v1 of Assent. It is safe for concurrent use; make
// one per token and reuse it.
type Client struct {
	urls           []string // base URLs without a trailing slash
	token          string
	hc             *http.Client
	maxAttempts    int
	backoffBase    time.Duration
	backoffMax     time.Duration
	requestTimeout time.Duration
	principal      string
	userAgent      string
	preferred      atomic.Int64 // index of the URL that answered last
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the http.Client (for TLS settings, a proxy, a
// transport with tracing). Its Timeout should be zero: the client bounds
// each attempt itself, and long polls need longer than ordinary calls.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithMaxAttempts bounds the attempts of one call, the first included
// (default 6). 1 disables retries.
func WithMaxAttempts(n int) Option { return func(c *Client) { c.maxAttempts = max(n, 1) } }

// WithBackoff sets the exponential backoff between attempts: base, doubled
// per retry, capped at maxDelay, with jitter (defaults 100ms and 5s).
func WithBackoff(base, maxDelay time.Duration) Option {
	return func(c *Client) { c.backoffBase, c.backoffMax = base, max(maxDelay, base) }
}

// WithRequestTimeout bounds one attempt (default 30s); a long poll gets its
// wait on top. The call as a whole is bounded by its context.
func WithRequestTimeout(d time.Duration) Option { return func(c *Client) { c.requestTimeout = d } }

// WithPrincipal tells the client which principal its token stands for,
// such as "user:alice@example.com". The API has no "who am I" endpoint,
// and the client needs to know when a retried vote is refused as a
// duplicate: it then checks that the recorded vote is the caller's own
// (see Client.Vote). Without it, that refusal is returned as it is.
func WithPrincipal(p string) Option { return func(c *Client) { c.principal = normalizePrincipal(p) } }

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option { return func(c *Client) { c.userAgent = ua } }

// New returns a client for the api replicas at baseURLs, such as
// "http://127.0.0.1:8080", authenticating with the bearer token. Every
// replica can answer every call; the client sticks to the one that
// answered last and moves to the next when one fails.
func New(baseURLs []string, token string, opts ...Option) (*Client, error) {
	if len(baseURLs) == 0 {
		return nil, errors.New("assent: no base URL")
	}
	if token == "" {
		return nil, errors.New("assent: no token")
	}
	c := &Client{
		token:          token,
		hc:             &http.Client{},
		maxAttempts:    DefaultMaxAttempts,
		backoffBase:    DefaultBackoffBase,
		backoffMax:     DefaultBackoffMax,
		requestTimeout: DefaultRequestTimeout,
		userAgent:      "assent-go",
	}
	for _, raw := range baseURLs {
		u, err := url.Parse(strings.TrimSpace(raw))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("assent: base URL %q: want http(s)://host[:port][/prefix]", raw)
		}
		c.urls = append(c.urls, strings.TrimRight(u.String(), "/"))
	}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// call is one logical API call, which may take several attempts.
type call struct {
	method  string
	path    string // escaped, from the base URL
	query   url.Values
	body    any
	idemKey string
	// requestID is the request a write is about, for an
	// *OutcomeUnknownError.
	requestID string
	wait      time.Duration // a long poll's wait, on top of the attempt timeout
}

// response is the answer to the last attempt of a call.
type response struct {
	status int
	header http.Header
	body   []byte
	// unknownBefore is set when an earlier attempt may have taken effect
	// although its answer was lost: a connection cut after the request
	// was sent, an attempt timeout, a 502 or 504 from a proxy, a 503
	// (CodeOutcomeUnknown, or one that does not say).
	unknownBefore bool
}

// do runs a call with retries. It returns the response of a 2xx. For any
// other HTTP answer it returns that response too, with its *Problem as the
// error, so that a caller can look at unknownBefore. Without an HTTP answer
// it returns a nil response and the error; for a write after an attempt
// that may have taken effect, an *OutcomeUnknownError.
func (c *Client) do(ctx context.Context, cl call) (*response, error) {
	res, err := c.retry(ctx, cl)
	var u *OutcomeUnknownError
	if errors.As(err, &u) {
		u.RequestID, u.IdempotencyKey = cl.requestID, cl.idemKey
	}
	return res, err
}

// retry is do without the names of an *OutcomeUnknownError.
func (c *Client) retry(ctx context.Context, cl call) (*response, error) {
	var payload []byte
	if cl.body != nil {
		var err error
		if payload, err = json.Marshal(cl.body); err != nil {
			return nil, fmt.Errorf("assent: encode %s %s: %w", cl.method, cl.path, err)
		}
	}
	n := len(c.urls)
	idx := int(c.preferred.Load()) % n
	tried := make([]bool, n) // URLs tried since the last backoff
	sleeps := 0
	unknown := false
	var last error
	for attempt := 1; ; attempt++ {
		res, err := c.attempt(ctx, c.urls[idx], cl, payload)
		if res != nil && res.status < 300 {
			c.preferred.Store(int64(idx))
			res.unknownBefore = unknown
			return res, nil
		}
		if ctx.Err() != nil {
			return nil, c.gaveUp(cl, unknown || c.maybeApplied(res, err), c.stopped(cl, attempt, ctx.Err(), last, err))
		}
		retry, maybeApplied, retryAfter := classify(res, err)
		if res != nil && !retry {
			c.preferred.Store(int64(idx))
			res.unknownBefore = unknown
			return res, parseProblem(res)
		}
		if !retry {
			return nil, fmt.Errorf("assent: %s %s: %w", cl.method, cl.path, err)
		}
		if err == nil {
			err = parseProblem(res)
		}
		last = err
		unknown = unknown || maybeApplied
		tried[idx] = true
		if attempt >= c.maxAttempts {
			return nil, c.gaveUp(cl, unknown, fmt.Errorf("assent: %s %s: giving up after %d attempts: %w", cl.method, cl.path, attempt, last))
		}
		next := (idx + 1) % n
		var delay time.Duration
		switch {
		case retryAfter > 0:
			delay = retryAfter
		case !tried[next]:
			// Another replica has not been tried since the last pause:
			// fail over at once, since this one may simply be down.
		default:
			delay = c.backoff(sleeps)
			sleeps++
		}
		if delay > 0 {
			if dl, ok := ctx.Deadline(); ok && time.Until(dl) < delay {
				return nil, c.gaveUp(cl, unknown, fmt.Errorf("assent: %s %s: %w: the next attempt (in %s) would come after it; last failure: %w",
					cl.method, cl.path, context.DeadlineExceeded, delay.Round(time.Millisecond), last))
			}
			if err := sleep(ctx, delay); err != nil {
				return nil, c.gaveUp(cl, unknown, c.stopped(cl, attempt, err, last, nil))
			}
			clear(tried)
		}
		idx = next
	}
}

// gaveUp is the error of a call given up: for a write after an attempt
// that may have taken effect, an *OutcomeUnknownError naming the command
// the last outcome_unknown problem named (do adds the request id and key).
func (c *Client) gaveUp(cl call, unknown bool, err error) error {
	if !unknown || cl.method != http.MethodPost {
		return err
	}
	u := &OutcomeUnknownError{Err: err}
	var p *Problem
	if errors.As(err, &p) {
		u.CommandID = p.CommandID
	}
	return u
}

// maybeApplied reports whether an attempt that ended with the call's
// context may have taken effect.
func (c *Client) maybeApplied(res *response, err error) bool {
	if res == nil && err == nil {
		return false
	}
	if res != nil && res.status < 500 {
		return false
	}
	_, maybe, _ := classify(res, err)
	return maybe
}

// stopped reports a call that its context ended.
func (c *Client) stopped(cl call, attempts int, ctxErr, last, cur error) error {
	if last == nil {
		last = cur
	}
	if last == nil || errors.Is(last, ctxErr) {
		return fmt.Errorf("assent: %s %s: %w", cl.method, cl.path, ctxErr)
	}
	return fmt.Errorf("assent: %s %s: %w after %d attempts; last failure: %w", cl.method, cl.path, ctxErr, attempts, last)
}

// attempt makes one HTTP request to base.
func (c *Client) attempt(ctx context.Context, base string, cl call, payload []byte) (*response, error) {
	actx, cancel := context.WithTimeout(ctx, c.requestTimeout+cl.wait)
	defer cancel()
	u := base + cl.path
	if len(cl.query) > 0 {
		u += "?" + cl.query.Encode()
	}
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(actx, cl.method, u, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json, application/problem+json")
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if cl.idemKey != "" {
		req.Header.Set("Idempotency-Key", cl.idemKey)
	}
	if c.userAgent != "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }() // read-only
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, fmt.Errorf("read the response: %w", err)
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// classify says whether a failed attempt is worth retrying, whether it may
// have taken effect although it failed, and how long the server asked to
// wait. Only failures that leave the request unapplied or idempotent are
// retried: transport errors, 502/503/504, 408 and 429. Every other 4xx is
// an answer, and retrying it would only get the same answer.
//
// A 503 may have taken effect: the API's CodeOutcomeUnknown says Kafka
// did not acknowledge the command, which may be in the log anyway; a 503
// from a proxy (an upstream reset) or from an API before that code cannot
// tell either. Only CodeWritesUnavailable says nothing was sent. A retry is safe all the same: every attempt of a write
// carries the same request id and Idempotency-Key, so it names the same
// command, which the decider decides at most once.
func classify(res *response, err error) (retry, maybeApplied bool, retryAfter time.Duration) {
	if err != nil {
		var dns *net.DNSError
		var op *net.OpError
		if errors.As(err, &dns) || (errors.As(err, &op) && op.Op == "dial") {
			return true, false, 0 // never reached the server
		}
		return true, true, 0 // sent, perhaps processed, answer lost
	}
	switch res.status {
	case http.StatusServiceUnavailable:
		// The API's CodeWritesUnavailable says it sent nothing.
		return true, codeOf(res) != CodeWritesUnavailable, retryAfterOf(res.header)
	case http.StatusBadGateway, http.StatusGatewayTimeout:
		return true, true, retryAfterOf(res.header)
	case http.StatusTooManyRequests, http.StatusRequestTimeout:
		return true, false, retryAfterOf(res.header)
	}
	return false, false, 0
}

// codeOf is the code of a problem answer, or "".
func codeOf(res *response) Code {
	if !strings.HasPrefix(res.header.Get("Content-Type"), "application/problem+json") {
		return ""
	}
	var p struct {
		Code Code `json:"code"`
	}
	if json.Unmarshal(res.body, &p) != nil {
		return ""
	}
	return p.Code
}

// retryAfterOf reads Retry-After: delay-seconds or an HTTP date.
func retryAfterOf(h http.Header) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	var d time.Duration
	if s, err := strconv.Atoi(v); err == nil {
		d = time.Duration(max(s, 0)) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = time.Until(t)
	}
	return min(max(d, 0), maxRetryAfter)
}

// backoff is the pause after the n-th full round of failures: exponential
// from the base, capped, with jitter over its upper half so that clients
// that failed together do not retry together.
func (c *Client) backoff(n int) time.Duration {
	d := c.backoffMax
	if n < 30 {
		d = min(c.backoffBase<<n, c.backoffMax)
	}
	if d <= 1 {
		return d
	}
	half := d / 2
	return half + rand.N(half+1) //nolint:gosec // jitter, not a secret
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// parseProblem builds the *Problem of a non-2xx response. A body that is
// not a problem document (a proxy's HTML page) still gives a Problem with
// the status and the start of the body as its detail.
func parseProblem(res *response) *Problem {
	p := &Problem{}
	ct := res.header.Get("Content-Type")
	if strings.Contains(ct, "json") {
		_ = json.Unmarshal(res.body, p) // what did not parse stays zero
	}
	if p.Status == 0 {
		p.Status = res.status
	}
	if p.Title == "" {
		p.Title = http.StatusText(res.status)
	}
	if p.Detail == "" && p.Code == "" && !strings.Contains(ct, "json") {
		d := strings.TrimSpace(string(res.body))
		if len(d) > 300 {
			d = d[:300] + "..."
		}
		p.Detail = d
	}
	p.RetryAfter = retryAfterOf(res.header)
	return p
}

// decode decodes a 2xx body into v.
func decode(res *response, v any) error {
	if err := json.Unmarshal(res.body, v); err != nil {
		return fmt.Errorf("assent: decode a %d response: %w", res.status, err)
	}
	return nil
}

// normalizePrincipal writes a principal as the API does: a bare email is a
// user, and user ids are lowercased.
func normalizePrincipal(p string) string {
	p = strings.TrimSpace(p)
	if p == "" {
		return ""
	}
	if !strings.Contains(p, ":") && strings.Contains(p, "@") {
		p = "user:" + p
	}
	if id, ok := strings.CutPrefix(p, "user:"); ok {
		p = "user:" + strings.ToLower(id)
	}
	return p
}

// Package notifyrig holds the real peers the notifier's tests and its
// benchmark deliver to: an HTTPS webhook receiver that verifies Standard
// Webhooks signatures (written from the specification, independently of
// the notifier's sender) and an SMTP server (emersion/go-smtp) with
// STARTTLS and PLAIN authentication. Never imported by a service.
package notifyrig

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Verify checks a request's Standard Webhooks headers against one secret
// in the whsec_ form, as the specification describes for receivers: the
// signed content is "<webhook-id>.<webhook-timestamp>.<body>", the key is
// the base64 part of the secret, webhook-signature is a space-separated
// list of "v1,<base64 HMAC-SHA256>" of which one must match (compared in
// constant time), and a timestamp more than tolerance from now is
// refused, against replays.
func Verify(secret string, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return errors.New("missing webhook-id, webhook-timestamp or webhook-signature")
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("webhook-timestamp %q is not whole seconds", ts)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("webhook-timestamp is %s away from now", d)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return errors.New("bad secret")
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	want := mac.Sum(nil)
	for _, s := range strings.Fields(sigs) {
		version, sig, ok := strings.Cut(s, ",")
		if !ok || version != "v1" {
			continue // another scheme: not ours to check
		}
		got, err := base64.StdEncoding.DecodeString(sig)
		if err == nil && subtle.ConstantTimeCompare(got, want) == 1 {
			return nil
		}
	}
	return errors.New("no signature matches")
}

// Delivery is one request the receiver got.
type Delivery struct {
	ID       string // webhook-id
	Subject  string // the CloudEvent's subject (the request id)
	Type     string // the CloudEvent's type
	Sequence string
	Status   int  // what the receiver answered; 0 if it never answered
	Answered bool // the answer was written before the connection ended
	Body     []byte
	At       time.Time
}

// Receiver is an HTTPS webhook receiver. Its behaviour is set per test:
// fail the next N requests, answer 429 with a Retry-After, hold requests
// until released, answer slowly, or be down (its port closed).
type Receiver struct {
	Secret string // whsec_...
	URL    string // https://127.0.0.1:port/hook

	cert tls.Certificate
	addr string

	mu         sync.Mutex
	srv        *http.Server
	deliveries []Delivery
	bad        []string // requests whose signature did not verify
	failNext   int
	failStatus int
	limitNext  int
	retryAfter string
	delay      time.Duration
	hold       int
	held       chan struct{}
	heldNow    int
}

// NewReceiver listens on a free port of 127.0.0.1 with the rig's
// certificate.
func NewReceiver(cert tls.Certificate, secret, path string) (*Receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &Receiver{Secret: secret, cert: cert, addr: ln.Addr().String(), held: make(chan struct{})}
	r.URL = "https://" + r.addr + path
	r.serve(ln)
	return r, nil
}

func (r *Receiver) serve(ln net.Listener) {
	srv := &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{r.cert}, MinVersion: tls.VersionTLS12}}
	r.mu.Lock()
	r.srv = srv
	r.mu.Unlock()
	go func() { _ = srv.ServeTLS(ln, "", "") }()
}

// Down closes the port: connections are refused until Up.
func (r *Receiver) Down() {
	r.mu.Lock()
	srv := r.srv
	r.srv = nil
	r.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// Up listens on the same port again.
func (r *Receiver) Up() error {
	var ln net.Listener
	var err error
	for range 50 { // the port may linger briefly
		if ln, err = net.Listen("tcp", r.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	r.serve(ln)
	return nil
}

// Close stops the receiver.
func (r *Receiver) Close() { r.Down() }

// FailNext makes the next n requests fail with status.
func (r *Receiver) FailNext(n, status int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failNext, r.failStatus = n, status
}

// LimitNext answers the next n requests 429 with Retry-After.
func (r *Receiver) LimitNext(n int, retryAfter string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.limitNext, r.retryAfter = n, retryAfter
}

// Delay answers every request after d.
func (r *Receiver) Delay(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.delay = d
}

// Hold holds the next n requests until Release (or until the sender
// goes away).
func (r *Receiver) Hold(n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hold = n
	r.held = make(chan struct{})
}

// Held is how many requests are being held now.
func (r *Receiver) Held() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.heldNow
}

// Release lets the held requests go.
func (r *Receiver) Release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	close(r.held)
	r.held = make(chan struct{})
	r.hold = 0
}

// Deliveries returns every request received, in arrival order.
func (r *Receiver) Deliveries() []Delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Delivery(nil), r.deliveries...)
}

// BadSignatures lists the requests that did not verify.
func (r *Receiver) BadSignatures() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.bad...)
}

// Accepted returns the deliveries answered 2xx, in order.
func (r *Receiver) Accepted() []Delivery {
	var out []Delivery
	for _, d := range r.Deliveries() {
		if d.Answered && d.Status/100 == 2 {
			out = append(out, d)
		}
	}
	return out
}

// Duplicates counts, per webhook-id, the copies accepted beyond the
// first, and the copies received beyond the first (some never answered:
// the sender gave up on them or died).
func (r *Receiver) Duplicates() (accepted, received int) {
	acc, rec := map[string]int{}, map[string]int{}
	for _, d := range r.Deliveries() {
		rec[d.ID]++
		if d.Answered && d.Status/100 == 2 {
			acc[d.ID]++
		}
	}
	for _, n := range acc {
		accepted += n - 1
	}
	for _, n := range rec {
		received += n - 1
	}
	return accepted, received
}

// MaxBody bounds what the receiver reads.
const MaxBody = 1 << 20

func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, MaxBody))
	if err != nil {
		return
	}
	if err := Verify(r.Secret, req.Header, body, time.Now(), 5*time.Minute); err != nil ||
		req.Header.Get("Content-Type") != "application/cloudevents+json" {
		r.mu.Lock()
		r.bad = append(r.bad, fmt.Sprintf("%s: %v (content-type %q)", req.Header.Get("webhook-id"), err, req.Header.Get("Content-Type")))
		r.mu.Unlock()
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var ce struct {
		Type, Subject, Sequence string
	}
	_ = json.Unmarshal(body, &ce)
	d := Delivery{ID: req.Header.Get("webhook-id"), Subject: ce.Subject, Type: ce.Type, Sequence: ce.Sequence, Body: body, At: time.Now()}

	r.mu.Lock()
	status := http.StatusNoContent
	var retryAfter string
	switch {
	case r.failNext > 0:
		r.failNext--
		status = r.failStatus
	case r.limitNext > 0:
		r.limitNext--
		status, retryAfter = http.StatusTooManyRequests, r.retryAfter
	}
	delay, held := r.delay, r.held
	holding := r.hold > 0
	if holding {
		r.hold--
		r.heldNow++
	}
	i := len(r.deliveries)
	r.deliveries = append(r.deliveries, d)
	r.mu.Unlock()

	if holding {
		select {
		case <-held:
		case <-req.Context().Done():
		}
		r.mu.Lock()
		r.heldNow--
		r.mu.Unlock()
	}
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-req.Context().Done():
		}
	}
	if req.Context().Err() != nil {
		return // the sender went away: it never saw an answer
	}
	if retryAfter != "" {
		w.Header().Set("Retry-After", retryAfter)
	}
	w.WriteHeader(status)
	answered := true
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	if req.Context().Err() != nil {
		answered = false
	}
	r.mu.Lock()
	r.deliveries[i].Status, r.deliveries[i].Answered = status, answered
	r.mu.Unlock()
}

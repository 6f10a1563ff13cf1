package chaos

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/command"
)

// Recorder collects the history of every client.
type Recorder struct {
	mu   sync.Mutex
	ops  []Op
	next atomic.Int64
}

// Add records a finished operation.
func (r *Recorder) Add(op Op) {
	op.ID = r.next.Add(1)
	r.mu.Lock()
	r.ops = append(r.ops, op)
	r.mu.Unlock()
}

// Ops returns a copy of the history so far.
func (r *Recorder) Ops() []Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Op(nil), r.ops...)
}

// Count is the number of operations so far.
func (r *Recorder) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ops)
}

// person is a demo principal (infra/tokens/demo-tokens.yaml) with its
// Slack user in the fake Slack.
type person struct {
	token, principal, slack string
}

var (
	billing = person{"demo-billing", "service:billing", ""}
	alice   = person{"demo-alice", "user:alice@example.com", "U0ALICE"}
	bob     = person{"demo-bob", "user:bob@example.com", "U0BOB"}
	carol   = person{"demo-carol", "user:carol@example.com", "U0CAROL"}
	dana    = person{"demo-dana", "user:dana@example.com", "U0DANA"}
	erin    = person{"demo-erin", "user:erin@example.com", "U0ERIN"} // not an approver (testdata/policy.yaml)
	judy    = person{"demo-judy", "user:judy@example.com", "U0JUDY"} // an admin
	mallory = person{"demo-mallory", "user:mallory@example.com", ""} // the hostile client (Hostile); not an approver
	// The approvers of both policies.
	approvers = []person{alice, bob, carol, dana}
)

// SlackTeam is the workspace the clicks come from.
const SlackTeam = "T0CHAOS"

// Workload drives concurrent clients against the API and the gateway
// replicas until its context ends.
type Workload struct {
	Prefix        string // request ids start with it
	APIs          []string
	Gateways      []string
	SigningSecret string
	Clients       int
	Think         time.Duration // pause between a client's operations
	Rec           *Recorder
	// Stop, when closed, makes clients finish their scenario and return.
	Stop <-chan struct{}

	hcOnce sync.Once
	hc     *http.Client
	seq    atomic.Int64
	negSeq atomic.Int64
}

// client returns a client of the workload that records into its history:
// the nemeses that act as clients (Hostile, pause-at-expiry) use it.
func (w *Workload) client(id int) *client {
	w.hcOnce.Do(func() {
		w.hc = &http.Client{Timeout: 12 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	})
	return &client{w: w, id: id, rng: rand.New(rand.NewPCG(uint64(id), uint64(time.Now().UnixNano())))} //nolint:gosec // G404: workload choices and jitter, not secrets
}

// negativeKinds is how many kinds of security negative negative sends
// (the replayed click is sent after an accepted click).
const negativeKinds = 12

// Run runs the clients until Stop is closed (or ctx ends).
func (w *Workload) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for c := range w.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := w.client(c)
			for n := 0; ; n++ {
				select {
				case <-w.Stop:
					return
				case <-ctx.Done():
					return
				default:
				}
				cl.scenario(ctx, n)
			}
		}()
	}
	wg.Wait()
	return nil
}

type client struct {
	w   *Workload
	id  int
	rng *rand.Rand
	hc  *http.Client // nil: the workload's
}

func (c *client) pause(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-time.After(c.w.Think + time.Duration(c.rng.Int64N(int64(c.w.Think)+1))):
	}
}

func (c *client) rid(n int) string {
	return fmt.Sprintf("%s-%d-%d", c.w.Prefix, c.id, n)
}

// scenarioStarts are a pick within each scenario's range below.
var scenarioStarts = []int{10, 30, 38, 46, 54, 62, 68, 72, 78, 94}

// scenario is one request's life, picked at random.
func (c *client) scenario(ctx context.Context, n int) {
	rid := c.rid(n)
	pick := c.rng.IntN(100)
	if n < len(scenarioStarts) {
		// Each client starts with a different scenario and goes through
		// them all in turn, so that even a short run has every kind.
		pick = scenarioStarts[(n+c.id)%len(scenarioStarts)]
	}
	if n%3 == 0 {
		// A security negative every third scenario: cheap, and a short
		// run still sends every kind.
		c.negative(ctx, n)
	}
	one := fmt.Sprintf("deploy %d", n) // content tags: what a resubmit must repeat
	voter := approvers[c.rng.IntN(len(approvers))]
	switch {
	case pick < 30: // approve over the API, sometimes sent twice at once (also below 6)
		if !c.submit(ctx, billing, rid, "deploy", one, "") {
			return
		}
		c.read(ctx, rid, "")
		if c.rng.IntN(3) == 0 {
			c.duplicateVote(ctx, voter, rid, "approve")
		} else {
			c.vote(ctx, voter, rid, "approve", c.key())
		}
		c.read(ctx, rid, "")
	case pick < 38: // reject
		if c.submit(ctx, billing, rid, "deploy", one, "") {
			c.vote(ctx, voter, rid, "reject", c.key())
			c.read(ctx, rid, "")
		}
	case pick < 46: // an ineligible vote, then an approval
		if c.submit(ctx, billing, rid, "deploy", one, "") {
			c.vote(ctx, erin, rid, "approve", c.key())
			c.vote(ctx, bob, rid, "approve", c.key())
		}
	case pick < 54: // self-approval, then a quorum of two, then too late
		if c.submit(ctx, alice, rid, "config_change", one, "") {
			c.vote(ctx, alice, rid, "approve", c.key())
			c.vote(ctx, bob, rid, "approve", c.key())
			c.vote(ctx, dana, rid, "approve", c.key())
			c.vote(ctx, carol, rid, "reject", c.key())
			c.read(ctx, rid, "")
		}
	case pick < 62: // a duplicate vote, then two rejections
		if c.submit(ctx, billing, rid, "config_change", one, "") {
			c.vote(ctx, alice, rid, "approve", c.key())
			c.vote(ctx, alice, rid, "approve", c.key())
			c.vote(ctx, bob, rid, "reject", c.key())
			c.vote(ctx, carol, rid, "reject", c.key())
			c.read(ctx, rid, "")
		}
	case pick < 68: // cancels: refused to another, done by the requester
		if c.submit(ctx, billing, rid, "deploy", one, "") {
			c.cancel(ctx, bob, rid)
			c.cancel(ctx, billing, rid)
			c.vote(ctx, voter, rid, "approve", c.key())
		}
	case pick < 72: // an admin cancels
		if c.submit(ctx, billing, rid, "deploy", one, "") {
			c.cancel(ctx, judy, rid)
			c.read(ctx, rid, "")
		}
	case pick < 78: // let it expire
		if c.submit(ctx, billing, rid, "deploy", one, "2s") {
			c.read(ctx, rid, "8s")
			c.vote(ctx, voter, rid, "approve", c.key())
		}
	case pick < 94: // decide in Slack
		if c.submit(ctx, billing, rid, "deploy", one, "") {
			if c.rng.IntN(4) == 0 {
				c.click(ctx, erin, rid)
			}
			c.click(ctx, voter, rid)
			c.read(ctx, rid, "8s")
		}
	default: // a conflicting resubmit
		if c.submit(ctx, billing, rid, "deploy", one, "") {
			c.submit(ctx, billing, rid, "deploy", one+" again", "")
			c.read(ctx, rid, "")
		}
	}
}

func (c *client) key() string {
	return fmt.Sprintf("%s-k%d-%d", c.w.Prefix, c.id, c.w.seq.Add(1))
}

func (c *client) submit(ctx context.Context, who person, rid, action, content, ttl string) bool {
	body := map[string]any{
		"request_id": rid, "reason": content,
		"action": map[string]any{"type": action, "resource": "services/chaos/" + rid, "environment": "production"},
	}
	if ttl != "" {
		body["ttl"] = ttl
	}
	key := c.key()
	op := Op{Kind: KindSubmit, Via: "api", Request: rid, Actor: who.principal, Content: content,
		Command: command.APICommandID(who.principal, who.principal, approval.TypeSubmit, rid, key)}
	op = c.write(ctx, op, who, http.MethodPost, "/v1/requests", body, key, c.rng.IntN(len(c.w.APIs)))
	c.pause(ctx)
	return op.Outcome == OK || op.Outcome == Accepted
}

func (c *client) vote(ctx context.Context, who person, rid, decision, key string) Op {
	op := Op{Kind: KindVote, Via: "api", Request: rid, Actor: who.principal, Decision: decision,
		Command: command.APICommandID(who.principal, who.principal, approval.TypeVote, rid, key)}
	op = c.write(ctx, op, who, http.MethodPost, "/v1/requests/"+rid+"/votes", map[string]any{"decision": decision}, key, c.rng.IntN(len(c.w.APIs)))
	c.pause(ctx)
	return op
}

// duplicateVote sends the same vote (one Idempotency-Key, so one command
// id) to two replicas at once: both may produce it, and the decider must
// decide it once.
func (c *client) duplicateVote(ctx context.Context, who person, rid, decision string) {
	key := c.key()
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			op := Op{Kind: KindVote, Via: "api", Request: rid, Actor: who.principal, Decision: decision,
				Command: command.APICommandID(who.principal, who.principal, approval.TypeVote, rid, key)}
			c.write(ctx, op, who, http.MethodPost, "/v1/requests/"+rid+"/votes", map[string]any{"decision": decision}, key, i)
		}()
	}
	wg.Wait()
	c.pause(ctx)
}

func (c *client) cancel(ctx context.Context, who person, rid string) {
	key := c.key()
	op := Op{Kind: KindCancel, Via: "api", Request: rid, Actor: who.principal, Admin: who == judy,
		Command: command.APICommandID(who.principal, who.principal, approval.TypeCancel, rid, key)}
	c.write(ctx, op, who, http.MethodPost, "/v1/requests/"+rid+"/cancel", map[string]any{"reason": "chaos"}, key, c.rng.IntN(len(c.w.APIs)))
	c.pause(ctx)
}

// answer is one HTTP exchange.
type answer struct {
	status int
	header http.Header
	body   []byte
	err    error
}

func (c *client) do(ctx context.Context, method, u string, body []byte, header map[string]string) answer {
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return answer{err: err}
	}
	if body == nil {
		req.Body = http.NoBody
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	hc := c.hc
	if hc == nil {
		hc = c.w.hc
	}
	resp, err := hc.Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer func() { _ = resp.Body.Close() }() // read-only
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return answer{status: resp.StatusCode, header: resp.Header, body: raw, err: err}
}

// write sends a command over the API, retrying on the other replicas with
// the same Idempotency-Key after a connection error or a 5xx, as a client
// behind a load balancer would, and records one operation.
func (c *client) write(ctx context.Context, op Op, who person, method, path string, body any, key string, start int) Op {
	raw, _ := json.Marshal(body)
	op.Client = c.id
	op.Call = time.Now().UnixNano()
	var last answer
	for i := range 8 {
		replica := c.w.APIs[(start+i)%len(c.w.APIs)]
		last = c.do(ctx, method, replica+path, raw, map[string]string{
			"Authorization": "Bearer " + who.token, "Content-Type": "application/json", "Idempotency-Key": key,
		})
		op.Replica = replica
		if last.err == nil && last.status < 500 {
			break
		}
		if ctx.Err() != nil {
			break
		}
		time.Sleep(time.Duration(150*(i+1)) * time.Millisecond)
	}
	op.Return = time.Now().UnixNano()
	op.HTTP = last.status
	if id := last.header.Get("Assent-Command-Id"); id != "" && id != op.Command {
		op.Detail = "command id mismatch: the API wrote " + id
		op.Command = id
	}
	switch {
	case last.err != nil || last.status >= 500:
		op.Outcome = Unknown
		if last.err != nil {
			op.Detail = last.err.Error()
		}
	case last.status == http.StatusAccepted:
		op.Outcome = Accepted
	case last.status < 300:
		op.Outcome = OK
		c.view(&op, last.body)
	default:
		op.Outcome = Refused
		var p struct {
			Code string `json:"code"`
		}
		_ = json.Unmarshal(last.body, &p)
		op.Code = p.Code
		if last.header.Get("Assent-Command-Id") == "" {
			op.Command = "" // refused before anything was written
		}
	}
	c.w.Rec.Add(op)
	return op
}

func (c *client) view(op *Op, body []byte) {
	var v struct {
		Status    string            `json:"status"`
		Votes     []json.RawMessage `json:"votes"`
		ExpiresAt time.Time         `json:"expires_at"`
	}
	if json.Unmarshal(body, &v) == nil {
		op.HasView, op.Status, op.Votes = true, v.Status, len(v.Votes)
		if !v.ExpiresAt.IsZero() {
			op.ExpiresAt = v.ExpiresAt.UnixNano()
		}
	}
}

// read is GET /v1/requests/{id} on one replica, long-polling if wait is
// set, recorded.
func (c *client) read(ctx context.Context, rid, wait string) Op {
	replica := c.w.APIs[c.rng.IntN(len(c.w.APIs))]
	u := replica + "/v1/requests/" + rid
	if wait != "" {
		u += "?wait=" + wait
	}
	op := Op{Kind: KindRead, Via: "api", Request: rid, Client: c.id, Replica: replica, Call: time.Now().UnixNano()}
	a := c.do(ctx, http.MethodGet, u, nil, map[string]string{"Authorization": "Bearer " + billing.token})
	op.Return, op.HTTP = time.Now().UnixNano(), a.status
	switch {
	case a.err != nil || a.status >= 500:
		op.Outcome = Unknown
	case a.status == http.StatusOK:
		op.Outcome = OK
		c.view(&op, a.body)
	case a.status == http.StatusNotFound:
		op.Outcome, op.HasView, op.Status = OK, true, ""
	default:
		op.Outcome, op.Detail = Refused, string(a.body)
	}
	c.w.Rec.Add(op)
	c.pause(ctx)
	return op
}

// readStatus reads a request and returns the status it was shown ("" when
// it was not found, "unknown" when the read failed).
func (c *client) readStatus(ctx context.Context, rid, wait string) string {
	op := c.read(ctx, rid, wait)
	if !op.HasView {
		return "unknown"
	}
	return op.Status
}

// Sign signs a Slack request body: v0 HMAC-SHA256 over "v0:<ts>:<body>".
func Sign(secret string, ts int64, body []byte) map[string]string {
	mac := hmac.New(sha256.New, []byte(secret))
	_, _ = fmt.Fprintf(mac, "v0:%d:%s", ts, body) // a hash.Hash never fails a write
	return map[string]string{
		"Content-Type":              "application/x-www-form-urlencoded",
		"X-Slack-Request-Timestamp": strconv.FormatInt(ts, 10),
		"X-Slack-Signature":         "v0=" + hex.EncodeToString(mac.Sum(nil)),
	}
}

// ClickBody is the form Slack posts for a click on a card's Approve button.
func ClickBody(user, rid, action string) []byte {
	payload, _ := json.Marshal(map[string]any{
		"type":       "block_actions",
		"team":       map[string]any{"id": SlackTeam, "domain": "chaos"},
		"user":       map[string]any{"id": user, "team_id": SlackTeam},
		"channel":    map[string]any{"id": "C0DEPLOYS"},
		"trigger_id": "trigger-" + rid,
		"api_app_id": "A0ASSENT",
		"container":  map[string]any{"type": "message", "channel_id": "C0DEPLOYS"},
		"actions": []map[string]any{{
			"type": "button", "action_id": action, "block_id": "decide", "value": rid,
			"text": map[string]any{"type": "plain_text", "text": "Approve"}, "action_ts": "1760000000.000001",
		}},
	})
	return []byte(url.Values{"payload": {string(payload)}}.Encode())
}

// click is an Approve click in Slack, through any gateway replica. The
// gateway answers 200 once Kafka has the vote: the outcome comes later.
func (c *client) click(ctx context.Context, who person, rid string) {
	body := ClickBody(who.slack, rid, "assent.approve")
	op := Op{Kind: KindVote, Via: "slack", Request: rid, Actor: who.principal, Decision: "approve", Client: c.id,
		Command: slackVoteID(rid, SlackTeam, who.slack, "approve"), Call: time.Now().UnixNano()}
	start := c.rng.IntN(len(c.w.Gateways))
	var last answer
	var sent map[string]string
	for i := range 8 {
		g := c.w.Gateways[(start+i)%len(c.w.Gateways)]
		sent = Sign(c.w.SigningSecret, time.Now().Unix(), body)
		last = c.do(ctx, http.MethodPost, g+"/slack/interactivity", body, sent)
		op.Replica = g
		if last.err == nil && last.status < 500 || ctx.Err() != nil {
			break
		}
		time.Sleep(time.Duration(150*(i+1)) * time.Millisecond)
	}
	op.Return, op.HTTP = time.Now().UnixNano(), last.status
	switch {
	case last.err != nil || last.status >= 500:
		op.Outcome = Unknown
	case last.status == http.StatusOK:
		op.Outcome = Accepted
	default:
		op.Outcome, op.Detail = Refused, string(last.body)
	}
	c.w.Rec.Add(op)
	if op.Outcome == Accepted && c.rng.IntN(3) == 0 {
		// A replay of exactly what was sent, to the same replica: refused.
		c.negativeOp(ctx, "slack: a replayed click", "", http.StatusUnauthorized, http.MethodPost, op.Replica+"/slack/interactivity", body, sent)
	}
	c.pause(ctx)
}

// negative sends one request that must be refused, and must leave no
// trace in either topic (its request id is checked against both).
func (c *client) negative(ctx context.Context, n int) {
	rid := fmt.Sprintf("%s-neg-%d-%d", c.w.Prefix, c.id, n)
	api := c.w.APIs[c.rng.IntN(len(c.w.APIs))]
	gw := c.w.Gateways[c.rng.IntN(len(c.w.Gateways))]
	submit := func(extra map[string]any) []byte {
		b := map[string]any{"request_id": rid, "reason": "r",
			"action": map[string]any{"type": "deploy", "resource": "services/x", "environment": "production"}}
		for k, v := range extra {
			b[k] = v
		}
		raw, _ := json.Marshal(b)
		return raw
	}
	jsonAs := func(p person) map[string]string {
		return map[string]string{"Authorization": "Bearer " + p.token, "Content-Type": "application/json"}
	}
	click := ClickBody("U0ALICE", rid, "assent.approve")
	now := time.Now().Unix()
	// The kinds in turn, so that a short run sends every one.
	switch int(c.w.negSeq.Add(1)-1) % negativeKinds {
	case 0:
		c.negativeOp(ctx, "api: no token", rid, 401, http.MethodPost, api+"/v1/requests", submit(nil), map[string]string{"Content-Type": "application/json"})
	case 1:
		c.negativeOp(ctx, "api: a token nobody issued", rid, 401, http.MethodPost, api+"/v1/requests", submit(nil),
			map[string]string{"Authorization": "Bearer demo-nobody", "Content-Type": "application/json"})
	case 2:
		c.negativeOp(ctx, "api: a requester named without the on_behalf role", rid, 403, http.MethodPost, api+"/v1/requests",
			submit(map[string]any{"requester": alice.principal}), jsonAs(billing))
	case 3:
		raw, _ := json.Marshal(map[string]any{"decision": "approve", "voter": bob.principal})
		c.negativeOp(ctx, "api: a vote on behalf of another without the role", rid, 403, http.MethodPost, api+"/v1/requests/"+rid+"/votes", raw, jsonAs(alice))
	case 4:
		big := submit(map[string]any{"action": map[string]any{"type": "deploy", "resource": "services/x", "environment": "production",
			"details": map[string]any{"blob": strings.Repeat("x", 70<<10)}}})
		c.negativeOp(ctx, "api: a body over ASSENT_MAX_BODY", rid, 413, http.MethodPost, api+"/v1/requests", big, jsonAs(billing))
	case 5:
		c.negativeOp(ctx, "api: malformed JSON", rid, 400, http.MethodPost, api+"/v1/requests",
			[]byte(`{"request_id":"`+rid+`","action":{"type":`), jsonAs(billing))
	case 6:
		c.negativeOp(ctx, "api: not JSON", rid, 415, http.MethodPost, api+"/v1/requests", submit(nil),
			map[string]string{"Authorization": "Bearer " + billing.token, "Content-Type": "text/plain"})
	case 7:
		c.negativeOp(ctx, "slack: an unsigned click", rid, 401, http.MethodPost, gw+"/slack/interactivity", click,
			map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	case 8:
		c.negativeOp(ctx, "slack: a click signed with another secret", rid, 401, http.MethodPost, gw+"/slack/interactivity", click,
			Sign("not-the-secret", now, click))
	case 9:
		c.negativeOp(ctx, "slack: a correctly signed click from 10 minutes ago", rid, 401, http.MethodPost, gw+"/slack/interactivity", click,
			Sign(c.w.SigningSecret, now-600, click))
	case 10:
		big := append(append([]byte(nil), click...), []byte("&pad="+strings.Repeat("x", 1<<20))...)
		c.negativeOp(ctx, "slack: a body over ASSENT_MAX_BODY", rid, 413, http.MethodPost, gw+"/slack/interactivity", big,
			Sign(c.w.SigningSecret, now, big))
	default:
		junk := []byte("payload=%7Bnot-json&user=" + rid)
		c.negativeOp(ctx, "slack: a signed body that is not an interaction", rid, 400, http.MethodPost, gw+"/slack/interactivity", junk,
			Sign(c.w.SigningSecret, now, junk))
	}
	c.pause(ctx)
}

func (c *client) negativeOp(ctx context.Context, what, rid string, expect int, method, u string, body []byte, header map[string]string) {
	op := Op{Kind: KindNegative, Request: rid, Client: c.id, Expect: expect, Detail: what, Call: time.Now().UnixNano()}
	var a answer
	for i := range 6 {
		a = c.do(ctx, method, u, body, header)
		// A replica that is down (a fault) tested nothing: ask again once
		// it is back. Not a replay, though: a restarted gateway has
		// forgotten what it saw (the replay cache is per process; the
		// command id is what makes a replay harmless then).
		if a.err == nil && a.status < 500 || rid == "" || ctx.Err() != nil {
			break
		}
		time.Sleep(time.Duration(500*(i+1)) * time.Millisecond)
	}
	op.Return, op.HTTP = time.Now().UnixNano(), a.status
	if a.err != nil || a.status >= 500 {
		return
	}
	var p struct {
		Code string `json:"code"`
	}
	_ = json.Unmarshal(a.body, &p)
	op.Code, op.Outcome = p.Code, Refused
	if a.status < 300 {
		op.Outcome = OK
	}
	c.w.Rec.Add(op)
}

func slackVoteID(rid, team, user, decision string) string {
	return command.SlackVoteID(rid, team, user, approval.VoteDecision(decision))
}

package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/command"
)

// codeRateLimited is the api's 429: no command was written.
const codeRateLimited = "rate_limited"

// floodWriteRate is the api replicas' ASSENT_WRITE_RATE in the suite
// (bursts of twice as many): low enough that the hostile client's 256
// connections, each waiting for its vote's outcome, offer more than it even
// on a machine so loaded that a vote takes several seconds (a CI run with
// 64 connections and a rate of 40 saw no 429 at all), high enough that
// more refusals than a state remembers reach the deciders within the
// flood's 15s (a CI run at 10 whose vote budget ran out in 11s got 241),
// and above the workload's busiest principal (service:billing submits most
// requests, 2-5 a second per replica).
const floodWriteRate = 15

// The clients that are nemeses (their ids in the history; the workload's
// clients are numbered from 0).
const (
	clientExpiry  = 1000
	clientHostile = 1001
)

// Hostile is the hostile client of issue 13 (item 8): a principal with a
// valid token who floods one request with votes that are all refused
// (mallory is not an approver of the suite's policy, and nobody else in
// the workload acts as her, so the rate limit she meets is hers alone), from Workers
// connections to every api replica at once, as fast as the replicas
// answer, until Votes votes were sent or Duration passed. Each vote waits
// for its outcome, as every api write does, so the flood offers about
// Workers / latency votes a second: more than the replicas' write rate per
// principal (floodWriteRate), so that both the rate limit (429) and the
// deciders (not_eligible) refuse some.
//
// What it must not do: slow anyone else (the report's gap for the fault's
// window next to the warm-up's), grow the request's state or the cost of
// each event without bound, or make the request undecidable. After the
// flood an approver approves the request, and the time until that vote's
// answer is in the fault's note. Every vote of the flood is recorded in
// the history (Op.Hostile): a vote refused as rate_limited must never
// reach Kafka (FLOOD), a refusal the client was told must be the log's
// (I3), and a vote answered 202 must have its outcome in the log (I1).
type Hostile struct {
	W        *Workload
	Prefix   string
	Workers  int
	Votes    int
	Duration time.Duration
	// Rate caps the votes offered a second, all workers together. Far
	// above floodWriteRate, it keeps the flood going for all of Duration
	// on a quiet machine: there the api answers a 429 at once, and 256
	// connections spent a budget of 40,000 votes in a few seconds, before
	// more refusals than a state remembers had reached the deciders
	// (207 of the 256 TestIntegrationChaos requires). Zero: no cap.
	Rate  float64
	round atomic.Int64
}

// Inject runs one flood and returns what it did.
func (h *Hostile) Inject(ctx context.Context) (target, note string, err error) {
	c := h.W.client(clientHostile)
	// As many connections as it has workers, kept open.
	c.hc = &http.Client{Timeout: 12 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: h.Workers}}
	rid := fmt.Sprintf("%s-hostile-%d", h.Prefix, h.round.Add(1))
	if !c.submit(ctx, billing, rid, "deploy", "hostile "+rid, "") {
		return rid, "", fmt.Errorf("chaos: the flood's request %s was not submitted", rid)
	}
	var (
		mu      sync.Mutex
		byCode  = map[string]int{}
		sent    atomic.Int64
		wg      sync.WaitGroup
		began   = time.Now()
		stopped = began.Add(h.Duration)
		pace    = rate.NewLimiter(rate.Inf, 0)
	)
	if h.Rate > 0 {
		pace = rate.NewLimiter(rate.Limit(h.Rate), h.Workers)
	}
	for w := range h.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; ctx.Err() == nil && time.Now().Before(stopped); i++ {
				if sent.Add(1) > int64(h.Votes) || pace.Wait(ctx) != nil {
					return
				}
				op := h.vote(ctx, c, rid, i%len(h.W.APIs))
				code := string(op.Outcome)
				if op.Code != "" {
					code = op.Code
				}
				mu.Lock()
				byCode[code]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	flood := time.Since(began)
	// The request must still be decidable, at once.
	voted := time.Now()
	op := c.vote(ctx, alice, rid, "approve", c.key())
	answered := time.Since(voted)
	c.read(ctx, rid, "8s")
	var parts []string
	total := 0
	for _, k := range slices.Sorted(maps.Keys(byCode)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, byCode[k]))
		total += byCode[k]
	}
	answer := string(op.Outcome)
	if op.Code != "" {
		answer += " " + op.Code
	}
	note = fmt.Sprintf("%d refused votes by %s in %s from %d connections (%s); then %s's approval answered %s, status %q, in %s",
		total, mallory.principal, flood.Round(time.Millisecond), h.Workers, strings.Join(parts, ", "),
		alice.principal, answer, op.Status, answered.Round(time.Millisecond))
	if op.Outcome != OK || op.Status != string(approval.StatusApproved) {
		return rid, note, fmt.Errorf("chaos: after the flood, the approval of %s was answered %s %q (status %q), not approved", rid, op.Outcome, op.Code, op.Status)
	}
	return rid, note, nil
}

// vote sends one vote of the flood, once (a hostile client does not retry
// politely), and records it.
func (h *Hostile) vote(ctx context.Context, c *client, rid string, replica int) Op {
	key := c.key()
	op := Op{Kind: KindVote, Via: "api", Request: rid, Actor: mallory.principal, Decision: "approve", Client: c.id, Hostile: true,
		Command: command.APICommandID(mallory.principal, mallory.principal, approval.TypeVote, rid, key), Replica: h.W.APIs[replica]}
	raw, _ := json.Marshal(map[string]any{"decision": "approve"})
	op.Call = time.Now().UnixNano()
	a := c.do(ctx, http.MethodPost, op.Replica+"/v1/requests/"+rid+"/votes", raw, map[string]string{
		"Authorization": "Bearer " + mallory.token, "Content-Type": "application/json", "Idempotency-Key": key,
	})
	op.Return, op.HTTP = time.Now().UnixNano(), a.status
	switch {
	case a.err != nil || a.status >= 500:
		op.Outcome = Unknown
		if a.err != nil {
			op.Detail = a.err.Error()
		}
	case a.status == http.StatusAccepted:
		op.Outcome = Accepted
	case a.status < 300:
		op.Outcome = OK
		c.view(&op, a.body)
	default:
		// The command id stays even when nothing was written (a 429):
		// FLOOD looks for it in both topics.
		op.Outcome = Refused
		var p struct {
			Code string `json:"code"`
		}
		_ = json.Unmarshal(a.body, &p)
		op.Code = p.Code
	}
	c.w.Rec.Add(op)
	return op
}

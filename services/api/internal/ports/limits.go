package ports

import (
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/services/api/internal/metrics"
)

// Limits bound what one principal, and all of them together, may hold of
// one replica, so that a hostile or broken client cannot slow everyone
// else down (docs/architecture.md, "Failure model"). A zero field means
// no limit.
type Limits struct {
	// WriteRate is the writes per second each principal may make on this
	// replica, with bursts of WriteBurst (at least 1).
	WriteRate  float64
	WriteBurst int
	// LongPolls is how many long polls (GET /v1/requests/{id}?wait=) this
	// replica holds at once, of every principal; LongPollsPerPrincipal is
	// how many of them one principal may hold.
	LongPolls             int
	LongPollsPerPrincipal int
}

// CodeRateLimited is the problem code of a 429: the caller is over one of
// its limits. It is a code of the HTTP layer, not a reason a command was
// refused: no command was sent.
const CodeRateLimited approval.ReasonCode = "rate_limited"

// pollRetryAfter is the Retry-After of a refused long poll: a parked poll
// of the same principal may end at any moment, or another replica may
// have room.
const pollRetryAfter = 2 * time.Second

// throttleLogEvery bounds the warnings about one principal over a limit.
const throttleLogEvery = time.Minute

// limiter keeps the state behind Limits. Its maps are keyed by the
// authenticated principal, so they hold at most one entry per principal
// of the tokens file.
type limiter struct {
	limits  Limits
	metrics *metrics.Metrics // optional
	log     *slog.Logger

	mu      sync.Mutex
	writers map[string]*rate.Limiter
	polls   int
	pollsOf map[string]int
	logged  map[string]time.Time
}

func newLimiter(l Limits, m *metrics.Metrics, log *slog.Logger) *limiter {
	if l.WriteBurst < 1 {
		l.WriteBurst = max(1, int(math.Ceil(l.WriteRate)))
	}
	return &limiter{limits: l, metrics: m, log: log,
		writers: map[string]*rate.Limiter{}, pollsOf: map[string]int{}, logged: map[string]time.Time{}}
}

// write spends one of principal's writes, or returns the 429 to answer.
func (l *limiter) write(principal string) *Problem {
	if l.limits.WriteRate <= 0 {
		return nil
	}
	now := time.Now()
	l.mu.Lock()
	lim, ok := l.writers[principal]
	if !ok {
		lim = rate.NewLimiter(rate.Limit(l.limits.WriteRate), l.limits.WriteBurst)
		l.writers[principal] = lim
	}
	l.mu.Unlock()
	if lim.AllowN(now, 1) {
		return nil
	}
	// How long until the next write would be allowed.
	r := lim.ReserveN(now, 1)
	wait := r.DelayFrom(now)
	r.CancelAt(now)
	if l.metrics != nil {
		l.metrics.WritesThrottled.Inc()
	}
	l.warn(principal, "a principal is over its write rate; its writes are refused with 429", "limit", "writes",
		"rate", l.limits.WriteRate, "burst", l.limits.WriteBurst)
	return tooMany(fmt.Sprintf("%s is over its limit of %s writes per second on this replica (bursts of %d); nothing was written, retry after Retry-After seconds",
		principal, strconv.FormatFloat(l.limits.WriteRate, 'f', -1, 64), l.limits.WriteBurst), wait)
}

// poll takes a long-poll slot for principal. It returns the function that
// gives the slot back, or the problem to answer: 429 when the principal
// holds all it may, 503 when the replica does. The caller counts a
// problem it does answer with refusedPoll.
func (l *limiter) poll(principal string) (release func(), p *Problem) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.limits.LongPollsPerPrincipal > 0 && l.pollsOf[principal] >= l.limits.LongPollsPerPrincipal:
		return nil, tooMany(fmt.Sprintf("%s already holds %d long polls on this replica, as many as it may; poll again after Retry-After seconds, or read without wait",
			principal, l.limits.LongPollsPerPrincipal), pollRetryAfter)
	case l.limits.LongPolls > 0 && l.polls >= l.limits.LongPolls:
		p := httpProblem(http.StatusServiceUnavailable, "", fmt.Sprintf("this replica holds %d long polls, as many as it may; poll again after Retry-After seconds, here or on another replica", l.limits.LongPolls))
		p.header = http.Header{"Retry-After": {retryAfter(pollRetryAfter)}}
		return nil, p
	}
	l.polls++
	l.pollsOf[principal]++
	if l.metrics != nil {
		l.metrics.LongPolls.Inc()
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.polls--
			if l.pollsOf[principal]--; l.pollsOf[principal] <= 0 {
				delete(l.pollsOf, principal)
			}
			if l.metrics != nil {
				l.metrics.LongPolls.Dec()
			}
		})
	}, nil
}

// refusedPoll counts, and logs now and then, a long poll refused with p.
func (l *limiter) refusedPoll(principal string, p *Problem) {
	limit, most := "replica", l.limits.LongPolls
	if p.Status == http.StatusTooManyRequests {
		limit, most = "principal", l.limits.LongPollsPerPrincipal
	}
	if l.metrics != nil {
		l.metrics.LongPollsRefused.WithLabelValues(limit).Inc()
	}
	if limit == "principal" {
		l.warn(principal, "a principal holds as many long polls as it may; more are refused with 429", "limit", "long_polls", "max", most)
	} else {
		l.warn("", "this replica holds as many long polls as it may; more are refused with 503", "limit", "long_polls", "max", most)
	}
}

// warn logs msg about principal ("" for the replica as a whole) at most
// once per throttleLogEvery, so that a client hammering the api cannot
// flood the log.
func (l *limiter) warn(principal, msg string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	key := msg + "\x00" + principal
	now := time.Now()
	if last, ok := l.logged[key]; ok && now.Sub(last) < throttleLogEvery {
		return
	}
	l.logged[key] = now
	if principal != "" {
		args = append([]any{"principal", principal}, args...)
	}
	l.log.Warn(msg, args...)
}

// tooMany is a 429 of the HTTP layer with code rate_limited.
func tooMany(detail string, wait time.Duration) *Problem {
	p := httpProblem(http.StatusTooManyRequests, CodeRateLimited, detail)
	p.header = http.Header{"Retry-After": {retryAfter(wait)}}
	return p
}

// retryAfter is d in whole seconds, rounded up, at least 1.
func retryAfter(d time.Duration) string {
	return strconv.Itoa(max(1, int(math.Ceil(d.Seconds()))))
}

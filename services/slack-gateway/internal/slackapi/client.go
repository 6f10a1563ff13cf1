// Package slackapi is the gateway's Slack Web API client: slack-go behind
// rate limits per method and per channel, Retry-After honoured on every
// 429, caches for users and channels, and the one operation that must
// never be retried blindly, posting a message.
//
// # Rate limits
//
// Each method has a token bucket sized from Slack's published tier
// (https://api.slack.com/apis/rate-limits), and messages to one channel
// share a bucket of one per second. A 429 blocks the method (and the
// channel) for its Retry-After, for every goroutine of the process, and the
// call is retried after it. Config.RateScale multiplies every rate (tests
// against a fake Slack use a large one; production keeps 1).
//
// # Unknown outcomes
//
// A chat.postMessage that fails without an answer from Slack (a timeout, a
// reset connection, a 5xx) may or may not have posted the message.
// PostOnce never posts again before it has looked for the message in
// conversations.history by its metadata, so an unknown outcome never
// becomes a duplicate card.
package slackapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/slack-go/slack"
	"golang.org/x/time/rate"
)

// Config configures a Client.
type Config struct {
	Token  string
	APIURL string // Slack's default if empty; must end in "/"
	// RateScale multiplies every rate limit; 1 means Slack's tiers.
	RateScale float64
	// UserTTL is how long a user's email is cached (default 10m).
	UserTTL time.Duration
	// Timeout bounds each HTTP call (default 10s).
	Timeout time.Duration
	// Observe, if set, receives every call: its method, "ok",
	// "rate_limited" or "error", and how long it took.
	Observe func(method, status string, d time.Duration)
	Now     func() time.Time
}

// Client is safe for concurrent use.
type Client struct {
	api *slack.Client
	cfg Config

	mu       sync.Mutex
	methods  map[string]*rate.Limiter
	channels map[string]*rate.Limiter
	blocked  map[string]time.Time // method or "#"+channel → until
	users    map[string]cached    // slack user id → principal
	emails   map[string]cached    // principal → slack user id
	dms      map[string]string    // slack user id → DM channel
	names    map[string]cached    // channel name → id
}

type cached struct {
	value string
	until time.Time
}

// ErrNoEmail means Slack has no email for a user (a bot, a guest without
// one, or a token without the users:read.email scope), so the user cannot
// be mapped to an Assent principal.
var ErrNoEmail = errors.New("slackapi: the Slack user has no email address (the bot token needs the users:read.email scope)")

// ErrChannelNotFound means a policy names a channel Slack does not show
// the bot.
var ErrChannelNotFound = errors.New("slackapi: channel not found")

// ErrNotAUser means a principal is a service, which has no Slack account.
var ErrNotAUser = errors.New("slackapi: the principal is not a user")

// tiers are requests per minute (Slack's tiers 2–4 and the special limit
// of chat.postMessage).
var tiers = map[string]float64{
	"chat.postMessage":      60,
	"chat.update":           50,
	"chat.postEphemeral":    100,
	"views.open":            100,
	"conversations.open":    50,
	"conversations.history": 50,
	"conversations.list":    20,
	"users.info":            100,
	"users.lookupByEmail":   50,
}

// perChannel is the rate of messages to one channel (per second).
const perChannel = 1.0

// maxRateLimited bounds the retries of one call after 429s.
const maxRateLimited = 10

// New returns a Client.
func New(cfg Config) *Client {
	if cfg.RateScale <= 0 {
		cfg.RateScale = 1
	}
	if cfg.UserTTL <= 0 {
		cfg.UserTTL = 10 * time.Minute
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	opts := []slack.Option{slack.OptionHTTPClient(&http.Client{Timeout: cfg.Timeout})}
	if cfg.APIURL != "" {
		u := cfg.APIURL
		if !strings.HasSuffix(u, "/") {
			u += "/"
		}
		opts = append(opts, slack.OptionAPIURL(u))
	}
	c := &Client{
		api: slack.New(cfg.Token, opts...), cfg: cfg,
		methods: map[string]*rate.Limiter{}, channels: map[string]*rate.Limiter{}, blocked: map[string]time.Time{},
		users: map[string]cached{}, emails: map[string]cached{}, dms: map[string]string{}, names: map[string]cached{},
	}
	for m, perMin := range tiers {
		r := perMin / 60 * cfg.RateScale
		c.methods[m] = rate.NewLimiter(rate.Limit(r), max(1, int(perMin/10*cfg.RateScale)))
	}
	return c
}

// Unknown reports whether err leaves the outcome of a call unknown: Slack
// did not answer it (a timeout, a network error, a 5xx). An error answer
// from Slack ("channel_not_found") and a 429 are known failures.
func Unknown(err error) bool {
	if err == nil {
		return false
	}
	var slackErr slack.SlackErrorResponse
	var limited *slack.RateLimitedError
	if errors.As(err, &slackErr) || errors.As(err, &limited) {
		return false
	}
	var status slack.StatusCodeError
	if errors.As(err, &status) {
		return status.Code >= 500
	}
	return true
}

// call runs fn under the method's (and channel's) limits, retrying after
// each 429 once its Retry-After has passed.
func (c *Client) call(ctx context.Context, method, channel string, fn func(ctx context.Context) error) error {
	lim := c.limiter(method, channel)
	for attempt := 1; ; attempt++ {
		if err := c.waitBlocked(ctx, method, channel); err != nil {
			return err
		}
		for _, l := range lim {
			if err := l.Wait(ctx); err != nil {
				return fmt.Errorf("slackapi: %s: %w", method, err)
			}
		}
		began := c.cfg.Now()
		err := fn(ctx)
		var limited *slack.RateLimitedError
		status := "ok"
		switch {
		case errors.As(err, &limited):
			status = "rate_limited"
		case err != nil:
			status = "error"
		}
		if c.cfg.Observe != nil {
			c.cfg.Observe(method, status, c.cfg.Now().Sub(began))
		}
		if limited == nil {
			if err != nil {
				return fmt.Errorf("slackapi: %s: %w", method, err)
			}
			return nil
		}
		c.block(method, channel, limited.RetryAfter)
		if attempt >= maxRateLimited {
			return fmt.Errorf("slackapi: %s: still rate limited after %d attempts: %w", method, attempt, err)
		}
	}
}

func (c *Client) limiter(method, channel string) []*rate.Limiter {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := []*rate.Limiter{c.methods[method]}
	if channel != "" && (method == "chat.postMessage" || method == "chat.update") {
		l, ok := c.channels[channel]
		if !ok {
			l = rate.NewLimiter(rate.Limit(perChannel*c.cfg.RateScale), max(1, int(3*c.cfg.RateScale)))
			c.channels[channel] = l
		}
		out = append(out, l)
	}
	return out
}

func (c *Client) block(method, channel string, d time.Duration) {
	if d <= 0 {
		d = time.Second
	}
	until := c.cfg.Now().Add(d)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range []string{method, "#" + channel} {
		if k == "#" {
			continue
		}
		if until.After(c.blocked[k]) {
			c.blocked[k] = until
		}
	}
}

func (c *Client) waitBlocked(ctx context.Context, method, channel string) error {
	c.mu.Lock()
	until := c.blocked[method]
	if ch := c.blocked["#"+channel]; channel != "" && ch.After(until) {
		until = ch
	}
	c.mu.Unlock()
	d := until.Sub(c.cfg.Now())
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return fmt.Errorf("slackapi: waiting out a rate limit: %w", ctx.Err())
	case <-t.C:
		return nil
	}
}

// Update replaces a message.
func (c *Client) Update(ctx context.Context, channel, ts string, opts ...slack.MsgOption) error {
	return c.call(ctx, "chat.update", channel, func(ctx context.Context) error {
		_, _, _, err := c.api.UpdateMessageContext(ctx, channel, ts, opts...)
		return err
	})
}

// Ephemeral shows a message to one user in a channel.
func (c *Client) Ephemeral(ctx context.Context, channel, user string, opts ...slack.MsgOption) error {
	return c.call(ctx, "chat.postEphemeral", "", func(ctx context.Context) error {
		_, err := c.api.PostEphemeralContext(ctx, channel, user, opts...)
		return err
	})
}

// OpenView opens a modal for the trigger of a click.
func (c *Client) OpenView(ctx context.Context, triggerID string, view slack.ModalViewRequest) error {
	return c.call(ctx, "views.open", "", func(ctx context.Context) error {
		_, err := c.api.OpenViewContext(ctx, triggerID, view)
		return err
	})
}

// PostOnce posts a message carrying metadata that names requestID and
// kind, unless such a message is already in the channel, and returns its
// ts. After an unknown outcome it looks for the message in the channel's
// history (messages since oldest) before it posts again. channel must be
// an id (see Channel).
func (c *Client) PostOnce(ctx context.Context, channel, requestID, kind string, oldest time.Time, check bool, opts ...slack.MsgOption) (ts string, found bool, err error) {
	if check {
		if ts, ok, err := c.Find(ctx, channel, requestID, kind, oldest); err != nil || ok {
			return ts, ok, err
		}
	}
	const attempts = 4
	for attempt := 1; ; attempt++ {
		err = c.call(ctx, "chat.postMessage", channel, func(ctx context.Context) error {
			_, ts, err = c.api.PostMessageContext(ctx, channel, opts...)
			return err
		})
		if err == nil || !Unknown(err) || attempt == attempts {
			return ts, false, err
		}
		// The message may be there: look before posting again.
		if ts, ok, ferr := c.Find(ctx, channel, requestID, kind, oldest); ferr == nil && ok {
			return ts, true, nil
		} else if ferr != nil {
			return "", false, fmt.Errorf("%w (and looking for the message failed: %w)", err, ferr)
		}
		select {
		case <-ctx.Done():
			return "", false, err
		case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
		}
	}
}

// maxHistoryPages bounds the search of one channel's history.
const maxHistoryPages = 10

// Find returns the ts of the oldest message in channel since oldest whose
// metadata names requestID and kind.
func (c *Client) Find(ctx context.Context, channel, requestID, kind string, oldest time.Time) (string, bool, error) {
	params := &slack.GetConversationHistoryParameters{
		ChannelID: channel, Limit: 200, IncludeAllMetadata: true,
		Oldest: strconv.FormatInt(oldest.Add(-time.Minute).Unix(), 10),
	}
	var found string
	for page := 0; page < maxHistoryPages; page++ {
		var resp *slack.GetConversationHistoryResponse
		err := c.call(ctx, "conversations.history", "", func(ctx context.Context) (err error) {
			resp, err = c.api.GetConversationHistoryContext(ctx, params)
			return err
		})
		if err != nil {
			return "", false, err
		}
		for _, m := range resp.Messages { // newest first: keep the last match
			md := m.Metadata
			if md.EventType == "assent_request" && md.EventPayload["request_id"] == requestID && md.EventPayload["kind"] == kind {
				found = m.Timestamp
			}
		}
		if !resp.HasMore || resp.ResponseMetaData.NextCursor == "" {
			break
		}
		params.Cursor = resp.ResponseMetaData.NextCursor
	}
	return found, found != "", nil
}

// Principal returns the Assent principal of a Slack user, "user:" and the
// user's email in lower case, cached for Config.UserTTL.
func (c *Client) Principal(ctx context.Context, userID string) (string, error) {
	now := c.cfg.Now()
	c.mu.Lock()
	hit, ok := c.users[userID]
	c.mu.Unlock()
	if ok && now.Before(hit.until) {
		return hit.value, nil
	}
	var u *slack.User
	err := c.call(ctx, "users.info", "", func(ctx context.Context) (err error) {
		u, err = c.api.GetUserInfoContext(ctx, userID)
		return err
	})
	if err != nil {
		return "", err
	}
	if u.Profile.Email == "" {
		return "", ErrNoEmail
	}
	p := "user:" + strings.ToLower(u.Profile.Email)
	c.mu.Lock()
	c.users[userID] = cached{p, now.Add(c.cfg.UserTTL)}
	c.emails[p] = cached{userID, now.Add(c.cfg.UserTTL)}
	c.mu.Unlock()
	return p, nil
}

// UserID returns the Slack user of a "user:<email>" principal.
func (c *Client) UserID(ctx context.Context, principal string) (string, error) {
	email, ok := strings.CutPrefix(principal, "user:")
	if !ok {
		return "", fmt.Errorf("%w: %s has no Slack account", ErrNotAUser, principal)
	}
	now := c.cfg.Now()
	c.mu.Lock()
	hit, ok := c.emails[principal]
	c.mu.Unlock()
	if ok && now.Before(hit.until) {
		return hit.value, nil
	}
	var u *slack.User
	err := c.call(ctx, "users.lookupByEmail", "", func(ctx context.Context) (err error) {
		u, err = c.api.GetUserByEmailContext(ctx, email)
		return err
	})
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	c.emails[principal] = cached{u.ID, now.Add(c.cfg.UserTTL)}
	c.mu.Unlock()
	return u.ID, nil
}

// DM returns the direct-message channel with a user, opening it once.
func (c *Client) DM(ctx context.Context, userID string) (string, error) {
	c.mu.Lock()
	ch, ok := c.dms[userID]
	c.mu.Unlock()
	if ok {
		return ch, nil
	}
	var channel *slack.Channel
	err := c.call(ctx, "conversations.open", "", func(ctx context.Context) (err error) {
		channel, _, _, err = c.api.OpenConversationContext(ctx, &slack.OpenConversationParameters{Users: []string{userID}})
		return err
	})
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	c.dms[userID] = channel.ID
	c.mu.Unlock()
	return channel.ID, nil
}

var channelID = regexp.MustCompile(`^[CGD][A-Z0-9]{2,}$`)

// Channel resolves a policy's channel target, an id ("C0123") or a name
// ("#deploys"), to the channel id.
func (c *Client) Channel(ctx context.Context, target string) (string, error) {
	if channelID.MatchString(target) {
		return target, nil
	}
	name := strings.TrimPrefix(target, "#")
	now := c.cfg.Now()
	c.mu.Lock()
	hit, ok := c.names[name]
	c.mu.Unlock()
	if ok && now.Before(hit.until) {
		return hit.value, nil
	}
	params := &slack.GetConversationsParameters{ExcludeArchived: true, Limit: 1000, Types: []string{"public_channel", "private_channel"}}
	for page := 0; page < maxHistoryPages; page++ {
		var chans []slack.Channel
		var next string
		err := c.call(ctx, "conversations.list", "", func(ctx context.Context) (err error) {
			chans, next, err = c.api.GetConversationsContext(ctx, params)
			return err
		})
		if err != nil {
			return "", err
		}
		c.mu.Lock()
		for _, ch := range chans {
			c.names[ch.Name] = cached{ch.ID, now.Add(c.cfg.UserTTL)}
		}
		hit, ok = c.names[name]
		c.mu.Unlock()
		if ok || next == "" {
			break
		}
		params.Cursor = next
	}
	if !ok {
		return "", fmt.Errorf("%w: %s: create it, or invite the Assent app to it (/invite @Assent)", ErrChannelNotFound, target)
	}
	return hit.value, nil
}

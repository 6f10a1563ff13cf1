// Package slackfake is the Slack Web API the gateway's tests talk to: the
// slack-go slacktest server, extended with the endpoints it lacks and with
// state, so that a test can ask which cards exist in which channel and
// what they say.
//
// slacktest answers chat.postMessage and users.info with canned replies.
// The gateway needs more: chat.update, views.open, conversations.open,
// conversations.history with message metadata, conversations.list,
// users.info and users.lookupByEmail with real emails, and 429 responses
// with Retry-After. Each is registered through slacktest's Binder hook,
// which takes precedence over its defaults.
//
// # Faults
//
// RateLimit makes the next n calls of a method answer 429 with a
// Retry-After header. FailAfterPost makes the next n chat.postMessage
// calls store the message and then answer 500: the caller cannot tell
// whether the message was posted, which is the case the gateway must
// handle without posting a duplicate.
package slackfake

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/assent-dev/assent/test/tb"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slacktest"
)

// Token is the bot token the fake accepts.
const Token = "xoxb-assent-test" //nolint:gosec // G101: the fake's own made-up token

// User is a member of the fake workspace.
type User struct {
	ID    string
	Name  string
	Email string
}

// Message is a message the fake holds: a card, a DM or an ephemeral reply.
type Message struct {
	Channel  string
	TS       string
	User     string // the recipient of an ephemeral message
	Text     string
	Blocks   json.RawMessage
	Metadata slack.SlackMetadata
	Updates  int
}

// View is a modal opened with views.open.
type View struct {
	TriggerID string
	View      slack.ModalViewRequest
}

// Server is the fake Slack.
type Server struct {
	*slacktest.Server

	mu         sync.Mutex
	users      map[string]User   // by id
	channels   map[string]string // id → name
	dms        map[string]string // user id → D channel
	messages   map[string][]*Message
	ephemerals []Message
	views      []View
	calls      map[string]int
	limited    map[string]int // method → calls still to answer 429
	retryAfter int
	failPosts  int
	seq        int
	holds      int
	held       []Held
	release    chan struct{}
}

// New starts a fake Slack with the given users and channels (id → name)
// and stops it when the test ends.
func New(t tb.TB, users []User, channels map[string]string) *Server {
	s := Start(users, channels)
	t.Cleanup(s.Close)
	return s
}

// Close releases held calls and stops the server.
func (s *Server) Close() {
	s.Release()
	s.Stop()
}

// Start starts a fake Slack outside a test (the demo and the benchmark);
// Close stops it.
func Start(users []User, channels map[string]string) *Server {
	s := &Server{
		users: map[string]User{}, channels: map[string]string{}, dms: map[string]string{},
		messages: map[string][]*Message{}, calls: map[string]int{}, limited: map[string]int{},
	}
	for _, u := range users {
		s.users[u.ID] = u
	}
	for id, name := range channels {
		s.channels[id] = strings.TrimPrefix(name, "#")
	}
	handlers := map[string]func(url.Values) (any, error){
		"chat.postMessage":      s.postMessage,
		"chat.update":           s.update,
		"chat.postEphemeral":    s.postEphemeral,
		"views.open":            s.openView,
		"conversations.open":    s.openConversation,
		"conversations.history": s.history,
		"conversations.list":    s.list,
		"users.info":            s.userInfo,
		"users.lookupByEmail":   s.lookupByEmail,
	}
	bind := func(c slacktest.Customize) {
		for method, h := range handlers {
			c.Handle("/"+method, s.handler(method, "", h))
		}
		// /_messages: everything posted, for a person looking at the demo.
		c.Handle("/_messages", func(w http.ResponseWriter, _ *http.Request) {
			s.mu.Lock()
			defer s.mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			_ = enc.Encode(map[string]any{"channels": s.messages, "ephemeral": s.ephemerals})
		})
		// /r/<tag>/<method>: the same API under a per-client prefix, so a
		// test can tell which gateway replica made a call.
		c.Handle("/r/", func(w http.ResponseWriter, r *http.Request) {
			tag, method, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/r/"), "/")
			h, ok := handlers[method]
			if !ok {
				http.NotFound(w, r)
				return
			}
			s.handler(method, tag, h)(w, r)
		})
	}
	s.Server = slacktest.NewTestServer(bind)
	s.Start()
	return s
}

// URL is the API URL to configure the client with (ends in a slash).
func (s *Server) URL() string { return s.GetAPIURL() }

// TaggedURL is the API URL for one client: calls through it are the same,
// but Held names the tag.
func (s *Server) TaggedURL(tag string) string { return s.GetAPIURL() + "r/" + tag + "/" }

// Held is a chat.postMessage call that was carried out and whose answer is
// being held back.
type Held struct {
	Tag     string
	Channel string
}

// HoldPosts makes the next n chat.postMessage calls post the message and
// then wait, without answering, until Release or until the caller goes
// away (a killed process).
func (s *Server) HoldPosts(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.holds = n
	if s.release == nil {
		s.release = make(chan struct{})
	}
}

// HeldPosts returns the calls being held (or that were).
func (s *Server) HeldPosts() []Held {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.held)
}

// Release answers every held call.
func (s *Server) Release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.release != nil {
		close(s.release)
		s.release = nil
	}
}

func (s *Server) maybeHold(r *http.Request, tag string, v url.Values) {
	s.mu.Lock()
	if s.holds == 0 {
		s.mu.Unlock()
		return
	}
	s.holds--
	s.held = append(s.held, Held{Tag: tag, Channel: v.Get("channel")})
	release := s.release
	s.mu.Unlock()
	select {
	case <-release:
	case <-r.Context().Done():
	}
}

// RateLimit makes the next n calls of method answer 429 with Retry-After
// of the given seconds.
func (s *Server) RateLimit(method string, n, retryAfterSeconds int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limited[method] = n
	s.retryAfter = retryAfterSeconds
}

// FailAfterPost makes the next n chat.postMessage calls post the message
// and then answer 500.
func (s *Server) FailAfterPost(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failPosts = n
}

// Calls returns how many times method was called, 429s included.
func (s *Server) Calls(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[method]
}

// Messages returns copies of the messages in a channel, oldest first.
func (s *Server) Messages(channel string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Message
	for _, m := range s.messages[channel] {
		out = append(out, *m)
	}
	return out
}

// Cards returns the messages in channel whose metadata names requestID.
func (s *Server) Cards(channel, requestID string) []Message {
	var out []Message
	for _, m := range s.Messages(channel) {
		if m.Metadata.EventPayload["request_id"] == requestID {
			out = append(out, m)
		}
	}
	return out
}

// DM returns the direct-message channel of a user, or "".
func (s *Server) DM(userID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dms[userID]
}

// Ephemerals returns the ephemeral replies sent so far.
func (s *Server) Ephemerals() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.ephemerals)
}

// Views returns the modals opened so far.
func (s *Server) Views() []View {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.views)
}

type apiError struct{ code string }

func (e apiError) Error() string { return e.code }

// handler decodes a form or JSON call, checks the token, applies the
// injected faults and writes Slack's envelope: {"ok":true,...} or
// {"ok":false,"error":...}.
func (s *Server) handler(method, tag string, h func(url.Values) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		vals, token, err := decode(r)
		w.Header().Set("Content-Type", "application/json")
		s.mu.Lock()
		s.calls[method]++
		if s.limited[method] > 0 {
			s.limited[method]--
			retry := s.retryAfter
			s.mu.Unlock()
			w.Header().Set("Retry-After", strconv.Itoa(retry))
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = io.WriteString(w, `{"ok":false,"error":"ratelimited"}`)
			return
		}
		s.mu.Unlock()
		var body any
		switch {
		case err != nil:
			body = map[string]any{"ok": false, "error": "invalid_arguments", "detail": err.Error()}
		case token != Token:
			body = map[string]any{"ok": false, "error": "invalid_auth"}
		default:
			res, err := h(vals)
			if method == "chat.postMessage" && err == nil {
				s.maybeHold(r, tag, vals)
			}
			var ae apiError
			switch {
			case err != nil && asAPIError(err, &ae):
				body = map[string]any{"ok": false, "error": ae.code}
			case err != nil:
				w.WriteHeader(http.StatusInternalServerError)
				_, _ = io.WriteString(w, "internal error")
				return
			default:
				m := map[string]any{"ok": true}
				b, _ := json.Marshal(res)
				_ = json.Unmarshal(b, &m)
				body = m
			}
		}
		_ = json.NewEncoder(w).Encode(body)
	}
}

func asAPIError(err error, ae *apiError) bool {
	return errors.As(err, ae)
}

// decode reads a form-encoded or JSON call into url.Values (JSON fields
// that are not strings are kept as their JSON text).
func decode(r *http.Request) (url.Values, string, error) {
	token := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		var m map[string]json.RawMessage
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			return nil, token, err
		}
		vals := url.Values{}
		for k, v := range m {
			var str string
			if json.Unmarshal(v, &str) == nil {
				vals.Set(k, str)
			} else {
				vals.Set(k, string(v))
			}
		}
		return vals, token, nil
	}
	if err := r.ParseForm(); err != nil {
		return nil, token, err
	}
	if t := r.Form.Get("token"); t != "" {
		token = t
	}
	return r.Form, token, nil
}

// channel resolves an id or a (#)name to a known channel id.
func (s *Server) channel(ref string) (string, error) {
	if _, ok := s.channels[ref]; ok {
		return ref, nil
	}
	for _, d := range s.dms {
		if d == ref {
			return ref, nil
		}
	}
	name := strings.TrimPrefix(ref, "#")
	for id, n := range s.channels {
		if n == name {
			return id, nil
		}
	}
	return "", apiError{"channel_not_found"}
}

func (s *Server) nextTS() string {
	s.seq++
	return fmt.Sprintf("%d.%06d", time.Now().Unix(), s.seq)
}

func (s *Server) postMessage(v url.Values) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, err := s.channel(v.Get("channel"))
	if err != nil {
		return nil, err
	}
	m := &Message{Channel: ch, TS: s.nextTS(), Text: v.Get("text"), Blocks: raw(v.Get("blocks"))}
	if md := v.Get("metadata"); md != "" {
		if err := json.Unmarshal([]byte(md), &m.Metadata); err != nil {
			return nil, apiError{"invalid_metadata_format"}
		}
	}
	s.messages[ch] = append(s.messages[ch], m)
	if s.failPosts > 0 {
		s.failPosts--
		return nil, fmt.Errorf("injected failure after posting %s", m.TS)
	}
	return map[string]any{"channel": ch, "ts": m.TS, "message": map[string]any{"text": m.Text}}, nil
}

func (s *Server) update(v url.Values) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, err := s.channel(v.Get("channel"))
	if err != nil {
		return nil, err
	}
	for _, m := range s.messages[ch] {
		if m.TS == v.Get("ts") {
			m.Text, m.Blocks = v.Get("text"), raw(v.Get("blocks"))
			m.Updates++
			return map[string]any{"channel": ch, "ts": m.TS, "text": m.Text}, nil
		}
	}
	return nil, apiError{"message_not_found"}
}

func (s *Server) postEphemeral(v url.Values) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, err := s.channel(v.Get("channel"))
	if err != nil {
		return nil, err
	}
	if _, ok := s.users[v.Get("user")]; !ok {
		return nil, apiError{"user_not_found"}
	}
	m := Message{Channel: ch, TS: s.nextTS(), User: v.Get("user"), Text: v.Get("text"), Blocks: raw(v.Get("blocks"))}
	s.ephemerals = append(s.ephemerals, m)
	return map[string]any{"message_ts": m.TS}, nil
}

func (s *Server) openView(v url.Values) (any, error) {
	var view slack.ModalViewRequest
	if err := json.Unmarshal([]byte(v.Get("view")), &view); err != nil {
		return nil, apiError{"invalid_arguments"}
	}
	if v.Get("trigger_id") == "" {
		return nil, apiError{"invalid_trigger_id"}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.views = append(s.views, View{TriggerID: v.Get("trigger_id"), View: view})
	return map[string]any{"view": map[string]any{"id": fmt.Sprintf("V%06d", len(s.views))}}, nil
}

func (s *Server) openConversation(v url.Values) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	user := v.Get("users")
	if _, ok := s.users[user]; !ok || strings.Contains(user, ",") {
		return nil, apiError{"user_not_found"}
	}
	if _, ok := s.dms[user]; !ok {
		s.dms[user] = "D" + user
	}
	return map[string]any{"channel": map[string]any{"id": s.dms[user]}}, nil
}

// history answers newest first, like Slack, with metadata only when asked.
func (s *Server) history(v url.Values) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, err := s.channel(v.Get("channel"))
	if err != nil {
		return nil, err
	}
	oldest, _ := strconv.ParseFloat(v.Get("oldest"), 64)
	withMeta := v.Get("include_all_metadata") == "1" || v.Get("include_all_metadata") == "true"
	var msgs []map[string]any
	list := s.messages[ch]
	for i := len(list) - 1; i >= 0; i-- {
		m := list[i]
		if ts, _ := strconv.ParseFloat(m.TS, 64); ts < oldest {
			continue
		}
		out := map[string]any{"type": "message", "ts": m.TS, "text": m.Text}
		if withMeta && m.Metadata.EventType != "" {
			out["metadata"] = m.Metadata
		}
		msgs = append(msgs, out)
	}
	return map[string]any{"messages": msgs, "has_more": false}, nil
}

func (s *Server) list(url.Values) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var chans []map[string]any
	for id, name := range s.channels {
		chans = append(chans, map[string]any{"id": id, "name": name, "is_channel": true})
	}
	return map[string]any{"channels": chans, "response_metadata": map[string]any{"next_cursor": ""}}, nil
}

func userJSON(u User) map[string]any {
	return map[string]any{"user": map[string]any{
		"id": u.ID, "name": u.Name, "real_name": u.Name,
		"profile": map[string]any{"email": u.Email, "real_name": u.Name, "display_name": u.Name},
	}}
}

func (s *Server) userInfo(v url.Values) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[v.Get("user")]
	if !ok {
		return nil, apiError{"user_not_found"}
	}
	return userJSON(u), nil
}

func (s *Server) lookupByEmail(v url.Values) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range s.users {
		if strings.EqualFold(u.Email, v.Get("email")) {
			return userJSON(u), nil
		}
	}
	return nil, apiError{"users_not_found"}
}

// raw keeps a JSON field, or nothing when it is empty (an empty RawMessage
// does not marshal).
func raw(s string) json.RawMessage {
	if s == "" {
		return nil
	}
	return json.RawMessage(s)
}

package slackport

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/slack-go/slack"
)

// Click is a Slack user's click on a card button, as Slack describes it.
type Click struct {
	Team, User, Channel, TriggerID string
	ActionID                       string // ActionApprove or ActionReject
	RequestID                      string
}

// Body returns the form body Slack posts for the click: a payload field
// holding block_actions JSON. Tests, the bench and `fake-slack sign-click` use it.
func (c Click) Body() []byte {
	cb := map[string]any{
		"type":       slack.InteractionTypeBlockActions,
		"team":       map[string]any{"id": c.Team, "domain": "example"},
		"user":       map[string]any{"id": c.User, "team_id": c.Team},
		"channel":    map[string]any{"id": c.Channel},
		"trigger_id": c.TriggerID,
		"api_app_id": "A0ASSENT",
		"container":  map[string]any{"type": "message", "channel_id": c.Channel},
		"actions": []map[string]any{{
			"type": "button", "action_id": c.ActionID, "block_id": "decide", "value": c.RequestID,
			"text": map[string]any{"type": "plain_text", "text": "Approve"}, "action_ts": "1760000000.000001",
		}},
	}
	return form(cb)
}

// Submission is a Slack user's submission of the reject modal.
type Submission struct {
	Team, User string
	Metadata   RejectMetadata
	Reason     string
}

// Body returns the form body Slack posts for the submission.
func (s Submission) Body() []byte {
	md, _ := json.Marshal(s.Metadata)
	cb := map[string]any{
		"type": slack.InteractionTypeViewSubmission,
		"team": map[string]any{"id": s.Team},
		"user": map[string]any{"id": s.User, "team_id": s.Team},
		"view": map[string]any{
			"id": "V0001", "type": "modal", "callback_id": CallbackReject, "private_metadata": string(md),
			"state": map[string]any{"values": map[string]any{
				ReasonBlock: map[string]any{ReasonAction: map[string]any{"type": "plain_text_input", "value": s.Reason}},
			}},
		},
	}
	return form(cb)
}

func form(payload any) []byte {
	b, _ := json.Marshal(payload) // maps of strings
	return []byte(url.Values{"payload": {string(b)}}.Encode())
}

// Sign returns the headers Slack would send with body at time t: a v0
// signature, HMAC-SHA256 of "v0:<timestamp>:<body>" under the app's
// signing secret (https://api.slack.com/authentication/verifying-requests-from-slack).
func Sign(secret string, t time.Time, body []byte) http.Header {
	ts := strconv.FormatInt(t.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte("v0:" + ts + ":"))
	mac.Write(body)
	h := http.Header{}
	h.Set("X-Slack-Request-Timestamp", ts)
	h.Set("X-Slack-Signature", "v0="+hex.EncodeToString(mac.Sum(nil)))
	h.Set("Content-Type", "application/x-www-form-urlencoded")
	return h
}

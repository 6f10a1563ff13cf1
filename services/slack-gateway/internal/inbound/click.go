package inbound

import (
	"encoding/json"
	"net/url"

	"github.com/slack-go/slack"

	"github.com/assent-dev/assent/services/slack-gateway/internal/card"
)

// Click is a Slack user's click on a card button, as Slack describes it.
type Click struct {
	Team, User, Channel, TriggerID string
	ActionID                       string // card.ActionApprove or card.ActionReject
	RequestID                      string
}

// Body returns the form body Slack posts for the click: a payload field
// holding block_actions JSON. Tests and `slack-gateway sign-click` use it.
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
	Metadata   card.RejectMetadata
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
			"id": "V0001", "type": "modal", "callback_id": card.CallbackReject, "private_metadata": string(md),
			"state": map[string]any{"values": map[string]any{
				card.ReasonBlock: map[string]any{card.ReasonAction: map[string]any{"type": "plain_text_input", "value": s.Reason}},
			}},
		},
	}
	return form(cb)
}

func form(payload any) []byte {
	b, _ := json.Marshal(payload) // maps of strings
	return []byte(url.Values{"payload": {string(b)}}.Encode())
}

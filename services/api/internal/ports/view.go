package ports

import (
	"net/url"
	"time"

	"github.com/assent-dev/assent/libs/approval"
)

// requestView is a request as API v1 shows it (RequestView in
// schemas/openapi.yaml).
type requestView struct {
	ID         string                  `json:"id"`
	Status     approval.Status         `json:"status"`
	Action     approval.Action         `json:"action"`
	Requester  string                  `json:"requester"`
	Reason     string                  `json:"reason"`
	CreatedAt  time.Time               `json:"created_at"`
	ExpiresAt  time.Time               `json:"expires_at"`
	DecidedAt  *time.Time              `json:"decided_at,omitempty"` // absent while pending
	DecidedBy  []string                `json:"decided_by,omitempty"` // absent while pending and when expired
	Policy     approval.PolicySnapshot `json:"policy"`
	Votes      []approval.VoteView     `json:"votes"`
	Approvals  int                     `json:"approvals"`
	Rejections int                     `json:"rejections"`
	Sequence   int                     `json:"sequence"`
	// DeadLetters are the notifier's given-up deliveries not replayed
	// since; absent when there are none.
	DeadLetters []deadLetter `json:"dead_letters,omitempty"`
}

// deadLetter is DeadLetter in schemas/openapi.yaml.
type deadLetter struct {
	Kind      approval.NotificationKind `json:"kind"`
	Target    string                    `json:"target"`
	Recipient string                    `json:"recipient,omitempty"`
	EventID   string                    `json:"event_id"`
	Reason    string                    `json:"reason"`
	Attempts  int                       `json:"attempts"`
	At        time.Time                 `json:"at"`
}

func viewOf(st approval.State) requestView {
	v := requestView{
		ID:        st.RequestID,
		Status:    st.Status,
		Action:    st.Action,
		Requester: st.Requester,
		Reason:    st.Reason,
		CreatedAt: st.CreatedAt.UTC(),
		ExpiresAt: st.Policy.ExpiresAt.UTC(),
		DecidedBy: st.DecidedBy,
		Policy:    st.Policy,
		Votes:     make([]approval.VoteView, 0, len(st.Votes)),
		Sequence:  st.Sequence,
	}
	v.Policy.ExpiresAt = v.ExpiresAt
	// Notification targets may be private (webhook URLs, addresses); the
	// view leaves them out, as openapi.yaml says.
	v.Policy.Notify = nil
	if st.Status.Terminal() {
		at := st.DecidedAt.UTC()
		v.DecidedAt = &at
	}
	for _, vote := range st.Votes {
		vote.At = vote.At.UTC()
		v.Votes = append(v.Votes, vote)
	}
	v.Approvals, v.Rejections = st.Tally()
	for _, n := range st.DeadLetters() {
		v.DeadLetters = append(v.DeadLetters, deadLetter{
			Kind: n.Kind, Target: n.Channel, Recipient: n.Recipient, EventID: n.TS,
			Reason: n.Reason, Attempts: n.Attempts, At: n.At.UTC(),
		})
	}
	return v
}

// location is the URL of a request.
func location(rid string) string { return "/v1/requests/" + url.PathEscape(rid) }

// accepted is the body of a 202.
type accepted struct {
	Status    string `json:"status"`
	RequestID string `json:"request_id"`
	CommandID string `json:"command_id"`
}

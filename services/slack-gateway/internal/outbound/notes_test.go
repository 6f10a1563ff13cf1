package outbound

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/wire"
)

type sent struct{ envs []wire.Envelope }

func (s *sent) Send(_ context.Context, env wire.Envelope) error {
	s.envs = append(s.envs, env)
	return nil
}

// The notifier records webhook and email deliveries as notes too; a card
// is never found among them, even one that names the same channel and ts.
func TestCardsIgnoreTheNotifiersNotes(t *testing.T) {
	t.Parallel()
	s := &sent{}
	n := New(Config{Sender: s, Now: func() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) }})
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	st := approval.State{RequestID: "r-1", Status: approval.StatusPending, Notes: []approval.NotificationRecorded{
		{Kind: approval.NotifyWebhook, Channel: "C0DEPLOYS", TS: "1.2", Outcome: approval.Delivered, At: at},
		{Kind: approval.NotifyEmail, Channel: "C0DEPLOYS", TS: "1.2", Outcome: approval.DeadLetter, At: at},
	}}
	tg := target{channel: "C0DEPLOYS", kind: approval.NotifyCard}
	require.Empty(t, n.recorded(st, tg), "no card is recorded in the channel")
	require.NoError(t, n.record(t.Context(), st, tg, "1.2"))
	require.Len(t, s.envs, 1, "the card is recorded, not taken for the delivery note")
	require.Equal(t, approval.TypeRecordNotification, s.envs[0].Type)

	st.Notes = append(st.Notes, approval.NotificationRecorded{Kind: approval.NotifyCard, Channel: "C0DEPLOYS", TS: "1.2"})
	require.Equal(t, "1.2", n.recorded(st, tg))
	require.NoError(t, n.record(t.Context(), st, tg, "1.2"))
	require.Len(t, s.envs, 1, "a recorded card is not recorded again")
}

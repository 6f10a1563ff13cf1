package inbound_test

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/slackport"
	"github.com/assent-dev/assent/services/slack-gateway/internal/card"
)

// FuzzInteractivity sends random bodies, signed or not, to the handler. It
// never panics, never answers 5xx for bad input, and never produces a
// command for a request without a valid signature.
func FuzzInteractivity(f *testing.F) {
	f.Add(approveClick("U0ALICE").Body(), true, int64(0), "")
	f.Add(slackport.Submission{Team: "T1", User: "U0ALICE", Metadata: card.RejectMetadata{RequestID: "r"}, Reason: "no"}.Body(), true, int64(0), "")
	f.Add([]byte("payload=%7B%22type%22%3A%22block_actions%22%7D"), false, int64(-400), "v0=00")
	f.Add([]byte("payload=null"), true, int64(301), "")
	f.Fuzz(func(t *testing.T, body []byte, sign bool, skew int64, sig string) {
		r := newRig(t)
		h := http.Header{"X-Slack-Request-Timestamp": {strconv.FormatInt(now.Unix(), 10)}, "X-Slack-Signature": {sig}}
		if sign {
			h = slackport.Sign(secret, now.Add(time.Duration(skew)*time.Second), body)
		}
		rec := r.post(body, h)
		signed := sign && skew >= -300 && skew <= 300
		if !signed {
			require.Contains(t, []int{http.StatusUnauthorized, http.StatusRequestEntityTooLarge}, rec.Code)
			require.Empty(t, r.sent.commands(t), "a command without a valid signature")
		}
		require.Less(t, rec.Code, 500, "bad input is the caller's fault: %s", rec.Body.String())
	})
}

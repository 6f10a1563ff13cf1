package assent_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	assent "github.com/assent-dev/assent/libs/sdk"
)

// ledger is a fake api with the idempotency of the real one, on a real
// listener: a keyed write names one command (a retry with the key gets the
// first outcome, without a second effect), a submit's request id names one
// request, and unkeyed votes are new commands, refused duplicate_vote when
// the voter has voted. Its script decides, per attempt, whether the write
// lands and whether the answer is lost behind a 503 outcome_unknown.
type ledger struct {
	mu       sync.Mutex
	requests map[string]map[string]any // request id -> the submit body
	commands map[string]string         // Idempotency-Key -> command id
	votes    map[string][]string       // request id -> voters, one entry per vote recorded
	effects  int                       // requests created plus votes recorded
	// ignoreKeys makes it a server that drops Idempotency-Key (an old
	// version, a proxy that strips the header).
	ignoreKeys bool
	// unknown reports, for the n-th write attempt, that the write landed
	// but its answer is a 503 outcome_unknown.
	unknown func(n int) bool
	writes  int
}

func newLedger(t *testing.T, unknown func(n int) bool) (*ledger, *fake) {
	t.Helper()
	l := &ledger{requests: map[string]map[string]any{}, commands: map[string]string{}, votes: map[string][]string{}, unknown: unknown}
	var f *fake
	f = newFake(t, func(w http.ResponseWriter, r *http.Request, n int) { l.serve(w, r, f.requests()[n].Body) })
	return l, f
}

// serve answers one request, whose body the fake has read already.
func (l *ledger) serve(w http.ResponseWriter, r *http.Request, body map[string]any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	path := strings.TrimPrefix(r.URL.Path, "/v1/requests")
	if r.Method == http.MethodGet {
		id := strings.TrimPrefix(path, "/")
		writeJSON(w, http.StatusOK, l.view(id))
		return
	}
	n := l.writes
	l.writes++
	key := r.Header.Get("Idempotency-Key")
	if l.ignoreKeys {
		key = ""
	}
	var rid, kind string
	switch {
	case path == "":
		kind = "submit"
	case strings.HasSuffix(path, "/votes"):
		kind, rid = "vote", strings.TrimSuffix(strings.TrimPrefix(path, "/"), "/votes")
	default:
		kind, rid = "cancel", strings.TrimSuffix(strings.TrimPrefix(path, "/"), "/cancel")
	}
	if kind == "submit" {
		rid, _ = body["request_id"].(string)
	}
	cid, known := l.commands[key]
	if key == "" || !known {
		cid = "cmd-" + kind + "-" + rid + "-" + key
		if key == "" {
			cid += "-" + strconv.Itoa(n)
		} else {
			l.commands[key] = cid
		}
		// A new command: decide it.
		switch kind {
		case "submit":
			if _, ok := l.requests[rid]; !ok {
				l.requests[rid] = body
				l.effects++
			}
		case "vote":
			voter := "user:alice@example.com"
			if slices.Contains(l.votes[rid], voter) {
				// Refused: the refusal is the outcome, told or lost.
				if !l.unknown(n) {
					writeProblem(w, http.StatusConflict, "duplicate_vote", voter+" has already voted on "+rid)
					return
				}
				break
			}
			l.votes[rid] = append(l.votes[rid], voter)
			l.effects++
		}
	}
	if l.unknown(n) {
		w.Header().Set("Retry-After", "0")
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(map[string]any{
			"type": "https://github.com/assent-dev/assent/blob/main/schemas/README.md#outcome_unknown", "title": "Outcome unknown",
			"status": 503, "detail": "Kafka did not acknowledge the command", "code": "outcome_unknown",
			"request_id": rid, "command_id": cid,
		})
		return
	}
	w.Header().Set("Assent-Command-Id", cid)
	status := http.StatusOK
	if kind == "submit" {
		status = http.StatusCreated
	}
	writeJSON(w, status, l.view(rid))
}

func (l *ledger) view(rid string) map[string]any {
	var votes []map[string]any
	for _, v := range l.votes[rid] {
		votes = append(votes, map[string]any{"voter": v, "decision": "approve", "at": "2026-11-21T10:02:30Z"})
	}
	return view(rid, assent.StatusPending, votes...)
}

// TestSubmitRetriesAnUnknownOutcomeAsTheSameCommand: the first attempt
// landed but was answered 503 outcome_unknown; the retry carries the same
// request id and the same Idempotency-Key, so it names the same command,
// and there is one request.
func TestSubmitRetriesAnUnknownOutcomeAsTheSameCommand(t *testing.T) {
	t.Parallel()
	l, f := newLedger(t, func(n int) bool { return n == 0 })
	v, err := client(t, []string{f.URL}).Submit(t.Context(), deploy())
	require.NoError(t, err)
	got := f.requests()
	require.Len(t, got, 2)
	key := got[0].Header.Get("Idempotency-Key")
	require.NotEmpty(t, key, "a submit carries an Idempotency-Key, so that its retries name one command")
	require.Equal(t, key, got[1].Header.Get("Idempotency-Key"))
	require.Equal(t, got[0].Body, got[1].Body, "the same request id and content")
	require.Equal(t, got[0].Body["request_id"], v.ID)
	require.Equal(t, 1, l.effects)
	require.Len(t, l.commands, 1)
}

// TestVoteAfterAnUnknownOutcomeChecksItsOwnVote: the first attempt landed
// behind a 503 outcome_unknown, and the server ignores keys, so the retry
// is refused duplicate_vote. The client knows the first attempt may have
// landed: it finds its own vote and reports success, without a second
// vote.
func TestVoteAfterAnUnknownOutcomeChecksItsOwnVote(t *testing.T) {
	t.Parallel()
	l, f := newLedger(t, func(n int) bool { return n == 0 })
	l.ignoreKeys = true
	c := client(t, []string{f.URL}, assent.WithPrincipal("user:alice@example.com"))
	v, err := c.Vote(t.Context(), "r-1", assent.VoteRequest{Decision: assent.Approve})
	require.NoError(t, err)
	require.True(t, v.HasVote("user:alice@example.com", assent.Approve))
	require.Equal(t, 1, l.effects, "one vote")
}

// TestGivingUpOnAnUnknownOutcomeNamesWhatToRepeat: every attempt of a call
// landed behind a 503 outcome_unknown until the client gave up. The error
// says the outcome is unknown and names the request id and key; a later
// call that repeats them is the same command, and there is one request and
// one vote. A call that does not repeat them is another request.
func TestGivingUpOnAnUnknownOutcomeNamesWhatToRepeat(t *testing.T) {
	t.Parallel()
	l, f := newLedger(t, func(n int) bool { return n < 2 })
	c := client(t, []string{f.URL}, assent.WithMaxAttempts(2))
	_, err := c.Submit(t.Context(), deploy())
	var u *assent.OutcomeUnknownError
	require.ErrorAs(t, err, &u)
	require.True(t, assent.IsCode(err, assent.CodeOutcomeUnknown), "%v", err)
	got := f.requests()
	require.Len(t, got, 2)
	require.Equal(t, got[0].Body["request_id"], u.RequestID)
	require.Equal(t, got[0].Header.Get("Idempotency-Key"), u.IdempotencyKey)
	require.NotEmpty(t, u.IdempotencyKey)
	require.Equal(t, "cmd-submit-"+u.RequestID+"-"+u.IdempotencyKey, u.CommandID, "the command the server named")
	require.ErrorContains(t, err, "outcome is unknown")
	require.Equal(t, 1, l.effects)

	// Repeated with the ids from the error: the same command.
	again := deploy()
	again.RequestID, again.IdempotencyKey = u.RequestID, u.IdempotencyKey
	v, err := c.Submit(t.Context(), again)
	require.NoError(t, err)
	require.Equal(t, u.RequestID, v.ID)
	require.Equal(t, 1, l.effects, "one request")
	require.Len(t, l.commands, 1)

	// Not repeated: a new call makes a new request id, a second request.
	_, err = c.Submit(t.Context(), deploy())
	require.NoError(t, err)
	require.Equal(t, 2, l.effects)

	// A vote whose attempts all landed behind outcome_unknown.
	l2, f2 := newLedger(t, func(n int) bool { return n < 2 })
	c2 := client(t, []string{f2.URL}, assent.WithMaxAttempts(2))
	_, err = c2.Vote(t.Context(), "r-1", assent.VoteRequest{Decision: assent.Approve})
	require.ErrorAs(t, err, &u)
	require.Equal(t, "r-1", u.RequestID)
	require.Equal(t, f2.requests()[0].Header.Get("Idempotency-Key"), u.IdempotencyKey)
	v, err = c2.Vote(t.Context(), "r-1", assent.VoteRequest{Decision: assent.Approve, IdempotencyKey: u.IdempotencyKey})
	require.NoError(t, err)
	require.True(t, v.HasVote("user:alice@example.com", assent.Approve))
	require.Equal(t, 1, l2.effects, "one vote")

	// A read that gives up on 503s has no write to repeat.
	down := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		writeProblem(w, http.StatusServiceUnavailable, "", "the projection is catching up")
	})
	_, err = client(t, []string{down.URL}, assent.WithMaxAttempts(2)).Get(t.Context(), "r-1")
	require.ErrorContains(t, err, "giving up after 2 attempts")
	require.False(t, errors.As(err, &u), "%v", err)
}

// TestKeyReusedIsAnAnswer: 422 idempotency_key_reused is the caller's bug,
// an answer like any other 4xx: not retried, and told by its code.
func TestKeyReusedIsAnAnswer(t *testing.T) {
	t.Parallel()
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		writeProblem(w, http.StatusUnprocessableEntity, "idempotency_key_reused", "the Idempotency-Key was used for another vote")
	})
	_, err := client(t, []string{f.URL}).Vote(t.Context(), "r-1", assent.VoteRequest{Decision: assent.Reject, IdempotencyKey: "k-1"})
	require.True(t, assent.IsCode(err, assent.CodeIdempotencyKeyReused), "%v", err)
	var u *assent.OutcomeUnknownError
	require.False(t, errors.As(err, &u))
	require.Len(t, f.requests(), 1)
}

// TestWritesUnavailableIsRetriedAndNothingHappened: 503
// writes_unavailable (the replica cannot reach Kafka, nothing was sent)
// is retried like any 503, but giving up on it is not an unknown outcome:
// the error is the problem, with its code.
func TestWritesUnavailableIsRetriedAndNothingHappened(t *testing.T) {
	t.Parallel()
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("Retry-After", "0")
		writeProblem(w, http.StatusServiceUnavailable, "writes_unavailable", "this replica cannot reach Kafka now")
	})
	_, err := client(t, []string{f.URL}, assent.WithMaxAttempts(3)).Vote(t.Context(), "r-1", assent.VoteRequest{Decision: assent.Approve})
	require.Len(t, f.requests(), 3, "retried")
	require.True(t, assent.IsCode(err, assent.CodeWritesUnavailable), "%v", err)
	var u *assent.OutcomeUnknownError
	require.False(t, errors.As(err, &u), "nothing was sent, so the outcome is known: %v", err)
}

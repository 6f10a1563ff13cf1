package assent_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"regexp"
	"testing"
	"time"

	assent "github.com/assent-dev/assent/libs/sdk"
)

var uuidv7 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestNewRefusesBadConfiguration(t *testing.T) {
	t.Parallel()
	_, err := assent.New(nil, "t")
	require.Error(t, err)
	_, err = assent.New([]string{"http://x"}, "")
	require.Error(t, err)
	_, err = assent.New([]string{"127.0.0.1:8080"}, "t")
	require.ErrorContains(t, err, "want http(s)://")
}

func TestSubmitSendsARequestIDAndTheContract(t *testing.T) {
	t.Parallel()
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		writeJSON(w, http.StatusCreated, view("r-1", assent.StatusPending))
	})
	c := client(t, []string{f.URL + "/"})
	req := deploy()
	req.TTL = 15 * time.Minute
	v, err := c.Submit(t.Context(), req)
	require.NoError(t, err)
	require.Equal(t, assent.StatusPending, v.Status)
	require.Equal(t, time.Hour, v.Policy.TTL)
	require.Equal(t, []string{"user:alice@example.com", "user:bob@example.com", "user:carol@example.com", "user:dana@example.com"}, v.Policy.Approvers)

	got := f.requests()
	require.Len(t, got, 1)
	require.Equal(t, "POST", got[0].Method)
	require.Equal(t, "/v1/requests", got[0].Path)
	require.Equal(t, "Bearer demo-billing", got[0].Header.Get("Authorization"))
	require.Equal(t, "application/json", got[0].Header.Get("Content-Type"))
	require.Regexp(t, uuidv7, got[0].Body["request_id"], "a submit always carries a request id")
	require.Equal(t, "15m0s", got[0].Body["ttl"])
	require.Equal(t, "release 1.4.2", got[0].Body["reason"])
	require.Equal(t, map[string]any{"type": "deploy", "resource": "services/billing/api", "environment": "production",
		"details": map[string]any{"version": "1.4.2"}}, got[0].Body["action"])
	require.NotContains(t, got[0].Body, "requester")

	req.RequestID = "pipeline-8841"
	_, err = c.Submit(t.Context(), req)
	require.NoError(t, err)
	require.Equal(t, "pipeline-8841", f.requests()[1].Body["request_id"], "the caller's id is kept")
}

func TestRetryFailsOverFromARefusedConnectionToTheNextURL(t *testing.T) {
	t.Parallel()
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		writeJSON(w, http.StatusCreated, view("r-1", assent.StatusPending))
	})
	// A backoff of an hour proves that the failover did not wait.
	c, err := assent.New([]string{deadURL(t), f.URL}, "demo-billing", assent.WithBackoff(time.Hour, time.Hour))
	require.NoError(t, err)
	_, err = c.Submit(t.Context(), deploy())
	require.NoError(t, err)
	require.Len(t, f.requests(), 1)

	// The client now prefers the replica that answered.
	_, err = c.Get(t.Context(), "r-1")
	require.NoError(t, err)
	require.Len(t, f.requests(), 2)
}

func TestRetry503Then201IsOneIdempotentSubmit(t *testing.T) {
	t.Parallel()
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 0 {
			w.Header().Set("Retry-After", "0")
			writeProblem(w, http.StatusServiceUnavailable, "", "the command could not be written to Kafka; retry later")
			return
		}
		writeJSON(w, http.StatusCreated, view("r-1", assent.StatusPending))
	})
	c := client(t, []string{f.URL})
	v, err := c.Submit(t.Context(), deploy())
	require.NoError(t, err)
	require.Equal(t, assent.StatusPending, v.Status)
	got := f.requests()
	require.Len(t, got, 2)
	require.Equal(t, got[0].Body, got[1].Body, "the retry is the same submit, request id included")
}

func TestRetry429HonoursRetryAfter(t *testing.T) {
	t.Parallel()
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 0 {
			w.Header().Set("Retry-After", "1")
			writeProblem(w, http.StatusTooManyRequests, "", "slow down")
			return
		}
		writeJSON(w, http.StatusOK, view("r-1", assent.StatusPending))
	})
	c := client(t, []string{f.URL}) // backoff of 1-5ms: any longer pause is Retry-After's
	began := time.Now()
	_, err := c.Get(t.Context(), "r-1")
	require.NoError(t, err)
	require.GreaterOrEqual(t, time.Since(began), time.Second)
	require.Len(t, f.requests(), 2)
}

func TestRetryAfterBeyondTheDeadlineFailsAtOnce(t *testing.T) {
	t.Parallel()
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("Retry-After", "30")
		writeProblem(w, http.StatusServiceUnavailable, "", "kafka is down")
	})
	c := client(t, []string{f.URL})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	began := time.Now()
	_, err := c.Submit(ctx, deploy())
	require.Less(t, time.Since(began), time.Second)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	var p *assent.Problem
	require.ErrorAs(t, err, &p)
	require.Equal(t, http.StatusServiceUnavailable, p.Status)
	require.Equal(t, 30*time.Second, p.RetryAfter)
	require.Len(t, f.requests(), 1)
}

func TestNoRetryOnARefusal(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		status int
		code   assent.Code
	}{
		{http.StatusUnprocessableEntity, assent.CodeNoPolicy},
		{http.StatusUnprocessableEntity, assent.CodeInvalid},
		{http.StatusBadRequest, assent.CodeInvalid},
		{http.StatusUnauthorized, assent.CodeUnauthenticated},
		{http.StatusForbidden, assent.CodeForbidden},
		{http.StatusConflict, assent.CodeConflict},
		{http.StatusInternalServerError, ""},
	} {
		f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
			writeProblem(w, tc.status, string(tc.code), "refused")
		})
		_, err := client(t, []string{f.URL, f.URL}).Submit(t.Context(), deploy())
		require.Error(t, err)
		require.Len(t, f.requests(), 1, "%d %s is an answer, not a failure", tc.status, tc.code)
		require.Equal(t, tc.code, assent.CodeOf(err))
		var p *assent.Problem
		require.ErrorAs(t, err, &p)
		require.Equal(t, tc.status, p.Status)
	}
}

func TestIdempotencyKeyIsStableAcrossRetriesOfOneCall(t *testing.T) {
	t.Parallel()
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		switch n {
		case 0:
			writeProblem(w, http.StatusServiceUnavailable, "", "retry")
		case 1:
			writeProblem(w, http.StatusBadGateway, "", "proxy")
		case 2:
			cut(t, w)
		default:
			writeJSON(w, http.StatusOK, view("r-1", assent.StatusApproved))
		}
	})
	c := client(t, []string{f.URL})
	v, err := c.Vote(t.Context(), "r-1", assent.VoteRequest{Decision: assent.Approve, Comment: "lgtm"})
	require.NoError(t, err)
	require.Equal(t, assent.StatusApproved, v.Status)
	got := f.requests()
	require.Len(t, got, 4)
	key := got[0].Header.Get("Idempotency-Key")
	require.NotEmpty(t, key)
	for _, r := range got {
		require.Equal(t, "/v1/requests/r-1/votes", r.Path)
		require.Equal(t, key, r.Header.Get("Idempotency-Key"))
		require.Equal(t, map[string]any{"decision": "approve", "comment": "lgtm"}, r.Body)
	}

	_, err = c.Cancel(t.Context(), "r-1", assent.CancelRequest{Reason: "superseded"})
	require.NoError(t, err)
	got = f.requests()
	require.Equal(t, "/v1/requests/r-1/cancel", got[4].Path)
	require.NotEqual(t, key, got[4].Header.Get("Idempotency-Key"), "another call, another key")

	_, err = c.Vote(t.Context(), "r-1", assent.VoteRequest{Decision: assent.Approve, IdempotencyKey: "slack-action-42"})
	require.NoError(t, err)
	require.Equal(t, "slack-action-42", f.requests()[5].Header.Get("Idempotency-Key"))
}

func TestGivesUpAfterMaxAttempts(t *testing.T) {
	t.Parallel()
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		writeProblem(w, http.StatusServiceUnavailable, "", "kafka is down")
	})
	c := client(t, []string{f.URL}, assent.WithMaxAttempts(3))
	_, err := c.Get(t.Context(), "r-1")
	require.ErrorContains(t, err, "giving up after 3 attempts")
	var p *assent.Problem
	require.ErrorAs(t, err, &p)
	require.Equal(t, http.StatusServiceUnavailable, p.Status)
	require.Len(t, f.requests(), 3)
}

func TestContextEndsTheRetries(t *testing.T) {
	t.Parallel()
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		writeProblem(w, http.StatusServiceUnavailable, "", "kafka is down")
	})
	c, err := assent.New([]string{f.URL}, "t", assent.WithBackoff(50*time.Millisecond, 50*time.Millisecond), assent.WithMaxAttempts(1000))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	_, err = c.Submit(ctx, deploy())
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, len(f.requests()), 20)

	// A cancel ends an attempt in flight too.
	hang := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) { <-r.Context().Done() })
	ctx, cancel = context.WithCancel(t.Context())
	time.AfterFunc(100*time.Millisecond, cancel)
	_, err = client(t, []string{hang.URL}).Get(ctx, "r-1")
	require.ErrorIs(t, err, context.Canceled)
	require.Len(t, hang.requests(), 1)
}

func TestProblemDecoding(t *testing.T) {
	t.Parallel()
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		switch r.URL.Path {
		case "/v1/requests/full":
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"type":"https://github.com/assent-dev/assent/blob/main/schemas/README.md#not_found","title":"No such request","status":404,"detail":"request full does not exist","instance":"/v1/requests/full","code":"not_found","extra":"ignored"}`))
		case "/v1/requests/html":
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusBadGateway)
			_, _ = w.Write([]byte("<html>bad gateway</html>"))
		case "/v1/requests/unknown-code":
			writeProblem(w, http.StatusConflict, "from_the_future", "a code this client does not know")
		}
	})
	c := client(t, []string{f.URL}, assent.WithMaxAttempts(1))

	_, err := c.Get(t.Context(), "full")
	var p *assent.Problem
	require.ErrorAs(t, err, &p)
	require.Equal(t, &assent.Problem{
		Type:  "https://github.com/assent-dev/assent/blob/main/schemas/README.md#not_found",
		Title: "No such request", Status: 404, Detail: "request full does not exist",
		Instance: "/v1/requests/full", Code: assent.CodeNotFound,
	}, p)
	require.True(t, assent.IsCode(err, assent.CodeNotFound))
	require.False(t, assent.IsCode(err, assent.CodeNoPolicy))
	require.EqualError(t, p, "assent: 404 not_found: request full does not exist")
	wrapped := errors.Join(errors.New("deploy"), err)
	require.True(t, assent.IsCode(wrapped, assent.CodeNotFound), "IsCode looks through wrapping")

	_, err = c.Get(t.Context(), "html")
	require.ErrorAs(t, err, &p)
	require.Equal(t, http.StatusBadGateway, p.Status)
	require.Equal(t, "Bad Gateway", p.Title)
	require.Equal(t, "<html>bad gateway</html>", p.Detail)
	require.Equal(t, assent.Code(""), assent.CodeOf(err))

	_, err = c.Get(t.Context(), "unknown-code")
	require.Equal(t, assent.Code("from_the_future"), assent.CodeOf(err), "new codes pass through")

	require.False(t, assent.IsCode(nil, ""))
	require.Equal(t, http.StatusUnprocessableEntity, assent.NewRefusal(assent.CodeNoPolicy, "x").Status)
	require.Equal(t, http.StatusConflict, assent.NewRefusal(assent.CodeDuplicateVote, "x").Status)
}

func TestSubmitAcceptedIsAnAcceptedView(t *testing.T) {
	t.Parallel()
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("Location", "/v1/requests/r-1")
		writeJSON(w, http.StatusAccepted, map[string]any{"status": "accepted", "request_id": "r-1", "command_id": "c-1"})
	})
	v, err := client(t, []string{f.URL}).Submit(t.Context(), deploy())
	require.NoError(t, err)
	require.Equal(t, &assent.RequestView{ID: "r-1", Status: assent.StatusAccepted, CommandID: "c-1"}, v)
	require.False(t, v.Status.Terminal())
}

func TestVoteRetriedIntoDuplicateVote(t *testing.T) {
	t.Parallel()
	alice := map[string]any{"voter": "user:alice@example.com", "decision": "approve", "at": "2026-11-21T10:02:30Z"}
	bob := map[string]any{"voter": "user:bob@example.com", "decision": "approve", "at": "2026-11-21T10:02:30Z"}
	for _, tc := range []struct {
		name      string
		firstCut  bool // the first attempt's answer is lost
		principal string
		voter     string
		votes     []map[string]any
		code      assent.Code
		success   bool
	}{
		{name: "own vote recorded", firstCut: true, principal: "Alice@Example.com", votes: []map[string]any{alice}, code: assent.CodeDuplicateVote, success: true},
		{name: "deciding vote recorded", firstCut: true, principal: "user:alice@example.com", votes: []map[string]any{alice}, code: assent.CodeAlreadyDecided, success: true},
		{name: "on behalf", firstCut: true, voter: "user:alice@example.com", votes: []map[string]any{alice}, code: assent.CodeDuplicateVote, success: true},
		{name: "someone else's vote", firstCut: true, principal: "user:alice@example.com", votes: []map[string]any{bob}, code: assent.CodeDuplicateVote},
		{name: "own vote, other decision", firstCut: true, principal: "user:alice@example.com",
			votes: []map[string]any{{"voter": "user:alice@example.com", "decision": "reject", "at": "2026-11-21T10:02:30Z"}}, code: assent.CodeDuplicateVote},
		{name: "voter unknown", firstCut: true, votes: []map[string]any{alice}, code: assent.CodeDuplicateVote},
		{name: "no lost answer", principal: "user:alice@example.com", votes: []map[string]any{alice}, code: assent.CodeDuplicateVote},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
				switch {
				case r.Method == http.MethodGet:
					writeJSON(w, http.StatusOK, view("r-1", assent.StatusApproved, tc.votes...))
				case n == 0 && tc.firstCut:
					cut(t, w)
				default:
					writeProblem(w, http.StatusConflict, string(tc.code), "user:alice@example.com has already voted on r-1")
				}
			})
			var opts []assent.Option
			if tc.principal != "" {
				opts = append(opts, assent.WithPrincipal(tc.principal))
			}
			v, err := client(t, []string{f.URL}, opts...).Vote(t.Context(), "r-1", assent.VoteRequest{Decision: assent.Approve, Voter: tc.voter})
			if tc.success {
				require.NoError(t, err)
				require.Equal(t, assent.StatusApproved, v.Status)
				return
			}
			require.True(t, assent.IsCode(err, tc.code), "%v", err)
		})
	}
}

func TestCancelRetriedIntoAlreadyDecided(t *testing.T) {
	t.Parallel()
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		switch {
		case r.Method == http.MethodGet:
			writeJSON(w, http.StatusOK, view("r-1", assent.StatusCancelled))
		case n == 0:
			cut(t, w)
		default:
			writeProblem(w, http.StatusConflict, "already_decided", "request r-1 is already cancelled")
		}
	})
	v, err := client(t, []string{f.URL}).Cancel(t.Context(), "r-1", assent.CancelRequest{})
	require.NoError(t, err)
	require.Equal(t, assent.StatusCancelled, v.Status)
}

func TestGetWaitAsksForTheWaitCappedAt60s(t *testing.T) {
	t.Parallel()
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		writeJSON(w, http.StatusOK, view("a/b?c", assent.StatusPending))
	})
	c := client(t, []string{f.URL})
	_, err := c.GetWait(t.Context(), "a/b?c", 30*time.Second)
	require.NoError(t, err)
	_, err = c.GetWait(t.Context(), "x", 5*time.Minute)
	require.NoError(t, err)
	_, err = c.GetWait(t.Context(), "x", 1500*time.Microsecond)
	require.NoError(t, err)
	got := f.requests()
	require.Equal(t, "/v1/requests/a%2Fb%3Fc", got[0].Path, "ids are escaped")
	require.Equal(t, "wait=30s", got[0].Query)
	require.Equal(t, "wait=1m0s", got[1].Query)
	require.Equal(t, "wait=2ms", got[2].Query)
}

func TestListAllFollowsTheCursor(t *testing.T) {
	t.Parallel()
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		switch r.URL.Query().Get("cursor") {
		case "":
			writeJSON(w, http.StatusOK, map[string]any{"items": []any{view("r-3", "pending"), view("r-2", "pending")}, "next_cursor": "c2"})
		case "c2":
			writeJSON(w, http.StatusOK, map[string]any{"items": []any{view("r-1", "pending")}})
		}
	})
	c := client(t, []string{f.URL})
	var ids []string
	for r, err := range c.ListAll(t.Context(), assent.ListOptions{Approver: "user:alice@example.com", Status: assent.StatusPending, Limit: 2}) {
		require.NoError(t, err)
		ids = append(ids, r.ID)
	}
	require.Equal(t, []string{"r-3", "r-2", "r-1"}, ids)
	got := f.requests()
	require.Len(t, got, 2)
	require.Equal(t, "approver=user%3Aalice%40example.com&limit=2&status=pending", got[0].Query)
	require.Equal(t, "approver=user%3Aalice%40example.com&cursor=c2&limit=2&status=pending", got[1].Query)

	pages := 0
	for _, err := range c.ListPages(t.Context(), assent.ListOptions{}) {
		require.NoError(t, err)
		pages++
		break
	}
	require.Equal(t, 1, pages, "breaking out stops the paging")
	require.Len(t, f.requests(), 3)
}

func TestEventsKeepTheStoredBytes(t *testing.T) {
	t.Parallel()
	raw := `{"specversion":"1.0","id":"01a1fd8c-6a9c-7bae-9c62-ddc59cdb5ae6","source":"assent/decider","type":"dev.assent.request.approved","subject":"r-1","time":"2026-11-21T10:00:00.412730118Z","datacontenttype":"application/json","actor":"user:alice@example.com","commandid":"c-1","sequence":"2","prevhash":"sha256:77baeb4d8db3bf59a5995709f55c6ad82345bdc6f239470ee6393ad156a2cefb","data":{"approvers":["user:alice@example.com"]}}`
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"items":[{"partition":7,"offset":1042,"event":` + raw + `}]}`))
	})
	events, err := client(t, []string{f.URL}).Events(t.Context(), "r-1")
	require.NoError(t, err)
	require.Len(t, events, 1)
	e := events[0]
	require.Equal(t, int32(7), e.Partition)
	require.Equal(t, int64(1042), e.Offset)
	require.Equal(t, raw, string(e.Raw))
	require.Equal(t, assent.EventRequestApproved, e.Event.Type)
	require.Equal(t, "c-1", e.Event.CommandID)
	sum := sha256.Sum256([]byte(raw))
	require.Equal(t, "sha256:"+hex.EncodeToString(sum[:]), e.Hash(), "the hash the next event's prevhash carries")
}

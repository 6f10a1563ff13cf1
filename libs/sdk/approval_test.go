package assent_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	assent "github.com/assent-dev/assent/libs/sdk"
)

func TestRequestApprovalWaitsUntilApproved(t *testing.T) {
	t.Parallel()
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		switch {
		case r.Method == http.MethodPost:
			writeJSON(w, http.StatusCreated, view("r-1", assent.StatusPending))
		case n < 3:
			// A server that answers long polls early must not make the
			// client spin.
			writeJSON(w, http.StatusOK, view("r-1", assent.StatusPending))
		default:
			writeJSON(w, http.StatusOK, view("r-1", assent.StatusApproved,
				map[string]any{"voter": "user:alice@example.com", "decision": "approve", "at": "2026-11-21T10:02:30Z"}))
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	req := deploy()
	req.RequestID = "r-1"
	d, err := client(t, []string{f.URL}).RequestApproval(ctx, req)
	require.NoError(t, err)
	require.True(t, d.Approved)
	require.Equal(t, assent.StatusApproved, d.Status)
	require.Equal(t, "r-1", d.RequestID)
	require.Equal(t, []string{"user:alice@example.com"}, d.DecidedBy)
	require.Len(t, d.View.Votes, 1)

	got := f.requests()
	require.Len(t, got, 4)
	for _, g := range got[1:] {
		require.Equal(t, "GET", g.Method)
		require.Equal(t, "/v1/requests/r-1", g.Path)
		wait, err := time.ParseDuration(g.Query[len("wait="):])
		require.NoError(t, err, g.Query)
		require.Greater(t, wait, 15*time.Second, "as long as the deadline allows")
		require.Less(t, wait, 20*time.Second, "ending before the deadline")
	}
}

func TestRequestApprovalNotApproved(t *testing.T) {
	t.Parallel()
	for _, status := range []assent.Status{assent.StatusRejected, assent.StatusExpired, assent.StatusCancelled} {
		f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
			if r.Method == http.MethodPost {
				writeJSON(w, http.StatusCreated, view("r-1", assent.StatusPending))
				return
			}
			writeJSON(w, http.StatusOK, view("r-1", status))
		})
		d, err := client(t, []string{f.URL}).RequestApproval(t.Context(), deploy())
		require.NoError(t, err, "a decision that is not approval is not an error")
		require.False(t, d.Approved)
		require.Equal(t, status, d.Status)
	}
}

func TestRequestApprovalRefused(t *testing.T) {
	t.Parallel()
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		writeProblem(w, http.StatusUnprocessableEntity, "no_policy", `no policy matches action type "deploy" on "services/billing/api" in "qa"`)
	})
	d, err := client(t, []string{f.URL}).RequestApproval(t.Context(), deploy())
	require.True(t, assent.IsCode(err, assent.CodeNoPolicy))
	require.False(t, d.Approved)
	require.Empty(t, d.Status, "a refused submit has no status")
	require.Regexp(t, uuidv7, d.RequestID, "the id is known even when the submit failed")
}

func TestRequestApprovalAfter202FindsTheRefusal(t *testing.T) {
	t.Parallel()
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		switch r.URL.Path {
		case "/v1/requests":
			writeJSON(w, http.StatusAccepted, map[string]any{"status": "accepted", "request_id": "r-1", "command_id": "c-1"})
		case "/v1/requests/r-1":
			writeProblem(w, http.StatusNotFound, "not_found", "request r-1 does not exist")
		case "/v1/requests/r-1/events":
			if n < 4 {
				writeProblem(w, http.StatusNotFound, "not_found", "no events yet")
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"items":[{"partition":1,"offset":5,"event":{"specversion":"1.0","id":"01a1fd8d-7a9c-7384-8dcc-2bf79f5491b4","source":"assent/decider","type":"dev.assent.command.rejected","subject":"r-1","time":"2026-11-21T10:01:10Z","datacontenttype":"application/json","actor":"service:billing","commandid":"c-1","sequence":"1","prevhash":"sha256:0000000000000000000000000000000000000000000000000000000000000000","data":{"command_id":"c-1","command_type":"dev.assent.command.submit","code":"no_policy","detail":"no policy matches"}}}]}`))
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	req := deploy()
	req.RequestID = "r-1"
	d, err := client(t, []string{f.URL}).RequestApproval(ctx, req)
	var p *assent.Problem
	require.ErrorAs(t, err, &p)
	require.Equal(t, assent.CodeNoPolicy, p.Code)
	require.Equal(t, "no policy matches", p.Detail)
	require.False(t, d.Approved)
}

func TestRequestApprovalDeadlineLeavesItPending(t *testing.T) {
	t.Parallel()
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if r.Method == http.MethodPost {
			writeJSON(w, http.StatusCreated, view("r-1", assent.StatusPending))
			return
		}
		// Honour the long poll: hold the answer until the wait or the
		// client gives up.
		wait, _ := time.ParseDuration(r.URL.Query().Get("wait"))
		select {
		case <-time.After(wait):
		case <-r.Context().Done():
		}
		writeJSON(w, http.StatusOK, view("r-1", assent.StatusPending))
	})
	ctx, cancel := context.WithTimeout(t.Context(), 1500*time.Millisecond)
	defer cancel()
	req := deploy()
	req.RequestID = "r-1"
	d, err := client(t, []string{f.URL}).RequestApproval(ctx, req)
	require.ErrorIs(t, err, assent.ErrPending)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.False(t, d.Approved, "a wait that ended is never permission")
	require.Equal(t, assent.StatusPending, d.Status)
	require.Equal(t, "r-1", d.RequestID)
	require.NotNil(t, d.View)
}

func TestRequestApprovalStopsOnAnError(t *testing.T) {
	t.Parallel()
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if r.Method == http.MethodPost {
			writeJSON(w, http.StatusCreated, view("r-1", assent.StatusPending))
			return
		}
		writeProblem(w, http.StatusUnauthorized, "unauthenticated", "the token was revoked")
	})
	d, err := client(t, []string{f.URL}).RequestApproval(t.Context(), deploy())
	require.True(t, assent.IsCode(err, assent.CodeUnauthenticated))
	require.False(t, errors.Is(err, assent.ErrPending))
	require.False(t, d.Approved)
}

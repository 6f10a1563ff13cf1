package assent

import (
	"context"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

func requestPath(id string, rest ...string) string {
	p := "/v1/requests/" + url.PathEscape(id)
	for _, r := range rest {
		p += "/" + r
	}
	return p
}

// Submit asks for approval of an action: POST /v1/requests.
//
// The request carries a request id, the caller's or a new UUIDv7, and an
// Idempotency-Key, the caller's or a new one, the same for every attempt,
// so that the client's own retries name one command and one request: a
// retry after an unknown outcome (CodeOutcomeUnknown, a lost answer) is
// decided at most once. If the client gives up while the outcome is
// unknown, the error is an *OutcomeUnknownError naming both; repeat the
// submit with them. The returned view is
// pending (201), or already decided if an identical submit of the same id
// was decided before. If the server did not see the outcome within its
// write wait (202), the view has Status StatusAccepted, ID and CommandID
// and nothing else: the request is durable in Kafka and will be decided,
// possibly refused; follow it with GetWait, or use RequestApproval, which
// does. A refusal (CodeNoPolicy, CodeInvalid, CodeForbidden, CodeConflict)
// is returned as a *Problem.
func (c *Client) Submit(ctx context.Context, req SubmitRequest) (*RequestView, error) {
	if req.RequestID == "" {
		req.RequestID = NewRequestID()
	}
	key := req.IdempotencyKey
	if key == "" {
		key = NewRequestID()
	}
	res, err := c.do(ctx, call{method: http.MethodPost, path: "/v1/requests", body: req, idemKey: key, requestID: req.RequestID})
	if err != nil {
		return nil, err
	}
	return viewOf(res)
}

// Get reads a request: GET /v1/requests/{id}. An unknown id is a *Problem
// with CodeNotFound. A request just submitted through another replica may
// take a moment to become visible on this one.
func (c *Client) Get(ctx context.Context, id string) (*RequestView, error) {
	return c.get(ctx, id, 0)
}

// GetWait long-polls a request: GET /v1/requests/{id}?wait=. It answers when
// the request is no longer pending or when wait runs out, whichever comes
// first, with the request as it then stands. The server cuts waits to
// MaxWait (60s); so does the client. A wait of zero or less is a plain Get.
func (c *Client) GetWait(ctx context.Context, id string, wait time.Duration) (*RequestView, error) {
	return c.get(ctx, id, min(wait, MaxWait))
}

func (c *Client) get(ctx context.Context, id string, wait time.Duration) (*RequestView, error) {
	cl := call{method: http.MethodGet, path: requestPath(id)}
	if wait > 0 {
		wait = max(wait.Round(time.Millisecond), time.Millisecond)
		cl.query = url.Values{"wait": {wait.String()}}
		cl.wait = wait
	}
	res, err := c.do(ctx, cl)
	if err != nil {
		return nil, err
	}
	return viewOf(res)
}

// Vote approves or rejects: POST /v1/requests/{id}/votes. The voter is the
// caller, or v.Voter for a caller with the on_behalf role. The view shows
// the vote, and the decision if it was the deciding vote; a 202 gives an
// accepted view, as for Submit.
//
// Every attempt of one call carries the same Idempotency-Key, so a retry
// after a lost answer names the same command and the server reports its
// original outcome. Should a retry still be refused with CodeDuplicateVote
// or CodeAlreadyDecided after an attempt whose outcome was unknown (a
// server that ignores the key), the client reads the request and counts
// the call a success only if it shows this voter's vote with the same
// decision. The voter is v.Voter, or the principal given WithPrincipal; if
// neither is known, the refusal is returned. If the client gives up while
// the outcome is unknown, the error is an *OutcomeUnknownError with the
// key to repeat the vote with. A key reused with another decision or
// comment is refused with CodeIdempotencyKeyReused.
func (c *Client) Vote(ctx context.Context, id string, v VoteRequest) (*RequestView, error) {
	key := v.IdempotencyKey
	if key == "" {
		key = NewRequestID()
	}
	res, err := c.do(ctx, call{method: http.MethodPost, path: requestPath(id, "votes"), body: v, idemKey: key, requestID: id})
	if err != nil {
		if res != nil && res.unknownBefore && (IsCode(err, CodeDuplicateVote) || IsCode(err, CodeAlreadyDecided)) {
			voter := normalizePrincipal(v.Voter)
			if voter == "" {
				voter = c.principal
			}
			if voter != "" {
				if view, gerr := c.Get(ctx, id); gerr == nil && view.HasVote(voter, v.Decision) {
					return view, nil
				}
			}
		}
		return nil, err
	}
	return viewOf(res)
}

// Cancel withdraws a pending request: POST /v1/requests/{id}/cancel.
// Only its requester or an admin of the policy file may. Retries carry one
// Idempotency-Key, as in Vote; a retry refused with CodeAlreadyDecided
// after an attempt whose outcome was unknown counts as a success if the
// request is now cancelled.
func (c *Client) Cancel(ctx context.Context, id string, r CancelRequest) (*RequestView, error) {
	key := r.IdempotencyKey
	if key == "" {
		key = NewRequestID()
	}
	res, err := c.do(ctx, call{method: http.MethodPost, path: requestPath(id, "cancel"), body: r, idemKey: key, requestID: id})
	if err != nil {
		if res != nil && res.unknownBefore && IsCode(err, CodeAlreadyDecided) {
			if view, gerr := c.Get(ctx, id); gerr == nil && view.Status == StatusCancelled {
				return view, nil
			}
		}
		return nil, err
	}
	return viewOf(res)
}

// List reads one page of requests, newest first: GET /v1/requests. Pass
// the page's NextCursor as opts.Cursor for the next one, or use ListPages
// or ListAll.
func (c *Client) List(ctx context.Context, opts ListOptions) (*RequestList, error) {
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("status", string(opts.Status))
	set("requester", opts.Requester)
	set("approver", opts.Approver)
	set("cursor", opts.Cursor)
	if opts.Limit > 0 {
		q.Set("limit", strconv.Itoa(opts.Limit))
	}
	res, err := c.do(ctx, call{method: http.MethodGet, path: "/v1/requests", query: q})
	if err != nil {
		return nil, err
	}
	var page RequestList
	if err := decode(res, &page); err != nil {
		return nil, err
	}
	return &page, nil
}

// ListPages iterates over the pages of a list, following the cursor from
// opts.Cursor on. It stops after the last page, or after yielding an error.
//
//	for page, err := range client.ListPages(ctx, assent.ListOptions{Approver: me}) {
//		if err != nil { ... }
//		for _, r := range page.Items { ... }
//	}
func (c *Client) ListPages(ctx context.Context, opts ListOptions) iter.Seq2[*RequestList, error] {
	return func(yield func(*RequestList, error) bool) {
		for {
			page, err := c.List(ctx, opts)
			if err != nil {
				yield(nil, err)
				return
			}
			if !yield(page, nil) || page.NextCursor == "" {
				return
			}
			opts.Cursor = page.NextCursor
		}
	}
}

// ListAll iterates over every request of a list, page after page. It stops
// after the last one, or after yielding an error.
func (c *Client) ListAll(ctx context.Context, opts ListOptions) iter.Seq2[RequestView, error] {
	return func(yield func(RequestView, error) bool) {
		for page, err := range c.ListPages(ctx, opts) {
			if err != nil {
				yield(RequestView{}, err)
				return
			}
			for _, r := range page.Items {
				if !yield(r, nil) {
					return
				}
			}
		}
	}
}

// Events returns a request's history exactly as stored, refusals included,
// in sequence order: GET /v1/requests/{id}/events. An id with no event in
// the log is a *Problem with CodeNotFound.
func (c *Client) Events(ctx context.Context, id string) ([]StoredEvent, error) {
	res, err := c.do(ctx, call{method: http.MethodGet, path: requestPath(id, "events")})
	if err != nil {
		return nil, err
	}
	var list struct {
		Items []StoredEvent `json:"items"`
	}
	if err := decode(res, &list); err != nil {
		return nil, err
	}
	return list.Items, nil
}

// viewOf decodes a write's or a read's answer: a view, or for a 202 the
// accepted stub.
func viewOf(res *response) (*RequestView, error) {
	if res.status == http.StatusAccepted {
		var a accepted
		if err := decode(res, &a); err != nil {
			return nil, err
		}
		return &RequestView{ID: a.RequestID, Status: StatusAccepted, CommandID: a.CommandID}, nil
	}
	var v RequestView
	if err := decode(res, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

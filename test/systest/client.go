package systest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"
)

// Client calls the HTTP API of several api replicas, moving to the next
// one when a replica does not answer, as a client behind a load balancer.
type Client struct {
	URLs  []string
	HTTP  *http.Client
	Token string
	// Header, if set, is sent with every request (a traceparent, say).
	Header http.Header
}

// Response is an answer from the API.
type Response struct {
	Status int
	Body   map[string]any
	Raw    []byte
}

// Do sends one request, retrying on another replica after a connection
// error or a 5xx, up to attempts times in all. Every attempt carries the
// same Idempotency-Key, so a retry of a write that did land gets the
// original answer instead of a refusal. It returns the last answer,
// or the last error when no replica answered (the outcome is unknown).
func (c *Client) Do(ctx context.Context, start int, method, path string, body any, attempts int) (Response, error) {
	var last error
	key := fmt.Sprintf("systest-%d-%d", time.Now().UnixNano(), keySeq.Add(1))
	for i := range attempts {
		url := c.URLs[(start+i)%len(c.URLs)] + path
		resp, err := c.once(ctx, method, url, body, key)
		if err == nil && resp.Status < 500 {
			return resp, nil
		}
		if err == nil {
			last = fmt.Errorf("%s %s: %d %s", method, url, resp.Status, resp.Raw)
		} else {
			last = err
		}
		select {
		case <-ctx.Done():
			return Response{}, ctx.Err()
		case <-time.After(time.Duration(100*(i+1)) * time.Millisecond):
		}
	}
	return Response{}, last
}

var keySeq atomic.Int64

func (c *Client) once(ctx context.Context, method, url string, body any, key string) (Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return Response{}, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return Response{}, err
	}
	for k, vs := range c.Header {
		req.Header[k] = vs
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", key)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return Response{}, err
	}
	defer func() { _ = resp.Body.Close() }() // read-only
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return Response{}, err
	}
	out := Response{Status: resp.StatusCode, Raw: raw}
	_ = json.Unmarshal(raw, &out.Body)
	return out, nil
}

package web

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// heartbeat keeps idle streams open through proxies.
const heartbeat = 25 * time.Second

// coalesce gathers a burst of events (a vote and the decision it caused)
// into one update.
const coalesce = 50 * time.Millisecond

// stream serves one Server-Sent Events stream: it sends the fragment
// render returns as event name whenever it differs from what the page
// (or the previous event) showed, each time wake fires, until the client
// leaves, the stream's lifetime ends (the browser reconnects) or the
// service stops.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, v *viewer, event string, wake func() (<-chan struct{}, func()), render func() (string, error)) {
	if !s.cfg.Projection.Ready() {
		w.Header().Set("Retry-After", "2")
		s.fail(w, r, http.StatusServiceUnavailable, "Starting up", "This replica is still reading the event log.")
		return
	}
	if !s.cfg.Streams.Acquire(v.Principal) {
		s.cfg.Metrics.StreamsDenied.Inc()
		w.Header().Set("Retry-After", "10")
		s.fail(w, r, http.StatusServiceUnavailable, "Too many live pages", "Live updates are at capacity; the page still works, reload it to refresh.")
		return
	}
	defer s.cfg.Streams.Release(v.Principal)
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	last := r.URL.Query().Get("v")
	if len(last) != 16 || strings.Trim(last, "0123456789abcdef") != "" {
		last = "" // not a version this server made: send the fragment
	}
	send := func() error {
		frag, err := render()
		if err != nil {
			return err
		}
		ver := version(stripNonces(frag))
		if ver == last {
			return nil
		}
		last = ver
		var b strings.Builder
		fmt.Fprintf(&b, "event: %s\n", event)
		for _, line := range strings.Split(frag, "\n") {
			b.WriteString("data: ")
			b.WriteString(strings.TrimRight(line, "\r"))
			b.WriteByte('\n')
		}
		b.WriteByte('\n')
		_ = rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := w.Write([]byte(b.String())); err != nil {
			return err
		}
		return rc.Flush()
	}
	// Register before the first read, so that nothing in between is lost.
	woken, stop := wake()
	defer func() { stop() }()
	if err := send(); err != nil {
		s.streamEnd(r, err)
		return
	}
	// Tell the page it is in step: it now shows what the projection holds,
	// and every change from here on arrives as an event.
	// last is 16 hex digits or empty (checked above).
	if _, err := w.Write([]byte("event: synced\ndata: " + last + "\n\n")); err != nil || rc.Flush() != nil { //nolint:gosec // G705: last is hex, checked above

		return
	}
	life := time.NewTimer(s.cfg.StreamLife)
	defer life.Stop()
	beat := time.NewTicker(heartbeat)
	defer beat.Stop()
	for {
		if !s.cfg.Now().Before(v.Expires) {
			return // the session ended: the next request signs in again
		}
		select {
		case <-woken:
			stop()
			select { // let the rest of a burst land
			case <-time.After(coalesce):
			case <-r.Context().Done():
				return
			}
			woken, stop = wake()
			if err := send(); err != nil {
				s.streamEnd(r, err)
				return
			}
		case <-beat.C:
			_ = rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := w.Write([]byte(": keep-alive\n\n")); err != nil {
				return
			}
			if rc.Flush() != nil {
				return
			}
		case <-life.C:
			return
		case <-s.cfg.Done:
			return
		case <-r.Context().Done():
			return
		}
	}
}

func (s *Server) streamEnd(r *http.Request, err error) {
	if errors.Is(err, r.Context().Err()) {
		return
	}
	s.cfg.Logger.Debug("live stream ended", "route", r.Pattern, "err", err)
}

// personWake subscribes to changes concerning principal.
func (s *Server) personWake(principal string) func() (<-chan struct{}, func()) {
	return func() (<-chan struct{}, func()) {
		sub, stop := s.cfg.Hub.Subscribe(principal)
		return sub.C, stop
	}
}

func (s *Server) inboxLive(w http.ResponseWriter, r *http.Request, v *viewer) {
	s.stream(w, r, v, "inbox", s.personWake(v.Principal), func() (string, error) {
		d, err := s.inboxData(v, "")
		if err != nil {
			return "", err
		}
		return fragment("inbox", "inbox-list", d)
	})
}

func (s *Server) mineLive(w http.ResponseWriter, r *http.Request, v *viewer) {
	status, typ, ok := s.mineQuery(w, r)
	if !ok {
		return
	}
	s.stream(w, r, v, "mine", s.personWake(v.Principal), func() (string, error) {
		d, err := s.mineData(v, status, typ, "")
		if err != nil {
			return "", err
		}
		return fragment("mine", "mine-list", d)
	})
}

func (s *Server) requestLive(w http.ResponseWriter, r *http.Request, v *viewer) {
	rid := r.PathValue("id")
	if !validRequestID(rid) {
		s.fail(w, r, http.StatusNotFound, "No such request", "There is no request with this id, or you may not see it.")
		return
	}
	if _, err := s.requestData(v, rid); err != nil {
		s.fail(w, r, http.StatusNotFound, "No such request", "There is no request with this id, or you may not see it.")
		return
	}
	// The request's state and history and the audit index's verification
	// of its chain live in one store and change in one batch: one watch
	// covers both (a record about the request the runner refused wakes it
	// too, since the verification lists it).
	wake := func() (<-chan struct{}, func()) { return s.cfg.Projection.Watch(rid) }
	s.stream(w, r, v, "request", wake, func() (string, error) {
		d, err := s.requestData(v, rid)
		if err != nil {
			return "", err
		}
		return fragment("request", "request-live", d)
	})
}

package daemon_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/daemon"
)

// serveShort runs h with short timeouts until the test ends.
func serveShort(t *testing.T, h http.Handler, to daemon.Timeouts) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- daemon.ServeServer(ctx, ln, daemon.NewServer(h, to), time.Second) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return ln.Addr().String()
}

// closedWithin reports how long the server took to close conn, reading
// (and discarding) whatever it sends, or fails after limit.
func closedWithin(t *testing.T, conn net.Conn, limit time.Duration) time.Duration {
	t.Helper()
	began := time.Now()
	require.NoError(t, conn.SetReadDeadline(began.Add(limit)))
	_, err := io.Copy(io.Discard, conn)
	var ne net.Error
	require.False(t, errors.As(err, &ne) && ne.Timeout(), "the server kept the connection open for %s", limit)
	return time.Since(began)
}

// TestServeCutsSlowClients: a client that trickles its body, one that
// never reads its answer, and an idle keep-alive connection are each cut
// off by their timeout, so that none of them holds a goroutine and a
// connection for ever.
func TestServeCutsSlowClients(t *testing.T) {
	t.Parallel()
	to := daemon.Timeouts{ReadHeader: 200 * time.Millisecond, Read: 500 * time.Millisecond, Write: 500 * time.Millisecond, Idle: 500 * time.Millisecond}
	wrote := make(chan error, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /upload", func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			http.Error(w, "slow body", http.StatusRequestTimeout)
		}
	})
	mux.HandleFunc("GET /big", func(w http.ResponseWriter, _ *http.Request) {
		buf := make([]byte, 1<<20)
		var err error
		for i := 0; i < 256 && err == nil; i++ { // far more than the socket buffers hold
			_, err = w.Write(buf)
		}
		wrote <- err
	})
	mux.HandleFunc("GET /small", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	addr := serveShort(t, mux, to)

	t.Run("slow headers", func(t *testing.T) {
		t.Parallel()
		conn, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		defer func() { _ = conn.Close() }()
		_, err = io.WriteString(conn, "GET /small HTTP/1.1\r\nHost: x\r\n")
		require.NoError(t, err)
		took := closedWithin(t, conn, 5*time.Second)
		require.GreaterOrEqual(t, took, 150*time.Millisecond)
	})
	t.Run("slow body", func(t *testing.T) {
		t.Parallel()
		conn, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		defer func() { _ = conn.Close() }()
		_, err = io.WriteString(conn, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
		require.NoError(t, err)
		stop := make(chan struct{})
		defer close(stop)
		go func() { // one byte every 50ms: 1000 bytes would take 50s
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					if _, err := conn.Write([]byte("x")); err != nil {
						return
					}
				}
			}
		}()
		took := closedWithin(t, conn, 5*time.Second)
		require.GreaterOrEqual(t, took, 400*time.Millisecond)
	})
	t.Run("unread answer", func(t *testing.T) {
		t.Parallel()
		conn, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		defer func() { _ = conn.Close() }()
		_, err = io.WriteString(conn, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
		require.NoError(t, err)
		select {
		case err := <-wrote:
			require.Error(t, err, "the handler's write fails once the write timeout passes")
		case <-time.After(5 * time.Second):
			t.Fatal("the handler writing to a client that reads nothing is still blocked after 5s")
		}
	})
	t.Run("idle keep-alive", func(t *testing.T) {
		t.Parallel()
		conn, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		defer func() { _ = conn.Close() }()
		_, err = io.WriteString(conn, "GET /small HTTP/1.1\r\nHost: x\r\n\r\n")
		require.NoError(t, err)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		took := closedWithin(t, conn, 5*time.Second)
		require.GreaterOrEqual(t, took, 400*time.Millisecond)
	})
}

// TestExtendWriteOutlivesTheWriteTimeout: a handler that answers later
// than the write timeout (a long poll) or keeps writing (a stream) moves
// its own deadline; without that, its client gets a closed connection.
func TestExtendWriteOutlivesTheWriteTimeout(t *testing.T) {
	t.Parallel()
	to := daemon.Timeouts{ReadHeader: time.Second, Read: time.Second, Write: 300 * time.Millisecond, Idle: time.Second}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /poll", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("extend") != "" {
			if err := daemon.ExtendWrite(w, 2*time.Second); err != nil {
				t.Errorf("ExtendWrite: %v", err)
			}
		}
		time.Sleep(800 * time.Millisecond) // the long poll's wait
		_, _ = io.WriteString(w, "decided")
	})
	mux.HandleFunc("GET /stream", func(w http.ResponseWriter, _ *http.Request) {
		rc := http.NewResponseController(w)
		for range 8 { // 8 × 100ms: well past the write timeout
			_ = daemon.ExtendWrite(w, 300*time.Millisecond)
			if _, err := io.WriteString(w, "data: x\n\n"); err != nil {
				return
			}
			if rc.Flush() != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	addr := serveShort(t, mux, to)
	get := func(path string) (string, error) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return "", err
		}
		defer func() { _ = resp.Body.Close() }()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	_, err := get("/poll")
	require.Error(t, err, "without ExtendWrite the answer is cut off by the write timeout")
	body, err := get("/poll?extend=1")
	require.NoError(t, err)
	require.Equal(t, "decided", body)
	body, err = get("/stream")
	require.NoError(t, err)
	require.Len(t, body, 8*len("data: x\n\n"), "every event of the stream arrived")
}

// TestDefaultTimeoutsBoundEveryServer: Serve and ServeListener use
// DefaultTimeouts, and every bound is set.
func TestDefaultTimeoutsBoundEveryServer(t *testing.T) {
	t.Parallel()
	d := daemon.DefaultTimeouts
	for name, v := range map[string]time.Duration{"ReadHeader": d.ReadHeader, "Read": d.Read, "Write": d.Write, "Idle": d.Idle} {
		require.Positive(t, v, name)
	}
	srv := daemon.NewServer(http.NewServeMux(), d)
	require.Equal(t, d.ReadHeader, srv.ReadHeaderTimeout)
	require.Equal(t, d.Read, srv.ReadTimeout)
	require.Equal(t, d.Write, srv.WriteTimeout)
	require.Equal(t, d.Idle, srv.IdleTimeout)
	require.Positive(t, srv.MaxHeaderBytes)
}

// TestServeListenerUsesDefaultTimeouts: the servers every service runs
// through ServeListener (and Serve) take their bounds from
// DefaultTimeouts: a body trickled slower than Timeouts.Read allows is cut
// off. Not parallel: it shortens DefaultTimeouts for its own duration.
func TestServeListenerUsesDefaultTimeouts(t *testing.T) {
	saved := daemon.DefaultTimeouts
	daemon.DefaultTimeouts = daemon.Timeouts{ReadHeader: 200 * time.Millisecond, Read: 500 * time.Millisecond,
		Write: 500 * time.Millisecond, Idle: 500 * time.Millisecond}
	t.Cleanup(func() { daemon.DefaultTimeouts = saved })

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- daemon.ServeListener(ctx, ln, http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
		}), time.Second)
	}()
	defer func() {
		cancel()
		require.NoError(t, <-done)
	}()

	conn, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer func() { _ = conn.Close() }()
	_, err = io.WriteString(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
	require.NoError(t, err)
	stop := make(chan struct{})
	defer close(stop)
	go func() { // one byte every 50ms: 1000 bytes would take 50s
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if _, err := conn.Write([]byte("x")); err != nil {
					return
				}
			}
		}
	}()
	took := closedWithin(t, conn, 5*time.Second)
	require.GreaterOrEqual(t, took, 400*time.Millisecond)
}

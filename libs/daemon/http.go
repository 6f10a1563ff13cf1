package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/assent-dev/assent/libs/eventlog"
)

// NewRegistry returns a Prometheus registry with the Go and process
// collectors, and the Kafka client's own counters, which every service
// exports.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "assent_kafka_fenced_broker_cuts_total",
			Help: "Times a Kafka client of this process closed its connections to a broker that the other brokers no longer list (fenced by the controller: dead, cut off or shutting down) and stopped dialing it until listed again.",
		}, func() float64 { return float64(eventlog.FencedBrokerCuts()) }))
	return reg
}

// Probes is /healthz, /readyz and /metrics. Ready returns nil when the
// service can do its work, or why not.
type Probes struct {
	Ready    func() error
	Registry *prometheus.Registry
}

// Register adds the three endpoints to mux.
func (p Probes) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := p.Ready(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = fmt.Fprintf(w, "not ready: %v\n", err)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(p.Registry, promhttp.HandlerOpts{}))
}

// Timeouts bound what one client can hold of a server: a connection that
// sends its request slowly, reads its answer slowly or sits idle is
// closed, so that slow or hostile clients cannot pile up connections and
// goroutines (docs/architecture.md, "Failure model").
type Timeouts struct {
	// ReadHeader bounds reading a request's headers.
	ReadHeader time.Duration
	// Read bounds reading a whole request, body included.
	Read time.Duration
	// Write bounds each answer, from the end of its request's headers to
	// its last byte. A handler whose answer is meant to take longer (a
	// long poll, a stream) extends its own deadline with ExtendWrite.
	// Zero sets no bound: only for a server whose every handler sets its
	// own deadline (the console's pages and streams).
	Write time.Duration
	// Idle bounds how long a keep-alive connection waits for its next
	// request.
	Idle time.Duration
}

// DefaultTimeouts are the bounds of every server Serve and ServeListener
// run. Bodies are small (64 KiB by default) and answers are quick, so 30s
// is generous for an honest client on a slow network.
var DefaultTimeouts = Timeouts{
	ReadHeader: 10 * time.Second,
	Read:       30 * time.Second,
	Write:      30 * time.Second,
	Idle:       2 * time.Minute,
}

// maxHeaderBytes bounds a request's headers: a bearer token, a signature
// and a few cookies fit many times over.
const maxHeaderBytes = 64 << 10

// NewServer returns an HTTP server for h with the timeouts t.
func NewServer(h http.Handler, t Timeouts) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: t.ReadHeader,
		ReadTimeout:       t.Read,
		WriteTimeout:      t.Write,
		IdleTimeout:       t.Idle,
		MaxHeaderBytes:    maxHeaderBytes,
	}
}

// ExtendWrite moves the write deadline of the answer w is writing to d
// from now, for a handler that means to answer later than
// Timeouts.Write allows (a long poll) or to keep writing (a stream, which
// calls it again before each write). It returns an error, which callers
// may ignore, when w cannot set deadlines (httptest's recorder).
func ExtendWrite(w http.ResponseWriter, d time.Duration) error {
	return http.NewResponseController(w).SetWriteDeadline(time.Now().Add(d))
}

// Serve serves h on addr until ctx ends, then shuts down gracefully,
// giving in-flight requests up to grace to finish. A listen error (the port
// is taken) is returned at once.
func Serve(ctx context.Context, addr string, h http.Handler, grace time.Duration) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("service: listen on %s: %w (set another address in the environment)", addr, err)
	}
	return ServeListener(ctx, ln, h, grace)
}

// ServeListener is Serve on a listener the caller opened (tests use port
// 0), with DefaultTimeouts.
func ServeListener(ctx context.Context, ln net.Listener, h http.Handler, grace time.Duration) error {
	return ServeServer(ctx, ln, NewServer(h, DefaultTimeouts), grace)
}

// ServeServer serves srv (from NewServer) on ln until ctx ends, then
// shuts it down gracefully within grace.
func ServeServer(ctx context.Context, ln net.Listener, srv *http.Server, grace time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("service: serve: %w", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		return fmt.Errorf("service: shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

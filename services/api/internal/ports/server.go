package ports

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/assent-dev/assent/libs/daemon"
	"github.com/assent-dev/assent/libs/tracing"
	"github.com/assent-dev/assent/services/api/internal/app"
	"github.com/assent-dev/assent/services/api/internal/auth"
	"github.com/assent-dev/assent/services/api/internal/metrics"
)

// Config is what the HTTP edge needs.
type Config struct {
	App      *app.App
	Tokens   *auth.Tokens
	Metrics  *metrics.Metrics     // optional
	Registry *prometheus.Registry // served on /metrics; optional
	Logger   *slog.Logger
	MaxBody  int64
	// Ready reports whether the replica can serve reads: nil, or why not.
	// /readyz answers it.
	Ready func(ctx context.Context) error
	// WriteReady reports whether writes can be made durable now: nil, or
	// why not. /readyz?scope=write answers it.
	WriteReady func(ctx context.Context) error
	// Writable reports at once, without a round trip to Kafka, whether
	// writes can be sent now: nil, or why not (Kafka is unreachable).
	// While it reports an error, writes answer 503 writes_unavailable
	// with Retry-After at once, and nothing is sent. Nil: always try.
	Writable func() error
	// Limits bound what one principal, and all of them together, may hold
	// of this replica.
	Limits Limits
	// WriteTimeout is the longest a write may take to answer: the produce
	// and the wait for its outcome. A write moves its connection's write
	// deadline that far. Zero leaves the server's.
	WriteTimeout time.Duration
	// Tracer, if set, records each API v1 request as a tracing.SpanReceive
	// server span, a child of the request's W3C traceparent if it carries
	// a valid one, with the event tracing.EventRespond when the answer
	// starts (docs/architecture.md, "Tracing"). Nil: no tracing.
	Tracer trace.Tracer
}

type server struct {
	cfg    Config
	routes map[string]bool
	limits *limiter
}

// New returns the HTTP handler of API v1 and the probes.
func New(cfg Config) http.Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 64 << 10
	}
	s := &server{cfg: cfg, routes: map[string]bool{}, limits: newLimiter(cfg.Limits, cfg.Metrics, cfg.Logger)}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = errorHandler(cfg.Logger)
	e.Pre(escapedPath)
	e.Use(s.observe, middleware.RecoverWithConfig(middleware.RecoverConfig{
		DisableErrorHandler: true, // the error reaches observe, which answers and counts it
		LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
			cfg.Logger.Error("panic", "method", c.Request().Method, "path", c.Request().URL.Path, "err", err, "stack", string(stack))
			return fmt.Errorf("ports: panic: %w", err)
		},
	}))

	e.GET("/healthz", func(c echo.Context) error { return c.String(http.StatusOK, "ok\n") })
	e.GET("/readyz", s.readyz)
	if cfg.Registry != nil {
		e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{})))
	}
	// Authentication is per route, not on a group: echo gives a group
	// with middleware a catch-all route, which would answer 404 where a
	// wrong method deserves 405. Writes are then held to their
	// principal's rate (limits.go).
	for _, r := range []struct {
		method, path string
		h            echo.HandlerFunc
	}{
		{http.MethodPost, "/v1/requests", s.submit},
		{http.MethodGet, "/v1/requests", s.list},
		{http.MethodGet, "/v1/requests/:id", s.get},
		{http.MethodGet, "/v1/requests/:id/events", s.history},
		{http.MethodPost, "/v1/requests/:id/votes", s.vote},
		{http.MethodPost, "/v1/requests/:id/cancel", s.cancel},
	} {
		mw := []echo.MiddlewareFunc{s.authenticate}
		if cfg.Tracer != nil {
			mw = append([]echo.MiddlewareFunc{s.trace}, mw...)
		}
		if r.method == http.MethodPost {
			mw = append(mw, s.bounded)
		}
		e.Add(r.method, r.path, r.h, mw...)
	}
	for _, r := range e.Routes() {
		s.routes[r.Path] = true
	}
	return e
}

// escapedPath makes echo route on the escaped path, so that a path
// parameter is always escaped and pathParam can unescape it exactly once.
// (echo routes on RawPath when Go kept one, and on the decoded Path
// otherwise, which would turn "%2541" into "%41" and then into "A".)
func escapedPath(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		u := c.Request().URL
		u.RawPath = u.EscapedPath()
		return next(c)
	}
}

func pathParam(c echo.Context, name string) string {
	v, err := url.PathUnescape(c.Param(name))
	if err != nil {
		return "" // not a valid id; the handler answers not_found
	}
	return v
}

// trace records the request as a tracing.SpanReceive server span. The
// incoming traceparent is untrusted: tracing.FromHTTP reads it strictly,
// and it only ever names the span's parent.
func (s *server) trace(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		ctx, span := s.cfg.Tracer.Start(tracing.FromHTTP(req.Context(), req.Header), tracing.SpanReceive,
			trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("http.request.method", req.Method), attribute.String("http.route", c.Path())))
		defer span.End()
		c.SetRequest(req.WithContext(ctx))
		c.Response().Before(func() { span.AddEvent(tracing.EventRespond) })
		err := next(c)
		if err != nil {
			c.Error(err) // answer here, so that the span sees the status
		}
		status := c.Response().Status
		span.SetAttributes(attribute.Int("http.response.status_code", status))
		if status >= http.StatusInternalServerError {
			span.SetStatus(codes.Error, http.StatusText(status))
		}
		return nil
	}
}

// observe answers errors itself, so that it can count the final status.
func (s *server) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		began := time.Now()
		if err := next(c); err != nil {
			c.Error(err)
		}
		if m := s.cfg.Metrics; m != nil {
			route := c.Path()
			if !s.routes[route] {
				route = "unmatched"
			}
			method := c.Request().Method
			switch method {
			case http.MethodGet, http.MethodPost, http.MethodHead, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
			default:
				method = "other"
			}
			m.HTTPRequests.WithLabelValues(route, method, strconv.Itoa(c.Response().Status)).Inc()
			m.HTTPSeconds.WithLabelValues(route, method).Observe(time.Since(began).Seconds())
		}
		return nil
	}
}

// bounded refuses a write at once while Kafka is known to be away
// (docs/architecture.md, "Failure model": reads go on, writes wait), holds
// it to its principal's rate, both before its body is read, and gives it
// the time to answer that the produce and the wait for its outcome need,
// beyond the server's write timeout.
func (s *server) bounded(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.cfg.Writable != nil {
			if err := s.cfg.Writable(); err != nil {
				if s.cfg.Metrics != nil {
					s.cfg.Metrics.WritesUnavailable.Inc()
				}
				return writesUnavailable(err)
			}
		}
		if p := s.limits.write(principal(c).ID); p != nil {
			return p
		}
		if s.cfg.WriteTimeout > 0 {
			_ = daemon.ExtendWrite(c.Response(), s.cfg.WriteTimeout) // not supported by httptest's recorder
		}
		return next(c)
	}
}

// readyz is /readyz: the replica can serve reads (its projection has
// caught up), which is what a load balancer should follow, since reads
// go on while Kafka is away. /readyz?scope=write also needs writes to be
// possible: Kafka answers this replica.
func (s *server) readyz(c echo.Context) error {
	ready := s.cfg.Ready
	scope := c.QueryParam("scope")
	switch scope {
	case "", "read":
		scope = ""
	case "write":
		scope = " for writes"
		if s.cfg.WriteReady != nil {
			ready = s.cfg.WriteReady
		}
	default:
		return c.String(http.StatusBadRequest, "scope must be read or write, got "+quote(scope)+"\n")
	}
	if ready != nil {
		ctx, cancel := context.WithTimeout(c.Request().Context(), 3*time.Second)
		defer cancel()
		if err := ready(ctx); err != nil {
			return c.String(http.StatusServiceUnavailable, "not ready"+scope+": "+err.Error()+"\n")
		}
	}
	return c.String(http.StatusOK, "ok\n")
}

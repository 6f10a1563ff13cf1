// Package ports is the audit query service's HTTP port, on echo: events
// by actor, type and time with cursor pagination, one request with the
// verification status of its chain, and the probes.
package ports

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	index "github.com/assent-dev/assent/libs/auditindex"
)

// Config wires the server.
type Config struct {
	Index    *index.Index
	Ready    func() error
	Registry *prometheus.Registry
}

type server struct {
	cfg     Config
	queries *prometheus.HistogramVec
}

// New returns the HTTP handler.
func New(cfg Config) http.Handler {
	s := &server{cfg: cfg, queries: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "assent_audit_query_seconds", Help: "Time to answer an audit query, by route.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, []string{"route"})}
	cfg.Registry.MustRegister(s.queries)
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = func(err error, c echo.Context) {
		var he *echo.HTTPError
		if errors.As(err, &he) {
			_ = problem(c, he.Code, http.StatusText(he.Code), "")
			return
		}
		_ = problem(c, http.StatusInternalServerError, err.Error(), "")
	}
	e.GET("/healthz", func(c echo.Context) error { return c.String(http.StatusOK, "ok\n") })
	e.GET("/readyz", func(c echo.Context) error {
		if err := cfg.Ready(); err != nil {
			return c.String(http.StatusServiceUnavailable, "not ready: "+err.Error()+"\n")
		}
		return c.String(http.StatusOK, "ready\n")
	})
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{})))
	e.GET("/v1/audit/events", s.events)
	e.GET("/v1/audit/requests/:id", s.request)
	return e
}

// problem writes an RFC 9457 problem.
func problem(c echo.Context, status int, detail, code string) error {
	body := map[string]any{"type": "about:blank", "title": http.StatusText(status), "status": status, "detail": detail}
	if code != "" {
		body["code"] = code
	}
	c.Response().Header().Set(echo.HeaderContentType, "application/problem+json")
	return c.JSON(status, body)
}

func parseTime(c echo.Context, name string) (time.Time, error) {
	v := c.QueryParam(name)
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return t, errors.New(name + " must be an RFC 3339 time such as 2026-01-02T15:04:05Z")
	}
	return t, nil
}

func (s *server) events(c echo.Context) error {
	began := time.Now()
	defer func() { s.queries.WithLabelValues("events").Observe(time.Since(began).Seconds()) }()
	q := index.Query{Actor: c.QueryParam("actor"), Type: c.QueryParam("type"), Cursor: c.QueryParam("cursor"), Limit: 100}
	var err error
	if q.From, err = parseTime(c, "from"); err != nil {
		return problem(c, http.StatusBadRequest, err.Error(), "invalid")
	}
	if q.To, err = parseTime(c, "to"); err != nil {
		return problem(c, http.StatusBadRequest, err.Error(), "invalid")
	}
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return problem(c, http.StatusBadRequest, "limit must be a whole number from 1 to 1000", "invalid")
		}
		q.Limit = n
	}
	rows, next, err := s.cfg.Index.Events(q)
	if errors.Is(err, index.ErrBadCursor) {
		return problem(c, http.StatusBadRequest, "cursor was not issued by this endpoint for this query", "invalid")
	}
	if err != nil {
		return err
	}
	if rows == nil {
		rows = []index.Row{}
	}
	return c.JSON(http.StatusOK, map[string]any{"events": rows, "next_cursor": next})
}

func (s *server) request(c echo.Context) error {
	began := time.Now()
	defer func() { s.queries.WithLabelValues("request").Observe(time.Since(began).Seconds()) }()
	r, err := s.cfg.Index.Request(c.Param("id"))
	if errors.Is(err, index.ErrNotFound) {
		return problem(c, http.StatusNotFound, "no event of request "+c.Param("id")+" in the log", "not_found")
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, r)
}

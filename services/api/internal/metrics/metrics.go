// Package metrics defines the api service's Prometheus metrics in one
// place, so that their names, labels and buckets can be read together.
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/projection"
)

// Metrics are the api's collectors.
type Metrics struct {
	HTTPRequests *prometheus.CounterVec
	HTTPSeconds  *prometheus.HistogramVec
	SendSeconds  prometheus.Histogram
	SendErrors   prometheus.Counter
	WriteWait    *prometheus.HistogramVec
	Approval     prometheus.Histogram
	Decisions    *prometheus.CounterVec
	Ready        prometheus.GaugeFunc
}

// latencyBuckets suit answers that take milliseconds and waits that take
// seconds.
var latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// approvalBuckets suit people: seconds to hours.
var approvalBuckets = []float64{1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 28800, 86400}

// New registers the metrics. ready reports whether the projection has
// caught up. The projection's own metrics are projection.RegisterMetrics'.
func New(reg prometheus.Registerer, ready func() bool) *Metrics {
	m := &Metrics{
		HTTPRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "assent_api_http_requests_total", Help: "HTTP requests answered, by route, method and status.",
		}, []string{"route", "method", "status"}),
		HTTPSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "assent_api_http_request_seconds", Help: "Time to answer an HTTP request, by route and method.", Buckets: latencyBuckets,
		}, []string{"route", "method"}),
		SendSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "assent_api_command_send_seconds", Help: "Time for Kafka to acknowledge a command (acks=all).", Buckets: latencyBuckets,
		}),
		SendErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "assent_api_command_send_errors_total", Help: "Commands Kafka did not acknowledge, answered 503 outcome_unknown: each may or may not be in the log.",
		}),
		WriteWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "assent_api_write_wait_seconds", Help: "Time from a command's acknowledgement until its outcome appeared in the projection, by command type and outcome (accepted, refused, timeout).", Buckets: latencyBuckets,
		}, []string{"command", "outcome"}),
		Approval: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "assent_approval_latency_seconds", Help: "From a request's submission to its decision (approved, rejected, expired or cancelled), observed as the projection applies decisions live.", Buckets: approvalBuckets,
		}),
		Decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "assent_api_projected_decisions_total", Help: "Terminal decisions applied live by this replica's projection, by outcome.",
		}, []string{"outcome"}),
		Ready: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "assent_api_projection_ready", Help: "1 once the projection has caught up with the log it found at start.",
		}, func() float64 {
			if ready() {
				return 1
			}
			return 0
		}),
	}
	reg.MustRegister(m.HTTPRequests, m.HTTPSeconds, m.SendSeconds, m.SendErrors, m.WriteWait,
		m.Approval, m.Decisions, m.Ready)
	return m
}

// ObserveSend records one command send. A failed send is a write answered
// 503 outcome_unknown.
func (m *Metrics) ObserveSend(d time.Duration, err error) {
	m.SendSeconds.Observe(d.Seconds())
	if err != nil {
		m.SendErrors.Inc()
	}
}

// ObserveWait records how long a write waited for its outcome.
func (m *Metrics) ObserveWait(commandType, outcome string, d time.Duration) {
	m.WriteWait.WithLabelValues(commandType, outcome).Observe(d.Seconds())
}

// OnEvent returns a requests.Store OnEvent hook that observes decisions.
// Only decisions applied while live count: replaying the log at start
// would otherwise report every decision ever made as happening now.
func (m *Metrics) OnEvent(live func() bool) func(*projection.Event, approval.Event, approval.State, approval.State) {
	return func(_ *projection.Event, _ approval.Event, before, after approval.State) {
		if before.Status.Terminal() || !after.Status.Terminal() || !live() {
			return
		}
		m.Decisions.WithLabelValues(string(after.Status)).Inc()
		if !after.CreatedAt.IsZero() && !after.DecidedAt.Before(after.CreatedAt) {
			m.Approval.Observe(after.DecidedAt.Sub(after.CreatedAt).Seconds())
		}
	}
}

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
	// LongPolls is how many long polls the replica holds now;
	// LongPollsRefused counts those refused by a limit (principal: 429,
	// replica: 503); WritesThrottled counts writes refused with 429 for a
	// principal over its write rate.
	LongPolls        prometheus.Gauge
	LongPollsRefused *prometheus.CounterVec
	WritesThrottled  prometheus.Counter
	// WritesUnavailable counts writes answered 503 writes_unavailable at
	// once, while the replica could not reach Kafka.
	WritesUnavailable prometheus.Counter
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
		LongPolls: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "assent_api_long_polls_in_flight", Help: "Long polls (GET /v1/requests/{id}?wait=) this replica holds now.",
		}),
		LongPollsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "assent_api_long_polls_refused_total", Help: "Long polls refused by a limit: principal (429, ASSENT_MAX_LONG_POLLS_PER_PRINCIPAL) or replica (503, ASSENT_MAX_LONG_POLLS).",
		}, []string{"limit"}),
		WritesThrottled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "assent_api_writes_throttled_total", Help: "Writes refused with 429 because their principal was over ASSENT_WRITE_RATE on this replica.",
		}),
		WritesUnavailable: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "assent_api_writes_unavailable_total", Help: "Writes answered 503 writes_unavailable at once, nothing sent, because this replica could not reach Kafka.",
		}),
	}
	for _, limit := range []string{"principal", "replica"} {
		m.LongPollsRefused.WithLabelValues(limit)
	}
	reg.MustRegister(m.HTTPRequests, m.HTTPSeconds, m.SendSeconds, m.SendErrors, m.WriteWait,
		m.Approval, m.Decisions, m.Ready, m.LongPolls, m.LongPollsRefused, m.WritesThrottled, m.WritesUnavailable)
	return m
}

// RegisterWriteReady exports whether writes can be made durable now
// (Kafka answers this replica), as /readyz?scope=write reports it.
func RegisterWriteReady(reg prometheus.Registerer, ready func() bool) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "assent_api_write_ready", Help: "1 while this replica can make writes durable: the projection has caught up and Kafka answers its pings.",
	}, func() float64 {
		if ready() {
			return 1
		}
		return 0
	}))
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

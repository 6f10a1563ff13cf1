package service

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/services/notifier/internal/delivery"
)

// metrics are the notifier's Prometheus metrics (docs/metrics.md).
type metrics struct {
	attempts    *prometheus.CounterVec
	attemptSecs *prometheus.HistogramVec
	outcomes    *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	breakers    *prometheus.CounterVec
	recordSecs  prometheus.Histogram
	recordFails prometheus.Counter
	replays     *prometheus.CounterVec
}

var latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// deliveryBuckets reach from a fast delivery to the end of a day's horizon.
var deliveryBuckets = []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400}

func newMetrics(reg prometheus.Registerer, eng *delivery.Engine, ready func() bool) *metrics {
	m := &metrics{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "assent_notifier_attempts_total", Help: "Delivery attempts, by kind (webhook, email) and result (delivered, refused, failed, timeout, rate_limited).",
		}, []string{"kind", "result"}),
		attemptSecs: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "assent_notifier_attempt_seconds", Help: "Time of one delivery attempt (one webhook call, one SMTP session), by kind.", Buckets: latencyBuckets,
		}, []string{"kind"}),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "assent_notifier_deliveries_total", Help: "Deliveries ended and recorded in the log, by kind and outcome (delivered, dead_letter).",
		}, []string{"kind", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "assent_notifier_delivery_seconds", Help: "From the event's time to its delivery (or dead letter), by kind: what a receiver waits.", Buckets: deliveryBuckets,
		}, []string{"kind"}),
		breakers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "assent_notifier_breaker_transitions_total", Help: "Circuit breaker transitions of targets, by state (open, closed).",
		}, []string{"state"}),
		recordSecs: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "assent_notifier_record_seconds", Help: "Time for Kafka to acknowledge an outcome's record-notification command (acks=all).", Buckets: latencyBuckets,
		}),
		recordFails: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "assent_notifier_record_failures_total", Help: "Outcome records that Kafka did not acknowledge (retried; the delivery is not made again).",
		}),
		replays: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "assent_notifier_replays_total", Help: "Replay requests on POST /v1/replays, by result (accepted, refused, unauthorized, failed).",
		}, []string{"result"}),
	}
	reg.MustRegister(m.attempts, m.attemptSecs, m.outcomes, m.latency, m.breakers, m.recordSecs, m.recordFails, m.replays,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "assent_notifier_pending_deliveries", Help: "Deliveries queued on this replica (for the partitions it owns), not yet recorded.",
		}, func() float64 { return float64(eng.Pending()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "assent_notifier_oldest_pending_seconds", Help: "Age of the oldest queued delivery's event on this replica; 0 when none is queued.",
		}, func() float64 { return eng.OldestPending().Seconds() }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "assent_notifier_open_breakers", Help: "Targets whose circuit breaker is open on this replica.",
		}, func() float64 { return float64(eng.OpenBreakers()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "assent_notifier_owned_partitions", Help: "Events partitions whose deliveries this replica drives.",
		}, func() float64 { return float64(eng.OwnedCount()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "assent_notifier_projection_ready", Help: "1 once the projection caught up with the log it found at start.",
		}, func() float64 {
			if ready() {
				return 1
			}
			return 0
		}),
	)
	for _, k := range []approval.NotificationKind{approval.NotifyWebhook, approval.NotifyEmail} {
		for _, r := range []string{"delivered", "refused", "failed", "timeout", "rate_limited"} {
			m.attempts.WithLabelValues(string(k), r)
		}
		for _, o := range []approval.DeliveryOutcome{approval.Delivered, approval.DeadLetter} {
			m.outcomes.WithLabelValues(string(k), string(o))
		}
	}
	for _, s := range []string{"open", "closed"} {
		m.breakers.WithLabelValues(s)
	}
	for _, r := range []string{"accepted", "refused", "unauthorized", "failed"} {
		m.replays.WithLabelValues(r)
	}
	return m
}

func (m *metrics) observer() delivery.Observer {
	return delivery.Observer{
		Attempt: func(kind approval.NotificationKind, result string, took time.Duration) {
			m.attempts.WithLabelValues(string(kind), result).Inc()
			m.attemptSecs.WithLabelValues(string(kind)).Observe(took.Seconds())
		},
		Outcome: func(kind approval.NotificationKind, o approval.DeliveryOutcome, since time.Duration) {
			m.outcomes.WithLabelValues(string(kind), string(o)).Inc()
			m.latency.WithLabelValues(string(kind)).Observe(max(0, since.Seconds()))
		},
		BreakerSet: func(_ string, open bool) {
			if open {
				m.breakers.WithLabelValues("open").Inc()
			} else {
				m.breakers.WithLabelValues("closed").Inc()
			}
		},
		Record: func(took time.Duration, err error) {
			m.recordSecs.Observe(took.Seconds())
			if err != nil {
				m.recordFails.Inc()
			}
		},
	}
}

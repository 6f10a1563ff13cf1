package service

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the gateway's Prometheus metrics. The projection ones share
// their names with the api's, so one dashboard panel covers every reader.
type metrics struct {
	apiCalls   *prometheus.CounterVec
	apiSeconds *prometheus.HistogramVec
	clicks     *prometheus.CounterVec
	ack        prometheus.Histogram
	cards      *prometheus.CounterVec
	send       prometheus.Histogram
}

var latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

func newMetrics(reg prometheus.Registerer, ready func() bool) *metrics {
	m := &metrics{
		apiCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "assent_slack_api_requests_total", Help: "Slack Web API calls, by method and status (ok, rate_limited for a 429, error).",
		}, []string{"method", "status"}),
		apiSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "assent_slack_api_request_seconds", Help: "Time of one Slack Web API call, by method.", Buckets: latencyBuckets,
		}, []string{"method"}),
		clicks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "assent_slack_clicks_total", Help: "Slack interactivity requests, by outcome (accepted, unauthorized, invalid, unavailable, ignored).",
		}, []string{"outcome"}),
		ack: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "assent_slack_click_ack_seconds", Help: "From receiving a Slack interactivity request to answering it (for a vote: after Kafka stored the command).", Buckets: latencyBuckets,
		}),
		cards: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "assent_slack_cards_total", Help: "Cards and DMs, by operation (posted, updated, found after an unknown outcome or a failover, failed).",
		}, []string{"op"}),
		send: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "assent_slack_command_send_seconds", Help: "Time for Kafka to acknowledge a command from the gateway (acks=all).", Buckets: latencyBuckets,
		}),
	}
	reg.MustRegister(m.apiCalls, m.apiSeconds, m.clicks, m.ack, m.cards, m.send,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "assent_slack_projection_ready", Help: "1 once the projection has caught up with the log it found at start.",
		}, func() float64 {
			if ready() {
				return 1
			}
			return 0
		}),
	)
	for _, o := range []string{"accepted", "unauthorized", "invalid", "unavailable", "ignored"} {
		m.clicks.WithLabelValues(o)
	}
	for _, o := range []string{"posted", "updated", "found", "failed"} {
		m.cards.WithLabelValues(o)
	}
	return m
}

func (m *metrics) observeAPI(method, status string, d time.Duration) {
	m.apiCalls.WithLabelValues(method, status).Inc()
	m.apiSeconds.WithLabelValues(method).Observe(d.Seconds())
}

func (m *metrics) observeClick(outcome string, d time.Duration) {
	m.clicks.WithLabelValues(outcome).Inc()
	m.ack.Observe(d.Seconds())
}

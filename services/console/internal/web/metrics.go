package web

import (
	"github.com/prometheus/client_golang/prometheus"
)

var latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// Sign-in outcomes (the label values of assent_console_sign_ins_total).
const (
	signInOK          = "ok"
	signInUnavailable = "idp_unavailable" // discovery failed
	signInIdPError    = "idp_error"       // the provider sent the browser back with an error
	signInState       = "state_invalid"   // no flow cookie, expired, or the state does not match
	signInExchange    = "exchange_failed" // the token endpoint refused the code
	signInToken       = "token_invalid"   // the ID token failed verification or the nonce
	signInEmail       = "email_invalid"   // no verified email
)

// Metrics are the console's collectors (docs/metrics.md).
type Metrics struct {
	HTTPRequests  *prometheus.CounterVec
	HTTPSeconds   *prometheus.HistogramVec
	SignIns       *prometheus.CounterVec
	CSRF          prometheus.Counter
	RateLimited   prometheus.Counter
	Commands      *prometheus.CounterVec
	SendErrors    prometheus.Counter
	Streams       prometheus.GaugeFunc
	StreamsDenied prometheus.Counter
	Exports       *prometheus.CounterVec
	ExportRows    prometheus.Counter
}

// NewMetrics registers the console's metrics. streams reads the open
// live-update streams.
func NewMetrics(reg prometheus.Registerer, streams func() int) *Metrics {
	m := &Metrics{
		HTTPRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "assent_console_http_requests_total", Help: "HTTP requests answered by the console, by route, method and status.",
		}, []string{"route", "method", "status"}),
		HTTPSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "assent_console_http_request_seconds", Help: "Time to answer a console HTTP request (live streams and exports excluded), by route.", Buckets: latencyBuckets,
		}, []string{"route"}),
		SignIns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "assent_console_sign_ins_total", Help: "OpenID Connect sign-ins completed or failed, by outcome.",
		}, []string{"outcome"}),
		CSRF: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "assent_console_csrf_refusals_total", Help: "Forms refused for a missing or wrong CSRF token, or a cross-site origin.",
		}),
		RateLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "assent_console_rate_limited_total", Help: "Requests refused with 429 by the per-person (or per-address) rate limit.",
		}),
		Commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "assent_console_commands_total", Help: "Votes and cancels written by the console, by command (vote, cancel) and outcome (accepted, refused, timeout, unavailable).",
		}, []string{"command", "outcome"}),
		SendErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "assent_console_command_send_errors_total", Help: "Votes and cancels that Kafka did not acknowledge (nothing was written; the person was told to retry).",
		}),
		Streams: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "assent_console_live_streams", Help: "Live-update streams (Server-Sent Events) open on this replica.",
		}, func() float64 { return float64(streams()) }),
		StreamsDenied: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "assent_console_live_streams_refused_total", Help: "Live-update streams refused at the replica's or a person's cap.",
		}),
		Exports: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "assent_console_exports_total", Help: "Audit exports, by format and outcome (complete, truncated, failed).",
		}, []string{"format", "outcome"}),
		ExportRows: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "assent_console_export_rows_total", Help: "Events written by audit exports.",
		}),
	}
	reg.MustRegister(m.HTTPRequests, m.HTTPSeconds, m.SignIns, m.CSRF, m.RateLimited, m.Commands, m.SendErrors,
		m.Streams, m.StreamsDenied, m.Exports, m.ExportRows)
	for _, o := range []string{signInOK, signInUnavailable, signInIdPError, signInState, signInExchange, signInToken, signInEmail} {
		m.SignIns.WithLabelValues(o)
	}
	for _, c := range []string{"vote", "cancel"} {
		for _, o := range []string{"accepted", "refused", "timeout", "unavailable"} {
			m.Commands.WithLabelValues(c, o)
		}
	}
	return m
}

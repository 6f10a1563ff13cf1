package service

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/assent-dev/assent/libs/approval"
)

type metrics struct {
	commands        *prometheus.CounterVec
	refusals        *prometheus.CounterVec
	decisions       *prometheus.CounterVec
	txns            *prometheus.CounterVec
	skipped         *prometheus.CounterVec
	commandToEvent  prometheus.Histogram
	catchUp         prometheus.Histogram
	txnSeconds      prometheus.Histogram
	seals           prometheus.Counter
	sessionRestarts prometheus.Counter
	quarantined     prometheus.Counter
	unauthenticated prometheus.Counter
}

var latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "assent_decider_commands_total", Help: "Commands decided, by type and outcome (accepted, refused, replayed).",
		}, []string{"type", "outcome"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "assent_refusals_total", Help: "Commands refused, by reason code.",
		}, []string{"reason"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "assent_decisions_total", Help: "Terminal decisions written, by outcome.",
		}, []string{"outcome"}),
		txns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "assent_decider_transactions_total", Help: "Kafka transactions ended, by result (committed, aborted, error).",
		}, []string{"result"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "assent_decider_skipped_records_total", Help: "Command records that could not be decided at all, by reason.",
		}, []string{"reason"}),
		commandToEvent: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "assent_command_to_event_seconds", Help: "From a command's time to the decision on it.", Buckets: latencyBuckets,
		}),
		txnSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "assent_decider_transaction_seconds", Help: "Time from Begin to the end of one transaction.", Buckets: latencyBuckets,
		}),
		catchUp: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "assent_decider_catch_up_seconds", Help: "Time to take over partitions: wait for open transactions and project to the end.", Buckets: latencyBuckets,
		}),
		sessionRestarts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "assent_decider_session_restarts_total", Help: "Transactional sessions replaced after a transaction could not end (a broker lost mid-commit, a pause past the transaction timeout), failed in a way that would repeat, or aborted 10 times in a row.",
		}),
		seals: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "assent_decider_seals_total", Help: "Seals produced, one per partition a transaction wrote (counted when produced; an aborted transaction drops them).",
		}),
		quarantined: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "assent_decider_quarantined_commands_total",
			Help: "Commands left undecided because this replica could not decide them (a stored state that does not decode, an event that does not encode); each must be replayed (should stay zero). Counted each time a transaction meets one, so a command in a transaction that aborts is counted again.",
		}),
		unauthenticated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "assent_decider_unauthenticated_commands_total",
			Help: "Commands refused unauthenticated because no published key that may speak for their actor signed them (should stay zero: each is a misconfigured producer or a forgery). Counted each time a transaction meets one, so a command in a transaction that aborts is counted again.",
		}),
	}
	reg.MustRegister(m.commands, m.refusals, m.decisions, m.txns, m.skipped, m.commandToEvent, m.txnSeconds, m.catchUp, m.seals, m.sessionRestarts, m.quarantined,
		m.unauthenticated)
	return m
}

func (m *metrics) observeDecision(typ string, d approval.Decision) {
	if typ == "" {
		typ = "unknown"
	}
	switch {
	case d.Replayed:
		m.commands.WithLabelValues(typ, "replayed").Inc()
	case d.Refusal != nil:
		m.commands.WithLabelValues(typ, "refused").Inc()
		m.refusals.WithLabelValues(string(d.Refusal.Code)).Inc()
	default:
		m.commands.WithLabelValues(typ, "accepted").Inc()
	}
	for _, e := range d.Events {
		switch e.Body.(type) {
		case approval.RequestApproved:
			m.decisions.WithLabelValues("approved").Inc()
		case approval.RequestRejected:
			m.decisions.WithLabelValues("rejected").Inc()
		case approval.RequestExpired:
			m.decisions.WithLabelValues("expired").Inc()
		case approval.RequestCancelled:
			m.decisions.WithLabelValues("cancelled").Inc()
		}
	}
}

package projection

import (
	"github.com/prometheus/client_golang/prometheus"
)

// applyBuckets suit batches that take a millisecond live and up to a
// minute in a cold rebuild.
var applyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// metrics are what every service that runs a projection exports, under
// the same names and units (docs/metrics.md).
type metrics struct {
	apply   prometheus.Histogram
	records prometheus.Counter
}

func (m *metrics) observe(s BatchStats) {
	m.apply.Observe(s.Duration.Seconds())
	m.records.Add(float64(s.Records))
}

// RegisterMetrics registers the runner's metrics with reg:
//
//   - assent_projection_apply_seconds, the time to apply one batch (the
//     event-to-projection time);
//   - assent_projection_records_total, the event records applied;
//   - assent_projection_lag_records, the committed records not yet
//     applied, against the last stable offsets;
//   - assent_consistency_violations_total, read from violations: events
//     the handler could not fold, or any other broken invariant it counts
//     (it should read zero).
//
// Call it once, before Run.
func (r *Runner) RegisterMetrics(reg prometheus.Registerer, violations func() float64) {
	m := &metrics{
		apply: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "assent_projection_apply_seconds",
			Help:    "Time to apply one batch of events to the projection (event to projection).",
			Buckets: applyBuckets,
		}),
		records: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "assent_projection_records_total",
			Help: "Event records applied to the projection.",
		}),
	}
	reg.MustRegister(m.apply, m.records,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "assent_projection_lag_records",
			Help: "Committed event records not yet applied to this replica's projection (-1 before the first reading).",
		}, func() float64 { return float64(r.Lag()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "assent_consistency_violations_total",
			Help: "Events a projection could not fold, or other broken invariants it found (should read zero).",
		}, violations),
	)
	r.metrics.Store(m)
}

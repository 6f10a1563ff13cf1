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
//   - assent_consistency_violations_total{kind}: records the runner did
//     not apply because no valid seal covers them (kind="unauthenticated"),
//     records that are not Assent CloudEvents ("invalid"), records missing
//     before a valid seal ("gap"), and, read from violations, events the
//     handler could not fold or any other broken invariant it counts
//     ("fold"); every kind should read zero;
//   - assent_projection_stopped_partitions, the partitions the runner
//     stopped reading because records are missing (data loss): it should
//     read zero, and decisions on such a partition wait for an operator.
//   - assent_projection_bootstrapped, 1 if this replica's store came from
//     a snapshot (Bootstrap), with assent_projection_bootstrap_seconds,
//     the time it took; and assent_projection_snapshot_refused{reason},
//     1 for the reason this replica refused a snapshot and rebuilt from
//     the log instead (it should read zero).
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
		violationsCollector{r: r, fold: violations},
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "assent_projection_stopped_partitions",
			Help: "Partitions of the events topic this replica stopped reading because records are missing (should read zero).",
		}, func() float64 { return float64(len(r.Stopped())) }),
	)
	boot := r.cfg.Bootstrap
	if boot == nil {
		boot = &BootstrapReport{}
	}
	refused := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "assent_projection_snapshot_refused",
		Help: "1 for the reason this replica refused the snapshot it was to bootstrap from, and rebuilt its store from the log instead (should read zero).",
	}, []string{"reason"})
	for _, reason := range refusedReasons {
		v := 0.0
		if boot.Refused == reason {
			v = 1
		}
		refused.WithLabelValues(reason).Set(v)
	}
	used, took := 0.0, 0.0
	if boot.Used {
		used, took = 1, boot.Took.Seconds()
	}
	reg.MustRegister(refused,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "assent_projection_bootstrapped",
			Help: "1 if this replica's store was bootstrapped from a snapshot at start."}, func() float64 { return used }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "assent_projection_bootstrap_seconds",
			Help: "Time this replica took to fetch and check the snapshot it bootstrapped from (0 without one)."}, func() float64 { return took }),
	)
	r.metrics.Store(m)
}

var violationsDesc = prometheus.NewDesc("assent_consistency_violations_total",
	"Records a projection did not apply (kind: unauthenticated, invalid, gap) or could not fold (fold), or other broken invariants it found (should read zero).",
	[]string{"kind"}, nil)

// violationsCollector exports the runner's rejections and the handler's
// violations under one name, by kind.
type violationsCollector struct {
	r    *Runner
	fold func() float64
}

func (c violationsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- violationsDesc }

func (c violationsCollector) Collect(ch chan<- prometheus.Metric) {
	for kind, n := range c.r.Rejections() {
		ch <- prometheus.MustNewConstMetric(violationsDesc, prometheus.CounterValue, float64(n), kind)
	}
	fold := 0.0
	if c.fold != nil {
		fold = c.fold()
	}
	ch <- prometheus.MustNewConstMetric(violationsDesc, prometheus.CounterValue, fold, "fold")
}

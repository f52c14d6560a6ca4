package health

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/virtbgp/virtbgp/mapping"
)

// Metrics are the health checks' Prometheus series: transitions, counted
// as they happen (it is the monitor's Observer), and the checks by type
// and state, read from the monitor at scrape time.
type Metrics struct {
	transitions *prometheus.CounterVec
	checks      *prometheus.Desc
	mon         *Monitor
}

// NewMetrics returns the metrics; Register adds them to a registry, and
// SetMonitor gives the monitor whose checks the state series count.
func NewMetrics() *Metrics {
	return &Metrics{
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "virtbgp",
			Name:      "health_check_transitions_total",
			Help:      "Health check state changes, by check type and the states from and to (starting, up, down, unavailable, maintenance).",
		}, []string{"type", "from", "to"}),
		checks: prometheus.NewDesc("virtbgp_health_checks",
			"Health checks running on this host, by check type and state (starting, up, down, unavailable, maintenance).",
			[]string{"type", "state"}, nil),
	}
}

// SetMonitor sets the monitor the state series read.
func (m *Metrics) SetMonitor(mon *Monitor) { m.mon = mon }

// Transition implements Observer.
func (m *Metrics) Transition(kind mapping.CheckKind, from, to State) {
	m.transitions.WithLabelValues(string(kind), from.String(), to.String()).Inc()
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	m.transitions.Describe(ch)
	ch <- m.checks
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.transitions.Collect(ch)
	if m.mon == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := m.mon.Status(ctx)
	if err != nil {
		return
	}
	type key struct{ kind, state string }
	n := map[key]int{}
	for _, k := range []mapping.CheckKind{mapping.CheckAgent, mapping.CheckTCP, mapping.CheckHTTP, mapping.CheckExec} {
		for s := Starting; s <= Maintenance; s++ {
			n[key{string(k), s.String()}] = 0
		}
	}
	for _, c := range st {
		n[key{c.Type, c.State}]++
	}
	for k, v := range n {
		ch <- prometheus.MustNewConstMetric(m.checks, prometheus.GaugeValue, float64(v), k.kind, k.state)
	}
}

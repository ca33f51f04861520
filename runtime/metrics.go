package runtime

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the data plane's Prometheus series. Labels are tenant and
// integration, plus stage (a step or sink name) where it applies.
type Metrics struct {
	ingested     *prometheus.CounterVec
	delivered    *prometheus.CounterVec
	failures     *prometheus.CounterVec
	deadLettered *prometheus.CounterVec
	dropped      *prometheus.CounterVec
	deliverTime  *prometheus.HistogramVec
}

// NewMetrics creates the series and registers them with reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	ti := []string{"tenant", "integration"}
	tis := []string{"tenant", "integration", "stage"}
	m := &Metrics{
		ingested: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "vrsky", Name: "messages_ingested_total",
			Help: "Messages made durable on an integration's input subject.",
		}, ti),
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "vrsky", Name: "messages_delivered_total",
			Help: "Messages a sink delivered.",
		}, tis),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "vrsky", Name: "attempt_failures_total",
			Help: "Failed attempts at a step or sink (each retry counts).",
		}, tis),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "vrsky", Name: "messages_dead_lettered_total",
			Help: "Messages moved to the dead-letter queue.",
		}, tis),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "vrsky", Name: "messages_filtered_total",
			Help: "Messages a step dropped on purpose (filters).",
		}, tis),
		deliverTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "vrsky", Name: "sink_delivery_seconds",
			Help:    "Time a sink took to deliver one message.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, tis),
	}
	if reg != nil {
		reg.MustRegister(m.ingested, m.delivered, m.failures, m.deadLettered, m.dropped, m.deliverTime)
	}
	return m
}

package runtime

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the data plane's Prometheus series. Labels are tenant and
// integration, plus stage where it applies: always a Stage's wire form
// ("sink:api", "step:jq", "route", "route:api"; see Stage), the same in
// every series, so that failures, dead letters, deliveries and queue
// depths of one stage join on {tenant, integration, stage}.
//
// The counters count events on this node. The gauges vrsky_dlq_depth and
// vrsky_messages_pending are read from JetStream when Prometheus scrapes
// (queuemetrics.go) and are cluster-wide: every node reports the same
// values, so aggregate them with max, not sum, across instances.
type Metrics struct {
	ingested     *prometheus.CounterVec
	delivered    *prometheus.CounterVec
	failures     *prometheus.CounterVec
	deadLettered *prometheus.CounterVec
	dropped      *prometheus.CounterVec
	deliverTime  *prometheus.HistogramVec
	queues       *queueCollector
}

// The outcome label of vrsky_sink_delivery_seconds: what became of one
// attempt. It is the attempt's own result, not the message's fate: the
// last retryable attempt before the DLQ is "retryable" too.
const (
	// OutcomeOK: the sink delivered the message.
	OutcomeOK = "ok"
	// OutcomeRetryable: the attempt failed with a retryable error.
	OutcomeRetryable = "retryable"
	// OutcomePermanent: the attempt failed with a Permanent error (the
	// message goes to the DLQ at once).
	OutcomePermanent = "permanent"
)

// outcomeOf is the outcome label of an attempt that returned err.
func outcomeOf(err error) string {
	switch {
	case err == nil:
		return OutcomeOK
	case IsPermanent(err):
		return OutcomePermanent
	default:
		return OutcomeRetryable
	}
}

// NewMetrics creates the series and registers them with reg (nil: not
// registered). The queue gauges come from the first engine built with
// these Metrics (Config.Metrics): a Metrics serves one engine.
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
			Help: "Messages a sink delivered (stage sink:<name>).",
		}, tis),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "vrsky", Name: "attempt_failures_total",
			Help: "Failed attempts at a stage (each retry counts).",
		}, tis),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "vrsky", Name: "messages_dead_lettered_total",
			Help: "Messages moved to the dead-letter queue, by the stage that failed (a running total; vrsky_dlq_depth is what the DLQ holds now).",
		}, tis),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "vrsky", Name: "messages_filtered_total",
			Help: "Messages a step dropped on purpose (filters; stage step:<name>).",
		}, tis),
		deliverTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "vrsky", Name: "sink_delivery_seconds",
			Help:    "Time a sink took for one attempt to deliver a message (a batch sink: the batch's call, once per message), by outcome: ok, retryable, permanent.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, append(tis, "outcome")),
		queues: newQueueCollector(),
	}
	if reg != nil {
		reg.MustRegister(m.ingested, m.delivered, m.failures, m.deadLettered, m.dropped, m.deliverTime, m.queues)
	}
	return m
}

// observeDelivery records one attempt of a sink.
func (m *Metrics) observeDelivery(tenant, integration string, stage Stage, took time.Duration, err error) {
	m.deliverTime.WithLabelValues(tenant, integration, stage.String(), outcomeOf(err)).Observe(took.Seconds())
}

// observeBatch records a batch sink's call once per message, each with
// its own outcome (errs nil: all delivered).
func (m *Metrics) observeBatch(tenant, integration string, stage Stage, took time.Duration, errs []error, n int) {
	obs := map[string]prometheus.Observer{}
	for i := range n {
		var err error
		if errs != nil {
			err = errs[i]
		}
		o := outcomeOf(err)
		if obs[o] == nil {
			obs[o] = m.deliverTime.WithLabelValues(tenant, integration, stage.String(), o)
		}
		obs[o].Observe(took.Seconds())
	}
}

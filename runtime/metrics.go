package runtime

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vrsky/vrsky/host"
)

// Metrics are the data plane's Prometheus series. Labels are tenant and
// integration, plus stage where it applies: always a Stage's wire form
// ("sink:api", "step:jq", "route", "route:api"; see Stage), the same in
// every series, so that failures, dead letters, deliveries and queue
// depths of one stage join on {tenant, integration, stage}.
//
// The counters count events on this node. The gauges vrsky_dlq_depth,
// vrsky_messages_pending, vrsky_consumer_* and vrsky_tenant_quota_* are
// read from JetStream and the store when Prometheus scrapes
// (queuemetrics.go) and are cluster-wide: every node reports the same
// values, so aggregate them with max, not sum, across instances.
//
// The hot path never looks a series up by its labels: a pipeline takes
// its series once, when it starts (pipelineMetrics, sinkMetrics).
// docs/metrics.md lists every series.
type Metrics struct {
	// tenantLabels: false leaves the tenant and integration labels empty
	// (MetricsOptions.NoTenantLabels).
	tenantLabels bool

	ingested     *prometheus.CounterVec
	delivered    *prometheus.CounterVec
	failures     *prometheus.CounterVec
	deadLettered *prometheus.CounterVec
	dropped      *prometheus.CounterVec
	deliverTime  *prometheus.HistogramVec
	stageIn      *prometheus.CounterVec
	stageOut     *prometheus.CounterVec
	stepTime     *prometheus.HistogramVec
	claimObjects *prometheus.CounterVec
	claimBytes   *prometheus.CounterVec

	wasmCalls   *prometheus.CounterVec
	wasmBatch   *prometheus.HistogramVec
	wasmTime    *prometheus.HistogramVec
	wasmCompile *prometheus.HistogramVec

	queues *queueCollector
}

// MetricsOptions shape the series.
type MetricsOptions struct {
	// NoTenantLabels leaves the tenant and integration labels of every
	// data-plane series empty, so the series count does not grow with
	// the tenants and integrations of a very large installation: the
	// series then sum over them, by stage (vrsky serve
	// --metrics-tenant-labels=false).
	NoTenantLabels bool
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

// NewMetrics creates the series and registers them with reg (nil: not
// registered). The queue gauges come from the first engine built with
// these Metrics (Config.Metrics): a Metrics serves one engine.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	return NewMetricsWith(reg, MetricsOptions{})
}

// NewMetricsWith is NewMetrics with options.
func NewMetricsWith(reg prometheus.Registerer, o MetricsOptions) *Metrics {
	ti := []string{"tenant", "integration"}
	tis := []string{"tenant", "integration", "stage"}
	m := &Metrics{
		tenantLabels: !o.NoTenantLabels,
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
		stageIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "vrsky", Name: "stage_messages_in_total",
			Help: "Messages handed to a step or a sink, each attempt counted (stages step:<name> and sink:<name>).",
		}, tis),
		stageOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "vrsky", Name: "stage_messages_out_total",
			Help: "Messages a step emitted (stage step:<name>; a sink's are vrsky_messages_delivered_total).",
		}, tis),
		stepTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "vrsky", Name: "step_duration_seconds",
			Help:    "Time a step took for one call over a batch of messages.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}, tis),
		claimObjects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "vrsky", Name: "claimcheck_objects_total",
			Help: "Payloads over the claim-check threshold moved to the object store.",
		}, ti),
		claimBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "vrsky", Name: "claimcheck_bytes_total",
			Help: "Bytes of the payloads moved to the object store.",
		}, ti),
		wasmCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "vrsky", Name: "wasm_calls_total",
			Help: "Guest calls of Wasm modules, by outcome: ok, trap (a trap, an exit or a memory overrun; the instance is discarded), timeout (the call's deadline passed).",
		}, []string{"module", "outcome"}),
		wasmBatch: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "vrsky", Name: "wasm_batch_messages",
			Help:    "Messages one guest call carried.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 9),
		}, []string{"module"}),
		wasmTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "vrsky", Name: "wasm_call_seconds",
			Help:    "Time one guest call took.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2, 18),
		}, []string{"module"}),
		wasmCompile: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "vrsky", Name: "wasm_compile_seconds",
			Help:    "Time a module's compilation took (a cached module is not compiled again), by trust: trusted (first-party, in-process) or untrusted (uploaded, in a child process).",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 12),
		}, []string{"trust"}),
		queues: newQueueCollector(!o.NoTenantLabels),
	}
	if reg != nil {
		reg.MustRegister(m.ingested, m.delivered, m.failures, m.deadLettered, m.dropped, m.deliverTime,
			m.stageIn, m.stageOut, m.stepTime, m.claimObjects, m.claimBytes,
			m.wasmCalls, m.wasmBatch, m.wasmTime, m.wasmCompile, m.queues)
	}
	return m
}

// ti are the tenant and integration label values: empty without tenant
// labels.
func (m *Metrics) ti(tenant, integration string) (string, string) {
	if !m.tenantLabels {
		return "", ""
	}
	return tenant, integration
}

// stageFailed counts a failed attempt (not the hot path: failures only).
func (m *Metrics) stageFailed(tenant, integration string, stage Stage) {
	t, i := m.ti(tenant, integration)
	m.failures.WithLabelValues(t, i, stage.String()).Inc()
}

// stageDeadLettered counts a dead letter.
func (m *Metrics) stageDeadLettered(tenant, integration string, stage Stage) {
	t, i := m.ti(tenant, integration)
	m.deadLettered.WithLabelValues(t, i, stage.String()).Inc()
}

// pipelineMetrics are one pipeline's series, taken when it starts.
type pipelineMetrics struct {
	ingested     prometheus.Counter
	claimObjects prometheus.Counter
	claimBytes   prometheus.Counter
	steps        []stepMetrics // by step index
}

// stepMetrics are one step's series.
type stepMetrics struct {
	in, out, dropped prometheus.Counter
	took             prometheus.Observer
}

// sinkMetrics are one sink's series.
type sinkMetrics struct {
	in, delivered            prometheus.Counter
	ok, retryable, permanent prometheus.Observer
}

func (m *Metrics) pipeline(tenant string, spec *Spec) *pipelineMetrics {
	t, i := m.ti(tenant, spec.Name)
	pm := &pipelineMetrics{
		ingested:     m.ingested.WithLabelValues(t, i),
		claimObjects: m.claimObjects.WithLabelValues(t, i),
		claimBytes:   m.claimBytes.WithLabelValues(t, i),
	}
	for _, st := range spec.Steps {
		stage := stepStage(st.Name).String()
		pm.steps = append(pm.steps, stepMetrics{
			in:      m.stageIn.WithLabelValues(t, i, stage),
			out:     m.stageOut.WithLabelValues(t, i, stage),
			dropped: m.dropped.WithLabelValues(t, i, stage),
			took:    m.stepTime.WithLabelValues(t, i, stage),
		})
	}
	return pm
}

func (m *Metrics) sink(tenant, integration, name string) sinkMetrics {
	t, i := m.ti(tenant, integration)
	stage := sinkStage(name).String()
	return sinkMetrics{
		in:        m.stageIn.WithLabelValues(t, i, stage),
		delivered: m.delivered.WithLabelValues(t, i, stage),
		ok:        m.deliverTime.WithLabelValues(t, i, stage, OutcomeOK),
		retryable: m.deliverTime.WithLabelValues(t, i, stage, OutcomeRetryable),
		permanent: m.deliverTime.WithLabelValues(t, i, stage, OutcomePermanent),
	}
}

// observer is the histogram of an attempt's outcome.
func (s *sinkMetrics) observer(err error) prometheus.Observer {
	switch {
	case err == nil:
		return s.ok
	case IsPermanent(err):
		return s.permanent
	default:
		return s.retryable
	}
}

// observeDelivery records one attempt of a sink.
func (s *sinkMetrics) observeDelivery(took time.Duration, err error) {
	s.in.Inc()
	s.observer(err).Observe(took.Seconds())
}

// observeBatch records a batch sink's call once per message, each with
// its own outcome (errs nil: all delivered).
func (s *sinkMetrics) observeBatch(took time.Duration, errs []error, n int) {
	s.in.Add(float64(n))
	secs := took.Seconds()
	for i := range n {
		var err error
		if errs != nil {
			err = errs[i]
		}
		s.observer(err).Observe(secs)
	}
}

// countClaim counts msg when checkIn moved its payload to the object store.
func (pm *pipelineMetrics) countClaim(msg *Message) {
	if msg.Claimed() {
		pm.claimObjects.Inc()
		pm.claimBytes.Add(float64(msg.Size()))
	}
}

// WasmObserver is the host.Observer that feeds the vrsky_wasm_* series
// (host.Config.Observer).
func (m *Metrics) WasmObserver() host.Observer { return wasmObserver{m} }

type wasmObserver struct{ m *Metrics }

var _ host.Observer = wasmObserver{}

// Pool implements host.Observer: a pool's series, taken once.
func (w wasmObserver) Pool(module string) host.CallObserver {
	return &wasmPool{
		ok:      w.m.wasmCalls.WithLabelValues(module, "ok"),
		trap:    w.m.wasmCalls.WithLabelValues(module, "trap"),
		timeout: w.m.wasmCalls.WithLabelValues(module, "timeout"),
		batch:   w.m.wasmBatch.WithLabelValues(module),
		took:    w.m.wasmTime.WithLabelValues(module),
	}
}

// Compiled implements host.Observer.
func (w wasmObserver) Compiled(trusted bool, took time.Duration) {
	trust := "untrusted"
	if trusted {
		trust = "trusted"
	}
	w.m.wasmCompile.WithLabelValues(trust).Observe(took.Seconds())
}

type wasmPool struct {
	ok, trap, timeout prometheus.Counter
	batch, took       prometheus.Observer
}

// Call implements host.CallObserver.
func (w *wasmPool) Call(messages int, took time.Duration, outcome host.CallOutcome) {
	switch outcome {
	case host.CallTrap:
		w.trap.Inc()
	case host.CallTimeout:
		w.timeout.Inc()
	default:
		w.ok.Inc()
	}
	w.batch.Observe(float64(messages))
	w.took.Observe(took.Seconds())
}

// WasmPoolCollector is the prometheus.Collector of the Wasm instance
// gauges, read from stats (host.Runtime.PoolStats) when Prometheus
// scrapes: instances live and idle (pooled), by module.
func WasmPoolCollector(stats func() map[string]host.Stats) prometheus.Collector {
	return &poolCollector{stats: stats,
		live: prometheus.NewDesc("vrsky_wasm_instances_live",
			"Wasm instances alive now, busy or idle, by module.", []string{"module"}, nil),
		idle: prometheus.NewDesc("vrsky_wasm_instances_idle",
			"Warm Wasm instances waiting in their pools, by module.", []string{"module"}, nil),
		discarded: prometheus.NewDesc("vrsky_wasm_instances_discarded_total",
			"Wasm instances thrown away after a trap, an exit, a deadline or a memory overrun, by module (pools open now).", []string{"module"}, nil),
	}
}

type poolCollector struct {
	stats                 func() map[string]host.Stats
	live, idle, discarded *prometheus.Desc
}

// Describe implements prometheus.Collector.
func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.live
	ch <- c.idle
	ch <- c.discarded
}

// Collect implements prometheus.Collector.
func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	for module, s := range c.stats() {
		ch <- prometheus.MustNewConstMetric(c.live, prometheus.GaugeValue, float64(s.Live), module)
		ch <- prometheus.MustNewConstMetric(c.idle, prometheus.GaugeValue, float64(s.Idle), module)
		ch <- prometheus.MustNewConstMetric(c.discarded, prometheus.CounterValue, float64(s.Discarded), module)
	}
}

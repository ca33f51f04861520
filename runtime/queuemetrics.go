package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vrsky/vrsky/platform/store"
)

// The queue gauges: what the DLQ holds and what waits for each stage, read
// from JetStream when Prometheus scrapes, not counted; and the tenants'
// usage of their quotas, read from the store and JetStream alike. A collection asks
// the engine for every integration in the store (stopped ones too: their
// dead letters and queued messages are still there), within
// queueStatsTimeout, and is reused for queueStatsTTL, so a burst of
// scrapes costs JetStream one round of look-ups: per tenant, one stream
// info with per-subject counts of its DLQ; per integration, one consumer
// listing of its stream; per tenant with a storage quota, one account
// info.

const (
	// queueStatsTTL is how long a collection answers scrapes.
	queueStatsTTL = 2 * time.Second
	// queueStatsTimeout bounds one collection; look-ups it cuts short
	// are left out and counted in vrsky_queue_stats_errors.
	queueStatsTimeout = 5 * time.Second
	// queueStatsConc is how many look-ups a collection runs at once.
	queueStatsConc = 4
	// stageUnknown labels dead letters whose subject names no stage
	// (written before the stage token was added; they expire with the
	// DLQ's retention).
	stageUnknown = "unknown"
)

// queueCollector is the prometheus.Collector of the queue gauges.
type queueCollector struct {
	engine       atomic.Pointer[Engine] // set by NewEngine: the first engine wins
	tenantLabels bool                   // false: sum over tenants and integrations

	depth, pending, numPending, ackPending, redelivered, errs *prometheus.Desc
	quotaLimit, quotaUsage, quotaRatio                        *prometheus.Desc

	mu      sync.Mutex // held through a collection: concurrent scrapes wait for it
	at      time.Time
	samples []prometheus.Metric
}

var _ prometheus.Collector = (*queueCollector)(nil)

func newQueueCollector(tenantLabels bool) *queueCollector {
	tis := []string{"tenant", "integration", "stage"}
	tq := []string{"tenant", "quota"}
	return &queueCollector{
		tenantLabels: tenantLabels,
		depth: prometheus.NewDesc("vrsky_dlq_depth",
			"Dead letters the DLQ holds now, by the stage that failed (cluster-wide; replay and delete lower it).", tis, nil),
		pending: prometheus.NewDesc("vrsky_messages_pending",
			"Messages waiting for a stage or handed to it and not yet acknowledged (cluster-wide; the input consumer's are labelled with the first step, or route without steps).", tis, nil),
		numPending: prometheus.NewDesc("vrsky_consumer_num_pending",
			"Messages a stage's consumer has not been handed yet (the lag; cluster-wide).", tis, nil),
		ackPending: prometheus.NewDesc("vrsky_consumer_ack_pending",
			"Messages handed to a stage's consumer and not yet acknowledged (cluster-wide).", tis, nil),
		redelivered: prometheus.NewDesc("vrsky_consumer_redelivered",
			"Messages a stage's consumer has handed out more than once and that are not yet acknowledged (retries waiting or running; cluster-wide).", tis, nil),
		quotaLimit: prometheus.NewDesc("vrsky_tenant_quota_limit",
			"A tenant's quota, by name: integrations, storage_bytes, messages_per_second (only quotas that are set; absent with --metrics-tenant-labels=false).", tq, nil),
		quotaUsage: prometheus.NewDesc("vrsky_tenant_quota_usage",
			"What a tenant uses of a quota now: integrations defined, storage_bytes its JetStream account holds (messages_per_second: use rate(vrsky_messages_ingested_total); absent with --metrics-tenant-labels=false).", tq, nil),
		quotaRatio: prometheus.NewDesc("vrsky_tenant_quota_used_ratio",
			"Usage over limit of a tenant's quota (integrations, storage_bytes); with --metrics-tenant-labels=false the highest ratio of any tenant, tenant empty.", tq, nil),
		errs: prometheus.NewDesc("vrsky_queue_stats_errors",
			"Look-ups that failed or ran out of time in the last collection of the queue gauges (their series are missing).", nil, nil),
	}
}

// bind makes e the engine the gauges come from, unless one already is.
func (c *queueCollector) bind(e *Engine) { c.engine.CompareAndSwap(nil, e) }

// Describe implements prometheus.Collector.
func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.depth, c.pending, c.numPending, c.ackPending, c.redelivered, c.errs, c.quotaLimit, c.quotaUsage, c.quotaRatio} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	e := c.engine.Load()
	if e == nil {
		return
	}
	c.mu.Lock()
	if c.samples == nil || time.Since(c.at) >= queueStatsTTL {
		ctx, cancel := context.WithTimeout(context.Background(), queueStatsTimeout)
		qs := e.queueStats(ctx)
		cancel()
		c.samples = c.samples[:0]
		stageGauge := func(d *prometheus.Desc, counts []stageCount, n func(stageCount) uint64) {
			if !c.tenantLabels {
				counts = sumByStage(counts, n)
				n = func(s stageCount) uint64 { return s.n }
			}
			for _, s := range counts {
				c.samples = append(c.samples, prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(n(s)), s.tenant, s.integration, s.stage))
			}
		}
		stageGauge(c.depth, qs.depth, func(s stageCount) uint64 { return s.n })
		stageGauge(c.pending, qs.pending, func(s stageCount) uint64 { return s.n + s.ack })
		stageGauge(c.numPending, qs.pending, func(s stageCount) uint64 { return s.n })
		stageGauge(c.ackPending, qs.pending, func(s stageCount) uint64 { return s.ack })
		stageGauge(c.redelivered, qs.pending, func(s stageCount) uint64 { return s.redelivered })
		c.samples = append(c.samples, c.quotaSamples(qs.quotas)...)
		c.samples = append(c.samples, prometheus.MustNewConstMetric(c.errs, prometheus.GaugeValue, float64(qs.failed)))
		c.at = time.Now()
		if qs.failed > 0 {
			e.log.Debug("queue gauges: look-ups failed", "failed", qs.failed, "err", qs.firstErr)
		}
	}
	samples := c.samples
	c.mu.Unlock()
	for _, m := range samples {
		ch <- m
	}
}

// stageCount is one gauge sample: n (a DLQ's depth, a consumer's
// NumPending) and, for consumers, ack pending and redelivered.
type stageCount struct {
	tenant, integration, stage string
	n, ack, redelivered        uint64
}

// sumByStage sums n over tenants and integrations, by stage, sorted by
// stage: the samples without tenant labels.
func sumByStage(counts []stageCount, n func(stageCount) uint64) []stageCount {
	sums := map[string]uint64{}
	for _, s := range counts {
		sums[s.stage] += n(s)
	}
	out := make([]stageCount, 0, len(sums))
	for stage, v := range sums {
		out = append(out, stageCount{stage: stage, n: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].stage < out[j].stage })
	return out
}

// quotaUse is a tenant's use of one quota (usage < 0: not measured).
type quotaUse struct {
	tenant, quota string
	limit, usage  float64
}

// The quota label values.
const (
	quotaIntegrations = "integrations"
	quotaStorage      = "storage_bytes"
	quotaRate         = "messages_per_second"
)

// quotaSamples are the quota gauges: limit, usage and ratio per tenant,
// or only the highest ratio of each quota without tenant labels.
func (c *queueCollector) quotaSamples(qs []quotaUse) []prometheus.Metric {
	var out []prometheus.Metric
	worst := map[string]float64{}
	for _, q := range qs {
		if c.tenantLabels {
			out = append(out, prometheus.MustNewConstMetric(c.quotaLimit, prometheus.GaugeValue, q.limit, q.tenant, q.quota))
		}
		if q.usage < 0 {
			continue
		}
		ratio := q.usage / q.limit
		if c.tenantLabels {
			out = append(out, prometheus.MustNewConstMetric(c.quotaUsage, prometheus.GaugeValue, q.usage, q.tenant, q.quota),
				prometheus.MustNewConstMetric(c.quotaRatio, prometheus.GaugeValue, ratio, q.tenant, q.quota))
		} else if w, ok := worst[q.quota]; !ok || ratio > w {
			worst[q.quota] = ratio
		}
	}
	for _, quota := range []string{quotaIntegrations, quotaStorage} {
		if w, ok := worst[quota]; ok {
			out = append(out, prometheus.MustNewConstMetric(c.quotaRatio, prometheus.GaugeValue, w, "", quota))
		}
	}
	return out
}

// queueStats is one collection.
type queueStats struct {
	depth, pending []stageCount
	quotas         []quotaUse
	failed         int
	firstErr       error
}

// queueStats reads the DLQ depth and the pending counts of every stored
// integration.
func (e *Engine) queueStats(ctx context.Context) queueStats {
	var qs queueStats
	var mu sync.Mutex
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		qs.failed++
		if qs.firstErr == nil {
			qs.firstErr = err
		}
	}
	list, err := e.store.ListIntegrations(ctx, "")
	if err != nil {
		fail(fmt.Errorf("list integrations: %w", err))
		return qs
	}
	byTenant := map[string][]*Spec{}
	for _, in := range list {
		spec, err := statsSpec(in)
		if err != nil {
			fail(err)
			continue
		}
		byTenant[in.Tenant] = append(byTenant[in.Tenant], spec)
	}
	tenants, err := e.store.ListTenants(ctx)
	if err != nil {
		fail(fmt.Errorf("list tenants: %w", err))
	}
	jobs := make(chan func())
	var wg sync.WaitGroup
	for range queueStatsConc {
		wg.Go(func() {
			for job := range jobs {
				job()
			}
		})
	}
	for tenant, specs := range byTenant {
		jobs <- func() {
			depths, err := e.dlqDepths(ctx, tenant)
			if err != nil {
				fail(err)
				return
			}
			var out []stageCount
			for _, spec := range specs {
				out = append(out, depthSamples(tenant, spec, depths[spec.Name])...)
			}
			mu.Lock()
			defer mu.Unlock()
			qs.depth = append(qs.depth, out...)
		}
		for _, spec := range specs {
			jobs <- func() {
				out, err := e.pendingCounts(ctx, tenant, spec)
				if err != nil {
					fail(err)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				qs.pending = append(qs.pending, out...)
			}
		}
	}
	for _, t := range tenants {
		q := t.Quotas
		if n := q.MaxIntegrations; n > 0 {
			qs.quotas = append(qs.quotas, quotaUse{t.Name, quotaIntegrations, float64(n), float64(len(byTenant[t.Name]))})
		}
		if n := q.MaxMessagesPerSecond; n > 0 {
			qs.quotas = append(qs.quotas, quotaUse{t.Name, quotaRate, float64(n), -1})
		}
		if n := q.MaxStorageBytes; n > 0 {
			jobs <- func() {
				u := quotaUse{t.Name, quotaStorage, float64(n), -1}
				if used, err := e.storageUsed(ctx, t.Name); err != nil {
					fail(err)
				} else {
					u.usage = float64(used)
				}
				mu.Lock()
				defer mu.Unlock()
				qs.quotas = append(qs.quotas, u)
			}
		}
	}
	close(jobs)
	wg.Wait()
	sort.Slice(qs.quotas, func(i, j int) bool {
		a, b := qs.quotas[i], qs.quotas[j]
		return a.tenant < b.tenant || a.tenant == b.tenant && a.quota < b.quota
	})
	return qs
}

// storageUsed is the JetStream storage tenant's account holds.
func (e *Engine) storageUsed(ctx context.Context, tenant string) (uint64, error) {
	conn, err := e.tenants.Conn(ctx, tenant)
	if err != nil {
		return 0, fmt.Errorf("storage of %s: %w", tenant, err)
	}
	ai, err := conn.JS.AccountInfo(ctx)
	if err != nil {
		return 0, fmt.Errorf("storage of %s: %w", tenant, err)
	}
	return ai.Store, nil
}

// statsSpec decodes a stored spec for its stage names (it was validated
// when it was stored), naming unnamed steps as ParseSpec does.
func statsSpec(in store.Integration) (*Spec, error) {
	var spec Spec
	if err := json.Unmarshal(in.Spec, &spec); err != nil {
		return nil, fmt.Errorf("stored spec of %s/%s: %w", in.Tenant, in.Name, err)
	}
	spec.Name = in.Name
	for i := range spec.Steps {
		if spec.Steps[i].Name == "" {
			spec.Steps[i].Name = fmt.Sprintf("step-%d", i+1)
		}
	}
	return &spec, nil
}

// inputStage labels the input consumer's backlog: the stage that takes
// it, the first step, or route when there are no steps.
func inputStage(spec *Spec) Stage {
	if len(spec.Steps) > 0 {
		return stepStage(spec.Steps[0].Name)
	}
	return stageRoute
}

// dlqDepths counts the dead letters tenant's DLQ holds, by integration
// and stage (the wire form; "" for entries without a stage token), from
// JetStream's per-subject counts. No DLQ stream: none.
func (e *Engine) dlqDepths(ctx context.Context, tenant string) (map[string]map[string]uint64, error) {
	s, err := e.dlqStream(ctx, tenant)
	if err != nil {
		return nil, fmt.Errorf("dead-letter stream of %s: %w", tenant, err)
	}
	if s == nil {
		return nil, nil
	}
	prefix := "vrsky." + tenant + ".dlq."
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(prefix+">"))
	if err != nil {
		return nil, fmt.Errorf("dead-letter counts of %s: %w", tenant, err)
	}
	out := map[string]map[string]uint64{}
	for subj, n := range info.State.Subjects {
		integration, stage, _ := strings.Cut(strings.TrimPrefix(subj, prefix), ".")
		if out[integration] == nil {
			out[integration] = map[string]uint64{}
		}
		out[integration][stage] += n
	}
	return out, nil
}

// depthSamples are an integration's vrsky_dlq_depth samples: one per step
// and sink (zero when it has none), and one per other stage that holds
// dead letters (route, route:<sink>, a stage the spec no longer has).
func depthSamples(tenant string, spec *Spec, counts map[string]uint64) []stageCount {
	var out []stageCount
	seen := map[string]bool{}
	add := func(stage string, n uint64) {
		if stage == "" {
			stage = stageUnknown
		}
		if !seen[stage] { // step names may repeat; a series may not
			out = append(out, stageCount{tenant: tenant, integration: spec.Name, stage: stage, n: n})
			seen[stage] = true
		}
	}
	for _, st := range spec.Steps {
		add(stepStage(st.Name).String(), counts[stepStage(st.Name).String()])
	}
	for _, sk := range spec.Sinks {
		add(sinkStage(sk.Name).String(), counts[sinkStage(sk.Name).String()])
	}
	rest := make([]string, 0, len(counts))
	for stage := range counts {
		rest = append(rest, stage)
	}
	sort.Strings(rest)
	for _, stage := range rest {
		add(stage, counts[stage])
	}
	return out
}

// pendingCounts are an integration's consumer samples: per sink, and for
// the input consumer, NumPending, NumAckPending and NumRedelivered, from
// one consumer listing of its stream. A stage without a consumer (not
// started yet) has none pending.
func (e *Engine) pendingCounts(ctx context.Context, tenant string, spec *Spec) ([]stageCount, error) {
	byConsumer := map[string]stageCount{}
	conn, err := e.tenants.Conn(ctx, tenant)
	if err != nil {
		return nil, fmt.Errorf("stream of %s/%s: %w", tenant, spec.Name, err)
	}
	s, err := conn.JS.Stream(ctx, streamName(tenant, spec.Name))
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
	case err != nil:
		return nil, fmt.Errorf("stream of %s/%s: %w", tenant, spec.Name, err)
	default:
		l := s.ListConsumers(ctx)
		for ci := range l.Info() {
			byConsumer[ci.Name] = stageCount{n: ci.NumPending, ack: uint64(ci.NumAckPending), redelivered: uint64(ci.NumRedelivered)}
		}
		if err := l.Err(); err != nil {
			return nil, fmt.Errorf("consumers of %s/%s: %w", tenant, spec.Name, err)
		}
	}
	at := func(stage Stage, consumer string) stageCount {
		c := byConsumer[consumer]
		c.tenant, c.integration, c.stage = tenant, spec.Name, stage.String()
		return c
	}
	out := []stageCount{at(inputStage(spec), inConsumerName)}
	for _, sk := range spec.Sinks {
		out = append(out, at(sinkStage(sk.Name), sinkConsumerName(sk.Name)))
	}
	return out, nil
}

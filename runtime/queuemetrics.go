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
// from JetStream when Prometheus scrapes, not counted. A collection asks
// the engine for every integration in the store (stopped ones too: their
// dead letters and queued messages are still there), within
// queueStatsTimeout, and is reused for queueStatsTTL, so a burst of
// scrapes costs JetStream one round of look-ups: per tenant, one stream
// info with per-subject counts of its DLQ; per integration, one consumer
// listing of its stream.

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
	engine atomic.Pointer[Engine] // set by NewEngine: the first engine wins

	depth, pending, errs *prometheus.Desc

	mu      sync.Mutex // held through a collection: concurrent scrapes wait for it
	at      time.Time
	samples []prometheus.Metric
}

var _ prometheus.Collector = (*queueCollector)(nil)

func newQueueCollector() *queueCollector {
	tis := []string{"tenant", "integration", "stage"}
	return &queueCollector{
		depth: prometheus.NewDesc("vrsky_dlq_depth",
			"Dead letters the DLQ holds now, by the stage that failed (cluster-wide; replay and delete lower it).", tis, nil),
		pending: prometheus.NewDesc("vrsky_messages_pending",
			"Messages waiting for a stage or handed to it and not yet acknowledged (cluster-wide; the input consumer's are labelled with the first step, or route without steps).", tis, nil),
		errs: prometheus.NewDesc("vrsky_queue_stats_errors",
			"Look-ups that failed or ran out of time in the last collection of the queue gauges (their series are missing).", nil, nil),
	}
}

// bind makes e the engine the gauges come from, unless one already is.
func (c *queueCollector) bind(e *Engine) { c.engine.CompareAndSwap(nil, e) }

// Describe implements prometheus.Collector.
func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.depth
	ch <- c.pending
	ch <- c.errs
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
		for _, s := range qs.depth {
			c.samples = append(c.samples, prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(s.n), s.tenant, s.integration, s.stage))
		}
		for _, s := range qs.pending {
			c.samples = append(c.samples, prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(s.n), s.tenant, s.integration, s.stage))
		}
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

// stageCount is one gauge sample.
type stageCount struct {
	tenant, integration, stage string
	n                          uint64
}

// queueStats is one collection.
type queueStats struct {
	depth, pending []stageCount
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
	close(jobs)
	wg.Wait()
	return qs
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
			out = append(out, stageCount{tenant, spec.Name, stage, n})
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

// pendingCounts are an integration's vrsky_messages_pending samples: per
// sink, and for the input consumer, NumPending + NumAckPending, from one
// consumer listing of its stream. A stage without a consumer (not
// started yet) has none pending.
func (e *Engine) pendingCounts(ctx context.Context, tenant string, spec *Spec) ([]stageCount, error) {
	byConsumer := map[string]uint64{}
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
			byConsumer[ci.Name] = ci.NumPending + uint64(ci.NumAckPending)
		}
		if err := l.Err(); err != nil {
			return nil, fmt.Errorf("consumers of %s/%s: %w", tenant, spec.Name, err)
		}
	}
	out := []stageCount{{tenant, spec.Name, inputStage(spec).String(), byConsumer[inConsumerName]}}
	for _, sk := range spec.Sinks {
		out = append(out, stageCount{tenant, spec.Name, sinkStage(sk.Name).String(), byConsumer[sinkConsumerName(sk.Name)]})
	}
	return out, nil
}

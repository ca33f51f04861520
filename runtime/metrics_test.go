package runtime_test

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vrsky/vrsky/runtime"
	"github.com/vrsky/vrsky/runtime/runtimetest"
)

// series is one scrape of a registry: each sample's value by its name and
// labels, `name{label=value,...}` with the labels in name order, as
// Prometheus shows them. A histogram contributes name_count.
type series map[string]float64

// seriesKey names a sample: the tenant, the integration and the stage, then any
// other label=value pairs (sorted).
func seriesKey(name, integration, stage string, more ...string) string {
	labels := append([]string{"integration=" + integration, "stage=" + stage, "tenant=acme"}, more...)
	sort.Strings(labels)
	return name + "{" + strings.Join(labels, ",") + "}"
}

func scrape(t *testing.T, reg *prometheus.Registry) series {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := series{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, lp := range m.GetLabel() {
				labels = append(labels, lp.GetName()+"="+lp.GetValue())
			}
			sort.Strings(labels)
			ls := "{" + strings.Join(labels, ",") + "}"
			switch {
			case m.GetCounter() != nil:
				out[mf.GetName()+ls] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				out[mf.GetName()+ls] = m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				out[mf.GetName()+"_count"+ls] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

// waitSeries scrapes reg until every sample in want has its value, and
// fails the test with the samples that differ when that takes too long.
func waitSeries(t *testing.T, reg *prometheus.Registry, what string, want series) series {
	t.Helper()
	var got series
	var diff []string
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, diff = scrape(t, reg), nil
		for k, v := range want {
			if g, ok := got[k]; !ok || g != v {
				diff = append(diff, fmt.Sprintf("%s = %v (present %v), want %v", k, g, ok, v))
			}
		}
		if len(diff) == 0 {
			return got
		}
		if time.Now().After(deadline) {
			sort.Strings(diff)
			t.Fatalf("%s: after 30s:\n  %s", what, strings.Join(diff, "\n  "))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestMetricsJoinByStage runs an integration whose step drops one message
// and dead-letters another, and whose sink delivers some messages at once,
// some after a retry, and dead-letters others (permanent, or out of
// attempts). Every series of a stage carries the same {tenant,
// integration, stage} labels, so failures and dead letters join
// deliveries; the delivery histogram separates outcomes; the DLQ depth is
// what the DLQ holds, down after a replay and a delete; and pending counts
// what waits for a sink that is down.
func TestMetricsJoinByStage(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := runtimetest.Start(t, []runtime.Connector{gate}, manual, func(c *runtime.Config) { c.Metrics = runtime.NewMetrics(reg) })
	var healed atomic.Bool
	rec := h.Sinks.New(func(id string, attempt int) error {
		switch {
		case healed.Load():
			return nil
		case strings.HasPrefix(id, "bad-"):
			return httpStatus(http.StatusUnprocessableEntity)
		case strings.HasPrefix(id, "doomed-"), strings.HasPrefix(id, "flaky-") && attempt == 1:
			return httpStatus(http.StatusServiceUnavailable)
		}
		return nil
	})
	spec := h.Create(t, `name: orders
source: {connector: test-source}
steps: [{name: gate, connector: gate}]
sinks: [{name: api, connector: test-sink, config: `+rec.Config()+`}]
retry: {max_attempts: 3, initial_backoff: 50ms, max_backoff: 400ms}
`)
	em := h.Emitter(t, "orders")
	for _, m := range []struct{ id, body string }{
		{"good-1", `{"n":1}`}, {"good-2", `{"n":2}`}, {"good-3", `{"n":3}`},
		{"flaky-1", `{"n":4}`}, {"flaky-2", `{"n":5}`},
		{"bad-1", `{"n":6}`}, {"bad-2", `{"n":7}`},
		{"doomed-1", `{"n":8}`},
		{"drop-1", `{"drop":true}`},
		{"poison-1", `{"fail":true}`},
	} {
		msg := &runtime.Message{ID: m.id, Header: runtime.Header{runtime.HeaderContentType: {"application/json"}}, Data: []byte(m.body)}
		if err := em.Emit(context.Background(), msg); err != nil {
			t.Fatalf("emit %s: %v", m.id, err)
		}
	}

	sink, step := "sink:api", "step:gate"
	hist := "vrsky_sink_delivery_seconds_count"
	want := series{}
	for _, c := range []struct {
		name, stage string
		more        []string
		want        float64
	}{
		// The sink: 3 good + 2 flaky delivered; 2 flaky first attempts,
		// 3 doomed attempts (retryable) and 2 bad ones (permanent) failed;
		// 2 bad + 1 doomed dead-lettered, and held in the DLQ.
		{"vrsky_messages_delivered_total", sink, nil, 5},
		{"vrsky_attempt_failures_total", sink, nil, 7},
		{"vrsky_messages_dead_lettered_total", sink, nil, 3},
		{hist, sink, []string{"outcome=ok"}, 5},
		{hist, sink, []string{"outcome=retryable"}, 5},
		{hist, sink, []string{"outcome=permanent"}, 2},
		{"vrsky_dlq_depth", sink, nil, 3},
		{"vrsky_messages_pending", sink, nil, 0},
		// The step: one dropped, one failed permanently and dead-lettered.
		{"vrsky_messages_filtered_total", step, nil, 1},
		{"vrsky_attempt_failures_total", step, nil, 1},
		{"vrsky_messages_dead_lettered_total", step, nil, 1},
		{"vrsky_dlq_depth", step, nil, 1},
		{"vrsky_messages_pending", step, nil, 0},
	} {
		want[seriesKey(c.name, "orders", c.stage, c.more...)] = c.want
	}
	got := waitSeries(t, reg, "the first round", want)
	for k := range got {
		stage, ok := labelValue(k, "stage")
		if !ok || !strings.HasPrefix(k, "vrsky_") {
			continue
		}
		if _, err := runtime.ParseStage(stage); err != nil {
			t.Errorf("%s: the stage label is not a stage: %v", k, err)
		}
	}
	// A scrape storm shares collections (run with -race).
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := reg.Gather(); err != nil {
				t.Errorf("concurrent gather: %v", err)
			}
		})
	}
	wg.Wait()
	st := h.Engine.Status(context.Background(), h.Tenant, spec)
	if ss := st.Sinks[0]; ss.DLQDepth != 3 || ss.DeadLetteredTotal != 3 || ss.DeliveredTotal != 5 || ss.FailuresTotal != 7 || st.DLQDepth != 4 {
		t.Errorf("status: integration dlq_depth %d, sink %+v; want 4, and 3 held, 3 dead-lettered, 5 delivered, 7 failures", st.DLQDepth, ss)
	}

	// Replay bad-1 to a healed sink and delete doomed-1: the depth goes
	// down by two, the running totals stay.
	healed.Store(true)
	for _, dl := range h.DeadLetters(t, "orders") {
		var err error
		switch dl.MessageID {
		case "bad-1":
			err = h.Engine.ReplayDeadLetter(context.Background(), h.Tenant, spec, dl.ID)
		case "doomed-1":
			err = h.Engine.DeleteDeadLetter(context.Background(), h.Tenant, "orders", dl.ID)
		}
		if err != nil {
			t.Fatalf("%s: %v", dl.MessageID, err)
		}
	}
	waitSeries(t, reg, "after a replay and a delete", series{
		seriesKey("vrsky_dlq_depth", "orders", sink):                    1,
		seriesKey("vrsky_dlq_depth", "orders", step):                    1,
		seriesKey("vrsky_messages_delivered_total", "orders", sink):     6,
		seriesKey(hist, "orders", sink, "outcome=ok"):                   6,
		seriesKey("vrsky_messages_dead_lettered_total", "orders", sink): 3,
	})
	st = h.Engine.Status(context.Background(), h.Tenant, spec)
	if ss := st.Sinks[0]; ss.DLQDepth != 1 || ss.DeadLetteredTotal != 3 || ss.DeadLettered != 3 || st.DLQDepth != 2 {
		t.Errorf("status after replay and delete: integration dlq_depth %d, sink %+v; want 2, and 1 held, 3 dead-lettered", st.DLQDepth, ss)
	}

	// A sink that is down: what waits for it is pending (retried, never
	// out of attempts), and nothing is once it is back.
	var up atomic.Bool
	down := h.Sinks.New(func(string, int) error {
		if up.Load() {
			return nil
		}
		return httpStatus(http.StatusServiceUnavailable)
	})
	h.Create(t, withAttempts(specYAML("held", "held", sinkYAML("api", down, "")), 100))
	for range 4 {
		h.Emit(t, "held", `{"x":1}`)
	}
	waitSeries(t, reg, "pending while the sink is down", series{
		seriesKey("vrsky_messages_pending", "held", sink):           4,
		seriesKey("vrsky_messages_pending", "held", "route"):        0,
		seriesKey("vrsky_messages_delivered_total", "orders", sink): 6,
	})
	up.Store(true)
	waitSeries(t, reg, "pending once the sink is back", series{
		seriesKey("vrsky_messages_pending", "held", sink):         0,
		seriesKey("vrsky_messages_delivered_total", "held", sink): 4,
		seriesKey("vrsky_dlq_depth", "held", sink):                0,
	})

	// A dead letter written before subjects named their stage (on
	// SubjectDLQ itself) is still listed, held and counted, as stage
	// "unknown", until it goes.
	legacy := &nats.Msg{Subject: runtime.SubjectDLQ(h.Tenant, "held"), Header: nats.Header{}, Data: []byte(`{"x":2}`)}
	legacy.Header.Set(runtime.HeaderMsgID, "legacy-1")
	legacy.Header.Set(runtime.HeaderStage, sink)
	if _, err := h.TenantConn(t).JS.PublishMsg(context.Background(), legacy); err != nil {
		t.Fatal(err)
	}
	waitSeries(t, reg, "a legacy dead letter", series{seriesKey("vrsky_dlq_depth", "held", "unknown"): 1})
	dls := h.DeadLetters(t, "held")
	if len(dls) != 1 || dls[0].MessageID != "legacy-1" {
		t.Fatalf("dead letters of held: %+v, want legacy-1", dls)
	}
	if err := h.Engine.DeleteDeadLetter(context.Background(), h.Tenant, "held", dls[0].ID); err != nil {
		t.Fatal(err)
	}
	runtimetest.WaitFor(t, 10*time.Second, "the legacy dead letter's depth gone", func() bool {
		_, ok := scrape(t, reg)[seriesKey("vrsky_dlq_depth", "held", "unknown")]
		return !ok
	})
}

// labelValue returns the value of label in a series key.
func labelValue(k, label string) (string, bool) {
	_, ls, ok := strings.Cut(k, "{")
	if !ok {
		return "", false
	}
	for _, kv := range strings.Split(strings.TrimSuffix(ls, "}"), ",") {
		if v, ok := strings.CutPrefix(kv, label+"="); ok {
			return v, true
		}
	}
	return "", false
}

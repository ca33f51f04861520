package runtime_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vrsky/vrsky/platform/natsx/natsxtest"
	"github.com/vrsky/vrsky/platform/tenancy"
	"github.com/vrsky/vrsky/runtime"
	"github.com/vrsky/vrsky/runtime/runtimetest"
)

// TestClusterNodeLossLosesNothing runs an integration on a 3-node NATS
// cluster with R3 streams, shuts down the node that leads the
// integration's stream while messages flow, and checks that every message
// the webhook accepted is delivered.
func TestClusterNodeLossLosesNothing(t *testing.T) {
	cluster := natsxtest.StartCluster(t, 3)
	conn := cluster.Connect(t)
	h := runtimetest.StartOn(t, conn, nil, manual)
	rec := h.Sinks.New(nil)
	h.Create(t, specYAML("ha", "ha", sinkYAML("api", rec, "")))
	emit := h.Emitter(t, "ha")

	const total, workers = 1500, 8
	var (
		mu       sync.Mutex
		accepted []string
		refused  atomic.Int64
		sent     atomic.Int64
		wg       sync.WaitGroup
	)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < total; i += workers {
				sent.Add(1)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				msg := &runtime.Message{Data: fmt.Appendf(nil, `{"n":%d}`, i)}
				err := emit.Emit(ctx, msg)
				cancel()
				if err != nil {
					refused.Add(1) // not accepted: the client would retry; nothing is owed
					continue
				}
				mu.Lock()
				accepted = append(accepted, msg.ID)
				mu.Unlock()
			}
		})
	}
	runtimetest.WaitFor(t, 30*time.Second, "a third of the load sent", func() bool { return sent.Load() >= total/3 })
	tn, err := h.Store.GetTenant(context.Background(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	account, err := h.Engine.Tenants().(*tenancy.Manager).Account(tn)
	if err != nil {
		t.Fatal(err)
	}
	victim := streamLeader(t, cluster, account, "VRSKY_acme_ha")
	t.Logf("shutting down %s, the stream leader", victim.Name())
	victim.Shutdown()
	wg.Wait()

	t.Logf("accepted %d, refused during failover %d", len(accepted), refused.Load())
	if len(accepted) < total/2 {
		t.Fatalf("only %d of %d accepted: the cluster did not fail over", len(accepted), total)
	}
	defer func() {
		if t.Failed() {
			missing := 0
			got := rec.Delivered()
			for _, id := range accepted {
				if _, ok := got[id]; !ok {
					missing++
				}
			}
			st := h.Engine.Status(context.Background(), "acme", &runtime.Spec{Name: "ha", Sinks: []runtime.SinkSpec{{Name: "api"}}})
			t.Logf("delivered %d, missing %d; status %+v", len(got), missing, st)
		}
	}()
	runtimetest.WaitFor(t, 90*time.Second, fmt.Sprintf("%d deliveries", len(accepted)), func() bool {
		got := rec.Delivered()
		for _, id := range accepted {
			if _, ok := got[id]; !ok {
				return false
			}
		}
		return true
	})
}

// streamLeader is the server leading stream, of account.
func streamLeader(t *testing.T, c *natsxtest.Cluster, account, stream string) interface {
	Name() string
	Shutdown()
} {
	t.Helper()
	for _, s := range c.Servers {
		if s.JetStreamIsStreamLeader(account, stream) {
			return s
		}
	}
	t.Fatalf("no leader for stream %s", stream)
	return nil
}

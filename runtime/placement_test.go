package runtime_test

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrsky/vrsky/platform/natsx"
	"github.com/vrsky/vrsky/platform/provision"
	"github.com/vrsky/vrsky/platform/store"
	"github.com/vrsky/vrsky/platform/tenancy"
	"github.com/vrsky/vrsky/runtime"
	"github.com/vrsky/vrsky/runtime/runtimetest"
)

func fastReconcile(c *runtime.Config) { c.ReconcileInterval = 100 * time.Millisecond }

// TestMoveTenantUnderLoad moves a tenant onto a dedicated nats-server (the
// local provisioner's child process) and back while messages flow: every
// message accepted before, during and after each move is delivered, in
// order, with a dead letter and a stopped integration's queue carried
// along; a second node follows the endpoint record; the old placement
// keeps nothing.
func TestMoveTenantUnderLoad(t *testing.T) {
	h := runtimetest.Start(t, nil, fastReconcile)
	local, err := provision.NewLocal(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = local.Close() })
	h.Engine.Tenants().(*tenancy.Manager).SetProvisioner(tenancy.LocalProvisioner(local), false)
	other := h.As(t, "globex") // a tenant that stays shared

	// The sink records every attempt's time: first attempts show the order.
	rec := h.Sinks.New(nil)
	h.Create(t, specYAML("orders", "orders", sinkYAML("api", rec, "")))
	parked, turnOn := switchable(h) // off: its messages wait, retrying
	h.Create(t, withAttempts(specYAML("parked", "parked", sinkYAML("api", parked, "")), 100))
	poison, _ := switchable(h) // never on: one dead letter to carry along
	h.Create(t, withAttempts(specYAML("poison", "poison", sinkYAML("api", poison, "")), 1))
	h.Emit(t, "poison", `{"poison":true}`)
	h.WaitDeadLetters(t, "poison", 1)
	globexRec := h.Sinks.New(nil)
	other.Create(t, specYAML("orders", "orders", sinkYAML("api", globexRec, "")))

	// A second node that reconciles when told: two nodes starting the same
	// integration at once, one updating its stream while the other creates
	// a consumer, meet a data race inside nats-server 2.15.2 (filestore
	// UpdateConfig against ConsumerStore) that -race reports.
	node2 := h.AddNode(t, nil, manual)

	// A stopped integration with queued messages: the move must carry them.
	parkedIDs := []string{h.Emit(t, "parked", `{"n":-1}`), h.Emit(t, "parked", `{"n":-2}`)}
	if _, err := h.Store.UpdateIntegration(context.Background(), withDesired(t, h, "parked", store.StateStopped)); err != nil {
		t.Fatal(err)
	}
	h.Engine.Stop("acme", "parked")

	// The load: n = 0, 1, 2, … each retried until accepted, so the accepted
	// order is n's order.
	var next, count atomic.Int64 // count: how many are accepted so far
	var bounds [][2]int64        // per move: accepted before it began, before it ended
	var accepted sync.Map        // n -> id
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for n := 0; ; {
			select {
			case <-stop:
				next.Store(int64(n))
				return
			default:
			}
			em, ok := h.Source.Emitter("acme", "orders")
			if !ok {
				time.Sleep(20 * time.Millisecond)
				continue
			}
			msg := &runtime.Message{Data: fmt.Appendf(nil, `{"n":%d}`, n)}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := em.Emit(ctx, msg)
			cancel()
			if err != nil {
				time.Sleep(20 * time.Millisecond) // refused (moving, or the pipeline restarting): not accepted, retry
				continue
			}
			accepted.Store(n, msg.ID)
			n++
			count.Store(int64(n))
		}
	})

	move := func(to string) {
		t.Helper()
		runtimetest.WaitFor(t, 30*time.Second, "some load before the move", func() bool {
			c := 0
			accepted.Range(func(any, any) bool { c++; return true })
			return c > 0
		})
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		before := count.Load()
		if err := h.Engine.MoveTenant(ctx, "acme", to); err != nil {
			t.Fatalf("move to %s: %v", to, err)
		}
		bounds = append(bounds, [2]int64{before, count.Load()})
	}
	move(store.PlacementDedicated)

	tn, err := h.Store.GetTenant(context.Background(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	ep, err := h.Engine.Tenants().(*tenancy.Manager).Endpoint(context.Background(), tn)
	if err != nil {
		t.Fatal(err)
	}
	if ep.Placement != store.PlacementDedicated || ep.URL == "" || ep.Moving != nil {
		t.Fatalf("endpoint after the move: %+v", ep)
	}
	hs := local.Health()
	if len(hs) != 1 || hs[0].URL != ep.URL || !hs[0].Ready {
		t.Fatalf("instances %+v, want acme's ready at %s", hs, ep.URL)
	}
	if err := node2.Engine.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := node2.Engine.Tenants().(*tenancy.Manager).DialURL("acme"); got != ep.URL {
		t.Fatalf("node 2 dials acme at %q after a reconcile, want the dedicated instance %s", got, ep.URL)
	}
	// The shared servers keep nothing of acme.
	key, err := h.Conn.Keys().TenantAccount("acme", tn.CreatedAt.UnixMicro())
	if err != nil {
		t.Fatal(err)
	}
	plat, err := h.Conn.DialAs(context.Background(), natsx.As{Name: "check", Account: key})
	if err != nil {
		t.Fatal(err)
	}
	if n := countStreamsOf(t, plat.JS); n != 0 {
		t.Errorf("acme's account on the platform servers holds %d streams after the move", n)
	}
	plat.Close()

	time.Sleep(300 * time.Millisecond) // load on the dedicated instance
	move(store.PlacementShared)
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	if hs := local.Health(); len(hs) != 0 {
		t.Errorf("instances after moving back: %+v, want none", hs)
	}

	total := int(next.Load())
	if total < 3 {
		t.Fatalf("only %d messages accepted", total)
	}
	runtimetest.WaitFor(t, 60*time.Second, fmt.Sprintf("all %d accepted messages delivered", total), func() bool {
		return len(rec.Delivered()) >= total
	})
	// In order: by the time each message was first attempted.
	type first struct {
		n  int
		at time.Time
	}
	var firsts []first
	for n := range total {
		v, ok := accepted.Load(n)
		if !ok {
			t.Fatalf("message %d never accepted", n)
		}
		id := v.(string)
		body, ok := rec.Delivered()[id]
		if !ok {
			t.Fatalf("accepted message %d (%s) not delivered", n, id)
		}
		var m struct{ N int }
		if err := json.Unmarshal([]byte(body), &m); err != nil || m.N != n {
			t.Fatalf("message %d delivered as %q", n, body)
		}
		firsts = append(firsts, first{n, rec.Times(id)[0]})
	}
	// In order across each move: the sink is concurrent (a few deliveries
	// at a time), so order within a placement is not strict, but every
	// message accepted before a move began was attempted before any
	// accepted after it ended.
	for k, b := range bounds {
		var lastOld, firstNew time.Time
		for _, f := range firsts {
			switch {
			case int64(f.n) < b[0] && f.at.After(lastOld):
				lastOld = f.at
			case int64(f.n) >= b[1] && (firstNew.IsZero() || f.at.Before(firstNew)):
				firstNew = f.at
			}
		}
		if lastOld.IsZero() || firstNew.IsZero() {
			t.Fatalf("move %d: no messages on one side (%d before, %d after it)", k+1, b[0], int64(total)-b[1])
		}
		if !lastOld.Before(firstNew) {
			t.Errorf("move %d: a message accepted before it was first attempted at %s, after one accepted after it (%s)", k+1, lastOld.Format(time.StampMicro), firstNew.Format(time.StampMicro))
		}
	}

	// The dead letter came along both ways.
	if dls := h.DeadLetters(t, "poison"); len(dls) != 1 {
		t.Errorf("dead letters of poison after the moves: %d, want 1", len(dls))
	}
	// So did the stopped integration's queue.
	turnOn()
	in, err := h.Store.GetIntegration(context.Background(), "acme", "parked")
	if err != nil {
		t.Fatal(err)
	}
	in.Desired = store.StateRunning
	if _, err := h.Store.UpdateIntegration(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	runtimetest.WaitFor(t, 30*time.Second, "the parked messages delivered", func() bool {
		got := parked.Delivered()
		_, a := got[parkedIDs[0]]
		_, b := got[parkedIDs[1]]
		return a && b
	})
	// The tenant that stayed shared was never refused nor lost anything.
	id := other.Emit(t, "orders", `{"n":1}`)
	runtimetest.WaitFor(t, 10*time.Second, "globex's message", func() bool { _, ok := globexRec.Delivered()[id]; return ok })
}

func withDesired(t *testing.T, h *runtimetest.Harness, name, desired string) store.Integration {
	t.Helper()
	in, err := h.Store.GetIntegration(context.Background(), h.Tenant, name)
	if err != nil {
		t.Fatal(err)
	}
	in.Desired = desired
	return in
}

func countStreamsOf(t *testing.T, js jetstream.JetStream) int {
	t.Helper()
	n := 0
	names := js.StreamNames(context.Background())
	for range names.Name() {
		n++
	}
	if err := names.Err(); err != nil && !errors.Is(err, jetstream.ErrEndOfData) {
		t.Fatal(err)
	}
	return n
}

// TestAutoPlacementOverRate: a shared tenant that ingests more than
// DedicatedAboveRate messages per second is moved to a dedicated instance
// by the engine itself, its record saying so; a tenant under it stays.
func TestAutoPlacementOverRate(t *testing.T) {
	h := runtimetest.Start(t, nil, fastReconcile, func(c *runtime.Config) { c.DedicatedAboveRate = 50 })
	local, err := provision.NewLocal(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = local.Close() })
	h.Engine.Tenants().(*tenancy.Manager).SetProvisioner(tenancy.LocalProvisioner(local), false)
	rec := h.Sinks.New(nil)
	h.Create(t, specYAML("busy", "busy", sinkYAML("api", rec, "")))
	quiet := h.As(t, "globex")
	qrec := quiet.Sinks.New(nil)
	quiet.Create(t, specYAML("calm", "calm", sinkYAML("api", qrec, "")))

	m := h.Engine.Tenants().(*tenancy.Manager)
	var ids []string
	var lastQuiet time.Time
	runtimetest.WaitFor(t, 60*time.Second, "acme moved to a dedicated instance", func() bool {
		for range 50 { // well over 50/s
			em, ok := h.Source.Emitter("acme", "busy")
			if !ok {
				break
			}
			msg := &runtime.Message{Data: []byte(`{}`)}
			if em.Emit(context.Background(), msg) == nil {
				ids = append(ids, msg.ID)
			}
		}
		if time.Since(lastQuiet) > 200*time.Millisecond { // 5/s: under the threshold
			quiet.Emit(t, "calm", `{}`)
			lastQuiet = time.Now()
		}
		tn, err := h.Store.GetTenant(context.Background(), "acme")
		if err != nil {
			return false
		}
		ep, err := m.Endpoint(context.Background(), tn)
		return err == nil && ep.Placement == store.PlacementDedicated && ep.Moving == nil && tn.Placement == store.PlacementDedicated
	})
	gt, err := h.Store.GetTenant(context.Background(), "globex")
	if err != nil {
		t.Fatal(err)
	}
	if ep, _ := m.Endpoint(context.Background(), gt); ep.Placement != store.PlacementShared {
		t.Errorf("globex, under the threshold, was moved: %+v", ep)
	}
	runtimetest.WaitFor(t, 30*time.Second, "every accepted message delivered", func() bool {
		got := rec.Delivered()
		for _, id := range ids {
			if _, ok := got[id]; !ok {
				return false
			}
		}
		return true
	})
}

// TestDedicatedInstanceBackAfterRestart: a local dedicated instance stops
// with vrsky serve (its provisioner closes) and comes back, with its
// data, at the next reconcile of a new one; the tenant's messages flow
// again, none accepted before lost.
func TestDedicatedInstanceBackAfterRestart(t *testing.T) {
	h := runtimetest.Start(t, nil, fastReconcile)
	dir := t.TempDir()
	first, err := provision.NewLocal(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := h.Engine.Tenants().(*tenancy.Manager)
	m.SetProvisioner(tenancy.LocalProvisioner(first), false)
	rec, turnOn := switchable(h) // off: the first message waits in the instance
	h.Create(t, withAttempts(specYAML("orders", "orders", sinkYAML("api", rec, "")), 100))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := h.Engine.MoveTenant(ctx, "acme", store.PlacementDedicated); err != nil {
		t.Fatal(err)
	}
	before := h.Emit(t, "orders", `{"n":1}`)
	if err := first.Close(); err != nil { // vrsky serve stops: its children too
		t.Fatal(err)
	}
	second, err := provision.NewLocal(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = second.Close() })
	m.SetProvisioner(tenancy.LocalProvisioner(second), false)
	runtimetest.WaitFor(t, 30*time.Second, "the reconcile brings the dedicated instance back", func() bool {
		return second.PID("acme") != 0
	})
	turnOn()
	runtimetest.WaitFor(t, 30*time.Second, "the message accepted before the restart delivered", func() bool {
		_, ok := rec.Delivered()[before]
		return ok
	})
	after := h.Emit(t, "orders", `{"n":2}`)
	runtimetest.WaitFor(t, 30*time.Second, "a message accepted after it delivered", func() bool {
		_, ok := rec.Delivered()[after]
		return ok
	})
}

var moveMessages = flag.Int("move-messages", 100_000, "messages queued for BenchmarkMoveTenant")

// BenchmarkMoveTenant measures a tenant move with -move-messages (100,000)
// messages queued in a stopped integration: the time from the PATCH to the
// tenant running on its dedicated instance, and the rate the queue is
// copied at. One move per iteration; run with -benchtime 1x.
func BenchmarkMoveTenant(b *testing.B) {
	for range b.N {
		b.StopTimer()
		h := runtimetest.Start(b, nil, fastReconcile)
		local, err := provision.NewLocal(b.TempDir(), nil)
		if err != nil {
			b.Fatal(err)
		}
		h.Engine.Tenants().(*tenancy.Manager).SetProvisioner(tenancy.LocalProvisioner(local), false)
		rec, _ := switchable(h) // off: nothing is delivered, everything stays queued
		h.Create(b, withAttempts(specYAML("queue", "queue", sinkYAML("api", rec, "")), 100))
		em := h.Emitter(b, "queue")
		batch := make([]*runtime.Message, 0, 500)
		for i := range *moveMessages {
			batch = append(batch, &runtime.Message{Data: fmt.Appendf(nil, `{"n":%d,"pad":"0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"}`, i)})
			if len(batch) == cap(batch) || i == *moveMessages-1 {
				if err := em.EmitBatch(context.Background(), batch); err != nil {
					b.Fatal(err)
				}
				batch = batch[:0]
			}
		}
		in, err := h.Store.GetIntegration(context.Background(), "acme", "queue")
		if err != nil {
			b.Fatal(err)
		}
		in.Desired = store.StateStopped
		if _, err := h.Store.UpdateIntegration(context.Background(), in); err != nil {
			b.Fatal(err)
		}
		h.Engine.Stop("acme", "queue")
		b.StartTimer()
		start := time.Now()
		if err := h.Engine.MoveTenant(context.Background(), "acme", store.PlacementDedicated); err != nil {
			b.Fatal(err)
		}
		took := time.Since(start)
		b.StopTimer()
		b.ReportMetric(took.Seconds(), "s/move")
		b.ReportMetric(float64(*moveMessages)/took.Seconds(), "queued-msgs/s")
		_ = local.Close()
		h.Stop()
		b.StartTimer()
	}
}

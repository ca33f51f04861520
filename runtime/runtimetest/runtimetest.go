// Package runtimetest runs connectors the way VRSky does, for tests: a
// recording Emitter for sources alone, and a Harness with a real engine
// on a real embedded NATS server for whole pipelines.
package runtimetest

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vrsky/vrsky/platform/natsx"
	"github.com/vrsky/vrsky/platform/natsx/natsxtest"
	"github.com/vrsky/vrsky/platform/store"
	"github.com/vrsky/vrsky/runtime"
)

// Emitter records what a source emits. Set Err to make every emit fail,
// Outcome to answer EmitWait. It dedups by ID, as JetStream would.
type Emitter struct {
	mu      sync.Mutex
	msgs    []*runtime.Message
	seen    map[string]bool
	Err     error
	Outcome runtime.Outcome
}

// Emit implements runtime.Emitter.
func (e *Emitter) Emit(_ context.Context, m *runtime.Message) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.Err != nil {
		return e.Err
	}
	if m.ID == "" {
		m.ID = runtime.NewID()
	}
	if e.seen == nil {
		e.seen = map[string]bool{}
	}
	if !e.seen[m.ID] {
		e.seen[m.ID] = true
		e.msgs = append(e.msgs, m)
	}
	return nil
}

// EmitBatch implements runtime.Emitter.
func (e *Emitter) EmitBatch(ctx context.Context, msgs []*runtime.Message) error {
	for _, m := range msgs {
		if err := e.Emit(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

// EmitWait implements runtime.Emitter: it emits and answers e.Outcome
// ("passed" when unset).
func (e *Emitter) EmitWait(ctx context.Context, m *runtime.Message) (runtime.Outcome, error) {
	if err := e.Emit(ctx, m); err != nil {
		return runtime.Outcome{}, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.Outcome.Status == "" {
		return runtime.Outcome{Status: runtime.StatusPassed}, nil
	}
	return e.Outcome, nil
}

// Messages returns what was emitted so far, once per ID, in order.
func (e *Emitter) Messages() []*runtime.Message {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]*runtime.Message(nil), e.msgs...)
}

// Harness is a real engine on a real embedded NATS server with the NATS KV
// control-plane store and tenant "acme".
type Harness struct {
	Conn   *natsx.Conn
	Store  store.Store
	Engine *runtime.Engine
	// Tenant is the tenant Create uses: "acme".
	Tenant string

	stop func()
}

// Stop stops the engine as a shutdown of vrsky serve does: every pipeline
// drains and singleton sources hand their lease over. Cleanup calls it too.
func (h *Harness) Stop() { h.stop() }

// AddNode starts another engine (another vrsky node) with the same
// catalogue on its own connection to h's NATS server, signed in as h's,
// sharing its store.
func (h *Harness) AddNode(t testing.TB, conns []runtime.Connector, opts ...func(*runtime.Config)) *Harness {
	t.Helper()
	conn, err := h.Conn.Dial(context.Background(), t.Name()+"-node")
	if err != nil {
		t.Fatalf("runtimetest: second connection: %v", err)
	}
	t.Cleanup(conn.Close)
	return StartOn(t, conn, conns, opts...)
}

// Start runs an engine whose catalogue holds conns, on a fresh embedded
// NATS server. Options adjust the engine's config before it starts.
func Start(t testing.TB, conns []runtime.Connector, opts ...func(*runtime.Config)) *Harness {
	t.Helper()
	return StartOn(t, natsxtest.Start(t), conns, opts...)
}

// StartOn is Start on a given connection: a second node on the same
// server, or a cluster.
func StartOn(t testing.TB, conn *natsx.Conn, conns []runtime.Connector, opts ...func(*runtime.Config)) *Harness {
	t.Helper()
	ctx := context.Background()
	st, err := store.NewNATS(ctx, conn.JS, conn.Replicas)
	if err != nil {
		t.Fatalf("runtimetest: store: %v", err)
	}
	cat, err := runtime.NewCatalog(conns...)
	if err != nil {
		t.Fatalf("runtimetest: catalogue: %v", err)
	}
	cfg := runtime.Config{Conn: conn, Store: st, Catalog: cat, ReconcileInterval: time.Second}
	for _, o := range opts {
		o(&cfg)
	}
	eng, err := runtime.NewEngine(cfg)
	if err != nil {
		t.Fatalf("runtimetest: engine: %v", err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = eng.Run(rctx) }()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	if _, err := st.CreateTenant(ctx, store.Tenant{Name: "acme"}); err != nil && !errors.Is(err, store.ErrExists) && !strings.Contains(err.Error(), store.ErrExists.Error()) {
		t.Fatalf("runtimetest: tenant: %v", err)
	}
	return &Harness{Conn: conn, Store: st, Engine: eng, Tenant: "acme", stop: stop}
}

// Create parses, checks, stores and starts an integration from a YAML or
// JSON spec, as the API does, and fails the test if it does not run.
func (h *Harness) Create(t testing.TB, spec string) *runtime.Spec {
	t.Helper()
	s, err := h.Engine.ParseSpec([]byte(spec))
	if err != nil {
		t.Fatalf("runtimetest: parse spec: %v", err)
	}
	ctx := context.Background()
	if err := h.Engine.CheckSpec(ctx, h.Tenant, s); err != nil {
		t.Fatalf("runtimetest: check spec: %v", err)
	}
	in, err := h.Store.CreateIntegration(ctx, store.Integration{Tenant: h.Tenant, Name: s.Name, Spec: s.JSON(), Desired: store.StateRunning})
	if err != nil {
		t.Fatalf("runtimetest: store integration: %v", err)
	}
	h.Engine.Apply(in)
	if st := h.Engine.Status(ctx, h.Tenant, s); st.State != store.StateRunning {
		t.Fatalf("runtimetest: integration %s not running: %+v", s.Name, st)
	}
	return s
}

// Delete removes an integration as the API does (its connectors' Remove
// hooks run).
func (h *Harness) Delete(t testing.TB, spec *runtime.Spec) {
	t.Helper()
	ctx := context.Background()
	if err := h.Store.DeleteIntegration(ctx, h.Tenant, spec.Name); err != nil {
		t.Fatalf("runtimetest: delete integration: %v", err)
	}
	if err := h.Engine.Remove(ctx, h.Tenant, spec.Name, spec); err != nil {
		t.Fatalf("runtimetest: remove integration: %v", err)
	}
}

// DeadLetters lists the integration's dead letters (without payloads).
func (h *Harness) DeadLetters(t testing.TB, integration string) []runtime.DeadLetter {
	t.Helper()
	var all []runtime.DeadLetter
	f := runtime.DLQFilter{Limit: 1000}
	for {
		page, next, err := h.Engine.ListDeadLetters(context.Background(), h.Tenant, integration, f)
		if err != nil {
			t.Fatalf("runtimetest: list dead letters: %v", err)
		}
		all = append(all, page...)
		if next == "" {
			return all
		}
		f.Before = next
	}
}

// WaitFor polls cond every 10ms until it holds, failing the test after
// timeout with what.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

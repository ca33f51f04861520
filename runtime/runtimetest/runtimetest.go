// Package runtimetest runs connectors the way VRSky does, for tests: a
// recording Emitter for sources alone, and a Harness with a real engine
// on a real embedded NATS server for whole pipelines. Every Harness's
// catalogue holds two in-memory connectors besides the test's own: a
// source the test emits through (test-source, see Source) and recording
// sinks (test-sink, see Sinks), so a pipeline can be tested without any
// real connector. The runtime's own tests use it, and so do the built-in
// connectors' pipeline tests; the API's tests build their engine with
// NewEngine, which is the Harness's engine without the harness.
package runtimetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/vrsky/vrsky/platform/natsx"
	"github.com/vrsky/vrsky/platform/natsx/natsxtest"
	"github.com/vrsky/vrsky/platform/store"
	"github.com/vrsky/vrsky/platform/tenancy"
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
	// Tenant is the tenant that Create, Emit and the other methods act
	// for: "acme" (see As).
	Tenant string
	// Source is this node's test source (test-source): the Emitters it
	// binds are this engine's.
	Source *Source
	// Sinks makes recording sinks (test-sink), shared by every node.
	Sinks *Sinks

	stop func()
}

// ManualReconcile is an option of Start: the engine reconciles when it
// starts and when the test calls Apply or Reconcile, not every second.
func ManualReconcile(c *runtime.Config) { c.ReconcileInterval = time.Hour }

// Stop stops the engine as a shutdown of vrsky serve does: every pipeline
// drains and singleton sources hand their lease over. Cleanup calls it too.
func (h *Harness) Stop() { h.stop() }

// AddNode starts another engine (another vrsky node) with the catalogue
// conns (pass h's to run the same) on its own connection to h's NATS
// server, signed in as h's, sharing its store and its Sinks; its Source
// is its own, as each node has its own webhook router.
func (h *Harness) AddNode(t testing.TB, conns []runtime.Connector, opts ...func(*runtime.Config)) *Harness {
	t.Helper()
	conn, err := h.Conn.Dial(context.Background(), t.Name()+"-node")
	if err != nil {
		t.Fatalf("runtimetest: second connection: %v", err)
	}
	t.Cleanup(conn.Close)
	return start(t, conn, conns, h.Sinks, opts)
}

// Start runs an engine whose catalogue holds conns and the test
// connectors (test-source, test-sink), on a fresh embedded NATS server.
// Options adjust the engine's config before it starts.
func Start(t testing.TB, conns []runtime.Connector, opts ...func(*runtime.Config)) *Harness {
	t.Helper()
	return StartOn(t, natsxtest.Start(t), conns, opts...)
}

// StartOn is Start on a given connection: a second node on the same
// server, or a cluster.
func StartOn(t testing.TB, conn *natsx.Conn, conns []runtime.Connector, opts ...func(*runtime.Config)) *Harness {
	t.Helper()
	return start(t, conn, conns, newSinks(), opts)
}

func start(t testing.TB, conn *natsx.Conn, conns []runtime.Connector, sinks *Sinks, opts []func(*runtime.Config)) *Harness {
	t.Helper()
	src := newSource()
	eng, st := build(t, conn, append([]runtime.Connector{src.connector(), sinks.connector()}, conns...),
		runtime.Config{ReconcileInterval: time.Second}, opts)
	rctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = eng.Run(rctx) }()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	h := &Harness{Conn: conn, Store: st, Engine: eng, Tenant: "acme", Source: src, Sinks: sinks, stop: stop}
	h.addTenant(t)
	return h
}

// NewEngine builds an engine on conn as Start and StartOn do (the NATS
// KV control-plane store on conn, a catalogue, options applied to the
// config last) for tests of what drives an engine itself, as the API
// does, and returns it with its store. Unlike a Harness's, its
// catalogue holds conns alone (no test-source, no test-sink), no tenant
// is created, and its reconcile loop does not run: whatever drives it
// applies integrations (Engine.Apply, Engine.Reconcile), and Cleanup
// stops its pipelines (Engine.StopAll), before conn closes when conn was
// made first.
func NewEngine(t testing.TB, conn *natsx.Conn, conns []runtime.Connector, opts ...func(*runtime.Config)) (*runtime.Engine, *store.NATSStore) {
	t.Helper()
	eng, st := build(t, conn, conns, runtime.Config{}, opts)
	t.Cleanup(eng.StopAll)
	return eng, st
}

// build makes the store, the catalogue of conns and the engine on conn:
// cfg, with Conn, Store and Catalog set, then opts.
func build(t testing.TB, conn *natsx.Conn, conns []runtime.Connector, cfg runtime.Config, opts []func(*runtime.Config)) (*runtime.Engine, *store.NATSStore) {
	t.Helper()
	st, err := store.NewNATS(context.Background(), conn.JS, conn.Replicas)
	if err != nil {
		t.Fatalf("runtimetest: store: %v", err)
	}
	cat, err := runtime.NewCatalog(conns...)
	if err != nil {
		t.Fatalf("runtimetest: catalogue: %v", err)
	}
	cfg.Conn, cfg.Store, cfg.Catalog = conn, st, cat
	tm := tenancy.New(conn, st, nil)
	t.Cleanup(tm.Close)
	cfg.Tenancy = tm
	for _, o := range opts {
		o(&cfg)
	}
	eng, err := runtime.NewEngine(cfg)
	if err != nil {
		t.Fatalf("runtimetest: engine: %v", err)
	}
	return eng, st
}

// TenantConn is the connection of h's tenant's own NATS account, where
// its integrations' streams, dead letters and step KV buckets live (the
// platform connection, Conn, sees none of them).
func (h *Harness) TenantConn(t testing.TB) *natsx.Conn {
	t.Helper()
	c, err := h.Engine.Tenants().Conn(context.Background(), h.Tenant)
	if err != nil {
		t.Fatalf("runtimetest: NATS of tenant %s: %v", h.Tenant, err)
	}
	return c
}

// As returns h acting for tenant (Create, Emit, Delete, … then use it),
// which it creates in the store if it does not exist.
func (h *Harness) As(t testing.TB, tenant string) *Harness {
	t.Helper()
	c := *h
	c.Tenant = tenant
	c.addTenant(t)
	return &c
}

func (h *Harness) addTenant(t testing.TB) {
	t.Helper()
	if _, err := h.Store.CreateTenant(context.Background(), store.Tenant{Name: h.Tenant}); err != nil && !errors.Is(err, store.ErrExists) {
		t.Fatalf("runtimetest: tenant %s: %v", h.Tenant, err)
	}
}

// Create parses, checks, stores and starts an integration from a YAML or
// JSON spec, as the API does, and fails the test if it does not run.
func (h *Harness) Create(t testing.TB, spec string) *runtime.Spec {
	t.Helper()
	s, in := h.Put(t, spec)
	h.Engine.Apply(in)
	if st := h.Engine.Status(context.Background(), h.Tenant, s); st.State != store.StateRunning {
		t.Fatalf("runtimetest: integration %s/%s not running: %+v", h.Tenant, s.Name, st)
	}
	return s
}

// Put is Create without the start: it parses, checks and stores the
// integration, desired state running, and returns its record for Apply.
func (h *Harness) Put(t testing.TB, spec string) (*runtime.Spec, store.Integration) {
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
	return s, in
}

// Emitter returns the Emitter of the integration whose test source holds
// key (its name unless its config says otherwise) on this node.
func (h *Harness) Emitter(t testing.TB, key string) runtime.Emitter {
	t.Helper()
	em, ok := h.Source.Emitter(h.Tenant, key)
	if !ok {
		t.Fatalf("runtimetest: no integration of %s runs test-source key %s on this node", h.Tenant, key)
	}
	return em
}

// Emit emits a JSON body through the test source holding key and returns
// the message's id once it is durable.
func (h *Harness) Emit(t testing.TB, key, body string) string {
	t.Helper()
	msg := &runtime.Message{Header: runtime.Header{runtime.HeaderContentType: {"application/json"}}, Data: []byte(body)}
	if err := h.Emitter(t, key).Emit(context.Background(), msg); err != nil {
		t.Fatalf("runtimetest: emit to %s/%s: %v", h.Tenant, key, err)
	}
	return msg.ID
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

// WaitDeadLetters waits until the integration has n dead letters and
// returns them, newest first.
func (h *Harness) WaitDeadLetters(t testing.TB, integration string, n int) []runtime.DeadLetter {
	t.Helper()
	var dls []runtime.DeadLetter
	WaitFor(t, waitLong, fmt.Sprintf("%d dead letters of %s/%s", n, h.Tenant, integration), func() bool {
		dls = h.DeadLetters(t, integration)
		return len(dls) == n
	})
	return dls
}

// WaitTrace waits until the trace of message id says state and returns it.
func (h *Harness) WaitTrace(t testing.TB, integration, id, state string) *runtime.MessageTrace {
	t.Helper()
	var tr *runtime.MessageTrace
	WaitFor(t, waitLong, fmt.Sprintf("message %s of %s/%s %s", id, h.Tenant, integration, state), func() bool {
		var err error
		tr, err = h.Engine.Trace(context.Background(), h.Tenant, integration, id)
		return err == nil && tr.State == state
	})
	return tr
}

// waitLong bounds the waits of the Harness: long enough for retries with
// backoff under the race detector on a busy machine.
const waitLong = 30 * time.Second

// WaitFor polls cond every 10ms until it holds, failing the test after
// timeout with what. It is the one way tests here wait: never a sleep.
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

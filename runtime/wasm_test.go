package runtime_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/vrsky/vrsky/host"
	"github.com/vrsky/vrsky/host/hosttest"
	"github.com/vrsky/vrsky/internal/testenv/wasmsteptest"
	"github.com/vrsky/vrsky/runtime"
	"github.com/vrsky/vrsky/runtime/runtimetest"
	"github.com/vrsky/vrsky/runtime/wasmstep"
)

// withWasmSteps registers shipped Wasm connectors, built from source and
// loaded through the real host, in the harness's catalogue.
func withWasmSteps(t *testing.T, names ...string) func(*runtime.Config) {
	return withWasmStepsEnv(t, host.Env{}, names...)
}

// withWasmStepsEnv is withWasmSteps with env behind the modules' I/O
// functions (objects, NATS, KV).
func withWasmStepsEnv(t *testing.T, env host.Env, names ...string) func(*runtime.Config) {
	rt := hosttest.Runtime(t, host.Config{})
	var conns []runtime.Connector
	for _, name := range names {
		man, spec := wasmsteptest.Load(t, name)
		mod, err := rt.Load(context.Background(), spec)
		if err != nil {
			t.Fatalf("load %s: %v", name, err)
		}
		conns = append(conns, wasmstep.New(wasmstep.Info{
			Name: man.Name, Version: man.Version, Description: man.Description,
			ConfigSchema: man.ConfigSchema, Module: func(context.Context) (*host.Module, error) { return mod, nil },
			Env: env,
		}))
	}
	return func(c *runtime.Config) {
		for _, x := range conns {
			if err := c.Catalog.Register(x); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestWasmStepsInPipeline(t *testing.T) {
	h := runtimetest.Start(t, nil, manual, withWasmSteps(t, "jq", "filter"))
	rec := h.Sinks.New(nil)
	h.Create(t, `name: shop
source: {connector: test-source}
steps:
  - connector: jq
    config: {query: '{id: .order_id, total: (.amount * .qty), customer: .customer.name}'}
  - connector: filter
    config: {expr: 'total >= 10'}
sinks:
  - name: api
    connector: test-sink
    config: `+rec.Config()+`
retry: {max_attempts: 3, initial_backoff: 50ms, max_backoff: 200ms}
`)
	big := h.Emit(t, "shop", `{"order_id": 7, "amount": 12.5, "qty": 2, "customer": {"name": "Ada"}}`)
	small := h.Emit(t, "shop", `{"order_id": 8, "amount": 1, "qty": 2, "customer": {"name": "Bob"}}`)
	broken := h.Emit(t, "shop", `{"order_id": 9, "amount": `)

	runtimetest.WaitFor(t, 15*time.Second, "the big order delivered", func() bool { return len(rec.Delivered()) == 1 })
	var got map[string]any
	if err := json.Unmarshal([]byte(rec.Delivered()[big]), &got); err != nil {
		t.Fatalf("sink got %q: %v", rec.Delivered()[big], err)
	}
	if got["id"] != 7.0 || got["total"] != 25.0 || got["customer"] != "Ada" {
		t.Fatalf("converted message = %v", got)
	}
	h.WaitTrace(t, "shop", small, runtime.StatusFiltered)
	dl := h.WaitDeadLetters(t, "shop", 1)[0]
	if dl.MessageID != broken || dl.Stage != "step:step-1" || dl.Attempts != 1 {
		t.Fatalf("malformed input: dead letter %+v; want step-1, 1 attempt (permanent)", dl)
	}
}

func TestWasmStepConfigValidatedAtCreate(t *testing.T) {
	h := runtimetest.Start(t, nil, manual, withWasmSteps(t, "jq"))
	_, err := h.Engine.ParseSpec([]byte(`name: x
source: {connector: test-source}
steps: [{connector: jq, config: {querry: '.'}}]
sinks: [{name: a, connector: test-sink, config: {recorder: none}}]
`))
	var fe *runtime.SpecError
	if !errors.As(err, &fe) || fe.Field != "steps[0].config.query" && fe.Field != "steps[0].config.querry" {
		t.Fatalf("err = %v, want a field error on steps[0].config", err)
	}
}

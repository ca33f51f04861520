package runtime_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/vrsky/vrsky/host"
	"github.com/vrsky/vrsky/host/hosttest"
	"github.com/vrsky/vrsky/internal/testenv/wasmsteptest"
	"github.com/vrsky/vrsky/platform/natsx/natsxtest"
	"github.com/vrsky/vrsky/runtime"
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
		conns = append(conns, runtime.WasmStep(runtime.WasmStepInfo{
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
	h := newHarness(t, natsxtest.Start(t), withWasmSteps(t, "jq", "filter"))
	rec := newRecorder(t, nil)
	h.create(t, `name: shop
source: {connector: http-webhook, config: {path: shop}}
steps:
  - connector: jq
    config: {query: '{id: .order_id, total: (.amount * .qty), customer: .customer.name}'}
  - connector: filter
    config: {expr: 'total >= 10'}
sinks:
  - name: api
    connector: http
    config: {url: "`+rec.srv.URL+`"}
retry: {max_attempts: 3, initial_backoff: 50ms, max_backoff: 200ms}
`)
	big := h.post(t, "shop", `{"order_id": 7, "amount": 12.5, "qty": 2, "customer": {"name": "Ada"}}`)
	small := h.post(t, "shop", `{"order_id": 8, "amount": 1, "qty": 2, "customer": {"name": "Bob"}}`)
	broken := h.post(t, "shop", `{"order_id": 9, "amount": `)

	waitFor(t, 15*time.Second, "the big order delivered", func() bool { return len(rec.delivered()) == 1 })
	var got map[string]any
	if err := json.Unmarshal([]byte(rec.delivered()[big]), &got); err != nil {
		t.Fatalf("sink got %q: %v", rec.delivered()[big], err)
	}
	if got["id"] != 7.0 || got["total"] != 25.0 || got["customer"] != "Ada" {
		t.Fatalf("converted message = %v", got)
	}
	waitTrace(t, h, "shop", small, runtime.StatusFiltered)
	dl := dlqMessages(t, h, "shop", 1)[0]
	hd := runtime.Header(dl.Headers())
	if hd.Get(runtime.HeaderMsgID) != broken || hd.Get(runtime.HeaderStage) != "step:step-1" || hd.Get(runtime.HeaderAttempts) != "1" {
		t.Fatalf("malformed input: dead letter headers %v; want step-1, 1 attempt (permanent)", hd)
	}
}

func TestWasmStepConfigValidatedAtCreate(t *testing.T) {
	h := newHarness(t, natsxtest.Start(t), withWasmSteps(t, "jq"))
	_, err := h.eng.ParseSpec([]byte(`name: x
source: {connector: http-webhook, config: {path: x}}
steps: [{connector: jq, config: {querry: '.'}}]
sinks: [{name: a, connector: http, config: {url: "http://127.0.0.1:1"}}]
`))
	fe, ok := err.(*runtime.SpecError)
	if !ok || fe.Field != "steps[0].config.query" && fe.Field != "steps[0].config.querry" {
		t.Fatalf("err = %v, want a field error on steps[0].config", err)
	}
}

package runtime_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vrsky/vrsky/runtime"
	"github.com/vrsky/vrsky/runtime/runtimetest"
)

// rows is a BatchSink that fails the messages whose payload has "bad":true
// permanently, and records the batch sizes it was handed.
type rows struct {
	mu      sync.Mutex
	got     map[string]int // payload -> deliveries
	batches []int
}

func (r *rows) connector() runtime.Connector {
	return runtime.Connector{
		Name: "rows", Version: "1.0.0", Kind: runtime.KindSink,
		NewSink: func(json.RawMessage, runtime.Env) (runtime.Sink, error) { return r, nil },
	}
}

func (r *rows) Deliver(ctx context.Context, m *runtime.Message) error {
	return r.DeliverBatch(ctx, []*runtime.Message{m})[0]
}

func (r *rows) DeliverBatch(_ context.Context, msgs []*runtime.Message) []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.batches = append(r.batches, len(msgs))
	var errs []error
	for i, m := range msgs {
		if strings.Contains(string(m.Data), `"bad":true`) {
			if errs == nil {
				errs = make([]error, len(msgs))
			}
			errs[i] = runtime.Permanent(fmt.Errorf("row %s violates a constraint", m.Data))
			continue
		}
		r.got[string(m.Data)]++
	}
	return errs
}

func (r *rows) Batching() runtime.Batching {
	return runtime.Batching{MaxMessages: 100, MaxWait: 200 * time.Millisecond, Concurrency: 2}
}

func (r *rows) Close() error { return nil }

func (r *rows) delivered() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

func TestBatchSinkDeadLettersOnlyTheBadMessage(t *testing.T) {
	sink := &rows{got: map[string]int{}}
	h := runtimetest.Start(t, []runtime.Connector{sink.connector()}, manual)
	h.Create(t, "name: load\nsource: {connector: test-source}\nsinks: [{name: db, connector: rows}]\n")
	emit := h.Emitter(t, "load")

	msgs := make([]*runtime.Message, 500)
	for i := range msgs {
		msgs[i] = &runtime.Message{Data: fmt.Appendf(nil, `{"n":%d,"bad":%t}`, i, i == 250)}
	}
	if err := emit.EmitBatch(context.Background(), msgs); err != nil {
		t.Fatalf("EmitBatch: %v", err)
	}
	runtimetest.WaitFor(t, 30*time.Second, "499 rows and one dead letter", func() bool {
		return sink.delivered() == 499 && len(h.DeadLetters(t, "load")) == 1
	})
	dl := h.DeadLetters(t, "load")[0]
	if dl.Stage != "sink:db" || dl.Attempts != 1 || !strings.Contains(dl.Error, "violates a constraint") {
		t.Fatalf("dead letter %+v", dl)
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	for row, n := range sink.got {
		if n != 1 {
			t.Errorf("row %s delivered %d times", row, n)
		}
	}
	if len(sink.batches) >= 500 {
		t.Errorf("%d batches for 500 messages: the sink was not batched", len(sink.batches))
	}
	for _, n := range sink.batches {
		if n > 100 {
			t.Errorf("a batch of %d exceeds MaxMessages 100", n)
		}
	}
}

// gate is a step that drops messages with "drop":true and fails those
// with "fail":true permanently.
var gate = runtime.Connector{
	Name: "gate", Version: "1.0.0", Kind: runtime.KindStep,
	NewStep: func(json.RawMessage, runtime.Env) (runtime.Step, error) { return gateStep{}, nil },
}

type gateStep struct{}

func (gateStep) Process(_ context.Context, batch []*runtime.Message) ([]runtime.StepResult, error) {
	out := make([]runtime.StepResult, len(batch))
	for i, m := range batch {
		switch s := string(m.Data); {
		case strings.Contains(s, `"fail":true`):
			out[i].Err = runtime.Permanent(errors.New("field total: not a number"))
		case strings.Contains(s, `"drop":true`):
		default:
			out[i].Out = []*runtime.Message{m}
		}
	}
	return out, nil
}

func (gateStep) Close() error { return nil }

func TestEmitWaitReportsWhatTheStepsDid(t *testing.T) {
	sink := &rows{got: map[string]int{}}
	h := runtimetest.Start(t, []runtime.Connector{gate, sink.connector()}, manual)
	h.Create(t, "name: sync\nsource: {connector: test-source}\nsteps: [{name: gate, connector: gate}]\nsinks: [{name: db, connector: rows}]\n")
	emit := h.Emitter(t, "sync")
	for _, tc := range []struct {
		body, status, stage, errText string
	}{
		{`{"ok":true}`, runtime.StatusPassed, "", ""},
		{`{"drop":true}`, runtime.StatusFiltered, "", ""},
		{`{"fail":true}`, runtime.StatusFailed, "step:gate", "not a number"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		out, err := emit.EmitWait(ctx, &runtime.Message{Data: []byte(tc.body)})
		cancel()
		if err != nil {
			t.Fatalf("EmitWait(%s): %v", tc.body, err)
		}
		if out.Status != tc.status || out.Stage != tc.stage || !strings.Contains(out.Error, tc.errText) {
			t.Errorf("EmitWait(%s) = %+v, want status %s stage %q error containing %q", tc.body, out, tc.status, tc.stage, tc.errText)
		}
	}
	runtimetest.WaitFor(t, 20*time.Second, "the passed message at the sink and the failed one in the DLQ", func() bool {
		return sink.delivered() == 1 && len(h.DeadLetters(t, "sync")) == 1
	})

	// A wait that ends before the steps run is "pending", and the message
	// is still durable and delivered.
	h.Engine.Stop("acme", "sync")
	emitStopped := emit
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	out, err := emitStopped.EmitWait(ctx, &runtime.Message{Data: []byte(`{"late":true}`)})
	if err != nil || out.Status != runtime.OutcomePending {
		t.Fatalf("EmitWait with the steps stopped = %+v, %v; want pending", out, err)
	}
	in, err := h.Store.GetIntegration(context.Background(), "acme", "sync")
	if err != nil {
		t.Fatal(err)
	}
	h.Engine.Apply(in)
	runtimetest.WaitFor(t, 20*time.Second, "the late message delivered after the restart", func() bool { return sink.delivered() == 2 })
}

// checked is a sink whose Check refuses a table named "missing" and whose
// Remove records that it ran; it keeps a counter in its State.
type checked struct {
	mu      sync.Mutex
	removed []string
	states  []runtime.State
}

func (c *checked) connector() runtime.Connector {
	return runtime.Connector{
		Name: "checked", Version: "1.0.0", Kind: runtime.KindSink,
		NewSink: func(_ json.RawMessage, env runtime.Env) (runtime.Sink, error) {
			c.mu.Lock()
			c.states = append(c.states, env.State)
			c.mu.Unlock()
			return nopSink{}, nil
		},
		Check: func(_ context.Context, cfg json.RawMessage, _ runtime.Env) error {
			if strings.Contains(string(cfg), "missing") {
				return &runtime.SpecError{Field: "table", Reason: `table "missing" does not exist`}
			}
			if strings.Contains(string(cfg), "offline") {
				return errors.New("connect: connection refused")
			}
			return nil
		},
		Remove: func(_ context.Context, _ json.RawMessage, env runtime.Env) error {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.removed = append(c.removed, env.Integration+"/"+env.Name)
			return nil
		},
	}
}

type nopSink struct{}

func (nopSink) Deliver(context.Context, *runtime.Message) error { return nil }
func (nopSink) Close() error                                    { return nil }

func TestCheckRemoveAndState(t *testing.T) {
	c := &checked{}
	h := runtimetest.Start(t, []runtime.Connector{c.connector()}, manual)
	ctx := context.Background()
	spec := func(table string) *runtime.Spec {
		s, err := h.Engine.ParseSpec(fmt.Appendf(nil, "name: chk\nsource: {connector: test-source}\nsinks: [{name: b, connector: checked, config: {table: %s}}]\n", table))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	for _, tc := range []struct{ table, field, reason string }{
		{"missing", "sinks[0].config.table", "does not exist"},
		{"offline", "sinks[0].config", "connection refused"},
	} {
		err := h.Engine.CheckSpec(ctx, "acme", spec(tc.table))
		var se *runtime.SpecError
		if !errors.As(err, &se) || se.Field != tc.field || !strings.Contains(se.Reason, tc.reason) {
			t.Errorf("CheckSpec(table %s) = %v; want field %s", tc.table, err, tc.field)
		}
	}

	s := h.Create(t, "name: chk\nsource: {connector: test-source}\nsinks: [{name: b, connector: checked, config: {table: orders}}]\n")
	c.mu.Lock()
	st := c.states[0]
	c.mu.Unlock()
	if _, err := st.Get(ctx, "offset"); !errors.Is(err, runtime.ErrNoState) {
		t.Fatalf("Get of a missing key = %v, want ErrNoState", err)
	}
	if err := st.Put(ctx, "offset", []byte("42")); err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, "bad key!", nil); err == nil {
		t.Fatal("a key with a space and '!' was accepted")
	}
	if v, err := st.Get(ctx, "offset"); err != nil || string(v) != "42" {
		t.Fatalf("Get = %q, %v", v, err)
	}
	if keys, err := st.Keys(ctx); err != nil || len(keys) != 1 || keys[0] != "offset" {
		t.Fatalf("Keys = %v, %v", keys, err)
	}

	h.Delete(t, s)
	c.mu.Lock()
	removed := append([]string(nil), c.removed...)
	c.mu.Unlock()
	if len(removed) != 1 || removed[0] != "chk/b" {
		t.Fatalf("Remove hooks ran for %v, want [chk/b]", removed)
	}
	if _, err := st.Get(ctx, "offset"); !errors.Is(err, runtime.ErrNoState) {
		t.Fatalf("state survived the integration's deletion: %v", err)
	}
}

func TestSecretEnvScope(t *testing.T) {
	c := &checked{}
	h := runtimetest.Start(t, []runtime.Connector{c.connector()}, manual, func(cfg *runtime.Config) {
		cfg.SecretEnvPrefix = "VRSKY_SECRET_"
	})
	for _, tc := range []struct{ cfg, field string }{
		{`{"table":"t","dsn_env":"VRSKY_DATABASE_URL"}`, "sinks[0].config.dsn_env"},
		{`{"table":"t","auth":{"token_env":"AWS_SECRET_ACCESS_KEY"}}`, "sinks[0].config.auth.token_env"},
		{`{"table":"t","list":[{"x_env":"VRSKY_SECRET_OTHER_DSN"}]}`, "sinks[0].config.list[0].x_env"},
		{`{"table":"t","dsn_env":"VRSKY_SECRET_ACME__DSN"}`, ""},
	} {
		spec, err := h.Engine.ParseSpec(fmt.Appendf(nil, `{"name":"s","source":{"connector":"test-source"},"sinks":[{"name":"b","connector":"checked","config":%s}]}`, tc.cfg))
		if err != nil {
			t.Fatal(err)
		}
		err = h.Engine.CheckSpec(context.Background(), "acme", spec)
		var se *runtime.SpecError
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("CheckSpec(%s) = %v, want it accepted", tc.cfg, err)
		case tc.field != "" && (!errors.As(err, &se) || se.Field != tc.field || !strings.Contains(se.Reason, "VRSKY_SECRET_ACME__")):
			t.Errorf("CheckSpec(%s) = %v, want a refusal on %s naming the tenant's prefix", tc.cfg, err, tc.field)
		}
	}
}

// TestDirectRouting: without steps a source's messages go straight to the
// sinks' subjects, routed at emit: EmitWait knows the outcome at once, a
// `when` sees a claim-checked payload's fields, one that cannot be
// evaluated dead-letters (the DLQ keeps a claim-checked payload's object),
// and a claim-checked payload no sink takes is deleted at once.
func TestDirectRouting(t *testing.T) {
	h, bs := newBlobHarness(t, nil)
	sink := h.Sinks.New(nil)
	spec := h.Create(t, "name: direct\nsource: {connector: test-source}\nsinks: [{name: big, connector: test-sink, config: "+sink.Config()+", when: 'total > 100'}]\n")
	h.Create(t, "name: never\nsource: {connector: test-source}\nsinks: [{name: none, connector: test-sink, config: "+sink.Config()+", when: 'false'}]\n")
	emit, emitNever := h.Emitter(t, "direct"), h.Emitter(t, "never")
	ctx := context.Background()
	pad := strings.Repeat("x", runtime.DefaultClaimThreshold)
	large, largeBad := `{"total": 7, "pad": "`+pad+`"}`, `{"total": "many", "pad": "`+pad+`"}`

	for _, tc := range []struct {
		emit         runtime.Emitter
		body, status string
		objectKept   bool
	}{
		{emit, `{"total": 500}`, runtime.StatusPassed, false},
		{emit, `{"total": 5}`, runtime.StatusFiltered, false},
		{emit, `{"total": "many"}`, runtime.StatusFiltered, false}, // dead-lettered by its route
		{emit, large, runtime.StatusFiltered, false},               // read back for its route; no sink takes it: deleted
		{emit, largeBad, runtime.StatusFiltered, true},             // dead-lettered by its route; the DLQ holds the object
		{emitNever, large, runtime.StatusFiltered, false},          // no sink takes it: deleted
	} {
		msg := &runtime.Message{Data: []byte(tc.body)}
		out, err := tc.emit.EmitWait(ctx, msg)
		if err != nil || out.Status != tc.status {
			t.Fatalf("EmitWait(%.20s) = %+v, %v; want %s", tc.body, out, err, tc.status)
		}
		if ref := msg.Header.Get(runtime.HeaderPayloadRef); ref != "" {
			_, err := bs.Stat(ctx, ref)
			if kept := err == nil; kept != tc.objectKept {
				t.Fatalf("claim-checked payload object kept = %v (%v), want %v", kept, err, tc.objectKept)
			}
		}
	}
	runtimetest.WaitFor(t, 20*time.Second, "one delivery and two dead letters", func() bool {
		return len(sink.Delivered()) == 1 && len(h.DeadLetters(t, "direct")) == 2
	})
	for _, dl := range h.DeadLetters(t, "direct") {
		if dl.Stage != "route:big" {
			t.Fatalf("dead letter stage %q, want route:big", dl.Stage)
		}
	}
	if st := h.Engine.Status(ctx, "acme", spec); st.Ingested != 5 || st.Pending != 0 {
		t.Fatalf("status %+v: want 5 ingested, nothing waiting on the input subject", st)
	}
}

package runtime_test

// Tenant boundaries under a hostile tenant (issue 21): tenant acme plays
// the attacker, globex the bystander whose data and integrations must not
// move. Every test runs on the real embedded NATS server of the engine
// harness (runtimetest).

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrsky/vrsky/host"
	"github.com/vrsky/vrsky/host/wasmcheck/wasmchecktest"
	"github.com/vrsky/vrsky/platform/blob"
	"github.com/vrsky/vrsky/platform/natsx/natsxtest"
	"github.com/vrsky/vrsky/platform/store"
	"github.com/vrsky/vrsky/runtime"
	"github.com/vrsky/vrsky/runtime/runtimetest"
)

// bystander is globex's integration, test source → recording sink, with
// an object of its own in the store: what a hostile tenant must neither
// reach nor disturb.
type bystander struct {
	h      *runtimetest.Harness // acting for globex
	rec    *runtimetest.Sink
	spec   *runtime.Spec
	key    string // globex's object
	secret string // its content
}

func newBystander(t *testing.T, h *runtimetest.Harness, bs blob.Store) *bystander {
	t.Helper()
	g := h.As(t, "globex")
	b := &bystander{h: g, rec: h.Sinks.New(nil), key: "payloads/globex/vault/secret", secret: "globex's secret"}
	b.spec = g.Create(t, specYAML("vault", "vault", sinkYAML("api", b.rec, "")))
	if bs != nil {
		if _, err := bs.Put(context.Background(), b.key, strings.NewReader(b.secret)); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// unaffected checks that globex's integration still delivers and its
// object is unchanged.
func (b *bystander) unaffected(t *testing.T, bs blob.Store) {
	t.Helper()
	id := b.h.Emit(t, "vault", `{"order":1}`)
	runtimetest.WaitFor(t, 15*time.Second, "globex's message delivered", func() bool { return b.rec.Delivered()[id] == `{"order":1}` })
	if bs == nil {
		return
	}
	r, _, err := bs.Get(context.Background(), b.key)
	if err != nil {
		t.Fatalf("globex's object: %v", err)
	}
	defer r.Close()
	got, err := io.ReadAll(r)
	if err != nil || string(got) != b.secret {
		t.Fatalf("globex's object holds %q (%v), want %q", got, err, b.secret)
	}
}

// forger is a by-reference step (a module with the objects capability)
// whose every output names the object in its config's "ref", with the
// size and digest of globex's secret: what a module that forges
// Vrsky-Payload-Ref would emit. It counts the inputs it was given.
type forger struct {
	mu    sync.Mutex
	calls map[string]int
}

func (f *forger) connector() runtime.Connector {
	return runtime.Connector{
		Name: "forger", Version: "1.0.0", Kind: runtime.KindStep,
		ConfigSchema: json.RawMessage(`{"type":"object","properties":{"ref":{"type":"string"}},"required":["ref"]}`),
		NewStep: func(cfg json.RawMessage, _ runtime.Env) (runtime.Step, error) {
			var c struct{ Ref string }
			if err := json.Unmarshal(cfg, &c); err != nil {
				return nil, err
			}
			return &forgerStep{f: f, ref: c.Ref}, nil
		},
	}
}

func (f *forger) seen(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[id]
}

type forgerStep struct {
	f   *forger
	ref string
}

func (s *forgerStep) ReadsClaims() bool { return true }

func (s *forgerStep) Process(_ context.Context, batch []*runtime.Message) ([]runtime.StepResult, error) {
	sum := sha256.Sum256([]byte("globex's secret"))
	out := make([]runtime.StepResult, len(batch))
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	for i, m := range batch {
		s.f.calls[m.ID]++
		h := m.Header.Clone()
		h.Set(runtime.HeaderPayloadRef, s.ref)
		h.Set(runtime.HeaderPayloadSize, strconv.Itoa(len("globex's secret")))
		h.Set(runtime.HeaderPayloadSHA256, hex.EncodeToString(sum[:]))
		out[i].Out = []*runtime.Message{{ID: m.ID, Header: h}}
	}
	return out, nil
}

func (s *forgerStep) Close() error { return nil }

// A step output naming a payload object by a forged reference is refused
// where the output is accepted, as a permanent error: dead-lettered after
// one attempt, never redelivered, whatever max_attempts says. Before, a
// reference through ".." passed the prefix check and looped for ever on
// an invalid claim-check marker key.
func TestForgedPayloadRefDeadLettered(t *testing.T) {
	conn := natsxtest.Start(t)
	bs, err := blob.NewNATS(context.Background(), conn.JS, "vrsky-objects", 1)
	if err != nil {
		t.Fatal(err)
	}
	f := &forger{calls: map[string]int{}}
	h := runtimetest.StartOn(t, conn, []runtime.Connector{f.connector()}, manual, withBlobs(bs))
	victim := newBystander(t, h, bs)
	healthy := h.Sinks.New(nil)
	h.Create(t, specYAML("healthy", "healthy", sinkYAML("api", healthy, "")))

	for i, ref := range []string{
		"payloads/acme/../globex/vault/secret",
		"payloads/acme/forge/../../globex/vault/secret",
		"payloads/globex/vault/secret",
		"payloads/acme-x/vault/secret",
		"payloads/acme/./forge/x",
		"payloads/acme//forge/x",
		"payloads/acme/forge/",
		"/payloads/acme/forge/x",
		"payloads/acme/forge/a..b",
		"payloads/acme/forge/.x",
		"payloads/acme/",
		"modules/acme/x",
		"payloads/acme/forge/ü",
	} {
		t.Run(ref, func(t *testing.T) {
			name := fmt.Sprintf("forge-%d", i)
			sink := h.Sinks.New(nil)
			h.Create(t, fmt.Sprintf(`name: %s
source: {connector: test-source}
steps: [{connector: forger, config: {ref: %q}}]
sinks: [{name: api, connector: test-sink, config: %s}]
retry: {max_attempts: 5, initial_backoff: 20ms, max_backoff: 20ms}
`, name, ref, sink.Config()))
			id := h.Emit(t, name, `{"n":1}`)
			dl := h.WaitDeadLetters(t, name, 1)[0]
			if dl.MessageID != id || dl.Stage != "step:step-1" || dl.Attempts != 1 {
				t.Fatalf("dead letter of %s at %s after %d attempts (%s): want message %s at step:step-1 after 1 attempt", dl.MessageID, dl.Stage, dl.Attempts, dl.Error, id)
			}
			settled(t, h, name, "in")
			if n := f.seen(id); n != 1 {
				t.Fatalf("the step saw the message %d times, want once", n)
			}
			if n := len(sink.Delivered()); n != 0 {
				t.Fatalf("the sink got %d messages", n)
			}
		})
	}
	id := h.Emit(t, "healthy", `{"ok":true}`)
	runtimetest.WaitFor(t, 15*time.Second, "acme's healthy integration delivers", func() bool { return len(healthy.Delivered()) == 1 })
	h.WaitTrace(t, "healthy", id, runtime.StatusDelivered)
	victim.unaffected(t, bs)
	if n := len(victim.rec.Delivered()); n != 1 {
		t.Fatalf("globex's sink got %d messages, want its own one", n)
	}
}

// flakyBlobs is an object store whose Puts or Gets fail as an outage
// would, while the switch is on.
type flakyBlobs struct {
	blob.Store
	failPut, failGet atomic.Bool
}

func (f *flakyBlobs) Put(ctx context.Context, key string, r io.Reader) (blob.Info, error) {
	if f.failPut.Load() {
		return blob.Info{}, fmt.Errorf("put %s: %w (test outage)", key, blob.ErrUnavailable)
	}
	return f.Store.Put(ctx, key, r)
}

func (f *flakyBlobs) Get(ctx context.Context, key string) (io.ReadCloser, blob.Info, error) {
	if f.failGet.Load() {
		return nil, blob.Info{}, fmt.Errorf("get %s: %w (test outage)", key, blob.ErrUnavailable)
	}
	return f.Store.Get(ctx, key)
}

// recordingBlobs is an object store that records the keys it stored.
type recordingBlobs struct {
	blob.Store
	mu   sync.Mutex
	puts map[string]bool
}

func (r *recordingBlobs) Put(ctx context.Context, key string, rd io.Reader) (blob.Info, error) {
	info, err := r.Store.Put(ctx, key, rd)
	if err == nil {
		r.mu.Lock()
		r.puts[key] = true
		r.mu.Unlock()
	}
	return info, err
}

func (r *recordingBlobs) written() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var keys []string
	for k := range r.puts {
		keys = append(keys, k)
	}
	return keys
}

// counting is a by-reference step that counts its inputs and passes each
// on: unchanged ("relay"), or as a payload over the claim-check threshold
// that the input stage must store ("bloat").
type counting struct {
	name  string
	bloat bool
	mu    sync.Mutex
	calls map[string]int
}

func (c *counting) connector() runtime.Connector {
	return runtime.Connector{
		Name: c.name, Version: "1.0.0", Kind: runtime.KindStep,
		NewStep: func(json.RawMessage, runtime.Env) (runtime.Step, error) { return c, nil },
	}
}

func (c *counting) ReadsClaims() bool { return true }

func (c *counting) Process(_ context.Context, batch []*runtime.Message) ([]runtime.StepResult, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]runtime.StepResult, len(batch))
	for i, m := range batch {
		c.calls[m.ID]++
		o := m
		if c.bloat {
			o = &runtime.Message{ID: m.ID, Header: m.Header.Clone(), Data: bytes.Repeat([]byte("x"), runtime.DefaultClaimThreshold+1)}
		}
		out[i].Out = []*runtime.Message{o}
	}
	return out, nil
}

func (c *counting) Close() error { return nil }

func (c *counting) seen(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[id]
}

// A failure of the input stage after the steps (storing a large output,
// reading a payload for a when condition) used to be nakked for a
// redelivery a second later, for ever, counted nowhere. It is now an
// attempt like any other: retried with the spec's backoff, dead-lettered
// (stage "route") after max_attempts, and a replay runs it again.
func TestInputStageFailuresCountAttempts(t *testing.T) {
	for _, tc := range []struct {
		name string
		// step is the step; when the sink's condition; body the payload.
		step       *counting
		when, body string
		// outage is the switch that breaks the object store.
		outage func(*flakyBlobs) *atomic.Bool
	}{
		{
			name: "a large output the object store refuses",
			step: &counting{name: "bloat", bloat: true, calls: map[string]int{}},
			body: `{"kind":"x"}`, outage: func(f *flakyBlobs) *atomic.Bool { return &f.failPut },
		},
		{
			name: "a when condition that cannot read its payload",
			step: &counting{name: "relay", calls: map[string]int{}},
			when: `kind == "x"`, body: `{"kind":"x","pad":"` + strings.Repeat("p", runtime.DefaultClaimThreshold) + `"}`,
			outage: func(f *flakyBlobs) *atomic.Bool { return &f.failGet },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := natsxtest.Start(t)
			nb, err := blob.NewNATS(context.Background(), conn.JS, "vrsky-objects", 1)
			if err != nil {
				t.Fatal(err)
			}
			bs := &flakyBlobs{Store: nb}
			h := runtimetest.StartOn(t, conn, []runtime.Connector{tc.step.connector()}, manual, withBlobs(bs))
			victim := newBystander(t, h, nil)
			sink := h.Sinks.New(nil)
			spec := h.Create(t, fmt.Sprintf(`name: staged
source: {connector: test-source}
steps: [{connector: %s}]
sinks:
%s
retry: {max_attempts: 3, initial_backoff: 20ms, max_backoff: 40ms}
`, tc.step.name, sinkYAML("api", sink, tc.when)))
			tc.outage(bs).Store(true)
			id := h.Emit(t, "staged", tc.body)
			dl := h.WaitDeadLetters(t, "staged", 1)[0]
			if dl.MessageID != id || dl.Stage != "route" || dl.Attempts != 3 {
				t.Fatalf("dead letter of %s at %s after %d attempts (%s): want message %s at stage route after 3 attempts", dl.MessageID, dl.Stage, dl.Attempts, dl.Error, id)
			}
			settled(t, h, "staged", "in")
			if n := tc.step.seen(id); n != 3 {
				t.Fatalf("the step ran %d times, want 3 (max_attempts)", n)
			}
			victim.unaffected(t, nil)

			tc.outage(bs).Store(false)
			if err := h.Engine.ReplayDeadLetter(context.Background(), "acme", spec, dl.ID); err != nil {
				t.Fatalf("replay: %v", err)
			}
			runtimetest.WaitFor(t, 15*time.Second, "the replayed message delivered", func() bool { return len(sink.Delivered()[id]) > 0 })
			h.WaitTrace(t, "staged", id, runtime.StatusDelivered)
		})
	}
}

// buildCounter counts a step connector's NewStep calls and returns.
type buildCounter struct{ started, ended atomic.Int32 }

// A module whose start function never returns is instantiated under its
// deadline at most max_attempts times, in the background: Apply (the API's
// start and stop) returns at once, the status says "error" and why, a
// reconcile does not try the same revision again, and an integration
// deleted while its module instantiates does not come back — not even
// from a reconcile pass holding the record from before the delete.
func TestStartSectionLoopGivesUp(t *testing.T) {
	const initTimeout = 1500 * time.Millisecond
	var builds buildCounter
	spin := rawStep(t, "spin", rawWasm{start: spinForever, process: wasmchecktest.I32Const(nil, 0)}, host.Capabilities{}, host.Env{}, host.Limits{InitTimeout: initTimeout}, &builds)
	h := runtimetest.Start(t, []runtime.Connector{spin}, manual) // reconciles only when told
	victim := newBystander(t, h, nil)
	ctx := context.Background()
	never := h.Sinks.New(nil)
	spinSpec := func(name string) string {
		return fmt.Sprintf(`name: %s
source: {connector: test-source}
steps: [{connector: spin}]
sinks: [{name: api, connector: test-sink, config: %s}]
retry: {max_attempts: 2, initial_backoff: 50ms, max_backoff: 50ms}
`, name, never.Config())
	}
	// timed runs fn and fails the test if it took as long as one
	// instantiation's deadline: it must not have waited for one.
	timed := func(t *testing.T, what string, fn func()) {
		t.Helper()
		start := time.Now()
		fn()
		if took := time.Since(start); took >= initTimeout {
			t.Fatalf("%s took %s: it waited for the module's instantiation (deadline %s)", what, took, initTimeout)
		}
	}
	idle := func() bool { return builds.started.Load() == builds.ended.Load() }

	t.Run("gives up after the retry policy", func(t *testing.T) {
		spec, in := h.Put(t, spinSpec("spinner"))
		before := builds.started.Load()
		timed(t, "Apply (start)", func() { h.Engine.Apply(in) })
		if st := h.Engine.Status(ctx, "acme", spec); st.State != store.StateRunning || !st.Starting {
			t.Fatalf("status right after the start: %+v, want running and starting", st)
		}
		var st runtime.Status
		runtimetest.WaitFor(t, 30*time.Second, "the start given up", func() bool {
			st = h.Engine.Status(ctx, "acme", spec)
			return st.State == runtime.StateError && !st.Starting && idle()
		})
		if !strings.Contains(st.Error, "gave up after 2 attempts") || !strings.Contains(st.Error, "step step-1") {
			t.Fatalf("status error %q: want the step's error and the attempts", st.Error)
		}
		if n := builds.started.Load() - before; n != 2 {
			t.Fatalf("the module was instantiated %d times, want 2 (max_attempts)", n)
		}
		released(t, h, "spinner") // the source stopped: nothing is accepted that no step takes
		for range 3 {
			if err := h.Engine.Reconcile(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if n := builds.started.Load() - before; n != 2 {
			t.Fatalf("reconciling instantiated the module again (%d in all)", n)
		}
		if st := h.Engine.Status(ctx, "acme", spec); st.State != runtime.StateError {
			t.Fatalf("status after reconciling: %+v, want error", st)
		}
		// A stop and a start (a new revision) try again.
		cur, err := h.Store.GetIntegration(ctx, "acme", "spinner")
		if err != nil {
			t.Fatal(err)
		}
		cur.Desired = store.StateStopped
		if cur, err = h.Store.UpdateIntegration(ctx, cur); err != nil {
			t.Fatal(err)
		}
		timed(t, "Apply (stop)", func() { h.Engine.Apply(cur) })
		cur.Desired = store.StateRunning
		if cur, err = h.Store.UpdateIntegration(ctx, cur); err != nil {
			t.Fatal(err)
		}
		timed(t, "Apply (start again)", func() { h.Engine.Apply(cur) })
		runtimetest.WaitFor(t, 10*time.Second, "a new attempt", func() bool { return builds.started.Load()-before == 3 })
		cur.Desired = store.StateStopped
		if cur, err = h.Store.UpdateIntegration(ctx, cur); err != nil {
			t.Fatal(err)
		}
		h.Engine.Apply(cur)
	})

	t.Run("stop does not wait for the instantiation", func(t *testing.T) {
		spec, in := h.Put(t, spinSpec("stopper"))
		h.Engine.Apply(in)
		runtimetest.WaitFor(t, 10*time.Second, "the instantiation under way", func() bool { return !idle() })
		in.Desired = store.StateStopped
		in, err := h.Store.UpdateIntegration(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		timed(t, "Apply (stop)", func() { h.Engine.Apply(in) })
		if st := h.Engine.Status(ctx, "acme", spec); st.State != store.StateStopped {
			t.Fatalf("status after the stop: %+v", st)
		}
		runtimetest.WaitFor(t, 30*time.Second, "the abandoned instantiation over", idle)
		if st := h.Engine.Status(ctx, "acme", spec); st.State != store.StateStopped {
			t.Fatalf("status once the instantiation ended: %+v, want stopped", st)
		}
		released(t, h, "stopper")
	})

	t.Run("a deleted integration does not come back", func(t *testing.T) {
		spec, stale := h.Put(t, spinSpec("deleted"))
		h.Engine.Apply(stale)
		runtimetest.WaitFor(t, 10*time.Second, "the instantiation under way", func() bool { return !idle() })
		timed(t, "delete", func() { h.Delete(t, spec) })
		// A reconcile pass that listed the integration before the delete.
		h.Engine.Apply(stale)
		if err := h.Engine.Reconcile(ctx); err != nil {
			t.Fatal(err)
		}
		runtimetest.WaitFor(t, 30*time.Second, "the abandoned instantiation over", idle)
		if st := h.Engine.Status(ctx, "acme", spec); st.State != store.StateStopped {
			t.Fatalf("status of the deleted integration: %+v, want stopped", st)
		}
		if _, err := h.TenantConn(t).JS.Stream(ctx, "VRSKY_acme_deleted"); !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Fatalf("the deleted integration's stream: err = %v, want ErrStreamNotFound", err)
		}
		released(t, h, "deleted")
	})

	victim.unaffected(t, nil)
}

// Step KV is the integration's own bucket, bounded by the engine (here
// 4 MiB): a module that writes 25 values of 1 MiB from one message keeps
// at most the bound, and so does another tenant's integration beside it,
// unhurt. Objects a module writes outside its integration's payload
// prefix are refused, those it writes there and no output names are
// deleted after the call, and deleting the integration deletes its
// bucket, its objects, their markers and its dead letters — and nothing
// of globex's.
func TestStepStorageBoundedAndRemoved(t *testing.T) {
	const bound = 4 << 20
	conn := natsxtest.Start(t)
	bs, err := blob.NewNATS(context.Background(), conn.JS, "vrsky-objects", 1)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	// hog: for i in 0..24, kv_put("A"+i, 1 MiB of memory).
	const keyAt, valAt, n = 0, 1024, 25
	var hogBody []byte
	hogBody = append(hogBody, 0x03, 0x40) // loop
	hogBody = wasmchecktest.I32Const(hogBody, keyAt)
	hogBody = append(hogBody, opLocalGet, 1)
	hogBody = wasmchecktest.I32Const(hogBody, 'A')
	hogBody = append(hogBody, opI32Add, 0x3a, 0, 0) // i32.store8 align 0 offset 0
	hogBody = wasmchecktest.I32Const(hogBody, keyAt)
	hogBody = wasmchecktest.I32Const(hogBody, 1)
	hogBody = wasmchecktest.I32Const(hogBody, valAt)
	hogBody = wasmchecktest.I32Const(hogBody, runtime.StepKVMaxValue)
	hogBody = append(call(hogBody, 0), opDrop)
	hogBody = append(hogBody, opLocalGet, 1)
	hogBody = wasmchecktest.I32Const(hogBody, 1)
	hogBody = append(hogBody, opI32Add, opLocalSet, 1, opLocalGet, 1)
	hogBody = wasmchecktest.I32Const(hogBody, n)
	hogBody = append(hogBody, opI32LtU, 0x0d, 0, opEnd) // br_if 0; end
	hogBody = wasmchecktest.I32Const(hogBody, 0)
	hog := rawStep(t, "hog", rawWasm{
		imports: []rawImport{{"kv_put", 4}},
		pages:   (valAt+runtime.StepKVMaxValue)/65536 + 1,
		process: hogBody,
	}, host.Capabilities{KV: true}, host.Env{}, host.Limits{}, nil)

	written := &recordingBlobs{Store: bs, puts: map[string]bool{}}
	// stash: writes 1 KiB to each of three keys (object_create, _write,
	// _close), emits nothing.
	keys := []string{"exports/acme/stash/leak", "payloads/acme/other/leak", "payloads/acme/stash/stray"}
	var stashBody []byte
	var data []rawData
	at := int32(2048)
	for _, k := range keys {
		data = append(data, rawData{at, []byte(k)})
		stashBody = wasmchecktest.I32Const(stashBody, at)
		stashBody = wasmchecktest.I32Const(stashBody, int32(len(k)))
		stashBody = append(call(stashBody, 0), opLocalSet, 1)
		stashBody = append(stashBody, opLocalGet, 1)
		stashBody = wasmchecktest.I32Const(stashBody, 0)
		stashBody = wasmchecktest.I32Const(stashBody, 1024)
		stashBody = append(call(stashBody, 1), opDrop, opLocalGet, 1)
		stashBody = append(call(stashBody, 2), opDrop)
		at += 256
	}
	stashBody = wasmchecktest.I32Const(stashBody, 0)
	stash := rawStep(t, "stash", rawWasm{
		imports: []rawImport{{"object_create", 2}, {"object_write", 3}, {"object_close", 1}},
		pages:   1, data: data, process: stashBody,
	}, host.Capabilities{Objects: true}, host.Env{Objects: written}, host.Limits{}, nil)

	h := runtimetest.StartOn(t, conn, []runtime.Connector{hog, stash}, manual, withBlobs(bs), func(c *runtime.Config) { c.StepKVMaxBytes = bound })
	victim := newBystander(t, h, bs)
	g := victim.h // globex
	stepSpec := func(name, step string, rec *runtimetest.Sink) string {
		return fmt.Sprintf(`name: %s
source: {connector: test-source}
steps: [{connector: %s}]
sinks: [{name: api, connector: test-sink, config: %s}]
retry: {max_attempts: 2, initial_backoff: 20ms, max_backoff: 20ms}
`, name, step, rec.Config())
	}
	bucket := func(t *testing.T, tenant, integration string) (jetstream.KeyValueStatus, error) {
		t.Helper()
		tc, err := h.Engine.Tenants().Conn(ctx, tenant)
		if err != nil {
			return nil, err
		}
		kv, err := tc.JS.KeyValue(ctx, "vrsky_kv_"+tenant+"_"+integration)
		if err != nil {
			return nil, err
		}
		return kv.Status(ctx)
	}

	acme := h.Sinks.New(nil)
	hogSpec := h.Create(t, stepSpec("hog", "hog", acme))
	globex := g.Create(t, stepSpec("hog", "hog", victim.rec))

	t.Run("step KV is bounded per integration", func(t *testing.T) {
		h.WaitTrace(t, "hog", h.Emit(t, "hog", `{}`), runtime.StatusFiltered)
		g.WaitTrace(t, "hog", g.Emit(t, "hog", `{}`), runtime.StatusFiltered)
		for _, tenant := range []string{"acme", "globex"} {
			st, err := bucket(t, tenant, "hog")
			if err != nil {
				t.Fatalf("%s's step KV bucket: %v", tenant, err)
			}
			if st.Bytes() > bound || st.Values() == 0 || st.Values() >= n {
				t.Fatalf("%s's bucket holds %d values, %d bytes: want some, within %d bytes", tenant, st.Values(), st.Bytes(), bound)
			}
		}
	})

	t.Run("objects stay in the integration's payload prefix", func(t *testing.T) {
		h.Create(t, stepSpec("stash", "stash", acme))
		h.WaitTrace(t, "stash", h.Emit(t, "stash", `{}`), runtime.StatusFiltered)
		for _, k := range keys {
			if objectExists(t, bs, k) {
				t.Errorf("object %s is left after the call", k)
			}
		}
		if got := written.written(); len(got) != 1 || got[0] != "payloads/acme/stash/stray" {
			t.Errorf("the store took %v, want only the object under the integration's prefix", got)
		}
	})

	t.Run("deleting the integration deletes what it stored", func(t *testing.T) {
		failing := h.Sinks.New(failWith(http.StatusBadRequest))
		held := h.Create(t, specYAML("held", "held", sinkYAML("api", failing, "")))
		id := h.Emit(t, "held", `"`+strings.Repeat("h", runtime.DefaultClaimThreshold)+`"`)
		h.WaitDeadLetters(t, "held", 1)
		if !objectExists(t, bs, payloadKey("held", id)) {
			t.Fatal("the dead letter's payload object is missing before the delete")
		}
		gd := g.Create(t, specYAML("held", "gheld", sinkYAML("api", failing, "")))
		g.Emit(t, "gheld", `{"kept":true}`)
		g.WaitDeadLetters(t, "held", 1)

		h.Delete(t, held)
		h.Delete(t, hogSpec)
		if objectExists(t, bs, payloadKey("held", id)) {
			t.Error("the deleted integration's payload object is still there")
		}
		if dls := h.DeadLetters(t, "held"); len(dls) != 0 {
			t.Errorf("the deleted integration has %d dead letters, want none", len(dls))
		}
		markers, err := conn.JS.KeyValue(ctx, "vrsky_claims")
		if err != nil {
			t.Fatal(err)
		}
		if lister, err := markers.ListKeysFiltered(ctx, "payloads.acme.held.>"); err == nil {
			for k := range lister.Keys() {
				t.Errorf("claim-check marker %s is left", k)
			}
		}
		if _, err := bucket(t, "acme", "hog"); !errors.Is(err, jetstream.ErrBucketNotFound) {
			t.Errorf("acme's step KV bucket: err = %v, want ErrBucketNotFound", err)
		}
		if st, err := bucket(t, "globex", "hog"); err != nil || st.Values() == 0 {
			t.Errorf("globex's step KV bucket after acme's delete: %v, %v", st, err)
		}
		if dls := g.DeadLetters(t, gd.Name); len(dls) != 1 {
			t.Errorf("globex's dead letters after acme's delete: %d, want 1", len(dls))
		}
	})

	if st := h.Engine.Status(ctx, "globex", globex); st.State != store.StateRunning {
		t.Fatalf("globex's integration: %+v", st)
	}
	victim.unaffected(t, bs)
}

package runtime_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	httpconn "github.com/vrsky/vrsky/builtin/http"
	"github.com/vrsky/vrsky/platform/natsx"
	"github.com/vrsky/vrsky/platform/natsx/natsxtest"
	"github.com/vrsky/vrsky/platform/store"
	"github.com/vrsky/vrsky/runtime"
)

// harness is a real engine on a real embedded NATS with the NATS KV store.
type harness struct {
	conn  *natsx.Conn
	store store.Store
	eng   *runtime.Engine
	stop  func()
}

func newHarness(t *testing.T, conn *natsx.Conn, opts ...func(*runtime.Config)) *harness {
	t.Helper()
	ctx := context.Background()
	st, err := store.NewNATS(ctx, conn.JS, 1)
	if err != nil {
		t.Fatal(err)
	}
	cat, err := runtime.NewCatalog(httpconn.Webhook, httpconn.Sink)
	if err != nil {
		t.Fatal(err)
	}
	cfg := runtime.Config{Conn: conn, Store: st, Catalog: cat, ReconcileInterval: time.Hour}
	for _, o := range opts {
		o(&cfg)
	}
	eng, err := runtime.NewEngine(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = eng.Run(rctx) }()
	var once sync.Once
	h := &harness{conn: conn, store: st, eng: eng, stop: func() { once.Do(func() { cancel(); <-done }) }}
	t.Cleanup(h.stop)
	if _, err := st.CreateTenant(ctx, store.Tenant{Name: "acme"}); err != nil && !isExists(err) {
		t.Fatal(err)
	}
	return h
}

func isExists(err error) bool {
	return err != nil && strings.Contains(err.Error(), store.ErrExists.Error())
}

// create stores and starts an integration from a YAML spec.
func (h *harness) create(t *testing.T, yaml string) *runtime.Spec {
	t.Helper()
	spec, err := h.eng.ParseSpec([]byte(yaml))
	if err != nil {
		t.Fatalf("parse spec: %v", err)
	}
	in, err := h.store.CreateIntegration(context.Background(), store.Integration{
		Tenant: "acme", Name: spec.Name, Spec: spec.JSON(), Desired: store.StateRunning,
	})
	if err != nil {
		t.Fatal(err)
	}
	h.eng.Apply(in)
	if st := h.eng.Status(context.Background(), "acme", spec); st.State != store.StateRunning {
		t.Fatalf("integration not running: %+v", st)
	}
	return spec
}

// post sends a webhook request and returns the message id.
func (h *harness) post(t *testing.T, path, body string) string {
	t.Helper()
	resp, err := h.eng.Hooks().Serve(context.Background(), "acme", path, &runtime.HookRequest{
		Method: "POST", Header: runtime.Header{"Content-Type": {"application/json"}}, Body: []byte(body),
	})
	if err != nil {
		t.Fatalf("hook: %v", err)
	}
	if resp.Status != http.StatusAccepted {
		t.Fatalf("hook answered %d: %s", resp.Status, resp.Body)
	}
	return resp.Header.Get(runtime.HeaderMsgID)
}

// recorder is a real HTTP sink endpoint. fail decides, per attempt of a
// message id, which status to answer (0 means 200).
type recorder struct {
	srv      *httptest.Server
	mu       sync.Mutex
	bodies   map[string]string // by Idempotency-Key
	attempts map[string]int
	times    map[string][]time.Time
	fail     func(id string, attempt int) int
}

func newRecorder(t *testing.T, fail func(id string, attempt int) int) *recorder {
	r := &recorder{bodies: map[string]string{}, attempts: map[string]int{}, times: map[string][]time.Time{}, fail: fail}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, err := io.ReadAll(req.Body)
		if err != nil { // a cut-off body is not a delivery
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		id := req.Header.Get("Idempotency-Key")
		r.mu.Lock()
		r.attempts[id]++
		n := r.attempts[id]
		r.times[id] = append(r.times[id], time.Now())
		code := 0
		if r.fail != nil {
			code = r.fail(id, n)
		}
		if code == 0 {
			r.bodies[id] = string(b)
		}
		r.mu.Unlock()
		if code != 0 {
			http.Error(w, "failing on purpose", code)
		}
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *recorder) delivered() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]string, len(r.bodies))
	for k, v := range r.bodies {
		out[k] = v
	}
	return out
}

func (r *recorder) attemptsOf(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.attempts[id]
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func specYAML(name, path string, sinks ...string) string {
	return fmt.Sprintf(`name: %s
source: {connector: http-webhook, config: {path: %s}}
sinks:
%s
retry: {max_attempts: 3, initial_backoff: 50ms, max_backoff: 400ms}
`, name, path, strings.Join(sinks, "\n"))
}

func sinkYAML(name, url, when string) string {
	s := fmt.Sprintf("  - name: %s\n    connector: http\n    config: {url: %q}", name, url)
	if when != "" {
		s += fmt.Sprintf("\n    when: %q", when)
	}
	return s
}

func TestEndToEndDelivery(t *testing.T) {
	h := newHarness(t, natsxtest.Start(t))
	rec := newRecorder(t, nil)
	h.create(t, specYAML("orders", "orders", sinkYAML("api", rec.srv.URL, "")))

	want := map[string]string{}
	for i := range 50 {
		body := fmt.Sprintf(`{"order_id":%d}`, i)
		want[h.post(t, "orders", body)] = body
	}
	waitFor(t, 10*time.Second, "50 deliveries", func() bool { return len(rec.delivered()) == 50 })
	got := rec.delivered()
	for id, body := range want {
		if got[id] != body {
			t.Errorf("message %s: sink got %q, want %q", id, got[id], body)
		}
	}
}

func TestSinksAreIndependent(t *testing.T) {
	h := newHarness(t, natsxtest.Start(t))
	up := newRecorder(t, nil)
	down := newRecorder(t, func(string, int) int { return http.StatusServiceUnavailable })
	h.create(t, specYAML("fanout", "fanout", sinkYAML("up", up.srv.URL, ""), sinkYAML("down", down.srv.URL, "")))

	ids := make([]string, 20)
	for i := range ids {
		ids[i] = h.post(t, "fanout", `{"n":1}`)
	}
	waitFor(t, 10*time.Second, "the healthy sink to get all 20", func() bool { return len(up.delivered()) == 20 })
	if n := len(down.delivered()); n != 0 {
		t.Fatalf("failing sink recorded %d successes", n)
	}
	if down.attemptsOf(ids[0]) == 0 {
		t.Fatal("the failing sink was never tried")
	}
}

func TestWhenRouting(t *testing.T) {
	h := newHarness(t, natsxtest.Start(t))
	all := newRecorder(t, nil)
	big := newRecorder(t, nil)
	h.create(t, specYAML("route", "route", sinkYAML("all", all.srv.URL, ""), sinkYAML("big", big.srv.URL, "total > 1000")))

	small := h.post(t, "route", `{"total": 5}`)
	large := h.post(t, "route", `{"total": 5000}`)
	waitFor(t, 10*time.Second, "both messages at the unconditional sink", func() bool { return len(all.delivered()) == 2 })
	waitFor(t, 10*time.Second, "the large order at the routed sink", func() bool { return len(big.delivered()) == 1 })
	got := big.delivered()
	if _, ok := got[large]; !ok {
		t.Fatalf("routed sink got %v, want only %s", got, large)
	}
	if _, ok := got[small]; ok {
		t.Fatalf("routed sink got the small order %s", small)
	}
}

func TestRetryThenSuccess(t *testing.T) {
	h := newHarness(t, natsxtest.Start(t))
	rec := newRecorder(t, func(_ string, attempt int) int {
		if attempt <= 2 {
			return http.StatusBadGateway
		}
		return 0
	})
	h.create(t, specYAML("flaky", "flaky", sinkYAML("api", rec.srv.URL, "")))
	id := h.post(t, "flaky", `{"x":1}`)
	waitFor(t, 10*time.Second, "delivery after two failures", func() bool { return len(rec.delivered()) == 1 })
	if n := rec.attemptsOf(id); n != 3 {
		t.Fatalf("attempts = %d, want 3", n)
	}
	rec.mu.Lock()
	ts := rec.times[id]
	rec.mu.Unlock()
	first, second := ts[1].Sub(ts[0]), ts[2].Sub(ts[1])
	if first < 40*time.Millisecond || second < 80*time.Millisecond {
		t.Fatalf("backoff delays %v, %v; want ≥ 50ms then ≥ 100ms (exponential)", first, second)
	}
	tr := waitTrace(t, h, "flaky", id, runtime.StatusDelivered)
	var failed []int
	for _, s := range tr.Stages {
		if s.Stage == "sink:api" && s.Status == runtime.StatusFailed {
			failed = append(failed, s.Attempt)
		}
	}
	if fmt.Sprint(failed) != "[1 2]" {
		t.Fatalf("tracked failed attempts %v, want [1 2]; trace %+v", failed, tr)
	}
}

// waitTrace polls the message's trace until it reaches state.
func waitTrace(t *testing.T, h *harness, integration, id, state string) *runtime.MessageTrace {
	t.Helper()
	var tr *runtime.MessageTrace
	waitFor(t, 10*time.Second, "trace state "+state, func() bool {
		var err error
		tr, err = h.eng.Trace(context.Background(), "acme", integration, id)
		return err == nil && tr.State == state
	})
	return tr
}

func TestTraceUnknownAndFiltered(t *testing.T) {
	h := newHarness(t, natsxtest.Start(t))
	rec := newRecorder(t, nil)
	h.create(t, specYAML("tr", "tr", sinkYAML("big", rec.srv.URL, "total > 10")))
	if _, err := h.eng.Trace(context.Background(), "acme", "tr", "no-such-id"); err != runtime.ErrUnknownMessage {
		t.Fatalf("unknown id: err = %v, want ErrUnknownMessage", err)
	}
	small := h.post(t, "tr", `{"total": 1}`)
	big := h.post(t, "tr", `{"total": 100}`)
	waitTrace(t, h, "tr", small, runtime.StatusFiltered)
	tr := waitTrace(t, h, "tr", big, runtime.StatusDelivered)
	// Routed at emit (no steps), one record stands for accepted and
	// route; the trace still shows both, accepted first.
	if len(tr.Stages) < 3 || tr.Stages[0].Stage != "accepted" || tr.Stages[1].Stage != "route" || tr.Stages[0].At.IsZero() {
		t.Fatalf("trace stages %+v, want accepted, route, sink", tr.Stages)
	}
	// Another tenant's view of the same id knows nothing.
	if _, err := h.eng.Trace(context.Background(), "other", "tr", big); err != runtime.ErrUnknownMessage {
		t.Fatalf("other tenant: err = %v, want ErrUnknownMessage", err)
	}
}

// dlqMessages reads the tenant's dead letters for an integration.
func dlqMessages(t *testing.T, h *harness, integration string, want int) []jetstream.Msg {
	t.Helper()
	ctx := context.Background()
	var msgs []jetstream.Msg
	waitFor(t, 10*time.Second, fmt.Sprintf("%d dead letters", want), func() bool {
		s, err := h.conn.JS.Stream(ctx, "VRSKY_DLQ_acme")
		if err != nil {
			return false
		}
		info, err := s.Info(ctx)
		return err == nil && info.State.Msgs == uint64(want)
	})
	c, err := h.conn.JS.OrderedConsumer(ctx, "VRSKY_DLQ_acme", jetstream.OrderedConsumerConfig{FilterSubjects: []string{runtime.SubjectDLQ("acme", integration)}})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := c.FetchNoWait(want)
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() {
		msgs = append(msgs, m)
	}
	if len(msgs) != want {
		t.Fatalf("read %d dead letters, want %d", len(msgs), want)
	}
	return msgs
}

func TestDeadLetterAfterLastAttempt(t *testing.T) {
	for _, tc := range []struct {
		name     string
		status   int
		attempts int
	}{
		{"retryable 503 uses all attempts", http.StatusServiceUnavailable, 3},
		{"permanent 400 skips retries", http.StatusBadRequest, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, natsxtest.Start(t))
			rec := newRecorder(t, func(string, int) int { return tc.status })
			h.create(t, specYAML("doomed", "doomed", sinkYAML("api", rec.srv.URL, "")))
			id := h.post(t, "doomed", `{"x":1}`)
			dl := dlqMessages(t, h, "doomed", 1)[0]
			if got := rec.attemptsOf(id); got != tc.attempts {
				t.Fatalf("sink saw %d attempts, want %d", got, tc.attempts)
			}
			hd := runtime.Header(dl.Headers())
			if hd.Get(runtime.HeaderMsgID) != id || hd.Get(runtime.HeaderStage) != "sink:api" ||
				hd.Get(runtime.HeaderAttempts) != strconv.Itoa(tc.attempts) || !strings.Contains(hd.Get(runtime.HeaderError), strconv.Itoa(tc.status)) {
				t.Fatalf("dead letter headers = %v", hd)
			}
			if string(dl.Data()) != `{"x":1}` {
				t.Fatalf("dead letter payload = %q", dl.Data())
			}
			var log []struct {
				Attempt int
				Error   string
			}
			if err := json.Unmarshal([]byte(hd.Get(runtime.HeaderAttemptLog)), &log); err != nil || len(log) != tc.attempts {
				t.Fatalf("attempt log %q (err %v), want %d entries", hd.Get(runtime.HeaderAttemptLog), err, tc.attempts)
			}
			for i, a := range log {
				if a.Attempt != i+1 || !strings.Contains(a.Error, strconv.Itoa(tc.status)) {
					t.Fatalf("attempt log entry %d = %+v", i, a)
				}
			}
			waitTrace(t, h, "doomed", id, runtime.StatusDeadLettered)
		})
	}
}

func TestRestartResumesPendingWork(t *testing.T) {
	dir := t.TempDir()
	conn := natsxtest.StartIn(t, dir)
	h := newHarness(t, conn)
	var mu sync.Mutex
	sinkUp := false
	rec := newRecorder(t, func(string, int) int {
		mu.Lock()
		defer mu.Unlock()
		if sinkUp {
			return 0
		}
		return http.StatusServiceUnavailable
	})
	spec := h.create(t, strings.Replace(specYAML("resume", "resume", sinkYAML("api", rec.srv.URL, "")), "max_attempts: 3", "max_attempts: 100", 1))
	ids := []string{h.post(t, "resume", `{"a":1}`), h.post(t, "resume", `{"a":2}`)}
	waitFor(t, 5*time.Second, "a first failed attempt", func() bool { return rec.attemptsOf(ids[1]) > 0 })
	h.stop()
	if st := h.eng.Status(context.Background(), "acme", spec); st.State != store.StateStopped {
		t.Fatalf("after stop: state %s", st.State)
	}

	mu.Lock()
	sinkUp = true
	mu.Unlock()
	// A new engine on the same NATS and store restarts what was running.
	h2 := newHarness(t, conn)
	waitFor(t, 10*time.Second, "pending messages delivered after restart", func() bool { return len(rec.delivered()) == 2 })
	waitFor(t, 10*time.Second, "state running after restart", func() bool {
		return h2.eng.Status(context.Background(), "acme", spec).State == store.StateRunning
	})
}

func TestDeadLetterReplay(t *testing.T) {
	h := newHarness(t, natsxtest.Start(t))
	var mu sync.Mutex
	up := false
	rec := newRecorder(t, func(string, int) int {
		mu.Lock()
		defer mu.Unlock()
		if up {
			return 0
		}
		return http.StatusServiceUnavailable
	})
	spec := h.create(t, specYAML("replay", "replay", sinkYAML("api", rec.srv.URL, "")))
	ids := []string{h.post(t, "replay", `{"n":1}`), h.post(t, "replay", `{"n":2}`), h.post(t, "replay", `{"n":3}`)}
	dlqMessages(t, h, "replay", 3)
	ctx := context.Background()

	page, next, err := h.eng.ListDeadLetters(ctx, "acme", "replay", runtime.DLQFilter{Limit: 2})
	if err != nil || len(page) != 2 || next == "" {
		t.Fatalf("first page: %d entries, next %q, err %v", len(page), next, err)
	}
	if a, b := page[0].ID, page[1].ID; len(a) < len(b) || (len(a) == len(b) && a <= b) {
		t.Fatalf("not newest first: ids %s, %s", a, b)
	}
	rest, next2, err := h.eng.ListDeadLetters(ctx, "acme", "replay", runtime.DLQFilter{Before: next})
	if err != nil || len(rest) != 1 || next2 != "" {
		t.Fatalf("second page: %+v, next %q, err %v", rest, next2, err)
	}
	listed := map[string]bool{page[0].MessageID: true, page[1].MessageID: true, rest[0].MessageID: true}
	for _, id := range ids {
		if !listed[id] {
			t.Fatalf("message %s missing from the pages", id)
		}
	}
	if other, _, _ := h.eng.ListDeadLetters(ctx, "acme", "replay", runtime.DLQFilter{Stage: "sink:other"}); len(other) != 0 {
		t.Fatalf("stage filter kept %d entries", len(other))
	}
	if _, err := h.eng.GetDeadLetter(ctx, "other-tenant", "replay", page[0].ID); err != runtime.ErrNoDeadLetter {
		t.Fatalf("another tenant read a dead letter: %v", err)
	}
	bodies := map[string]string{ids[0]: `{"n":1}`, ids[1]: `{"n":2}`, ids[2]: `{"n":3}`}
	full, err := h.eng.GetDeadLetter(ctx, "acme", "replay", page[0].ID)
	if err != nil || string(full.Payload) != bodies[page[0].MessageID] || full.Attempts != 3 || full.Stage != "sink:api" {
		t.Fatalf("get: %+v, err %v", full, err)
	}

	// Delete one, then the sink recovers and the others are replayed, twice.
	if err := h.eng.DeleteDeadLetter(ctx, "acme", "replay", rest[0].ID); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	up = true
	mu.Unlock()
	if err := h.eng.ReplayDeadLetter(ctx, "acme", spec, page[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := h.eng.ReplayDeadLetter(ctx, "acme", spec, page[0].ID); err != runtime.ErrNoDeadLetter {
		t.Fatalf("second replay of one entry: err = %v, want ErrNoDeadLetter", err)
	}
	n, err := h.eng.ReplayDeadLetters(ctx, "acme", spec, "")
	if err != nil || n != 1 {
		t.Fatalf("replay all: %d, %v; want 1", n, err)
	}
	waitFor(t, 10*time.Second, "two replayed deliveries", func() bool { return len(rec.delivered()) == 2 })
	got := rec.delivered()
	if _, ok := got[rest[0].MessageID]; ok {
		t.Fatal("the deleted dead letter was delivered")
	}
	if left, _, _ := h.eng.ListDeadLetters(ctx, "acme", "replay", runtime.DLQFilter{}); len(left) != 0 {
		t.Fatalf("%d dead letters left after replay", len(left))
	}
	waitTrace(t, h, "replay", page[0].MessageID, runtime.StatusDelivered)
}

func TestIdempotencyKeyStoresOnce(t *testing.T) {
	h := newHarness(t, natsxtest.Start(t))
	rec := newRecorder(t, nil)
	h.create(t, specYAML("idem", "idem", sinkYAML("api", rec.srv.URL, "")))
	post := func(key, body string) string {
		resp, err := h.eng.Hooks().Serve(context.Background(), "acme", "idem", &runtime.HookRequest{
			Method: "POST", Header: runtime.Header{"Idempotency-Key": {key}}, Body: []byte(body),
		})
		if err != nil || resp.Status != http.StatusAccepted {
			t.Fatalf("post: %v %+v", err, resp)
		}
		return resp.Header.Get(runtime.HeaderMsgID)
	}
	first := post("order-42", `{"n":1}`)
	second := post("order-42", `{"n":1}`)
	other := post("order-43", `{"n":2}`)
	if first != "order-42" || second != first {
		t.Fatalf("ids %q, %q; want the Idempotency-Key as the message id", first, second)
	}
	waitFor(t, 10*time.Second, "two distinct deliveries", func() bool { return len(rec.delivered()) == 2 })
	if n := rec.attemptsOf(first); n != 1 {
		t.Fatalf("a retried POST was delivered %d times, want once", n)
	}
	if rec.attemptsOf(other) != 1 {
		t.Fatal("the other key was not delivered")
	}
}

// A webhook serves from the moment its integration reports running, and a
// second integration of the tenant on the same path fails to start, at
// once and saying why, while the first keeps its path.
func TestWebhookBoundBeforeRunning(t *testing.T) {
	h := newHarness(t, natsxtest.Start(t))
	rec := newRecorder(t, nil)
	h.create(t, specYAML("first", "shared", sinkYAML("api", rec.srv.URL, "")))
	id := h.post(t, "shared", `{"n":1}`) // no wait between running and the first post
	spec, err := h.eng.ParseSpec([]byte(specYAML("second", "shared", sinkYAML("api", rec.srv.URL, ""))))
	if err != nil {
		t.Fatal(err)
	}
	in, err := h.store.CreateIntegration(context.Background(), store.Integration{
		Tenant: "acme", Name: spec.Name, Spec: spec.JSON(), Desired: store.StateRunning,
	})
	if err != nil {
		t.Fatal(err)
	}
	h.eng.Apply(in)
	st := h.eng.Status(context.Background(), "acme", spec)
	if st.State != "error" || !strings.Contains(st.Error, "already served") {
		t.Fatalf("second integration on the same path: %+v, want state error naming the conflict", st)
	}
	waitFor(t, 10*time.Second, "the first message", func() bool { return rec.delivered()[id] != "" })
	h.post(t, "shared", `{"n":2}`) // still the first integration's
}

package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vrsky/vrsky/platform/blob"
	"github.com/vrsky/vrsky/runtime"
)

// flakySink is a real HTTP sink that answers a chosen status until told
// otherwise, and counts requests per message id (Idempotency-Key).
type flakySink struct {
	srv       *httptest.Server
	mu        sync.Mutex
	status    int // answered to every request; 0 succeeds with 204
	attempts  map[string]int
	delivered map[string]int
	bodies    map[string][]byte // the last body delivered, per id
}

func newFlakySink(t *testing.T, status int) *flakySink {
	t.Helper()
	f := &flakySink{status: status, attempts: map[string]int{}, delivered: map[string]int{}, bodies: map[string][]byte{}}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		id := r.Header.Get("Idempotency-Key")
		f.mu.Lock()
		status := f.status
		f.attempts[id]++
		if status == 0 {
			f.delivered[id]++
			f.bodies[id] = body
			status = http.StatusNoContent
		}
		f.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *flakySink) setStatus(status int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status = status
}

func (f *flakySink) body(id string) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.bodies[id]
}

func (f *flakySink) counts(id string) (attempts, delivered int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.attempts[id], f.delivered[id]
}

// retrySpec is webhookSpec with a fast retry policy: 3 attempts, 50ms
// doubling to at most 200ms.
func retrySpec(name, path, sinkURL string) string {
	return webhookSpec(name, path, sinkURL) + "retry: {max_attempts: 3, initial_backoff: 50ms, max_backoff: 200ms}\n"
}

// post sends body to tenant's webhook path and returns the message id.
func (e *testEnv) post(tenant, path, body string) string {
	e.t.Helper()
	id := e.must(http.StatusAccepted, req{method: "POST", path: "/hooks/" + tenant + "/" + path, body: body, contentType: "application/json"}).str("id")
	if id == "" {
		e.t.Fatal("the webhook answered no message id")
	}
	return id
}

// dlqPage is GET .../dlq's answer.
type dlqPage struct {
	Items []deadLetterView `json:"items"`
	Next  string           `json:"next"`
}

type attemptEntry struct {
	Attempt int       `json:"attempt"`
	At      time.Time `json:"at"`
	Error   string    `json:"error"`
}

// listDLQ gets path (a .../dlq URL) and decodes the page.
func (e *testEnv) listDLQ(key, path string) (dlqPage, resp) {
	e.t.Helper()
	r := e.must(http.StatusOK, req{method: "GET", path: path, key: key})
	var p dlqPage
	if err := json.Unmarshal(r.raw, &p); err != nil {
		e.t.Fatalf("GET %s: %v\n%s", path, err, r.raw)
	}
	if p.Items == nil {
		e.t.Fatalf("GET %s: items is not an array: %s", path, r.raw)
	}
	return p, r
}

// waitDLQ polls GET .../integrations/{name}/dlq until it lists n entries.
func (e *testEnv) waitDLQ(key, name string, n int) dlqPage {
	e.t.Helper()
	var p dlqPage
	eventually(e.t, 15*time.Second, strconv.Itoa(n)+" dead letters in "+name, func() bool {
		p, _ = e.listDLQ(key, "/api/v1/integrations/"+name+"/dlq")
		return len(p.Items) == n
	})
	return p
}

// waitState polls GET .../messages/{id} until the message's state is want.
func (e *testEnv) waitState(key, name, id, want string) resp {
	e.t.Helper()
	var r resp
	eventually(e.t, 15*time.Second, "message "+id+" to be "+want, func() bool {
		r = e.do(req{method: "GET", path: "/api/v1/integrations/" + name + "/messages/" + id, key: key})
		return r.status == http.StatusOK && r.str("state") == want
	})
	return r
}

// checkDeadLetter checks an entry against what the sink answered.
func checkDeadLetter(t *testing.T, dl deadLetterView, msgID string, attempts, status int) {
	t.Helper()
	if dl.MessageID != msgID || dl.Stage != "sink:out" || dl.Attempts != attempts ||
		!strings.Contains(dl.Error, strconv.Itoa(status)) || dl.ID == "" || dl.At.IsZero() {
		t.Fatalf("dead letter %+v: want message %s, stage sink:out, %d attempts, error with %d", dl, msgID, attempts, status)
	}
	var log []attemptEntry
	if err := json.Unmarshal(dl.AttemptLog, &log); err != nil || len(log) != attempts {
		t.Fatalf("attempt_log %s (%v): want %d entries", dl.AttemptLog, err, attempts)
	}
	for i, a := range log {
		if a.Attempt != i+1 || a.At.IsZero() || !strings.Contains(a.Error, strconv.Itoa(status)) {
			t.Fatalf("attempt_log[%d] = %+v", i, a)
		}
	}
}

// TestDeadLetterRetryAndReplay: a sink that always answers 503 gets exactly
// 3 attempts, the message lands in the DLQ with all three, tracking says
// dead_lettered; once the sink recovers a replay delivers it once, a second
// replay answers 404, and tracking says delivered.
func TestDeadLetterRetryAndReplay(t *testing.T) {
	e := newTestEnv(t)
	key := e.createTenant("acme")
	sink := newFlakySink(t, http.StatusServiceUnavailable)
	e.createIntegration(key, retrySpec("orders", "orders", sink.srv.URL))
	e.must(http.StatusOK, req{method: "POST", path: "/api/v1/integrations/orders/start", key: key})
	payload := `{"order_id":7,"note":"grüße"}`
	id := e.post("acme", "orders", payload)

	page := e.waitDLQ(key, "orders", 1)
	_, raw := e.listDLQ(key, "/api/v1/integrations/orders/dlq")
	conforms(t, "DeadLetterPage", raw.raw)
	if page.Next != "" {
		t.Fatalf("next %q on the only page", page.Next)
	}
	dl := page.Items[0]
	checkDeadLetter(t, dl, id, 3, http.StatusServiceUnavailable)
	if dl.PayloadBase64 != nil || dl.PayloadText != nil {
		t.Fatalf("a listing carries the payload: %s", raw.raw)
	}
	if attempts, delivered := sink.counts(id); attempts != 3 || delivered != 0 {
		t.Fatalf("the sink saw %d attempts, %d deliveries; want 3, 0", attempts, delivered)
	}
	// The status tells the depth from the running total; /metrics has both,
	// and the failures, at the same stage.
	e.waitSinkStatus(key, "orders", sinkCounts{DLQDepth: 1, DeadLetteredTotal: 1, FailuresTotal: 3})
	e.waitMetrics(`vrsky_dlq_depth{integration="orders",stage="sink:out",tenant="acme"} 1`,
		`vrsky_messages_dead_lettered_total{integration="orders",stage="sink:out",tenant="acme"} 1`,
		`vrsky_attempt_failures_total{integration="orders",stage="sink:out",tenant="acme"} 3`,
		`vrsky_sink_delivery_seconds_count{integration="orders",outcome="retryable",stage="sink:out",tenant="acme"} 3`)

	// One entry, with its payload.
	one := e.must(http.StatusOK, req{method: "GET", path: "/api/v1/integrations/orders/dlq/" + dl.ID, key: key})
	conforms(t, "DeadLetter", one.raw)
	var full deadLetterView
	if err := json.Unmarshal(one.raw, &full); err != nil {
		t.Fatal(err)
	}
	checkDeadLetter(t, full, id, 3, http.StatusServiceUnavailable)
	if full.PayloadBase64 == nil || full.PayloadText == nil || *full.PayloadText != payload || full.Size != len(payload) {
		t.Fatalf("GET dlq/%s: %s", dl.ID, one.raw)
	}
	if b, err := base64.StdEncoding.DecodeString(*full.PayloadBase64); err != nil || string(b) != payload {
		t.Fatalf("payload_base64 decodes to %q (%v)", b, err)
	}

	// Tracking: dead-lettered, with the three failed attempts.
	tr := e.waitState(key, "orders", id, runtime.StatusDeadLettered)
	conforms(t, "MessageTrace", tr.raw)
	var trace runtime.MessageTrace
	if err := json.Unmarshal(tr.raw, &trace); err != nil {
		t.Fatal(err)
	}
	failed := 0
	for _, s := range trace.Stages {
		if s.Stage == "sink:out" && s.Status == runtime.StatusFailed {
			failed++
		}
	}
	if trace.ID != id || trace.Integration != "orders" || failed != 3 {
		t.Fatalf("trace %s: want 3 failed attempts at sink:out", tr.raw)
	}
	// A wildcard is not an id (in the KV bucket it would match every message).
	e.must(http.StatusNotFound, req{method: "GET", path: "/api/v1/integrations/orders/messages/*", key: key})

	// The sink recovers; replay delivers the message once.
	sink.setStatus(0)
	rp := e.must(http.StatusOK, req{method: "POST", path: "/api/v1/integrations/orders/dlq/" + dl.ID + "/replay", key: key})
	conforms(t, "Replayed", rp.raw)
	if n, _ := rp.body["replayed"].(float64); n != 1 {
		t.Fatalf("replay answered %s", rp.raw)
	}
	again := e.must(http.StatusNotFound, req{method: "POST", path: "/api/v1/integrations/orders/dlq/" + dl.ID + "/replay", key: key})
	if again.errField("code") != string(CodeNotFound) {
		t.Fatalf("second replay answered %s", again.raw)
	}
	e.waitState(key, "orders", id, runtime.StatusDelivered)
	if attempts, delivered := sink.counts(id); attempts != 4 || delivered != 1 {
		t.Fatalf("after replay the sink saw %d attempts, %d deliveries; want 4, 1", attempts, delivered)
	}
	if p, _ := e.listDLQ(key, "/api/v1/integrations/orders/dlq"); len(p.Items) != 0 {
		t.Fatalf("%d dead letters left after replay", len(p.Items))
	}
	e.waitSinkStatus(key, "orders", sinkCounts{DLQDepth: 0, DeadLetteredTotal: 1, FailuresTotal: 3, DeliveredTotal: 1})
	e.waitMetrics(`vrsky_dlq_depth{integration="orders",stage="sink:out",tenant="acme"} 0`,
		`vrsky_messages_delivered_total{integration="orders",stage="sink:out",tenant="acme"} 1`,
		`vrsky_sink_delivery_seconds_count{integration="orders",outcome="ok",stage="sink:out",tenant="acme"} 1`)
	e.must(http.StatusNotFound, req{method: "GET", path: "/api/v1/integrations/orders/dlq/" + dl.ID, key: key})
}

// sinkCounts are the counters of an integration's only sink in its status.
type sinkCounts struct {
	DeliveredTotal    uint64 `json:"delivered_total"`
	FailuresTotal     uint64 `json:"failures_total"`
	DeadLetteredTotal uint64 `json:"dead_lettered_total"`
	DLQDepth          uint64 `json:"dlq_depth"`
}

// waitSinkStatus waits until GET /api/v1/integrations/{name} shows want
// for its only sink, and checks the answer against the document.
func (e *testEnv) waitSinkStatus(key, name string, want sinkCounts) {
	e.t.Helper()
	var last []byte
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := e.must(http.StatusOK, req{method: "GET", path: "/api/v1/integrations/" + name, key: key})
		var v struct {
			Status struct{ Sinks []sinkCounts } `json:"status"`
		}
		if err := json.Unmarshal(r.raw, &v); err != nil {
			e.t.Fatal(err)
		}
		if len(v.Status.Sinks) == 1 && v.Status.Sinks[0] == want {
			conforms(e.t, "Integration", r.raw)
			return
		}
		last = r.raw
		if time.Now().After(deadline) {
			e.t.Fatalf("status of %s: want sink counts %+v, got %s", name, want, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitMetrics waits until a GET /metrics holds every line of want.
func (e *testEnv) waitMetrics(want ...string) {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := e.must(http.StatusOK, req{method: "GET", path: "/metrics"})
		lines := map[string]bool{}
		for _, l := range strings.Split(string(r.raw), "\n") {
			lines[l] = true
		}
		var missing []string
		for _, w := range want {
			if !lines[w] {
				missing = append(missing, w)
			}
		}
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("/metrics lacks %q", missing)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestDeadLetterPermanent: a 400 from the sink is permanent: in the DLQ
// after 1 attempt. Deleting the entry removes it for good.
func TestDeadLetterPermanent(t *testing.T) {
	e := newTestEnv(t)
	key := e.createTenant("acme")
	sink := newFlakySink(t, http.StatusBadRequest)
	e.createIntegration(key, retrySpec("orders", "orders", sink.srv.URL))
	e.must(http.StatusOK, req{method: "POST", path: "/api/v1/integrations/orders/start", key: key})
	// Not UTF-8: the payload comes as base64 only.
	payload := "{\"bin\":\"\xff\xfe\"}"
	// The client's Idempotency-Key is the message id; dots and all, it is
	// one path segment of .../messages/{id}.
	const id = "order.7_x-1"
	e.must(http.StatusAccepted, req{method: "POST", path: "/hooks/acme/orders", body: payload, contentType: "application/json",
		header: map[string]string{"Idempotency-Key": id}})

	dl := e.waitDLQ(key, "orders", 1).Items[0]
	checkDeadLetter(t, dl, id, 1, http.StatusBadRequest)
	e.waitState(key, "orders", id, runtime.StatusDeadLettered)
	if attempts, delivered := sink.counts(id); attempts != 1 || delivered != 0 {
		t.Fatalf("the sink saw %d attempts, %d deliveries; want 1, 0", attempts, delivered)
	}
	one := e.must(http.StatusOK, req{method: "GET", path: "/api/v1/integrations/orders/dlq/" + dl.ID, key: key})
	conforms(t, "DeadLetter", one.raw)
	if one.str("payload_text") != "" || one.str("payload_base64") != base64.StdEncoding.EncodeToString([]byte(payload)) {
		t.Fatalf("GET dlq/%s: %s", dl.ID, one.raw)
	}

	e.must(http.StatusNoContent, req{method: "DELETE", path: "/api/v1/integrations/orders/dlq/" + dl.ID, key: key})
	e.must(http.StatusNotFound, req{method: "DELETE", path: "/api/v1/integrations/orders/dlq/" + dl.ID, key: key})
	e.must(http.StatusNotFound, req{method: "GET", path: "/api/v1/integrations/orders/dlq/" + dl.ID, key: key})
	e.must(http.StatusNotFound, req{method: "POST", path: "/api/v1/integrations/orders/dlq/" + dl.ID + "/replay", key: key})
	if p, _ := e.listDLQ(key, "/api/v1/integrations/orders/dlq"); len(p.Items) != 0 {
		t.Fatalf("%d dead letters left after delete", len(p.Items))
	}
	if attempts, _ := sink.counts(id); attempts != 1 {
		t.Fatalf("the deleted message reached the sink again: %d attempts", attempts)
	}
}

// TestDeadLetterPagingAndReplayAll: pages, the stage filter, replay of a
// whole stage, and a replay whose sink has left the integration (409).
func TestDeadLetterPagingAndReplayAll(t *testing.T) {
	e := newTestEnv(t)
	key := e.createTenant("acme")
	sink := newFlakySink(t, http.StatusBadRequest)
	e.createIntegration(key, retrySpec("orders", "orders", sink.srv.URL))
	e.must(http.StatusOK, req{method: "POST", path: "/api/v1/integrations/orders/start", key: key})
	ids := map[string]bool{}
	for i := range 3 {
		ids[e.post("acme", "orders", `{"n":`+strconv.Itoa(i)+`}`)] = true
	}
	all := e.waitDLQ(key, "orders", 3)
	for i := 1; i < len(all.Items); i++ {
		a, _ := strconv.Atoi(all.Items[i-1].ID)
		b, _ := strconv.Atoi(all.Items[i].ID)
		if a <= b {
			t.Fatalf("not newest first: %s before %s", all.Items[i-1].ID, all.Items[i].ID)
		}
	}

	first, _ := e.listDLQ(key, "/api/v1/integrations/orders/dlq?limit=2")
	if len(first.Items) != 2 || first.Next == "" {
		t.Fatalf("first page: %+v", first)
	}
	second, _ := e.listDLQ(key, "/api/v1/integrations/orders/dlq?limit=2&before="+first.Next)
	if len(second.Items) != 1 || second.Next != "" {
		t.Fatalf("second page: %+v", second)
	}
	seen := map[string]bool{}
	for _, dl := range append(first.Items, second.Items...) {
		seen[dl.MessageID] = true
	}
	for id := range ids {
		if !seen[id] {
			t.Fatalf("message %s is on no page", id)
		}
	}
	if p, _ := e.listDLQ(key, "/api/v1/integrations/orders/dlq?stage=sink:out"); len(p.Items) != 3 {
		t.Fatalf("stage sink:out lists %d", len(p.Items))
	}
	if p, _ := e.listDLQ(key, "/api/v1/integrations/orders/dlq?stage=route"); len(p.Items) != 0 {
		t.Fatalf("stage route lists %d", len(p.Items))
	}
	if p, _ := e.listDLQ(key, "/api/v1/integrations/orders/dlq?stage=sink:other"); len(p.Items) != 0 {
		t.Fatalf("stage sink:other lists %d", len(p.Items))
	}

	// Replay of another stage replays nothing; of sink:out, all three.
	r := e.must(http.StatusOK, req{method: "POST", path: "/api/v1/integrations/orders/dlq/replay?stage=step:jq", key: key})
	if string(r.raw) != `{"replayed":0}` {
		t.Fatalf("replay of an empty stage: %s", r.raw)
	}
	sink.setStatus(0)
	r = e.must(http.StatusOK, req{method: "POST", path: "/api/v1/integrations/orders/dlq/replay?stage=sink:out", key: key})
	conforms(t, "Replayed", r.raw)
	if string(r.raw) != `{"replayed":3}` {
		t.Fatalf("replay all: %s", r.raw)
	}
	for id := range ids {
		e.waitState(key, "orders", id, runtime.StatusDelivered)
		if _, delivered := sink.counts(id); delivered != 1 {
			t.Fatalf("message %s delivered %d times", id, delivered)
		}
	}
	if string(e.must(http.StatusOK, req{method: "POST", path: "/api/v1/integrations/orders/dlq/replay", key: key}).raw) != `{"replayed":0}` {
		t.Fatal("a second replay of everything replayed something")
	}

	// A dead letter whose sink is no longer in the integration cannot go back: 409.
	sink.setStatus(http.StatusBadRequest)
	gone := e.post("acme", "orders", `{"n":"gone"}`)
	dl := e.waitDLQ(key, "orders", 1).Items[0]
	if dl.MessageID != gone {
		t.Fatalf("dead letter of %s, want %s", dl.MessageID, gone)
	}
	renamed := strings.Replace(retrySpec("orders", "orders", sink.srv.URL), "name: out", "name: other", 1)
	e.must(http.StatusOK, req{method: "PUT", path: "/api/v1/integrations/orders", key: key, body: renamed, contentType: "application/yaml"})
	for _, path := range []string{"/api/v1/integrations/orders/dlq/" + dl.ID + "/replay", "/api/v1/integrations/orders/dlq/replay"} {
		r := e.must(http.StatusConflict, req{method: "POST", path: path, key: key})
		if r.errField("code") != string(CodeConflict) || !strings.Contains(r.errField("message"), `"out"`) {
			t.Fatalf("POST %s: %s", path, r.raw)
		}
		conforms(t, "Error", r.raw)
	}
	// It is still there, and can be deleted.
	e.must(http.StatusOK, req{method: "GET", path: "/api/v1/integrations/orders/dlq/" + dl.ID, key: key})
	e.must(http.StatusNoContent, req{method: "DELETE", path: "/api/v1/integrations/orders/dlq/" + dl.ID, key: key})
}

// TestDeadLetterBadInputs: bad query parameters answer 400 naming the
// parameter; unknown ids answer 404.
func TestDeadLetterBadInputs(t *testing.T) {
	e := newTestEnv(t)
	key := e.createTenant("acme")
	e.createIntegration(key, retrySpec("orders", "orders", "http://127.0.0.1:1/"))
	const base = "/api/v1/integrations/orders"
	tests := []struct {
		name, method, path string
		want               int
		field              string
	}{
		{"limit zero", "GET", base + "/dlq?limit=0", 400, "limit"},
		{"limit not a number", "GET", base + "/dlq?limit=abc", 400, "limit"},
		{"limit negative", "GET", base + "/dlq?limit=-5", 400, "limit"},
		{"limit over the cap", "GET", base + "/dlq?limit=1001", 400, "limit"},
		{"before not an id", "GET", base + "/dlq?before=xyz", 400, "before"},
		{"before zero", "GET", base + "/dlq?before=0", 400, "before"},
		{"stage without kind", "GET", base + "/dlq?stage=out", 400, "stage"},
		{"stage of no kind", "POST", base + "/dlq/replay?stage=queue:out", 400, "stage"},
		{"stage without name", "GET", base + "/dlq?stage=sink:", 400, "stage"},
		{"step stage without name", "GET", base + "/dlq?stage=step", 400, "stage"},
		{"the accepted stage", "GET", base + "/dlq?stage=accepted", 400, "stage"},
		{"unknown dead letter", "GET", base + "/dlq/999999", 404, ""},
		{"dead letter id not a number", "GET", base + "/dlq/abc", 404, ""},
		{"replay an unknown dead letter", "POST", base + "/dlq/999999/replay", 404, ""},
		{"delete an unknown dead letter", "DELETE", base + "/dlq/999999", 404, ""},
		{"unknown message", "GET", base + "/messages/no-such-message", 404, ""},
		{"message id a wildcard", "GET", base + "/messages/*", 404, ""},
		{"message id with a wildcard token", "GET", base + "/messages/%3E", 404, ""},
		{"message id with spaces", "GET", base + "/messages/a%20b", 404, ""},
		{"message of an unknown integration", "GET", "/api/v1/integrations/nothing/messages/x", 404, ""},
		{"dead letters of an unknown integration", "GET", "/api/v1/integrations/nothing/dlq", 404, ""},
		{"replay of an unknown integration", "POST", "/api/v1/integrations/nothing/dlq/replay", 404, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := e.with(t)
			r := e.must(tc.want, req{method: tc.method, path: tc.path, key: key})
			conforms(t, "Error", r.raw)
			if r.errField("field") != tc.field {
				t.Fatalf("field %q, want %q: %s", r.errField("field"), tc.field, r.raw)
			}
			wantCode := CodeNotFound
			if tc.want == 400 {
				wantCode = CodeBadRequest
			}
			if r.errField("code") != string(wantCode) {
				t.Fatalf("code %q, want %q", r.errField("code"), wantCode)
			}
		})
	}
	// With nothing dead-lettered yet, an empty page.
	p, raw := e.listDLQ(key, base+"/dlq?limit=1000")
	if len(p.Items) != 0 || p.Next != "" {
		t.Fatalf("empty DLQ lists %s", raw.raw)
	}
}

// TestDeadLetterIsolation: tenant B, with an integration of the same name,
// sees none of tenant A's dead letters or message records.
func TestDeadLetterIsolation(t *testing.T) {
	e := newTestEnv(t)
	a := e.createTenant("tenant-a")
	b := e.createTenant("tenant-b")
	sinkA := newFlakySink(t, http.StatusBadRequest)
	sinkB := newFlakySink(t, 0)
	e.createIntegration(a, retrySpec("orders", "orders", sinkA.srv.URL))
	e.createIntegration(b, retrySpec("orders", "orders", sinkB.srv.URL))
	for _, k := range []string{a, b} {
		e.must(http.StatusOK, req{method: "POST", path: "/api/v1/integrations/orders/start", key: k})
	}
	msg := e.post("tenant-a", "orders", `{"secret":1}`)
	dl := e.waitDLQ(a, "orders", 1).Items[0]
	e.waitState(a, "orders", msg, runtime.StatusDeadLettered)

	const base = "/api/v1/integrations/orders"
	for _, caller := range []struct {
		name, key, query string
	}{{"tenant B's key", b, ""}, {"the admin naming B", testAdminKey, "?tenant=tenant-b"}} {
		t.Run(caller.name, func(t *testing.T) {
			e := e.with(t)
			q := caller.query
			for _, r := range []req{
				{method: "GET", path: base + "/messages/" + msg + q},
				{method: "GET", path: base + "/dlq/" + dl.ID + q},
				{method: "POST", path: base + "/dlq/" + dl.ID + "/replay" + q},
				{method: "DELETE", path: base + "/dlq/" + dl.ID + q},
			} {
				r.key = caller.key
				e.must(http.StatusNotFound, r)
			}
			if p, _ := e.listDLQ(caller.key, base+"/dlq"+q); len(p.Items) != 0 {
				t.Fatalf("B lists A's dead letters: %+v", p.Items)
			}
			r := e.must(http.StatusOK, req{method: "POST", path: base + "/dlq/replay" + q, key: caller.key})
			if string(r.raw) != `{"replayed":0}` {
				t.Fatalf("B's replay of everything: %s", r.raw)
			}
		})
	}
	// A's entry is untouched, and was not replayed.
	e.must(http.StatusOK, req{method: "GET", path: base + "/dlq/" + dl.ID, key: a})
	if attempts, _ := sinkA.counts(msg); attempts != 1 {
		t.Fatalf("A's sink saw %d attempts, want 1", attempts)
	}
	if attempts, _ := sinkB.counts(msg); attempts != 0 {
		t.Fatalf("B's sink saw A's message %d times", attempts)
	}
}

// TestTraceTrackingOff: with tracking off, a message's trace answers 404
// with a message that says so.
func TestTraceTrackingOff(t *testing.T) {
	e := newTestEnvWith(t, func(c *runtime.Config) { c.DisableTracking = true })
	key := e.createTenant("acme")
	sink := newFlakySink(t, 0)
	e.createIntegration(key, retrySpec("orders", "orders", sink.srv.URL))
	e.must(http.StatusOK, req{method: "POST", path: "/api/v1/integrations/orders/start", key: key})
	id := e.post("acme", "orders", `{"a":1}`)
	eventually(t, 15*time.Second, "delivery", func() bool {
		_, delivered := sink.counts(id)
		return delivered == 1
	})
	r := e.must(http.StatusNotFound, req{method: "GET", path: "/api/v1/integrations/orders/messages/" + id, key: key})
	conforms(t, "Error", r.raw)
	if r.errField("code") != string(CodeNotFound) || !strings.Contains(r.errField("message"), "tracking is off") {
		t.Fatalf("trace with tracking off: %s", r.raw)
	}
}

// TestDeadLetterClaimChecked: a dead letter whose payload is claim-checked
// names the object and its real size instead of inlining the payload; a
// replay delivers the whole payload.
func TestDeadLetterClaimChecked(t *testing.T) {
	const threshold = 1 << 10
	e := newTestEnvWith(t, func(c *runtime.Config) {
		bs, err := blob.NewNATS(context.Background(), c.Conn.JS, "vrsky-objects", 1)
		if err != nil {
			t.Fatalf("object store: %v", err)
		}
		c.Blobs, c.ClaimThreshold = bs, threshold
	})
	key := e.createTenant("acme")
	sink := newFlakySink(t, http.StatusBadRequest)
	e.createIntegration(key, retrySpec("orders", "orders", sink.srv.URL))
	e.must(http.StatusOK, req{method: "POST", path: "/api/v1/integrations/orders/start", key: key})
	payload := `{"pad":"` + strings.Repeat("x", 4*threshold) + `"}`
	id := e.post("acme", "orders", payload)

	dl := e.waitDLQ(key, "orders", 1).Items[0]
	checkDeadLetter(t, dl, id, 1, http.StatusBadRequest)
	one := e.must(http.StatusOK, req{method: "GET", path: "/api/v1/integrations/orders/dlq/" + dl.ID, key: key})
	conforms(t, "DeadLetter", one.raw)
	var full deadLetterView
	if err := json.Unmarshal(one.raw, &full); err != nil {
		t.Fatal(err)
	}
	if full.PayloadRef == "" || full.Size != len(payload) || full.PayloadBase64 != nil || full.PayloadText != nil {
		t.Fatalf("claim-checked dead letter: %s", one.raw)
	}

	sink.setStatus(0)
	e.must(http.StatusOK, req{method: "POST", path: "/api/v1/integrations/orders/dlq/" + dl.ID + "/replay", key: key})
	e.waitState(key, "orders", id, runtime.StatusDelivered)
	if _, delivered := sink.counts(id); delivered != 1 || !bytes.Equal(sink.body(id), []byte(payload)) {
		t.Fatalf("replayed delivery: %d times, %d bytes; want once, %d bytes", delivered, len(sink.body(id)), len(payload))
	}
}

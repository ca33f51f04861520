package http_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	httpconn "github.com/vrsky/vrsky/builtin/http"
	"github.com/vrsky/vrsky/platform/blob"
	"github.com/vrsky/vrsky/platform/natsx/natsxtest"
	"github.com/vrsky/vrsky/runtime"
	"github.com/vrsky/vrsky/runtime/runtimetest"
)

// gate is a tiny Go step for the tests: by the payload's "action" it
// passes a message ("pass"), filters it out ("drop"), fails it for good
// ("fail") or holds it until release is closed ("hold").
func gate(release <-chan struct{}) runtime.Connector {
	return runtime.Connector{
		Name: "test-gate", Version: "1.0.0", Kind: runtime.KindStep, Description: "test step",
		NewStep: func(json.RawMessage, runtime.Env) (runtime.Step, error) { return gateStep{release}, nil },
	}
}

type gateStep struct{ release <-chan struct{} }

func (g gateStep) Process(ctx context.Context, batch []*runtime.Message) ([]runtime.StepResult, error) {
	out := make([]runtime.StepResult, len(batch))
	for i, m := range batch {
		var p struct{ Action string }
		_ = json.Unmarshal(m.Data, &p)
		switch p.Action {
		case "drop":
		case "fail":
			out[i].Err = runtime.Permanent(errors.New("gate refused the order"))
		case "hold":
			<-g.release
			out[i].Out = []*runtime.Message{m}
		default:
			out[i].Out = []*runtime.Message{m}
		}
	}
	return out, nil
}

func (gateStep) Close() error { return nil }

func serveHook(t *testing.T, h *runtimetest.Harness, path, body string) *runtime.HookResponse {
	t.Helper()
	resp, err := h.Engine.Hooks().Serve(context.Background(), h.Tenant, path, &runtime.HookRequest{
		Method: "POST", Header: runtime.Header{"Content-Type": {"application/json"}}, Body: []byte(body),
	})
	if err != nil {
		t.Fatalf("hook %s: %v", path, err)
	}
	return resp
}

// TestWebhookSync runs a sync webhook through a real engine with a Go
// step: passed and filtered answer 200, a failing step 422 (and the
// message is dead-lettered by the policy), a step slower than
// sync_timeout 202 pending (and the message is still delivered).
func TestWebhookSync(t *testing.T) {
	release := make(chan struct{})
	h := runtimetest.Start(t, []runtime.Connector{httpconn.Webhook, httpconn.Sink, gate(release)})
	t.Cleanup(func() { close(release) }) // before the harness stops
	rec := newCapture(t)
	h.Create(t, fmt.Sprintf(`name: sync
source: {connector: http-webhook, config: {path: sync, sync: true, sync_timeout: 20s, max_body_bytes: 100}}
steps: [{name: gate, connector: test-gate}]
sinks: [{name: out, connector: http, config: {url: %q}}]
retry: {max_attempts: 2, initial_backoff: 50ms, max_backoff: 100ms}
`, rec.srv.URL))
	h.Create(t, fmt.Sprintf(`name: slow
source: {connector: http-webhook, config: {path: slow, sync: true, sync_timeout: 300ms}}
steps: [{name: gate, connector: test-gate}]
sinks: [{name: out, connector: http, config: {url: %q}}]
`, rec.srv.URL))

	type answer struct{ ID, Status, Stage, Error, Message string }
	for _, tc := range []struct {
		name, path, body string
		code             int
		status           string
	}{
		{"passed", "sync", `{"action":"pass","n":1}`, 200, "passed"},
		{"filtered", "sync", `{"action":"drop","n":2}`, 200, "filtered"},
		{"failed", "sync", `{"action":"fail","n":3}`, 422, "failed"},
		{"too large", "sync", `{"action":"pass","pad":"` + strings.Repeat("x", 100) + `"}`, 413, ""},
		{"pending", "slow", `{"action":"hold","n":4}`, 202, "pending"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := serveHook(t, h, tc.path, tc.body)
			if resp.Status != tc.code {
				t.Fatalf("status %d, want %d: %s", resp.Status, tc.code, resp.Body)
			}
			if tc.status == "" {
				return
			}
			var a answer
			if err := json.Unmarshal(resp.Body, &a); err != nil {
				t.Fatal(err)
			}
			if a.Status != tc.status || a.ID == "" || a.ID != resp.Header.Get(runtime.HeaderMsgID) {
				t.Fatalf("answer %s, want status %s and the message id", resp.Body, tc.status)
			}
			if tc.status == "failed" {
				if a.Stage != "step:gate" || !strings.Contains(a.Error, "gate refused the order") ||
					!strings.Contains(a.Message, "dead-lettered") {
					t.Fatalf("422 body %s lacks the stage, the step's error or the policy note", resp.Body)
				}
			}
		})
	}
	// What happened next: the passed message and, once released, the
	// pending one reach the sink; the failed one is in the DLQ; the
	// filtered and refused ones are nowhere.
	close(release)
	release = make(chan struct{}) // for Cleanup
	runtimetest.WaitFor(t, 30*time.Second, "two deliveries", func() bool { return len(rec.requests()) >= 2 })
	runtimetest.WaitFor(t, 30*time.Second, "one dead letter", func() bool { return len(h.DeadLetters(t, "sync")) >= 1 })
	var bodies []string
	for _, r := range rec.requests() {
		bodies = append(bodies, r.Body)
	}
	slices.Sort(bodies)
	if want := []string{`{"action":"hold","n":4}`, `{"action":"pass","n":1}`}; !slices.Equal(bodies, want) {
		t.Fatalf("delivered %q, want %q", bodies, want)
	}
	if dl := h.DeadLetters(t, "sync"); len(dl) != 1 {
		t.Fatalf("%d dead letters, want 1: %+v", len(dl), dl)
	}
}

// TestSinkBatchEndToEnd: 7 messages through a real engine to a sink with
// batch max_messages 3 and one worker arrive as ceil(7/3) = 3 POSTs of
// JSON arrays [3, 3, 1] holding exactly the payloads sent.
func TestSinkBatchEndToEnd(t *testing.T) {
	h := runtimetest.Start(t, []runtime.Connector{httpconn.Webhook, httpconn.Sink})
	rec := newCapture(t)
	h.Create(t, fmt.Sprintf(`name: batch
source: {connector: http-webhook, config: {path: batch}}
sinks: [{name: out, connector: http, config: {url: %q, batch: {max_messages: 3, max_wait: 3s}, max_concurrency: 1}}]
retry: {max_attempts: 1}
`, rec.srv.URL+"/bulk"))
	var sent []string
	for i := range 7 {
		body := fmt.Sprintf(`{"n":%d}`, i)
		if resp := serveHook(t, h, "batch", body); resp.Status != http.StatusAccepted {
			t.Fatalf("hook answered %d: %s", resp.Status, resp.Body)
		}
		sent = append(sent, body)
	}
	runtimetest.WaitFor(t, 30*time.Second, "7 payloads at the server", func() bool {
		n := 0
		for _, r := range rec.requests() {
			var arr []json.RawMessage
			_ = json.Unmarshal([]byte(r.Body), &arr)
			n += len(arr)
		}
		return n >= 7
	})
	var sizes []int
	var got []string
	for _, r := range rec.requests() {
		var arr []json.RawMessage
		if err := json.Unmarshal([]byte(r.Body), &arr); err != nil {
			t.Fatalf("POST body %q is not a JSON array: %v", r.Body, err)
		}
		if r.Path != "/bulk" || r.Header.Get("Vrsky-Batch-Size") != fmt.Sprint(len(arr)) {
			t.Fatalf("request to %s with batch size header %q for %d payloads", r.Path, r.Header.Get("Vrsky-Batch-Size"), len(arr))
		}
		sizes = append(sizes, len(arr))
		for _, p := range arr {
			got = append(got, string(p))
		}
	}
	slices.Sort(got) // the pipeline does not promise order
	if !slices.Equal(sizes, []int{3, 3, 1}) || !slices.Equal(got, sent) {
		t.Fatalf("batches of %v carrying %q; want [3 3 1] carrying %q", sizes, got, sent)
	}

	// A payload that is not JSON cannot join an array: it is dead-lettered
	// alone, and nothing is posted for it.
	if resp := serveHook(t, h, "batch", "not json"); resp.Status != http.StatusAccepted {
		t.Fatalf("hook answered %d", resp.Status)
	}
	runtimetest.WaitFor(t, 30*time.Second, "the dead letter", func() bool { return len(h.DeadLetters(t, "batch")) == 1 })
	if dl := h.DeadLetters(t, "batch"); !strings.Contains(dl[0].Error, "not JSON") {
		t.Fatalf("dead letter %+v", dl[0])
	}
	if n := len(rec.requests()); n != 3 {
		t.Fatalf("%d POSTs, want still 3", n)
	}
}

// TestSinkClaimCheckedPayloads: payloads above the claim-check threshold
// live in the object store. The signed sink streams one twice (the HMAC
// pass, then the request), the templated sink reads it for its fields,
// the batch sink puts it in an array; the server gets the exact bytes and
// a signature it can verify.
func TestSinkClaimCheckedPayloads(t *testing.T) {
	t.Setenv("CLAIM_HMAC", "k")
	conn := natsxtest.Start(t)
	bs, err := blob.NewNATS(context.Background(), conn.JS, "vrsky-objects", 1)
	if err != nil {
		t.Fatal(err)
	}
	h := runtimetest.StartOn(t, conn, []runtime.Connector{httpconn.Webhook, httpconn.Sink}, func(c *runtime.Config) {
		c.Blobs, c.ClaimThreshold = bs, 1024
	})
	var mu sync.Mutex
	got := map[string]string{} // path → body
	var badSig []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if sig := r.Header.Get("X-Signature-256"); sig != "" && sig != sign("k", string(b)) {
			badSig = append(badSig, r.URL.Path)
		}
		got[r.URL.Path] = string(b)
	}))
	t.Cleanup(srv.Close)
	h.Create(t, fmt.Sprintf(`name: big
source: {connector: http-webhook, config: {path: big}}
sinks:
  - {name: signed, connector: http, config: {url: "%[1]s/signed", auth: {type: hmac, secret_env: CLAIM_HMAC}}}
  - {name: templated, connector: http, config: {url: "%[1]s/orders/{{id}}"}}
  - {name: batched, connector: http, config: {url: "%[1]s/batch", batch: {max_messages: 10, max_wait: 10ms}}}
`, srv.URL))
	payload := fmt.Sprintf(`{"id":"o-7","pad":%q}`, strings.Repeat("x", 8192))
	if resp := serveHook(t, h, "big", payload); resp.Status != http.StatusAccepted {
		t.Fatalf("hook answered %d: %s", resp.Status, resp.Body)
	}
	runtimetest.WaitFor(t, 30*time.Second, "three deliveries", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 3
	})
	mu.Lock()
	defer mu.Unlock()
	want := map[string]string{"/signed": payload, "/orders/o-7": payload, "/batch": "[" + payload + "]"}
	for path, body := range want {
		if got[path] != body {
			t.Errorf("%s got %d bytes, want the %d-byte payload", path, len(got[path]), len(body))
		}
	}
	if len(badSig) != 0 {
		t.Fatalf("bad signatures on %v", badSig)
	}
	if h.DeadLetters(t, "big") != nil {
		t.Fatal("dead letters")
	}
}

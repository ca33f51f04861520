package http_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	httpconn "github.com/vrsky/vrsky/builtin/http"
	"github.com/vrsky/vrsky/runtime"
	"github.com/vrsky/vrsky/runtime/runtimetest"
)

// TestWebhookBatch: with `batch`, one request's body becomes one message
// per JSON value, answered with their ids in order; a body that does not
// split is refused whole, naming why, and nothing is emitted.
func TestWebhookBatch(t *testing.T) {
	t.Setenv("GH_SECRET", "s3cret")
	const ndjson = `{"batch":{"format":"ndjson"}}`
	many := strings.Repeat("{}\n", 1001)
	for _, tc := range []struct {
		name   string
		cfg    string // the batch settings, merged into {"path":"gh",…}
		header runtime.Header
		body   string
		stream bool // send the body as a stream (over the API's inline size)
		status int
		want   []string // emitted payloads, in order
		reason string   // in the refusal's message
		ids    []string // the ids answered, when named
	}{
		{name: "ndjson", cfg: ndjson, body: "{\"n\":1}\n\n{\"n\":2}\r\n  [3]  \n\"four\"", status: 202,
			want: []string{`{"n":1}`, `{"n":2}`, `[3]`, `"four"`}},
		{name: "json array", cfg: `{"batch":{"format":"json-array"}}`, body: `[{"n":1}, {"n":2} ,3]`, status: 202,
			want: []string{`{"n":1}`, `{"n":2}`, `3`}},
		{name: "ids from the Idempotency-Key", cfg: ndjson, header: runtime.Header{"Idempotency-Key": {"b-7"}},
			body: "{}\n[]", status: 202, want: []string{`{}`, `[]`}, ids: []string{"b-7-0", "b-7-1"}},
		{name: "streamed body", cfg: ndjson, body: "{\"n\":1}\n{\"n\":2}\n", stream: true, status: 202,
			want: []string{`{"n":1}`, `{"n":2}`}},
		{name: "signed", cfg: `{"secret_env":"GH_SECRET","batch":{"format":"ndjson"}}`,
			header: runtime.Header{"X-Hub-Signature-256": {sign("s3cret", "{}\n{}")}}, body: "{}\n{}", status: 202, want: []string{`{}`, `{}`}},
		{name: "signed, streamed, wrong", cfg: `{"secret_env":"GH_SECRET","batch":{"format":"ndjson"}}`,
			header: runtime.Header{"X-Hub-Signature-256": {sign("s3cret", "{}")}}, body: "{}\n{}", stream: true, status: 401, reason: "signature"},
		{name: "a line that is not JSON", cfg: ndjson, body: "{}\n{\"n\":\n{}", status: 400, reason: "line 2 is not a JSON value"},
		{name: "not an array", cfg: `{"batch":{"format":"json-array"}}`, body: `{"n":1}`, status: 400, reason: "not a JSON array"},
		{name: "no messages", cfg: ndjson, body: "\n \n", status: 400, reason: "holds no messages"},
		{name: "empty array", cfg: `{"batch":{"format":"json-array"}}`, body: `[]`, status: 400, reason: "holds no messages"},
		{name: "over max_messages", cfg: `{"batch":{"format":"ndjson","max_messages":2}}`, body: "1\n2\n3", status: 413, reason: "more than 2 messages"},
		{name: "over the most a hook takes", cfg: ndjson, body: many, status: 413, reason: "more than 1000 messages"},
		{name: "at max_messages", cfg: `{"batch":{"format":"ndjson","max_messages":2}}`, body: "1\n2\n", status: 202, want: []string{"1", "2"}},
		{name: "over max_body_bytes", cfg: `{"max_body_bytes":5,"batch":{"format":"ndjson"}}`, body: "1\n2\n3\n", status: 413, reason: "at most 5"},
		{name: "streamed over the 8 MiB a batch is held to", cfg: ndjson, body: strings.Repeat("1\n", 4<<20+1), stream: true, status: 413, reason: "limit of 8388608"},
		{name: "streamed over max_body_bytes", cfg: `{"max_body_bytes":5,"batch":{"format":"ndjson"}}`, body: "1\n2\n3\n", stream: true, status: 413, reason: "limit of 5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := `{"path":"gh",` + strings.TrimPrefix(tc.cfg, "{")
			em := &runtimetest.Emitter{}
			hooks := runWebhook(t, cfg, em)
			req := &runtime.HookRequest{Method: "POST", Header: runtime.Header{"Content-Type": {"application/x-ndjson"}}, Body: []byte(tc.body)}
			for k, v := range tc.header {
				req.Header[k] = v
			}
			if tc.stream {
				req.Body, req.BodyStream, req.ContentLength = nil, bytes.NewReader([]byte(tc.body)), -1
			}
			resp, err := hooks.Serve(context.Background(), "acme", "gh", req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Status != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.Status, tc.status, resp.Body)
			}
			var got []string
			for _, m := range em.Messages() {
				got = append(got, string(m.Data))
				if ct := m.Header.Get("Content-Type"); ct != "application/json" {
					t.Errorf("message %s has Content-Type %q, want application/json", m.ID, ct)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("emitted %q, want %q", got, tc.want)
			}
			if tc.status != 202 {
				var e struct {
					Error struct{ Field, Message string }
				}
				if json.Unmarshal(resp.Body, &e) != nil || e.Error.Field == "" || !strings.Contains(e.Error.Message, tc.reason) {
					t.Fatalf("refusal %s: want a field and %q in the message", resp.Body, tc.reason)
				}
				return
			}
			var out struct{ IDs []string }
			if err := json.Unmarshal(resp.Body, &out); err != nil {
				t.Fatalf("answer %s: %v", resp.Body, err)
			}
			var emitted []string
			for _, m := range em.Messages() {
				emitted = append(emitted, m.ID)
			}
			if !slices.Equal(out.IDs, emitted) || (tc.ids != nil && !slices.Equal(out.IDs, tc.ids)) {
				t.Fatalf("answered ids %q; emitted %q, want %q", out.IDs, emitted, tc.ids)
			}
		})
	}
}

// TestWebhookBatchMessagesOwnTheirBytes: the server reuses a request's
// buffer once the handler returns, so the messages must not point into
// it, nor into each other.
func TestWebhookBatchMessagesOwnTheirBytes(t *testing.T) {
	for _, format := range []string{httpconn.BatchNDJSON, httpconn.BatchJSONArray} {
		t.Run(format, func(t *testing.T) {
			em := &runtimetest.Emitter{}
			hooks := runWebhook(t, fmt.Sprintf(`{"path":"gh","batch":{"format":%q}}`, format), em)
			body := []byte("[1]\n[2]")
			if format == httpconn.BatchJSONArray {
				body = []byte("[[1],[2]]")
			}
			if resp, err := hooks.Serve(context.Background(), "acme", "gh", &runtime.HookRequest{Method: "POST", Header: runtime.Header{}, Body: body}); err != nil || resp.Status != 202 {
				t.Fatalf("resp %+v, err %v", resp, err)
			}
			for i := range body {
				body[i] = 'x'
			}
			msgs := em.Messages()
			msgs[0].Data = append(msgs[0].Data, "!!"...)
			if got := []string{string(msgs[0].Data), string(msgs[1].Data)}; !slices.Equal(got, []string{"[1]!!", "[2]"}) {
				t.Fatalf("messages %q after the buffer was reused and the first appended to", got)
			}
		})
	}
}

func TestWebhookBatchConfig(t *testing.T) {
	for _, tc := range []struct{ cfg, field string }{
		{`{"path":"gh","batch":{"format":"csv"}}`, "batch.format"},
		{`{"path":"gh","batch":{"format":"ndjson","max_messages":1001}}`, "batch.max_messages"},
		{`{"path":"gh","batch":{"format":"ndjson","max_messages":-1}}`, "batch.max_messages"},
		{`{"path":"gh","sync":true,"batch":{"format":"ndjson"}}`, "batch"},
	} {
		err := httpconn.Webhook.Check(context.Background(), json.RawMessage(tc.cfg), runtime.Env{Tenant: "acme"})
		var se *runtime.SpecError
		if !errors.As(err, &se) || se.Field != tc.field {
			t.Errorf("Check(%s) = %v, want a SpecError on %s", tc.cfg, err, tc.field)
		}
	}
}

// TestWebhookBatchRefusedWhole: an emit refused by back-pressure answers
// 429 for the whole batch.
func TestWebhookBatchRefusedWhole(t *testing.T) {
	hooks := runWebhook(t, `{"path":"gh","batch":{"format":"ndjson"}}`, &runtimetest.Emitter{Err: runtime.ErrBackpressure})
	resp, err := hooks.Serve(context.Background(), "acme", "gh", &runtime.HookRequest{Method: "POST", Header: runtime.Header{}, Body: []byte("{}\n{}")})
	if err != nil || resp.Status != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("resp %+v, err %v; want 429 with Retry-After", resp, err)
	}
}

// TestWebhookBatchEndToEnd: a batch through a real engine and NATS, with
// and without steps, is delivered message by message under the ids the
// answer gave; sent again with the same Idempotency-Key it is stored once.
func TestWebhookBatchEndToEnd(t *testing.T) {
	h := runtimetest.Start(t, []runtime.Connector{httpconn.Webhook, httpconn.Sink, gate(nil)})
	rec := newCapture(t)
	for _, steps := range []string{"", "steps: [{name: g, connector: test-gate}]\n"} {
		name := "direct"
		if steps != "" {
			name = "stepped"
		}
		t.Run(name, func(t *testing.T) {
			h.Create(t, fmt.Sprintf("name: b-%s\nsource: {connector: http-webhook, config: {path: b-%s, batch: {format: ndjson}}}\n%ssinks: [{name: out, connector: http, config: {url: %q}}]\n",
				name, name, steps, rec.srv.URL+"/"+name))
			var body strings.Builder
			for i := range 50 {
				fmt.Fprintf(&body, "{\"n\":%d}\n", i)
			}
			var ids []string
			for range 2 { // the retry of the same batch
				resp, err := h.Engine.Hooks().Serve(context.Background(), h.Tenant, "b-"+name, &runtime.HookRequest{
					Method: "POST", Header: runtime.Header{"Idempotency-Key": {"batch-" + name}}, Body: []byte(body.String()),
				})
				if err != nil || resp.Status != http.StatusAccepted {
					t.Fatalf("hook: %v %+v", err, resp)
				}
				var out struct{ IDs []string }
				if err := json.Unmarshal(resp.Body, &out); err != nil || len(out.IDs) != 50 {
					t.Fatalf("answer %s: %v", resp.Body, err)
				}
				ids = out.IDs
			}
			at := func() map[string]string { // id → payload of the deliveries to this integration's path
				got := map[string]string{}
				for _, r := range rec.requests() {
					if r.Path == "/"+name {
						got[r.Header.Get("Idempotency-Key")] = r.Body
					}
				}
				return got
			}
			runtimetest.WaitFor(t, 30*time.Second, "50 deliveries", func() bool { return len(at()) >= 50 })
			time.Sleep(300 * time.Millisecond) // a duplicate would come now
			got := at()
			for i, id := range ids {
				if want := fmt.Sprintf(`{"n":%d}`, i); got[id] != want {
					t.Fatalf("message %d (id %s) delivered as %q, want %q", i, id, got[id], want)
				}
			}
			n := 0
			for _, r := range rec.requests() {
				if r.Path == "/"+name {
					n++
				}
			}
			if n != 50 {
				t.Fatalf("%d deliveries for 50 messages sent twice with one key", n)
			}
		})
	}
}

package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// traceSink is a real HTTP sink that keeps the traceparent of every
// request, per message id (Idempotency-Key). A body with "flaky" fails its
// first two attempts with 503; one with "doomed" is refused with 400 (a
// permanent error) until refuse is cleared.
type traceSink struct {
	srv    *httptest.Server
	mu     sync.Mutex
	refuse bool
	got    map[string][]string // traceparent per attempt
	ok     map[string]bool     // delivered
}

func newTraceSink(t *testing.T) *traceSink {
	s := &traceSink{refuse: true, got: map[string][]string{}, ok: map[string]bool{}}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		id := r.Header.Get("Idempotency-Key")
		s.mu.Lock()
		defer s.mu.Unlock()
		s.got[id] = append(s.got[id], r.Header.Get("Traceparent"))
		switch {
		case bytes.Contains(body, []byte("flaky")) && len(s.got[id]) <= 2:
			http.Error(w, "not yet", http.StatusServiceUnavailable)
		case bytes.Contains(body, []byte("doomed")) && s.refuse:
			http.Error(w, "no", http.StatusBadRequest)
		default:
			s.ok[id] = true
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *traceSink) setRefuse(v bool) { s.mu.Lock(); s.refuse = v; s.mu.Unlock() }

// traceparents returns what the sink received for id, one per request.
func (s *traceSink) traceparents(id string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.got[id]...)
}

func (s *traceSink) delivered(id string) bool { s.mu.Lock(); defer s.mu.Unlock(); return s.ok[id] }

// otlpSpan is one span as the OTLP receiver decoded it.
type otlpSpan struct {
	Name, TraceID, SpanID, Parent string
	Kind                          tracepb.Span_SpanKind
	Attrs                         map[string]string
	Err                           bool
	Service                       string
}

// otlpReceiver is a real OTLP/HTTP traces endpoint: it decodes each
// protobuf ExportTraceServiceRequest and keeps the spans.
type otlpReceiver struct {
	srv   *httptest.Server
	mu    sync.Mutex
	spans []otlpSpan
	bad   []string // requests it could not decode
}

func newOTLPReceiver(t *testing.T) *otlpReceiver {
	o := &otlpReceiver{}
	o.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var rd io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			rd = zr
		}
		body, _ := io.ReadAll(rd)
		var req coltracepb.ExportTraceServiceRequest
		o.mu.Lock()
		defer o.mu.Unlock()
		if r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
			o.bad = append(o.bad, fmt.Sprintf("%s %s (%s)", r.Method, r.URL.Path, r.Header.Get("Content-Type")))
			http.Error(w, "want POST /v1/traces, application/x-protobuf", http.StatusBadRequest)
			return
		}
		if err := proto.Unmarshal(body, &req); err != nil {
			o.bad = append(o.bad, err.Error())
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		for _, rs := range req.ResourceSpans {
			service := ""
			for _, a := range rs.GetResource().GetAttributes() {
				if a.Key == "service.name" {
					service = a.Value.GetStringValue()
				}
			}
			for _, ss := range rs.ScopeSpans {
				for _, sp := range ss.Spans {
					attrs := map[string]string{}
					for _, a := range sp.Attributes {
						v := a.Value.GetStringValue()
						if _, ok := a.Value.GetValue().(*commonpb.AnyValue_IntValue); ok {
							v = fmt.Sprint(a.Value.GetIntValue())
						}
						attrs[a.Key] = v
					}
					o.spans = append(o.spans, otlpSpan{
						Name: sp.Name, TraceID: hex.EncodeToString(sp.TraceId), SpanID: hex.EncodeToString(sp.SpanId),
						Parent: hex.EncodeToString(sp.ParentSpanId), Kind: sp.Kind, Attrs: attrs,
						Err: sp.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR, Service: service,
					})
				}
			}
		}
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	t.Cleanup(o.srv.Close)
	return o
}

// inTrace returns the spans received for trace id.
func (o *otlpReceiver) inTrace(id string) []otlpSpan {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []otlpSpan
	for _, s := range o.spans {
		if s.TraceID == id {
			out = append(out, s)
		}
	}
	return out
}

// waitSpans polls until trace id has at least one span of each name, n
// times for each name in names (names may repeat), and returns them.
func (o *otlpReceiver) waitSpans(t *testing.T, id string, names ...string) []otlpSpan {
	t.Helper()
	var spans []otlpSpan
	waitFor(t, 20*time.Second, fmt.Sprintf("spans %v of trace %s", names, id), func() bool {
		spans = o.inTrace(id)
		want := map[string]int{}
		for _, n := range names {
			want[n]++
		}
		for _, s := range spans {
			want[s.Name]--
		}
		for _, n := range want {
			if n > 0 {
				return false
			}
		}
		return true
	})
	return spans
}

// traceInstance starts vrsky serve (JSON logs at info) with extra args,
// creates tenant acme and integration orders: webhook → Wasm jq step
// "shape" → http sink "api", 3 attempts.
func traceInstance(t *testing.T, sinkURL string, env []string, extra ...string) (*instance, string) {
	t.Helper()
	addr := freeAddr(t)
	data := t.TempDir()
	in := &instance{t: t, url: "http://" + addr, data: data, log: &bytes.Buffer{}}
	args := append([]string{"serve", "--data", data, "--listen", addr, "--admin-key", adminKey, "--log-format", "json", "--log-level", "info"}, extra...)
	in.cmd = exec.Command(vrskyBin, args...)
	in.cmd.Env = append(os.Environ(), env...)
	in.cmd.Stdout, in.cmd.Stderr = in.log, in.log
	if err := in.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	in.waitReady()
	var tenant struct {
		APIKey string `json:"api_key"`
	}
	in.call("POST", "/api/v1/tenants", adminKey, "application/json", `{"name":"acme"}`, http.StatusCreated, &tenant)
	spec := fmt.Sprintf(`name: orders
source: {connector: http-webhook, config: {path: orders}}
steps:
  - name: shape
    connector: jq
    config: {query: '{order: .order_id, note: .note}'}
sinks:
  - name: api
    connector: http
    config: {url: %q}
retry: {max_attempts: 3, initial_backoff: 50ms, max_backoff: 200ms}
`, sinkURL)
	in.call("POST", "/api/v1/integrations", tenant.APIKey, "application/yaml", spec, http.StatusCreated, nil)
	in.call("POST", "/api/v1/integrations/orders/start", tenant.APIKey, "", "", http.StatusOK, nil)
	return in, tenant.APIKey
}

// postTraced sends one webhook message with the given trace headers
// (none when empty) and returns its id.
func (in *instance) postTraced(body, traceparent, tracestate string) string {
	in.t.Helper()
	req, _ := http.NewRequest("POST", in.url+"/hooks/acme/orders", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if traceparent != "" {
		req.Header.Set("traceparent", traceparent)
	}
	if tracestate != "" {
		req.Header.Set("tracestate", tracestate)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		in.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		ID string `json:"id"`
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted || json.Unmarshal(b, &out) != nil || out.ID == "" {
		in.t.Fatalf("webhook answered %d %s, want 202 with an id", resp.StatusCode, b)
	}
	return out.ID
}

// traceID returns GET .../messages/{id}'s trace_id once its state is state.
func (in *instance) traceID(key, id, state string) string {
	in.t.Helper()
	waitTraceState(in.t, in, key, id, state)
	var tr struct {
		TraceID string `json:"trace_id"`
		State   string `json:"state"`
	}
	in.call("GET", "/api/v1/integrations/orders/messages/"+id, key, "", "", http.StatusOK, &tr)
	return tr.TraceID
}

// parseTP splits a traceparent into trace id and parent span id, failing
// the test on one that is not a valid version 00 traceparent.
func parseTP(t *testing.T, tp string) (traceID, parent string) {
	t.Helper()
	parts := strings.Split(tp, "-")
	if len(parts) != 4 || parts[0] != "00" || len(parts[1]) != 32 || len(parts[2]) != 16 || len(parts[3]) != 2 ||
		strings.Trim(parts[1], "0") == "" || strings.Trim(parts[2], "0") == "" {
		t.Fatalf("traceparent %q is not a valid W3C version 00 traceparent", tp)
	}
	if _, err := hex.DecodeString(parts[1] + parts[2] + parts[3]); err != nil {
		t.Fatalf("traceparent %q: %v", tp, err)
	}
	return parts[1], parts[2]
}

// spanNamed returns the spans of spans called name.
func spanNamed(spans []otlpSpan, name string) []otlpSpan {
	var out []otlpSpan
	for _, s := range spans {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

// TestServeTracing follows messages from a webhook through the Wasm jq
// step to a real HTTP sink with vrsky serve --otlp-endpoint pointing at a
// real OTLP/HTTP receiver: the incoming traceparent's trace id is the one
// the sink receives and the one the trace API shows, the sink's parent span
// is its delivery attempt's span, and every stage's span arrives with the
// right parent and attributes. A malformed traceparent starts a new trace;
// retries and a replayed dead letter stay in the message's trace; each
// failed attempt writes one log line with the trace id, a success none.
func TestServeTracing(t *testing.T) {
	sink := newTraceSink(t)
	otlp := newOTLPReceiver(t)
	in, key := traceInstance(t, sink.srv.URL, []string{"OTEL_BSP_SCHEDULE_DELAY=100"}, "--otlp-endpoint", otlp.srv.URL)

	const caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	callerTrace, callerSpan := "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
	var okID string
	t.Run("webhook to sink through a Wasm step", func(t *testing.T) {
		okID = in.postTraced(`{"order_id": 1}`, caller, "vendor=abc")
		if got := in.traceID(key, okID, "delivered"); got != callerTrace {
			t.Fatalf("the trace API says trace_id %q, want the caller's %s", got, callerTrace)
		}
		tps := sink.traceparents(okID)
		if len(tps) != 1 {
			t.Fatalf("the sink got %d requests, want 1", len(tps))
		}
		tid, parent := parseTP(t, tps[0])
		if tid != callerTrace {
			t.Fatalf("the sink's traceparent %s is not in the caller's trace %s", tps[0], callerTrace)
		}
		spans := otlp.waitSpans(t, callerTrace, "ingest", "step:shape", "route", "sink:api")
		ingest := spanNamed(spans, "ingest")[0]
		if ingest.Parent != callerSpan || ingest.Kind != tracepb.Span_SPAN_KIND_PRODUCER || ingest.Service != "vrsky" {
			t.Errorf("ingest span %+v: want the caller's span %s as parent, kind producer, service vrsky", ingest, callerSpan)
		}
		for _, s := range spans {
			stage := s.Name
			if s.Attrs["vrsky.tenant"] != "acme" || s.Attrs["vrsky.integration"] != "orders" || s.Attrs["vrsky.stage"] != stage || s.Attrs["messaging.message.id"] != okID || s.Err {
				t.Errorf("span %s: attributes %v (error %v), want tenant acme, integration orders, stage %s, message %s, no error", s.Name, s.Attrs, s.Err, stage, okID)
			}
			if s.Name != "ingest" && s.Parent != ingest.SpanID {
				t.Errorf("span %s has parent %s, want the ingest span %s", s.Name, s.Parent, ingest.SpanID)
			}
		}
		sk := spanNamed(spans, "sink:api")[0]
		if parent != sk.SpanID {
			t.Errorf("the sink's traceparent names parent %s, want the sink attempt's span %s", parent, sk.SpanID)
		}
		if sk.Kind != tracepb.Span_SPAN_KIND_CLIENT || sk.Attrs["vrsky.attempt"] != "1" {
			t.Errorf("sink span %+v: want kind client, attempt 1", sk)
		}
	})

	t.Run("malformed traceparent starts a new trace", func(t *testing.T) {
		id := in.postTraced(`{"order_id": 2}`, "00-not-a-trace-01", "vendor=abc")
		got := in.traceID(key, id, "delivered")
		tps := sink.traceparents(id)
		if len(tps) != 1 {
			t.Fatalf("the sink got %d requests, want 1", len(tps))
		}
		tid, _ := parseTP(t, tps[0])
		if got != tid || tid == callerTrace {
			t.Fatalf("the trace API says %q and the sink got %s: want one new trace id in both", got, tps[0])
		}
		spans := otlp.waitSpans(t, tid, "ingest", "step:shape", "route", "sink:api")
		if ing := spanNamed(spans, "ingest")[0]; ing.Parent != "" {
			t.Errorf("the new trace's ingest span has parent %s, want none (a root)", ing.Parent)
		}
	})

	const retried = "00-11111111111111111111111111111111-2222222222222222-01"
	var retriedID string
	t.Run("retries keep the trace", func(t *testing.T) {
		retriedID = in.postTraced(`{"order_id": 3, "note": "flaky"}`, retried, "")
		if got := in.traceID(key, retriedID, "delivered"); got != strings.Repeat("1", 32) {
			t.Fatalf("trace_id %q after retries, want %s", got, strings.Repeat("1", 32))
		}
		tps := sink.traceparents(retriedID)
		if len(tps) != 3 {
			t.Fatalf("the sink got %d attempts, want 3", len(tps))
		}
		spans := otlp.waitSpans(t, strings.Repeat("1", 32), "ingest", "step:shape", "route", "sink:api", "sink:api", "sink:api")
		attempts := map[string]otlpSpan{}
		for _, s := range spanNamed(spans, "sink:api") {
			attempts[s.SpanID] = s
		}
		for i, tp := range tps {
			tid, parent := parseTP(t, tp)
			s, ok := attempts[parent]
			if tid != strings.Repeat("1", 32) || !ok {
				t.Fatalf("attempt %d's traceparent %s: want the message's trace and one of its sink spans as parent", i+1, tp)
			}
			if s.Attrs["vrsky.attempt"] != fmt.Sprint(i+1) || s.Err != (i < 2) {
				t.Errorf("attempt %d's span: attempt %s, error %v", i+1, s.Attrs["vrsky.attempt"], s.Err)
			}
		}
	})

	const doomed = "00-33333333333333333333333333333333-4444444444444444-01"
	var doomedID string
	t.Run("a replayed dead letter keeps the trace", func(t *testing.T) {
		doomedID = in.postTraced(`{"order_id": 4, "note": "doomed"}`, doomed, "")
		if got := in.traceID(key, doomedID, "dead_lettered"); got != strings.Repeat("3", 32) {
			t.Fatalf("trace_id %q of the dead letter, want %s", got, strings.Repeat("3", 32))
		}
		var page struct {
			Items []struct {
				ID      string            `json:"id"`
				Headers map[string]string `json:"headers"`
			} `json:"items"`
		}
		in.call("GET", "/api/v1/integrations/orders/dlq", key, "", "", http.StatusOK, &page)
		if len(page.Items) != 1 {
			t.Fatalf("%d dead letters, want 1", len(page.Items))
		}
		if tid, _ := parseTP(t, page.Items[0].Headers["Traceparent"]); tid != strings.Repeat("3", 32) {
			t.Fatalf("the dead letter's traceparent %q is not the message's", page.Items[0].Headers["Traceparent"])
		}
		sink.setRefuse(false)
		in.call("POST", "/api/v1/integrations/orders/dlq/"+page.Items[0].ID+"/replay", key, "", "", http.StatusOK, nil)
		if got := in.traceID(key, doomedID, "delivered"); got != strings.Repeat("3", 32) {
			t.Fatalf("trace_id %q after the replay, want %s", got, strings.Repeat("3", 32))
		}
		tps := sink.traceparents(doomedID)
		if len(tps) != 2 || !sink.delivered(doomedID) {
			t.Fatalf("the sink got %v, want 2 requests, the second delivered", tps)
		}
		for _, tp := range tps {
			if tid, _ := parseTP(t, tp); tid != strings.Repeat("3", 32) {
				t.Fatalf("the sink got traceparent %s, not in the message's trace", tp)
			}
		}
		spans := otlp.waitSpans(t, strings.Repeat("3", 32), "ingest", "route", "sink:api", "replay", "sink:api")
		if !spanNamed(spans, "sink:api")[0].Err && !spanNamed(spans, "sink:api")[1].Err {
			t.Errorf("no sink span records the refused attempt: %+v", spans)
		}
	})

	t.Run("logs: one line per failed attempt, none per success", func(t *testing.T) {
		recs := logRecords(t, in.log.Bytes())
		var retries, dead []map[string]any
		for _, r := range recs {
			for _, id := range []string{okID} {
				if r["msg_id"] == id {
					t.Errorf("a record for the delivered message %s: %v", id, r)
				}
			}
			switch r["msg"] {
			case "attempt failed; retrying":
				retries = append(retries, r)
			case "message dead-lettered":
				dead = append(dead, r)
			}
		}
		if len(retries) != 2 || len(dead) != 1 {
			t.Fatalf("%d retry and %d dead-letter records, want 2 and 1:\n%s", len(retries), len(dead), in.log.String())
		}
		for i, r := range retries {
			want := map[string]any{"tenant": "acme", "integration": "orders", "stage": "sink:api", "msg_id": retriedID,
				"trace_id": strings.Repeat("1", 32), "attempt": float64(i + 1), "level": "WARN"}
			for k, v := range want {
				if r[k] != v {
					t.Errorf("retry record %d: %s = %v, want %v (%v)", i, k, r[k], v, r)
				}
			}
			if e, _ := r["err"].(string); !strings.Contains(e, "503") {
				t.Errorf("retry record %d: err %q", i, e)
			}
		}
		if d := dead[0]; d["msg_id"] != doomedID || d["trace_id"] != strings.Repeat("3", 32) || d["stage"] != "sink:api" || d["tenant"] != "acme" {
			t.Errorf("dead-letter record %v", d)
		}
	})
	otlp.mu.Lock()
	defer otlp.mu.Unlock()
	if len(otlp.bad) > 0 {
		t.Errorf("the receiver could not take %v", otlp.bad)
	}
}

// TestServeTraceContextWithoutExporter: with no --otlp-endpoint VRSky makes
// no spans but still carries the trace: a valid incoming traceparent reaches
// the sink as it came, and a message without one gets a new trace, which
// the trace API shows.
func TestServeTraceContextWithoutExporter(t *testing.T) {
	sink := newTraceSink(t)
	in, key := traceInstance(t, sink.srv.URL, nil)
	const caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	id := in.postTraced(`{"order_id": 1}`, caller, "")
	if got := in.traceID(key, id, "delivered"); got != "0af7651916cd43dd8448eb211c80319c" {
		t.Fatalf("trace_id %q, want the caller's", got)
	}
	if tps := sink.traceparents(id); len(tps) != 1 || tps[0] != caller {
		t.Fatalf("the sink got %v, want the caller's traceparent as it came", tps)
	}
	for _, tp := range []string{"", "garbage"} {
		id := in.postTraced(`{"order_id": 2}`, tp, "")
		got := in.traceID(key, id, "delivered")
		tps := sink.traceparents(id)
		if len(tps) != 1 {
			t.Fatalf("traceparent %q: the sink got %v", tp, tps)
		}
		if tid, _ := parseTP(t, tps[0]); tid != got {
			t.Fatalf("traceparent %q: the sink got %s, the trace API says %q", tp, tps[0], got)
		}
	}
}

// logRecords parses JSON log lines.
func logRecords(t *testing.T, out []byte) []map[string]any {
	t.Helper()
	var recs []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Errorf("not a JSON record: %q", sc.Bytes())
			continue
		}
		checkRecord(t, rec, sc.Bytes())
		recs = append(recs, rec)
	}
	return recs
}

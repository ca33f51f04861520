package api

import (
	"net/http"
	"testing"
)

// TestMessageTraceID: GET .../messages/{id} names the trace the message
// is in, as the document describes it: the webhook caller's, or a new one
// (32 lower-case hex digits) when the caller sent none or a malformed one.
func TestMessageTraceID(t *testing.T) {
	e := newTestEnv(t)
	key := e.createTenant("acme")
	sink := newFlakySink(t, 0)
	e.createIntegration(key, webhookSpec("orders", "orders", sink.srv.URL))
	e.must(http.StatusOK, req{method: "POST", path: "/api/v1/integrations/orders/start", key: key})
	for _, tc := range []struct {
		name, traceparent, want string
	}{
		{"the caller's", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "4bf92f3577b34da6a3ce929d0e0e4736"},
		{"none sent", "", ""},
		{"malformed", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := e.with(t)
			h := map[string]string{}
			if tc.traceparent != "" {
				h["traceparent"] = tc.traceparent
			}
			id := e.must(http.StatusAccepted, req{method: "POST", path: "/hooks/acme/orders", body: `{"n":1}`, contentType: "application/json", header: h}).str("id")
			tr := e.waitState(key, "orders", id, "delivered")
			conforms(t, "MessageTrace", tr.raw)
			got := tr.str("trace_id")
			switch {
			case tc.want != "" && got != tc.want:
				t.Fatalf("trace_id %q, want the caller's %s", got, tc.want)
			case tc.want == "" && (len(got) != 32 || got == "4bf92f3577b34da6a3ce929d0e0e4736"):
				t.Fatalf("trace_id %q, want a new trace id", got)
			}
			for _, s := range tr.body["stages"].([]any) {
				if _, ok := s.(map[string]any)["trace_id"]; ok {
					t.Fatalf("a stage record carries the trace id: %s", tr.raw)
				}
			}
		})
	}
}

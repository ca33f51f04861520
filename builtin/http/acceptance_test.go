package http_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	httpconn "github.com/vrsky/vrsky/builtin/http"
	"github.com/vrsky/vrsky/runtime/connector"
	"github.com/vrsky/vrsky/runtime/connectortest"
)

func TestSinkAcceptance(t *testing.T) {
	var mu sync.Mutex
	var ids []string
	status := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		code := status
		if code == 0 {
			ids = append(ids, r.Header.Get(connector.HeaderMsgID))
		}
		mu.Unlock()
		if code != 0 {
			http.Error(w, "nope", code)
		}
	}))
	t.Cleanup(srv.Close)
	setStatus := func(code int) { mu.Lock(); status = code; mu.Unlock() }
	connectortest.RunSink(t, connectortest.SinkCase{
		Connector: httpconn.Sink,
		Config:    json.RawMessage(`{"url":"` + srv.URL + `/in"}`),
		Bad: []connectortest.BadConfig{
			{Config: json.RawMessage(`{}`), Field: "url"},
			{Config: json.RawMessage(`{"url":"ftp://h"}`), Field: "url"},
			{Config: json.RawMessage(`{"url":"http://h","auth":{"type":"digest"}}`), Field: "auth"},
		},
		Delivered: func(*testing.T) []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), ids...) },
		Fail: func(_ *testing.T, permanent bool) {
			if permanent {
				setStatus(http.StatusBadRequest)
			} else {
				setStatus(http.StatusServiceUnavailable)
			}
		},
		Restore: func(*testing.T) { setStatus(0) },
	})
}

func TestWebhookAcceptance(t *testing.T) {
	hooks := connector.NewHooks()
	connectortest.RunSource(t, connectortest.SourceCase{
		Connector: httpconn.Webhook,
		Config:    json.RawMessage(`{"path":"orders"}`),
		Env:       connector.Env{Tenant: "acme", Integration: "orders", Hooks: hooks},
		Bad:       []connectortest.BadConfig{{Config: json.RawMessage(`{"path":1}`), Field: "path"}},
		Produce: func(t *testing.T, _, n int) {
			for range n {
				resp, err := hooks.Serve(t.Context(), "acme", "orders", &connector.HookRequest{
					Method: http.MethodPost, Header: connector.Header{"Content-Type": {"application/json"}}, Body: bytes.Clone([]byte(`{"a":1}`)),
				})
				if err != nil || resp.Status >= 300 {
					t.Errorf("webhook: %v %+v", err, resp)
				}
			}
		},
	})
}

package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	httpconn "github.com/vrsky/vrsky/builtin/http"
	"github.com/vrsky/vrsky/platform/natsx"
	"github.com/vrsky/vrsky/platform/natsx/natsxtest"
	"github.com/vrsky/vrsky/platform/store"
	"github.com/vrsky/vrsky/runtime"
	"github.com/vrsky/vrsky/runtime/runtimetest"
)

const testAdminKey = "test-admin-key-0123456789"

// testEnv is a Server on a real embedded NATS, the real NATS KV store and
// the real engine with the built-in http connectors, the engine and store
// made by runtimetest.NewEngine.
type testEnv struct {
	t     *testing.T
	srv   *Server
	conn  *natsx.Conn
	store *store.NATSStore
	eng   *runtime.Engine
	reg   *prometheus.Registry
	// via sends do's requests instead of app.Test, e.g. over a real
	// connection from a chosen client address (see from); nil uses app.Test.
	via func(*http.Request) (*http.Response, error)
}

func newTestEnv(t *testing.T, tune ...func(*Config)) *testEnv {
	t.Helper()
	return newTestEnvWith(t, nil, tune...)
}

// newTestEnvWith is newTestEnv with the engine's config tuned by engTune
// (nil leaves it as is).
func newTestEnvWith(t *testing.T, engTune func(*runtime.Config), tune ...func(*Config)) *testEnv {
	t.Helper()
	reg := prometheus.NewRegistry()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("VRSKY_TEST_LOG") != "" { // request and engine logs, in the test's output
		log = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	opts := []func(*runtime.Config){func(c *runtime.Config) { c.Metrics, c.Logger = runtime.NewMetrics(reg), log }}
	if engTune != nil {
		opts = append(opts, engTune)
	}
	// The engine is built as runtimetest builds a Harness's, but bare: its
	// catalogue holds the http connectors alone and no reconcile loop runs
	// (the API applies what it creates); its pipelines stop before the NATS
	// connection closes (Cleanup).
	conn := natsxtest.Start(t)
	eng, st := runtimetest.NewEngine(t, conn, []runtime.Connector{httpconn.Webhook, httpconn.Sink}, opts...)
	cfg := Config{
		Store: st, Engine: eng, NATS: conn, AdminKey: testAdminKey,
		Logger: log, Gatherer: reg, Version: "test", Tenancy: eng.Tenants().(Tenancy),
	}
	for _, f := range tune {
		f(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatalf("api.New: %v", err)
	}
	return &testEnv{t: t, srv: srv, conn: conn, store: st, eng: eng, reg: reg}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// resp is a decoded answer.
type resp struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

// errField returns error.<name> of an error answer.
func (r resp) errField(name string) string {
	e, _ := r.body["error"].(map[string]any)
	s, _ := e[name].(string)
	return s
}

func (r resp) str(path ...string) string {
	var v any = r.body
	for _, p := range path {
		m, _ := v.(map[string]any)
		v = m[p]
	}
	s, _ := v.(string)
	return s
}

// req describes one request; body is sent as is when it is a string or
// []byte, else as JSON.
type req struct {
	method, path, key string
	body              any
	contentType       string
	header            map[string]string
}

func (e *testEnv) do(r req) resp {
	e.t.Helper()
	var rd io.Reader
	ct := r.contentType
	switch b := r.body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatalf("marshal: %v", err)
		}
		rd = bytes.NewReader(j)
		if ct == "" {
			ct = "application/json"
		}
	}
	hr := httptest.NewRequest(r.method, r.path, rd)
	if ct != "" {
		hr.Header.Set("Content-Type", ct)
	}
	if r.key != "" {
		hr.Header.Set("Authorization", "Bearer "+r.key)
	}
	for k, v := range r.header {
		hr.Header.Set(k, v)
	}
	send := func(r *http.Request) (*http.Response, error) { return e.srv.App().Test(r, 30_000) }
	if e.via != nil {
		send = e.via
	}
	res, err := send(hr)
	if err != nil {
		e.t.Fatalf("%s %s: %v", r.method, r.path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatalf("read body: %v", err)
	}
	out := resp{status: res.StatusCode, header: res.Header, raw: raw}
	if strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") && len(raw) > 0 {
		if err := json.Unmarshal(raw, &out.body); err != nil {
			e.t.Fatalf("%s %s: answer is not a JSON object: %v\n%s", r.method, r.path, err, raw)
		}
	}
	return out
}

// must does r and fails the test unless it answers want.
func (e *testEnv) must(want int, r req) resp {
	e.t.Helper()
	out := e.do(r)
	if out.status != want {
		e.t.Fatalf("%s %s: status %d, want %d\n%s", r.method, r.path, out.status, want, out.raw)
	}
	return out
}

// createTenant creates a tenant and returns its first key.
func (e *testEnv) createTenant(name string, quotas ...store.Quotas) string {
	e.t.Helper()
	body := map[string]any{"name": name}
	if len(quotas) > 0 {
		body["quotas"] = quotas[0]
	}
	r := e.must(http.StatusCreated, req{method: "POST", path: "/api/v1/tenants", key: testAdminKey, body: body})
	key := r.str("api_key")
	if key == "" {
		e.t.Fatalf("tenant create returned no api_key: %s", r.raw)
	}
	return key
}

// webhookSpec is an http-webhook → http integration in YAML.
func webhookSpec(name, path, sinkURL string) string {
	return fmt.Sprintf(`name: %s
source:
  connector: http-webhook
  config: {path: %s}
sinks:
  - name: out
    connector: http
    config: {url: %q, timeout: 5s}
`, name, path, sinkURL)
}

// createIntegration creates an integration from YAML with key.
func (e *testEnv) createIntegration(key, yaml string) resp {
	e.t.Helper()
	return e.must(http.StatusCreated, req{method: "POST", path: "/api/v1/integrations", key: key, body: yaml, contentType: "application/yaml"})
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// with returns e reporting to t (a subtest).
func (e *testEnv) with(t *testing.T) *testEnv {
	c := *e
	c.t = t
	return &c
}

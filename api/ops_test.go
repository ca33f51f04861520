package api

import (
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestOperations(t *testing.T) {
	e := newTestEnv(t)
	probe := prometheus.NewCounter(prometheus.CounterOpts{Name: "vrsky_test_probe_total", Help: "test"})
	e.reg.MustRegister(probe)
	probe.Inc()
	key := e.createTenant("acme")

	tests := []struct {
		name, path, key string
		want            int
		contains        string
	}{
		{"healthz", "/healthz", "", 200, `"status":"ok"`},
		{"readyz", "/readyz", "", 200, `"nats":"ok"`},
		{"metrics", "/metrics", "", 200, "vrsky_test_probe_total 1"},
		{"openapi", "/api/v1/openapi.json", "", 200, `"openapi": "3.1.0"`},
		{"connectors", "/api/v1/connectors", key, 200, `"name":"http-webhook"`},
		{"connectors, admin", "/api/v1/connectors", testAdminKey, 200, `"name":"http"`},
		{"connectors, no key", "/api/v1/connectors", "", 401, `"code":"unauthorized"`},
		{"connector", "/api/v1/connectors/http", key, 200, `"config_schema":`},
		{"connector at its version", "/api/v1/connectors/http@1.0.0", key, 200, `"kind":"sink"`},
		{"connector at another version", "/api/v1/connectors/http@9.9.9", key, 404, `"code":"not_found"`},
		{"hook, wrong method", "/hooks/acme/orders", "", 405, `"code":"method_not_allowed"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := e.with(t)
			r := e.must(tc.want, req{method: "GET", path: tc.path, key: tc.key})
			if !strings.Contains(string(r.raw), tc.contains) {
				t.Fatalf("answer lacks %q:\n%.2000s", tc.contains, r.raw)
			}
		})
	}
	list := e.must(http.StatusOK, req{method: "GET", path: "/api/v1/connectors", key: key})
	if strings.Contains(string(list.raw), "config_schema") {
		t.Errorf("the list carries config schemas: %s", list.raw)
	}
}

func TestNewRequires(t *testing.T) {
	e := newTestEnv(t)
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no store", Config{Engine: e.eng, AdminKey: "k"}},
		{"no engine", Config{Store: e.store, AdminKey: "k"}},
		{"no admin key", Config{Store: e.store, Engine: e.eng}},
		{"negative limit", Config{Store: e.store, Engine: e.eng, AdminKey: "k", BodyLimit: -1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.cfg); err == nil {
				t.Fatal("New accepted it")
			}
		})
	}
}

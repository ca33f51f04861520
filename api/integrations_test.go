package api

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/vrsky/vrsky/platform/store"
)

func TestIntegrationLifecycle(t *testing.T) {
	e := newTestEnv(t)
	key := e.createTenant("acme")

	created := e.createIntegration(key, webhookSpec("orders", "orders", "http://127.0.0.1:1/"))
	if created.str("name") != "orders" || created.str("desired") != store.StateStopped || created.str("status", "state") != "stopped" {
		t.Fatalf("create answered %s", created.raw)
	}
	if loc := created.header.Get("Location"); loc != "/api/v1/integrations/orders" {
		t.Fatalf("Location %q", loc)
	}
	if created.str("spec", "source", "connector") != "http-webhook" {
		t.Fatalf("spec not shown: %s", created.raw)
	}

	// The same spec as JSON, by the admin naming the tenant.
	e.must(http.StatusCreated, req{method: "POST", path: "/api/v1/integrations?tenant=acme", key: testAdminKey,
		contentType: "application/json",
		body:        `{"name":"billing","source":{"connector":"http-webhook","config":{"path":"billing"}},"sinks":[{"name":"out","connector":"http","config":{"url":"http://127.0.0.1:1/"}}]}`})

	steps := []struct {
		name, method, path string
		wantDesired        string
		wantState          string
	}{
		{"start", "POST", "/api/v1/integrations/orders/start", "running", "running"},
		{"start again", "POST", "/api/v1/integrations/orders/start", "running", "running"},
		{"get running", "GET", "/api/v1/integrations/orders", "running", "running"},
		{"stop", "POST", "/api/v1/integrations/orders/stop", "stopped", "stopped"},
		{"stop again", "POST", "/api/v1/integrations/orders/stop", "stopped", "stopped"},
		{"get stopped", "GET", "/api/v1/integrations/orders", "stopped", "stopped"},
		{"restart", "POST", "/api/v1/integrations/orders/start", "running", "running"},
	}
	for _, s := range steps {
		r := e.must(http.StatusOK, req{method: s.method, path: s.path, key: key})
		if got := r.str("desired"); got != s.wantDesired {
			t.Fatalf("%s: desired %q, want %q", s.name, got, s.wantDesired)
		}
		if got := r.str("status", "state"); got != s.wantState {
			t.Fatalf("%s: state %q, want %q (%s)", s.name, got, s.wantState, r.raw)
		}
		in, err := e.store.GetIntegration(t.Context(), "acme", "orders")
		if err != nil || in.Desired != s.wantDesired {
			t.Fatalf("%s: stored %q, %v", s.name, in.Desired, err)
		}
	}

	// Update: a new spec, same name; the running integration keeps running.
	updated := e.must(http.StatusOK, req{method: "PUT", path: "/api/v1/integrations/orders", key: key,
		contentType: "text/yaml", body: webhookSpec("orders", "orders-v2", "http://127.0.0.1:2/")})
	if updated.str("spec", "sinks") != "" || !strings.Contains(string(updated.raw), "orders-v2") || updated.str("status", "state") != "running" {
		t.Fatalf("update answered %s", updated.raw)
	}
	e.must(http.StatusNotFound, req{method: "POST", path: "/hooks/acme/orders", body: "{}", contentType: "application/json"})
	e.must(http.StatusAccepted, req{method: "POST", path: "/hooks/acme/orders-v2", body: "{}", contentType: "application/json"})

	list := e.must(http.StatusOK, req{method: "GET", path: "/api/v1/integrations", key: key})
	items, _ := list.body["integrations"].([]any)
	if len(items) != 2 {
		t.Fatalf("list answered %s", list.raw)
	}

	e.must(http.StatusNoContent, req{method: "DELETE", path: "/api/v1/integrations/orders", key: key})
	e.must(http.StatusNotFound, req{method: "GET", path: "/api/v1/integrations/orders", key: key})
	e.must(http.StatusNotFound, req{method: "DELETE", path: "/api/v1/integrations/orders", key: key})
	e.must(http.StatusNotFound, req{method: "POST", path: "/api/v1/integrations/orders/start", key: key})
	e.must(http.StatusNotFound, req{method: "POST", path: "/hooks/acme/orders-v2", body: "{}", contentType: "application/json"})
	if n := countStreams(t, e, "VRSKY_acme_orders"); n != 0 {
		t.Fatalf("%d streams left after delete", n)
	}
}

// TestIsolation: tenant B never sees or touches tenant A's things, on every
// route, and cannot use the admin routes.
func TestIsolation(t *testing.T) {
	e := newTestEnv(t)
	a := e.createTenant("tenant-a")
	b := e.createTenant("tenant-b")
	e.createIntegration(a, webhookSpec("orders", "orders", "http://127.0.0.1:1/"))
	e.must(http.StatusOK, req{method: "POST", path: "/api/v1/integrations/orders/start", key: a})
	aKey := e.must(http.StatusCreated, req{method: "POST", path: "/api/v1/tenants/tenant-a/keys", key: a}).str("id")
	spec := webhookSpec("orders", "orders", "http://127.0.0.1:1/")
	msgA := e.post("tenant-a", "orders", "{}") // a message of A's (its dead letters: TestDeadLetterIsolation)

	tests := []struct {
		name, method, path string
		body               string
		header             map[string]string
		want               int
	}{
		{"get A's integration", "GET", "/api/v1/integrations/orders", "", nil, 404},
		{"update A's integration", "PUT", "/api/v1/integrations/orders", spec, nil, 404},
		{"delete A's integration", "DELETE", "/api/v1/integrations/orders", "", nil, 404},
		{"start A's integration", "POST", "/api/v1/integrations/orders/start", "", nil, 404},
		{"stop A's integration", "POST", "/api/v1/integrations/orders/stop", "", nil, 404},
		{"trace A's message", "GET", "/api/v1/integrations/orders/messages/" + msgA, "", nil, 404},
		{"list A's dead letters", "GET", "/api/v1/integrations/orders/dlq", "", nil, 404},
		{"get A's dead letter", "GET", "/api/v1/integrations/orders/dlq/1", "", nil, 404},
		{"delete A's dead letter", "DELETE", "/api/v1/integrations/orders/dlq/1", "", nil, 404},
		{"replay A's dead letter", "POST", "/api/v1/integrations/orders/dlq/1/replay", "", nil, 404},
		{"replay A's dead letters", "POST", "/api/v1/integrations/orders/dlq/replay", "", nil, 404},
		{"name A with ?tenant", "GET", "/api/v1/integrations?tenant=tenant-a", "", nil, 404},
		{"name A with the header", "GET", "/api/v1/integrations/orders", "", map[string]string{tenantHeader: "tenant-a"}, 404},
		{"create in A", "POST", "/api/v1/integrations?tenant=tenant-a", spec, nil, 404},
		{"get tenant A", "GET", "/api/v1/tenants/tenant-a", "", nil, 404},
		{"discover tenant A's NATS", "GET", "/api/v1/tenants/tenant-a/nats", "", nil, 404},
		{"discover own NATS", "GET", "/api/v1/tenants/tenant-b/nats", "", nil, 403},
		{"patch tenant A", "PATCH", "/api/v1/tenants/tenant-a", `{"display_name":"x"}`, nil, 404},
		{"delete tenant A", "DELETE", "/api/v1/tenants/tenant-a", "", nil, 404},
		{"issue a key for A", "POST", "/api/v1/tenants/tenant-a/keys", "", nil, 404},
		{"list A's keys", "GET", "/api/v1/tenants/tenant-a/keys", "", nil, 404},
		{"revoke A's key", "DELETE", "/api/v1/tenants/tenant-a/keys/" + aKey, "", nil, 404},
		{"revoke A's key through B", "DELETE", "/api/v1/tenants/tenant-b/keys/" + aKey, "", nil, 404},
		{"create a tenant", "POST", "/api/v1/tenants", `{"name":"evil"}`, nil, 403},
		{"list tenants", "GET", "/api/v1/tenants", "", nil, 403},
		{"patch own tenant", "PATCH", "/api/v1/tenants/tenant-b", `{"quotas":{"max_integrations":1000}}`, nil, 403},
		{"delete own tenant", "DELETE", "/api/v1/tenants/tenant-b", "", nil, 403},
		{"hook of A under B", "POST", "/hooks/tenant-b/orders", "{}", nil, 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := e.with(t)
			ct := ""
			if tc.body != "" {
				ct = "application/json"
				if strings.HasPrefix(tc.body, "name:") {
					ct = "application/yaml"
				}
			}
			r := e.must(tc.want, req{method: tc.method, path: tc.path, key: b, body: tc.body, contentType: ct, header: tc.header})
			if r.errField("code") == "" {
				t.Fatalf("no JSON error: %s", r.raw)
			}
		})
	}

	// Every tenant-scoped route is in the table above. The connector
	// catalogue and the templates are the same for every tenant.
	covered := map[string]bool{}
	for _, tc := range tests {
		covered[tc.method+" "+routeOf(e, tc.method, tc.path)] = true
	}
	for _, r := range e.srv.App().GetRoutes(true) {
		if r.Method == http.MethodHead || strings.HasPrefix(r.Path, "/api/v1/connectors") ||
			strings.HasPrefix(r.Path, "/api/v1/templates") ||
			!(strings.HasPrefix(r.Path, "/api/v1/") || strings.HasPrefix(r.Path, "/hooks/")) || r.Path == "/api/v1/openapi.json" {
			continue
		}
		if !covered[r.Method+" "+r.Path] {
			t.Errorf("no isolation case for %s %s", r.Method, r.Path)
		}
	}

	// B's own list is empty.
	list := e.must(http.StatusOK, req{method: "GET", path: "/api/v1/integrations", key: b})
	if items, _ := list.body["integrations"].([]any); len(items) != 0 {
		t.Fatalf("B lists %s", list.raw)
	}
	// A's things are untouched.
	got := e.must(http.StatusOK, req{method: "GET", path: "/api/v1/integrations/orders", key: a})
	if got.str("desired") != store.StateRunning || got.str("status", "state") != "running" {
		t.Fatalf("A's integration after B's attempts: %s", got.raw)
	}
	e.must(http.StatusOK, req{method: "GET", path: "/api/v1/tenants/tenant-a/keys", key: a})
	e.must(http.StatusAccepted, req{method: "POST", path: "/hooks/tenant-a/orders", body: "{}", contentType: "application/json"})
	if n, err := e.store.ListKeys(t.Context(), "tenant-a"); err != nil || len(n) != 2 {
		t.Fatalf("A's keys: %v, %v", n, err)
	}
}

func TestAdminMustNameTenant(t *testing.T) {
	e := newTestEnv(t)
	key := e.createTenant("acme")
	e.createIntegration(key, webhookSpec("orders", "orders", "http://127.0.0.1:1/"))
	r := e.must(http.StatusBadRequest, req{method: "GET", path: "/api/v1/integrations", key: testAdminKey})
	if r.errField("field") != "tenant" {
		t.Fatalf("answer %s", r.raw)
	}
	e.must(http.StatusNotFound, req{method: "GET", path: "/api/v1/integrations?tenant=nobody", key: testAdminKey})
	for _, r := range []req{
		{method: "GET", path: "/api/v1/integrations/orders?tenant=acme", key: testAdminKey},
		{method: "GET", path: "/api/v1/integrations/orders", key: testAdminKey, header: map[string]string{tenantHeader: "acme"}},
		{method: "GET", path: "/api/v1/integrations/orders?tenant=acme", key: key}, // its own name is fine
	} {
		got := e.must(http.StatusOK, r)
		if got.str("tenant") != "acme" {
			t.Fatalf("answer %s", got.raw)
		}
	}
}

func TestQuota(t *testing.T) {
	e := newTestEnv(t)
	key := e.createTenant("acme", store.Quotas{MaxIntegrations: 2})
	for i := range 2 {
		e.createIntegration(key, webhookSpec(fmt.Sprintf("i%d", i), fmt.Sprintf("p%d", i), "http://127.0.0.1:1/"))
	}
	r := e.must(http.StatusTooManyRequests, req{method: "POST", path: "/api/v1/integrations", key: key,
		contentType: "application/yaml", body: webhookSpec("i2", "p2", "http://127.0.0.1:1/")})
	if r.errField("code") != string(CodeQuotaExceeded) || r.errField("field") != "quotas.max_integrations" ||
		!strings.Contains(r.errField("message"), "max_integrations = 2") {
		t.Fatalf("answer %s", r.raw)
	}
	// Deleting one frees a slot.
	e.must(http.StatusNoContent, req{method: "DELETE", path: "/api/v1/integrations/i0", key: key})
	e.createIntegration(key, webhookSpec("i2", "p2", "http://127.0.0.1:1/"))
}

// routeOf returns the registered route pattern that method and path match.
func routeOf(e *testEnv, method, path string) string {
	path, _, _ = strings.Cut(path, "?")
	segs := strings.Split(path, "/")
	for _, r := range e.srv.App().GetRoutes(true) {
		if r.Method != method {
			continue
		}
		pat := strings.Split(r.Path, "/")
		if len(pat) != len(segs) {
			continue
		}
		ok := true
		for i := range pat {
			if pat[i] != segs[i] && !strings.HasPrefix(pat[i], ":") && pat[i] != "+" {
				ok = false
				break
			}
		}
		if ok {
			return r.Path
		}
	}
	return ""
}

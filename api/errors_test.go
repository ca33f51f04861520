package api

import (
	"net/http"
	"strings"
	"testing"
)

// TestBadRequests: every bad request answers 4xx with a JSON error from the
// catalogue that names the field.
func TestBadRequests(t *testing.T) {
	e := newTestEnv(t, func(c *Config) {
		c.BodyLimit = 4 << 10
		c.HookBodyLimit = 16 << 10
	})
	key := e.createTenant("acme")
	other := e.createTenant("other")
	e.createIntegration(key, webhookSpec("orders", "orders", "http://127.0.0.1:1/"))
	e.createIntegration(other, webhookSpec("shared", "shared", "http://127.0.0.1:1/"))
	e.must(http.StatusOK, req{method: "POST", path: "/api/v1/integrations/orders/start", key: key})

	const yaml = "application/yaml"
	valid := webhookSpec("fresh", "fresh", "http://127.0.0.1:1/")
	big := strings.Repeat("x", 5<<10)
	tests := []struct {
		name  string
		r     req
		want  int
		code  Code
		field string
	}{
		// tenants
		{"tenant: unknown field", req{method: "POST", path: "/api/v1/tenants", body: `{"name":"x","colour":"red"}`}, 400, CodeBadRequest, "colour"},
		{"tenant: unknown nested field", req{method: "POST", path: "/api/v1/tenants", body: `{"name":"x","quotas":{"max_sinks":1}}`}, 400, CodeBadRequest, "quotas.max_sinks"},
		{"tenant: wrong type", req{method: "POST", path: "/api/v1/tenants", body: `{"name":"x","quotas":{"max_integrations":"many"}}`}, 400, CodeBadRequest, "quotas.max_integrations"},
		{"tenant: negative quota", req{method: "POST", path: "/api/v1/tenants", body: `{"name":"x","quotas":{"max_integrations":-1}}`}, 400, CodeBadRequest, "quotas.max_integrations"},
		{"tenant: missing name", req{method: "POST", path: "/api/v1/tenants", body: `{"display_name":"x"}`}, 400, CodeBadRequest, "name"},
		{"tenant: bad name", req{method: "POST", path: "/api/v1/tenants", body: `{"name":"Not_A_Label"}`}, 400, CodeBadRequest, "name"},
		{"tenant: not JSON", req{method: "POST", path: "/api/v1/tenants", body: `{"name":`}, 400, CodeBadRequest, "body"},
		{"tenant: not an object", req{method: "POST", path: "/api/v1/tenants", body: `["x"]`}, 400, CodeBadRequest, "body"},
		{"tenant: empty body", req{method: "POST", path: "/api/v1/tenants", body: ``}, 400, CodeBadRequest, "body"},
		{"tenant: duplicate", req{method: "POST", path: "/api/v1/tenants", body: `{"name":"acme"}`}, 409, CodeAlreadyExists, "name"},
		{"tenant: YAML body", req{method: "POST", path: "/api/v1/tenants", body: `name: x`, contentType: yaml}, 415, CodeUnsupportedMedia, "Content-Type"},
		{"tenant patch: rename", req{method: "PATCH", path: "/api/v1/tenants/acme", body: `{"name":"y"}`}, 400, CodeBadRequest, "name"},
		{"key: unknown field", req{method: "POST", path: "/api/v1/tenants/acme/keys", body: `{"label":"x"}`}, 400, CodeBadRequest, "label"},
		{"tenant: body over the limit", req{method: "POST", path: "/api/v1/tenants", body: `{"name":"x","display_name":"` + big + `"}`}, 413, CodeBodyTooLarge, "body"},

		// integrations
		{"spec: unknown field", req{method: "POST", path: "/api/v1/integrations", key: key, contentType: yaml, body: valid + "colour: red\n"}, 400, CodeInvalidSpec, "colour"},
		{"spec: unknown nested field", req{method: "POST", path: "/api/v1/integrations", key: key, contentType: yaml, body: strings.Replace(valid, "  connector: http-webhook", "  connector: http-webhook\n  colour: red", 1)}, 400, CodeInvalidSpec, "source.colour"},
		{"spec: bad YAML", req{method: "POST", path: "/api/v1/integrations", key: key, contentType: yaml, body: "name: [unclosed\nsource: {"}, 400, CodeInvalidSpec, ""},
		{"spec: unknown connector", req{method: "POST", path: "/api/v1/integrations", key: key, contentType: yaml, body: strings.Replace(valid, "connector: http\n", "connector: carrier-pigeon\n", 1)}, 400, CodeInvalidSpec, "sinks[0].connector"},
		{"spec: missing sink url", req{method: "POST", path: "/api/v1/integrations", key: key, contentType: yaml, body: strings.Replace(valid, `url: "http://127.0.0.1:1/", `, "", 1)}, 400, CodeInvalidSpec, "sinks[0].config.url"},
		{"spec: missing sinks", req{method: "POST", path: "/api/v1/integrations", key: key, contentType: yaml, body: "name: x\nsource: {connector: http-webhook, config: {path: x}}\n"}, 400, CodeInvalidSpec, "sinks"},
		{"spec: bad name", req{method: "POST", path: "/api/v1/integrations", key: key, contentType: yaml, body: strings.Replace(valid, "name: fresh", "name: Fresh!", 1)}, 400, CodeInvalidSpec, "name"},
		{"spec: empty", req{method: "POST", path: "/api/v1/integrations", key: key, contentType: yaml, body: ""}, 400, CodeInvalidSpec, ""},
		{"spec: duplicate name", req{method: "POST", path: "/api/v1/integrations", key: key, contentType: yaml, body: webhookSpec("orders", "elsewhere", "http://127.0.0.1:1/")}, 409, CodeAlreadyExists, "name"},
		{"spec: webhook path in use", req{method: "POST", path: "/api/v1/integrations", key: key, contentType: yaml, body: webhookSpec("fresh", "orders", "http://127.0.0.1:1/")}, 409, CodeConflict, "source.config.path"},
		{"spec: wrong content type", req{method: "POST", path: "/api/v1/integrations", key: key, contentType: "text/plain", body: valid}, 415, CodeUnsupportedMedia, "Content-Type"},
		{"spec: body over the limit", req{method: "POST", path: "/api/v1/integrations", key: key, contentType: yaml, body: valid + "description: " + big + "\n"}, 413, CodeBodyTooLarge, "body"},
		{"update: name mismatch", req{method: "PUT", path: "/api/v1/integrations/orders", key: key, contentType: yaml, body: valid}, 400, CodeBadRequest, "name"},
		{"update: invalid spec", req{method: "PUT", path: "/api/v1/integrations/orders", key: key, contentType: yaml, body: strings.Replace(webhookSpec("orders", "orders", "x"), `"x"`, `"ftp://x"`, 1)}, 400, CodeInvalidSpec, "sinks[0].config.url"},
		{"update: missing", req{method: "PUT", path: "/api/v1/integrations/nothing", key: key, contentType: yaml, body: webhookSpec("nothing", "nothing", "http://127.0.0.1:1/")}, 404, CodeNotFound, ""},
		{"admin without tenant", req{method: "POST", path: "/api/v1/integrations", contentType: yaml, body: valid}, 400, CodeBadRequest, "tenant"},

		// auth
		{"wrong key", req{method: "GET", path: "/api/v1/integrations", key: "vrsk_0000000000000000_" + strings.Repeat("0", 64)}, 401, CodeUnauthorized, "Authorization"},
		{"tenant key on admin route", req{method: "GET", path: "/api/v1/tenants", key: key}, 403, CodeForbidden, ""},

		// routing and hooks
		{"unknown route", req{method: "GET", path: "/api/v1/nothing"}, 404, CodeNotFound, ""},
		{"wrong method", req{method: "PATCH", path: "/api/v1/integrations"}, 405, CodeMethodNotAllowed, ""},
		{"hook: no integration", req{method: "POST", path: "/hooks/acme/nothing", body: "{}"}, 404, CodeNotFound, ""},
		{"connector: unknown", req{method: "GET", path: "/api/v1/connectors/carrier-pigeon"}, 404, CodeNotFound, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := e.with(t)
			r := tc.r
			if r.key == "" && !strings.HasPrefix(r.path, "/hooks/") {
				r.key = testAdminKey
			}
			if r.contentType == "" && r.body != nil {
				r.contentType = "application/json"
			}
			got := e.must(tc.want, r)
			if code := got.errField("code"); code != string(tc.code) {
				t.Errorf("code %q, want %q", code, tc.code)
			}
			if f := got.errField("field"); f != tc.field {
				t.Errorf("field %q, want %q", f, tc.field)
			}
			if got.errField("message") == "" {
				t.Errorf("no message")
			}
			if t.Failed() {
				t.Logf("answer: %s", got.raw)
			}
		})
	}
	// None of it changed anything.
	if ts, _ := e.store.ListTenants(t.Context()); len(ts) != 2 {
		t.Fatalf("tenants after the bad requests: %v", ts)
	}
	if ins, _ := e.store.ListIntegrations(t.Context(), "acme"); len(ins) != 1 {
		t.Fatalf("integrations after the bad requests: %v", ins)
	}
}

func TestUnavailableStore(t *testing.T) {
	e := newTestEnv(t)
	key := e.createTenant("acme")
	e.conn.Close() // NATS, and with it the store, goes away
	r := e.must(http.StatusServiceUnavailable, req{method: "GET", path: "/api/v1/integrations", key: key})
	if r.errField("code") != string(CodeUnavailable) || r.header.Get("Retry-After") == "" {
		t.Fatalf("answer %v %s", r.header, r.raw)
	}
	ready := e.must(http.StatusServiceUnavailable, req{method: "GET", path: "/readyz"})
	checks, _ := ready.body["checks"].(map[string]any)
	if checks["nats"] == "ok" || checks["store"] == "ok" || !strings.Contains(ready.errField("message"), "nats") {
		t.Fatalf("readyz answered %s", ready.raw)
	}
	e.must(http.StatusOK, req{method: "GET", path: "/healthz"})
}

package api

import (
	"net/http"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

func TestTemplates(t *testing.T) {
	e := newTestEnv(t)
	key := e.createTenant("acme")
	e.createTenant("other")

	t.Run("list", func(t *testing.T) {
		r := e.with(t).must(http.StatusOK, req{method: "GET", path: "/api/v1/templates", key: key})
		list, _ := r.body["templates"].([]any)
		names := map[string]bool{}
		demos := 0
		for _, x := range list {
			m := x.(map[string]any)
			names[m["name"].(string)] = true
			if m["demo"] == true {
				demos++
			}
		}
		for _, n := range []string{"github-slack", "csv-postgres", "cdc-http", "orders", "webhook-http", "schedule-http", "file-postgres"} {
			if !names[n] {
				t.Errorf("template %s is not listed: %s", n, r.raw)
			}
		}
		if demos != 4 {
			t.Errorf("%d demos listed, want 4", demos)
		}
	})

	t.Run("get", func(t *testing.T) {
		r := e.with(t).must(http.StatusOK, req{method: "GET", path: "/api/v1/templates/orders", key: key})
		params, _ := r.body["parameters"].(map[string]any)
		props, _ := params["properties"].(map[string]any)
		if params["type"] != "object" || props["big_order"] == nil {
			t.Fatalf("parameters are not the JSON Schema: %s", r.raw)
		}
		if !strings.Contains(r.str("spec"), "${big_order}") {
			t.Errorf("spec lacks its placeholders: %s", r.str("spec"))
		}
		r = e.with(t).must(http.StatusNotFound, req{method: "GET", path: "/api/v1/templates/nope", key: key})
		if r.errField("code") != "not_found" || !strings.Contains(r.errField("message"), "webhook-http") {
			t.Errorf("unknown template: %s", r.raw)
		}
	})

	render := func(t *testing.T, key, path string, params map[string]any) resp {
		return e.with(t).do(req{method: "POST", path: path, key: key, body: map[string]any{"parameters": params}})
	}

	t.Run("render", func(t *testing.T) {
		r := render(t, key, "/api/v1/templates/webhook-http/render", map[string]any{"name": "relay", "url": "http://127.0.0.1:9/in"})
		if r.status != http.StatusOK {
			t.Fatalf("render: %d %s", r.status, r.raw)
		}
		if r.str("name") != "relay" || !strings.Contains(r.str("yaml"), `url: "http://127.0.0.1:9/in"`) {
			t.Errorf("rendered: %s", r.raw)
		}
		spec, _ := r.body["spec"].(map[string]any)
		src, _ := spec["source"].(map[string]any)
		cfg, _ := src["config"].(map[string]any)
		if cfg["path"] != "events" {
			t.Errorf("the default path was not filled in: %s", r.raw)
		}
		// What render answers is a spec the integrations API takes.
		e.with(t).createIntegration(key, r.str("yaml"))
		var back map[string]any
		if err := yaml.Unmarshal([]byte(r.str("yaml")), &back); err != nil || back["name"] != "relay" {
			t.Errorf("yaml: %v %v", err, back)
		}
	})

	for _, tc := range []struct {
		name, path string
		params     map[string]any
		status     int
		code       string
		field      string
	}{
		{"missing parameter", "/api/v1/templates/webhook-http/render", map[string]any{"name": "x"}, 400, "invalid_parameters", "parameters.url"},
		{"unknown parameter", "/api/v1/templates/webhook-http/render", map[string]any{"name": "x", "url": "http://h/", "colour": 1}, 400, "invalid_parameters", "parameters.colour"},
		{"wrong type", "/api/v1/templates/orders/render", map[string]any{"dsn_env": "PG", "slack_url_env": "S", "big_order": "lots"}, 400, "invalid_parameters", "parameters.big_order"},
		{"bad pattern", "/api/v1/templates/webhook-http/render", map[string]any{"name": "x", "url": "ftp://h/"}, 400, "invalid_parameters", "parameters.url"},
		// The rendered spec is checked against the caller's catalogue: this
		// server's has the http connectors only.
		{"connector missing", "/api/v1/templates/orders/render", map[string]any{"dsn_env": "PG", "slack_url_env": "S"}, 400, "invalid_spec", "steps[0].connector"},
		{"unknown template", "/api/v1/templates/nope/render", map[string]any{}, 404, "not_found", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := render(t, key, tc.path, tc.params)
			if r.status != tc.status || r.errField("code") != tc.code || r.errField("field") != tc.field {
				t.Fatalf("got %d %s, want %d %s field %q", r.status, r.raw, tc.status, tc.code, tc.field)
			}
		})
	}

	t.Run("bad body", func(t *testing.T) {
		r := e.with(t).do(req{method: "POST", path: "/api/v1/templates/webhook-http/render", key: key, body: `{"params": {}}`, contentType: "application/json"})
		if r.status != 400 || r.errField("field") != "params" {
			t.Errorf("unknown body field: %d %s", r.status, r.raw)
		}
	})

	t.Run("keys", func(t *testing.T) {
		for _, path := range []string{"/api/v1/templates", "/api/v1/templates/orders"} {
			for _, k := range []string{"", "vrsk_not-a-key", testAdminKey + "x"} {
				r := e.with(t).do(req{method: "GET", path: path, key: k})
				if r.status != http.StatusUnauthorized || r.errField("code") != "unauthorized" {
					t.Errorf("GET %s with key %q: %d %s", path, k, r.status, r.raw)
				}
			}
		}
		r := render(t, "", "/api/v1/templates/webhook-http/render", map[string]any{"name": "x", "url": "http://h/"})
		if r.status != http.StatusUnauthorized {
			t.Errorf("render without a key: %d %s", r.status, r.raw)
		}
		// A tenant key cannot render for another tenant.
		r = e.with(t).do(req{method: "POST", path: "/api/v1/templates/webhook-http/render?tenant=other", key: key,
			body: map[string]any{"parameters": map[string]any{"name": "x", "url": "http://h/"}}})
		if r.status != http.StatusNotFound {
			t.Errorf("render for another tenant: %d %s", r.status, r.raw)
		}
		// The admin key renders for the platform, or for a tenant it names.
		for _, path := range []string{"/api/v1/templates/webhook-http/render", "/api/v1/templates/webhook-http/render?tenant=other"} {
			r = render(t, testAdminKey, path, map[string]any{"name": "x", "url": "http://h/"})
			if r.status != http.StatusOK {
				t.Errorf("admin render %s: %d %s", path, r.status, r.raw)
			}
		}
	})
}

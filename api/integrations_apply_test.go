package api

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vrsky/vrsky/platform/store"
)

// TestReplaceUnchanged: a PUT whose spec says what the stored one says
// (as YAML, as JSON with its config's keys in another order, with the
// defaults written out) answers 200 without writing: the revision and
// updated_at stay, and the running integration is not restarted (its
// source's counter, which a restart resets, keeps its count). A PUT that
// changes the spec restarts it: the control that shows the check sees a
// restart.
func TestReplaceUnchanged(t *testing.T) {
	e := newTestEnv(t)
	key := e.createTenant("acme")
	spec := webhookSpec("orders", "orders", "http://127.0.0.1:1/")
	e.createIntegration(key, spec)
	e.must(http.StatusOK, req{method: "POST", path: "/api/v1/integrations/orders/start", key: key})
	e.post("acme", "orders", `{"a":1}`)
	ingested := func() float64 {
		r := e.must(http.StatusOK, req{method: "GET", path: "/api/v1/integrations/orders", key: key})
		st, _ := r.body["status"].(map[string]any)
		n, _ := st["ingested"].(float64)
		return n
	}
	eventually(t, 10*time.Second, "the message counted as ingested", func() bool { return ingested() == 1 })
	before, err := e.store.GetIntegration(t.Context(), "acme", "orders")
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, contentType, body string
	}{
		{"same yaml", "application/yaml", spec},
		{"json, keys reordered", "application/json",
			`{"sinks":[{"config":{"timeout":"5s","url":"http://127.0.0.1:1/"},"connector":"http","name":"out"}],"source":{"config":{"path":"orders"},"connector":"http-webhook"},"name":"orders"}`},
		{"defaults written out", "application/yaml", spec + "retry: {max_attempts: 3, initial_backoff: 1s, max_backoff: 30s}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := e.with(t)
			r := e.must(http.StatusOK, req{method: "PUT", path: "/api/v1/integrations/orders", key: key, contentType: tc.contentType, body: tc.body})
			if got := r.body["revision"].(float64); uint64(got) != before.Revision {
				t.Errorf("answered revision %v, want the stored %d", got, before.Revision)
			}
			if r.str("status", "state") != "running" {
				t.Errorf("state after an unchanged PUT: %s", r.raw)
			}
			after, err := e.store.GetIntegration(t.Context(), "acme", "orders")
			if err != nil {
				t.Fatal(err)
			}
			if after.Revision != before.Revision || !after.UpdatedAt.Equal(before.UpdatedAt) {
				t.Errorf("the store was written: revision %d → %d, updated_at %v → %v", before.Revision, after.Revision, before.UpdatedAt, after.UpdatedAt)
			}
			if n := ingested(); n != 1 {
				t.Errorf("ingested %v after an unchanged PUT, want 1: the integration restarted", n)
			}
		})
	}

	changed := strings.Replace(spec, "timeout: 5s", "timeout: 6s", 1)
	r := e.must(http.StatusOK, req{method: "PUT", path: "/api/v1/integrations/orders", key: key, contentType: "application/yaml", body: changed})
	if got := uint64(r.body["revision"].(float64)); got <= before.Revision {
		t.Fatalf("a changed spec answered revision %d, stored was %d", got, before.Revision)
	}
	eventually(t, 10*time.Second, "the restarted integration's counter reset", func() bool { return ingested() == 0 })
}

// TestDryRun: ?dry_run=true on create and replace runs every check the
// write would (spec, name, quota, webhook path) and stores nothing.
func TestDryRun(t *testing.T) {
	e := newTestEnv(t)
	key := e.createTenant("acme", store.Quotas{MaxIntegrations: 2})
	e.createIntegration(key, webhookSpec("orders", "orders", "http://127.0.0.1:1/"))
	stored, err := e.store.GetIntegration(t.Context(), "acme", "orders")
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, method, path, body string
		want                     int
		field                    string // of the error, when want is not 200
		wantURL                  string // in the answer's spec, when want is 200
	}{
		{name: "create", method: "POST", path: "/api/v1/integrations?dry_run=true",
			body: webhookSpec("billing", "billing", "http://127.0.0.1:3/"), want: 200, wantURL: "http://127.0.0.1:3/"},
		{name: "create, invalid spec", method: "POST", path: "/api/v1/integrations?dry_run=true",
			body: "name: x\nsource: {connector: http-webhook, config: {path: x}}\nsinks: [{name: a, connector: http, config: {}}]\n", want: 400, field: "sinks[0].config.url"},
		{name: "create, name taken", method: "POST", path: "/api/v1/integrations?dry_run=1",
			body: webhookSpec("orders", "other", "http://127.0.0.1:1/"), want: 409, field: "name"},
		{name: "create, webhook path taken", method: "POST", path: "/api/v1/integrations?dry_run=true",
			body: webhookSpec("billing", "orders", "http://127.0.0.1:1/"), want: 409, field: "source.config.path"},
		{name: "create, dry_run not a boolean", method: "POST", path: "/api/v1/integrations?dry_run=maybe",
			body: webhookSpec("billing", "billing", "http://127.0.0.1:1/"), want: 400, field: "dry_run"},
		{name: "replace", method: "PUT", path: "/api/v1/integrations/orders?dry_run=true",
			body: webhookSpec("orders", "orders", "http://127.0.0.1:4/"), want: 200, wantURL: "http://127.0.0.1:4/"},
		{name: "replace, invalid spec", method: "PUT", path: "/api/v1/integrations/orders?dry_run=true",
			body: "name: orders\nsource: {connector: http-webhook, config: {path: orders}}\nsinks: [{name: a, connector: nope}]\n", want: 400, field: "sinks[0].connector"},
		{name: "replace, renamed", method: "PUT", path: "/api/v1/integrations/orders?dry_run=true",
			body: webhookSpec("other", "orders", "http://127.0.0.1:1/"), want: 400, field: "name"},
		{name: "replace, missing", method: "PUT", path: "/api/v1/integrations/nothing?dry_run=true",
			body: webhookSpec("nothing", "nothing", "http://127.0.0.1:1/"), want: 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := e.with(t)
			r := e.must(tc.want, req{method: tc.method, path: tc.path, key: key, contentType: "application/yaml", body: tc.body})
			if tc.want != http.StatusOK {
				if r.errField("field") != tc.field {
					t.Errorf("error field %q, want %q: %s", r.errField("field"), tc.field, r.raw)
				}
				return
			}
			if !strings.Contains(string(r.raw), fmt.Sprintf("%q", tc.wantURL)) {
				t.Errorf("the answer does not show the spec it checked: %s", r.raw)
			}
			conforms(t, "Integration", r.raw)
		})
	}

	// Nothing was stored: no billing, orders as it was, no streams.
	e.must(http.StatusNotFound, req{method: "GET", path: "/api/v1/integrations/billing", key: key})
	after, err := e.store.GetIntegration(t.Context(), "acme", "orders")
	if err != nil {
		t.Fatal(err)
	}
	if after.Revision != stored.Revision || !sameSpec(after.Spec, stored.Spec) {
		t.Errorf("a dry run changed orders: revision %d → %d, spec %s", stored.Revision, after.Revision, after.Spec)
	}
	if n := countStreams(t, e, "VRSKY_acme_billing"); n != 0 {
		t.Errorf("a dry run created %d streams", n)
	}
}

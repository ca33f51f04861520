package api

import (
	"context"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/vrsky/vrsky/platform/natsx"
)

var keyPattern = regexp.MustCompile(`^vrsk_[0-9a-f]{16}_[0-9a-f]{64}$`)

func TestTenantCRUD(t *testing.T) {
	e := newTestEnv(t)
	admin := testAdminKey

	created := e.must(http.StatusCreated, req{method: "POST", path: "/api/v1/tenants", key: admin,
		body: map[string]any{"name": "acme", "display_name": "Acme Inc.", "quotas": map[string]any{"max_integrations": 5}}})
	if created.str("name") != "acme" || !keyPattern.MatchString(created.str("api_key")) {
		t.Fatalf("create answered %s", created.raw)
	}
	key := created.str("api_key")
	// Only the hash is stored.
	k, err := e.store.GetKey(t.Context(), created.str("key_id"))
	if err != nil {
		t.Fatalf("stored key: %v", err)
	}
	if string(k.Hash) == key || len(k.Hash) != 32 {
		t.Fatalf("stored key hash is %x", k.Hash)
	}

	e.must(http.StatusConflict, req{method: "POST", path: "/api/v1/tenants", key: admin, body: map[string]any{"name": "acme"}})

	got := e.must(http.StatusOK, req{method: "GET", path: "/api/v1/tenants/acme", key: admin})
	if got.str("display_name") != "Acme Inc." {
		t.Fatalf("get answered %s", got.raw)
	}
	// A tenant's key reads its own tenant.
	e.must(http.StatusOK, req{method: "GET", path: "/api/v1/tenants/acme", key: key})

	list := e.must(http.StatusOK, req{method: "GET", path: "/api/v1/tenants", key: admin})
	if ts, _ := list.body["tenants"].([]any); len(ts) != 1 {
		t.Fatalf("list answered %s", list.raw)
	}

	patched := e.must(http.StatusOK, req{method: "PATCH", path: "/api/v1/tenants/acme", key: admin,
		body: map[string]any{"display_name": "ACME", "quotas": map[string]any{"max_integrations": 7}}})
	if patched.str("display_name") != "ACME" {
		t.Fatalf("patch answered %s", patched.raw)
	}
	tn, err := e.store.GetTenant(t.Context(), "acme")
	if err != nil || tn.Quotas.MaxIntegrations != 7 || tn.DisplayName != "ACME" {
		t.Fatalf("stored tenant after patch: %+v, %v", tn, err)
	}

	e.must(http.StatusNoContent, req{method: "DELETE", path: "/api/v1/tenants/acme", key: admin})
	e.must(http.StatusNotFound, req{method: "GET", path: "/api/v1/tenants/acme", key: admin})
	e.must(http.StatusNotFound, req{method: "DELETE", path: "/api/v1/tenants/acme", key: admin})
	// Its keys went with it.
	r := e.must(http.StatusUnauthorized, req{method: "GET", path: "/api/v1/integrations", key: key})
	if r.header.Get("WWW-Authenticate") == "" {
		t.Fatal("401 without WWW-Authenticate")
	}
}

func TestKeys(t *testing.T) {
	e := newTestEnv(t)
	first := e.createTenant("acme")

	// The admin issues a key; so does the tenant itself.
	byAdmin := e.must(http.StatusCreated, req{method: "POST", path: "/api/v1/tenants/acme/keys", key: testAdminKey, body: map[string]any{"name": "ci"}})
	bySelf := e.must(http.StatusCreated, req{method: "POST", path: "/api/v1/tenants/acme/keys", key: first})
	for _, r := range []resp{byAdmin, bySelf} {
		if !keyPattern.MatchString(r.str("api_key")) || r.str("tenant") != "acme" || r.str("id") == "" {
			t.Fatalf("key create answered %s", r.raw)
		}
		e.must(http.StatusOK, req{method: "GET", path: "/api/v1/integrations", key: r.str("api_key")})
	}
	list := e.must(http.StatusOK, req{method: "GET", path: "/api/v1/tenants/acme/keys", key: first})
	keys, _ := list.body["keys"].([]any)
	if len(keys) != 3 {
		t.Fatalf("list answered %s", list.raw)
	}
	for _, k := range keys {
		if m := k.(map[string]any); m["hash"] != nil || m["api_key"] != nil {
			t.Fatalf("list shows secrets: %s", list.raw)
		}
	}

	// Revoked keys no longer authenticate.
	e.must(http.StatusNoContent, req{method: "DELETE", path: "/api/v1/tenants/acme/keys/" + byAdmin.str("id"), key: testAdminKey})
	e.must(http.StatusNoContent, req{method: "DELETE", path: "/api/v1/tenants/acme/keys/" + bySelf.str("id"), key: first})
	e.must(http.StatusNotFound, req{method: "DELETE", path: "/api/v1/tenants/acme/keys/" + bySelf.str("id"), key: first})
	for _, r := range []resp{byAdmin, bySelf} {
		got := e.must(http.StatusUnauthorized, req{method: "GET", path: "/api/v1/integrations", key: r.str("api_key")})
		if got.errField("code") != string(CodeUnauthorized) || got.header.Get("WWW-Authenticate") == "" {
			t.Fatalf("revoked key answered %v %s", got.header, got.raw)
		}
	}
	e.must(http.StatusOK, req{method: "GET", path: "/api/v1/integrations", key: first})
}

func TestAuthentication(t *testing.T) {
	e := newTestEnv(t)
	key := e.createTenant("acme")
	// A well-formed key whose secret is wrong.
	forged := key[:len("vrsk_")+16+1] + "0000000000000000000000000000000000000000000000000000000000000000"
	tests := []struct {
		name   string
		header string
	}{
		{"no header", ""},
		{"not bearer", "Basic " + key},
		{"empty bearer", "Bearer "},
		{"unknown admin-like key", "Bearer " + testAdminKey + "x"},
		{"malformed key", "Bearer vrsk_nothex"},
		{"unknown key id", "Bearer vrsk_0123456789abcdef_" + key[len(key)-64:]},
		{"wrong secret", "Bearer " + forged},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := e.with(t)
			h := map[string]string{}
			if tc.header != "" {
				h["Authorization"] = tc.header
			}
			r := e.must(http.StatusUnauthorized, req{method: "GET", path: "/api/v1/integrations", header: h})
			if r.errField("code") != string(CodeUnauthorized) || r.errField("field") != "Authorization" {
				t.Fatalf("answer %s", r.raw)
			}
			if got := r.header.Get("WWW-Authenticate"); got == "" {
				t.Fatal("no WWW-Authenticate header")
			}
		})
	}
}

func TestTenantDeleteRemovesIntegrations(t *testing.T) {
	e := newTestEnv(t)
	key := e.createTenant("acme")
	e.createIntegration(key, webhookSpec("orders", "orders", "http://127.0.0.1:1/"))
	e.must(http.StatusOK, req{method: "POST", path: "/api/v1/integrations/orders/start", key: key})
	if n := countStreams(t, e, "VRSKY_acme_"); n != 1 {
		t.Fatalf("%d streams for acme's integrations, want 1", n)
	}
	tn, err := e.store.GetTenant(t.Context(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	e.must(http.StatusNoContent, req{method: "DELETE", path: "/api/v1/tenants/acme", key: testAdminKey})
	// The tenant's account is gone with its streams: its users cannot sign in.
	acct, err := e.conn.Keys().TenantAccount("acme", tn.CreatedAt.UnixMicro())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if c, err := e.conn.DialAs(ctx, natsx.As{Name: "after-delete", Account: acct}); err == nil {
		c.Close()
		t.Fatal("a user of the deleted tenant's account signed in")
	}
	if _, err := e.store.GetIntegration(t.Context(), "acme", "orders"); err == nil {
		t.Fatal("integration still stored")
	}
	e.must(http.StatusNotFound, req{method: "POST", path: "/hooks/acme/orders", body: `{}`, contentType: "application/json"})
}

// countStreams counts the streams in acme's account whose names start
// with prefix.
func countStreams(t *testing.T, e *testEnv, prefix string) int {
	t.Helper()
	conn, err := e.eng.Tenants().Conn(t.Context(), "acme")
	if err != nil {
		t.Fatalf("acme's NATS: %v", err)
	}
	n := 0
	names := conn.JS.StreamNames(t.Context())
	for name := range names.Name() {
		if len(name) >= len(prefix) && name[:len(prefix)] == prefix {
			n++
		}
	}
	if err := names.Err(); err != nil {
		t.Fatalf("stream names: %v", err)
	}
	return n
}

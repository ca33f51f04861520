package api

import (
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"

	"github.com/vrsky/vrsky/runtime"
)

// TestTenantNameRules: a name holding "--" or one the platform reserves
// is refused with 400 naming the field; nothing is created.
func TestTenantNameRules(t *testing.T) {
	e := newTestEnv(t)
	for _, tc := range []struct {
		name, why string // why: a word the message must hold; "" = accepted
	}{
		{"a--b", "--"},
		{"acme--x", "--"},
		{"sha256", "reserved"},
		{"sha512", "reserved"},
		{"vrsky", "reserved"},
		{"vrsky-smoke", "reserved"},
		{"vrsky-anything", "vrsky-"},
		{"smoke", "reserved"},
		{"system", "reserved"},
		{"sys", "reserved"},
		{"admin", "reserved"},
		{"platform", "reserved"},
		{"builtin", "reserved"},
		{"Acme", "lowercase"},
		{"-a", "lowercase"},
		{strings.Repeat("a", 64), "lowercase"},
		{"a-b", ""},
		{"acme-x", ""},
		{"vrsky1", ""},
		{"sha2566", ""},
		{"my-admin", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := e.with(t)
			if tc.why == "" {
				e.createTenant(tc.name)
				return
			}
			got := e.must(http.StatusBadRequest, req{method: "POST", path: "/api/v1/tenants", key: testAdminKey, body: map[string]any{"name": tc.name}})
			if f := got.errField("field"); f != "name" {
				t.Errorf("field %q, want name", f)
			}
			if c := got.errField("code"); c != string(CodeBadRequest) {
				t.Errorf("code %q, want %q", c, CodeBadRequest)
			}
			if m := got.errField("message"); !strings.Contains(m, tc.why) {
				t.Errorf("message %q does not say why (%q)", m, tc.why)
			}
			if _, err := e.store.GetTenant(t.Context(), tc.name); err == nil {
				t.Errorf("tenant %q was stored", tc.name)
			}
		})
	}
}

// TestTenantSecretScopesDisjoint: for generated names that checkTenantName
// accepts, no tenant's secret scope is a prefix of another's (the proof is
// in runtime.SecretEnvScope's comment). The alphabet is small so that
// names extend one another often.
func TestTenantSecretScopesDisjoint(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 2))
	const alphabet = "a0-"
	names := map[string]bool{}
	for range 20000 {
		b := make([]byte, 1+rng.IntN(7))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		if n := string(b); checkTenantName(n) == nil {
			names[n] = true
		}
	}
	if len(names) < 200 {
		t.Fatalf("only %d valid names generated", len(names))
	}
	for a := range names {
		sa := runtime.SecretEnvScope("VRSKY_SECRET_", a)
		for b := range names {
			if sb := runtime.SecretEnvScope("VRSKY_SECRET_", b); a != b && strings.HasPrefix(sb, sa) {
				t.Fatalf("tenant %q's scope %q is a prefix of tenant %q's scope %q", a, sa, b, sb)
			}
		}
	}
}

// TestSecretOfAnotherTenantRefused: tenant acme's spec naming tenant
// acme-x's secret is refused with 400 naming the field, and creates
// nothing; acme-x may use it.
func TestSecretOfAnotherTenantRefused(t *testing.T) {
	t.Setenv("VRSKY_SECRET_ACME_X__TOKEN", "acme-x's token")
	t.Setenv("VRSKY_SECRET_ACME_X_TOKEN", "acme-x's token, old style")
	e := newTestEnvWith(t, func(c *runtime.Config) { c.SecretEnvPrefix = "VRSKY_SECRET_" })
	acme, acmeX := e.createTenant("acme"), e.createTenant("acme-x")
	spec := func(env string) string {
		return `name: steal
source: {connector: http-webhook, config: {path: steal}}
sinks:
  - name: out
    connector: http
    config: {url: "http://127.0.0.1:1/", auth: {type: bearer, token_env: ` + env + `}}
`
	}
	for _, env := range []string{"VRSKY_SECRET_ACME_X__TOKEN", "VRSKY_SECRET_ACME_X_TOKEN"} {
		t.Run(env, func(t *testing.T) {
			got := e.with(t).must(http.StatusBadRequest, req{method: "POST", path: "/api/v1/integrations", key: acme, contentType: "application/yaml", body: spec(env)})
			if f := got.errField("field"); f != "sinks[0].config.auth.token_env" {
				t.Errorf("field %q, want sinks[0].config.auth.token_env", f)
			}
			if c := got.errField("code"); c != string(CodeInvalidSpec) {
				t.Errorf("code %q, want %q", c, CodeInvalidSpec)
			}
			if m := got.errField("message"); !strings.Contains(m, "VRSKY_SECRET_ACME__") {
				t.Errorf("message %q does not name acme's scope", m)
			}
		})
	}
	if ins, err := e.store.ListIntegrations(t.Context(), "acme"); err != nil || len(ins) != 0 {
		t.Fatalf("acme's integrations after the refusals: %v, %v", ins, err)
	}
	// The owner may name it.
	e.createIntegration(acmeX, spec("VRSKY_SECRET_ACME_X__TOKEN"))
}

package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"

	"github.com/vrsky/vrsky/runtime"
	"github.com/vrsky/vrsky/runtime/runtimetest"
)

// validTenant is what the API accepts as a tenant name (api/tenants.go):
// a DNS label without "--". The runtime does not validate names itself,
// so the property below is stated for exactly these.
var validTenant = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

func isValidTenant(s string) bool { return validTenant.MatchString(s) && !strings.Contains(s, "--") }

// TestSecretEnvScopeTable: the scope of one tenant never covers the
// variables of another whose name extends it.
func TestSecretEnvScopeTable(t *testing.T) {
	const p = "VRSKY_SECRET_"
	for _, tc := range []struct {
		tenant, other, otherVar string
	}{
		{"acme", "acme-x", "VRSKY_SECRET_ACME_X__TOKEN"},
		{"a", "a-b", "VRSKY_SECRET_A_B__DSN"},
		{"a", "ab", "VRSKY_SECRET_AB__DSN"},
		{"a-b", "a-b-c", "VRSKY_SECRET_A_B_C__DSN"},
		{"a-b", "a", "VRSKY_SECRET_A__DSN"},
		{"x1", "x1-0", "VRSKY_SECRET_X1_0__K"},
	} {
		t.Run(tc.tenant+" vs "+tc.other, func(t *testing.T) {
			own, other := runtime.SecretEnvScope(p, tc.tenant), runtime.SecretEnvScope(p, tc.other)
			if strings.HasPrefix(own, other) || strings.HasPrefix(other, own) {
				t.Fatalf("scopes %q and %q overlap", own, other)
			}
			if !strings.HasPrefix(tc.otherVar, other) {
				t.Fatalf("%s is not in %s's scope %s", tc.otherVar, tc.other, other)
			}
			if strings.HasPrefix(tc.otherVar, own) {
				t.Fatalf("%s's variable %s lies in %s's scope %s", tc.other, tc.otherVar, tc.tenant, own)
			}
		})
	}
	if got := runtime.SecretEnvScope(p, "acme-x"); got != "VRSKY_SECRET_ACME_X__" {
		t.Fatalf("SecretEnvScope(acme-x) = %q", got)
	}
}

// TestSecretEnvScopesDisjoint checks the claim in SecretEnvScope's doc
// comment over generated tenant names, biased towards the names that
// used to collide: one name a prefix of the other, '-' where the other
// ends.
func TestSecretEnvScopesDisjoint(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 1))
	const alphabet = "ab0-"
	gen := func() string {
		for {
			b := make([]byte, 1+rng.IntN(8))
			for i := range b {
				b[i] = alphabet[rng.IntN(len(alphabet))]
			}
			if s := string(b); isValidTenant(s) {
				return s
			}
		}
	}
	names := map[string]bool{}
	for len(names) < 400 {
		n := gen()
		names[n] = true
		// Its extensions, which the old scope PREFIX<T>_ let n reach.
		for _, ext := range []string{"-a", "-0", "a", "-a-b"} {
			if isValidTenant(n + ext) {
				names[n+ext] = true
			}
		}
	}
	list := make([]string, 0, len(names))
	for n := range names {
		list = append(list, n)
	}
	pairs := 0
	for _, a := range list {
		sa := runtime.SecretEnvScope("VRSKY_SECRET_", a)
		for _, b := range list {
			if a == b {
				continue
			}
			if sb := runtime.SecretEnvScope("VRSKY_SECRET_", b); strings.HasPrefix(sb, sa) {
				t.Fatalf("tenant %q's scope %q is a prefix of tenant %q's scope %q", a, sa, b, sb)
			}
			pairs++
		}
	}
	t.Logf("%d names, %d ordered pairs", len(list), pairs)
}

// TestSecretEnvOfAnotherTenantRefused: CheckSpec refuses tenant acme's
// spec naming a variable of tenant acme-x (or one outside any scope),
// naming the field.
func TestSecretEnvOfAnotherTenantRefused(t *testing.T) {
	c := &checked{}
	h := runtimetest.Start(t, []runtime.Connector{c.connector()}, manual, func(cfg *runtime.Config) {
		cfg.SecretEnvPrefix = "VRSKY_SECRET_"
	})
	for _, tc := range []struct {
		name, tenant, env string
		ok                bool
	}{
		{"acme names acme-x's token", "acme", "VRSKY_SECRET_ACME_X__TOKEN", false},
		{"acme names acme-x's token, old style", "acme", "VRSKY_SECRET_ACME_X_TOKEN", false},
		{"acme, single underscore", "acme", "VRSKY_SECRET_ACME_TOKEN", false},
		{"acme, the scope alone", "acme", "VRSKY_SECRET_ACME__", false},
		{"acme-x names acme's token", "acme-x", "VRSKY_SECRET_ACME__TOKEN", false},
		{"acme names its own", "acme", "VRSKY_SECRET_ACME__TOKEN", true},
		{"acme-x names its own", "acme-x", "VRSKY_SECRET_ACME_X__TOKEN", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec, err := h.Engine.ParseSpec(fmt.Appendf(nil,
				`{"name":"s","source":{"connector":"test-source"},"sinks":[{"name":"b","connector":"checked","config":{"auth":{"token_env":%q}}}]}`, tc.env))
			if err != nil {
				t.Fatal(err)
			}
			err = h.Engine.CheckSpec(context.Background(), tc.tenant, spec)
			var se *runtime.SpecError
			switch {
			case tc.ok && err != nil:
				t.Fatalf("CheckSpec = %v, want it accepted", err)
			case !tc.ok && (!errors.As(err, &se) || se.Field != "sinks[0].config.auth.token_env" ||
				!strings.Contains(se.Reason, runtime.SecretEnvScope("VRSKY_SECRET_", tc.tenant))):
				t.Fatalf("CheckSpec = %v, want a refusal on sinks[0].config.auth.token_env naming the tenant's scope", err)
			}
		})
	}
}

package api

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vrsky/vrsky/platform/provision"
	"github.com/vrsky/vrsky/platform/tenancy"
	"github.com/vrsky/vrsky/runtime"
	"github.com/vrsky/vrsky/runtime/runtimetest"
)

// TestTenantPlacement: PATCH placement moves a tenant onto a dedicated
// nats-server (the local provisioner's child process) and back, GET
// .../nats and /readyz show where it lives and how its instance is, every
// webhook message answered 202 is delivered, and deleting a dedicated
// tenant removes its instance. Without a provisioner the move is refused,
// naming the field.
func TestTenantPlacement(t *testing.T) {
	// One node, which waits two reconcile intervals at each step of a move.
	e := newTestEnvWith(t, func(c *runtime.Config) { c.ReconcileInterval = 200 * time.Millisecond })
	key := e.createTenant("acme")
	patch := func(placement string, want int) resp {
		t.Helper()
		return e.must(want, req{method: "PATCH", path: "/api/v1/tenants/acme", key: testAdminKey, body: map[string]any{"placement": placement}})
	}
	for _, tc := range []struct {
		placement string
		want      int
	}{{"elsewhere", http.StatusBadRequest}, {"dedicated", http.StatusUnprocessableEntity}} {
		if r := patch(tc.placement, tc.want); r.errField("field") != "placement" {
			t.Fatalf("placement %q: %s, want the field named", tc.placement, r.raw)
		}
	}

	local, err := provision.NewLocal(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = local.Close() })
	e.eng.Tenants().(*tenancy.Manager).SetProvisioner(tenancy.LocalProvisioner(local), false)
	e.reg.MustRegister(e.eng.Tenants().(*tenancy.Manager)) // as vrsky serve does

	var mu sync.Mutex
	got := map[string]bool{}
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got[string(b)] = true
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(sink.Close)
	e.createIntegration(key, webhookSpec("orders", "orders", sink.URL))
	e.must(http.StatusOK, req{method: "POST", path: "/api/v1/integrations/orders/start", key: key})
	sent := 0
	post := func() {
		t.Helper()
		body := fmt.Sprintf(`{"n":%d}`, sent)
		deadline := time.Now().Add(30 * time.Second)
		for {
			r := e.do(req{method: "POST", path: "/hooks/acme/orders", body: body, contentType: "application/json"})
			if r.status == http.StatusAccepted {
				sent++
				return
			}
			if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" || time.Now().After(deadline) {
				t.Fatalf("hook: %d %s, want 202, or 429 with Retry-After while the tenant moves", r.status, r.raw)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	nats := func() resp {
		t.Helper()
		return e.must(http.StatusOK, req{method: "GET", path: "/api/v1/tenants/acme/nats", key: testAdminKey})
	}
	waitPlacement := func(want string) resp {
		t.Helper()
		var r resp
		runtimetest.WaitFor(t, 60*time.Second, "placement "+want, func() bool {
			post() // load all along
			r = nats()
			return r.str("placement") == want && r.body["moving"] == nil
		})
		return r
	}

	// move asks for a placement; a PATCH while the last move still
	// cleans up (the old placement's streams, its instance) is refused, 409.
	move := func(placement string) {
		t.Helper()
		runtimetest.WaitFor(t, 30*time.Second, "the move to "+placement+" accepted", func() bool {
			r := e.do(req{method: "PATCH", path: "/api/v1/tenants/acme", key: testAdminKey, body: map[string]any{"placement": placement}})
			if r.status != http.StatusAccepted && r.status != http.StatusConflict {
				t.Fatalf("PATCH placement %s: %d %s", placement, r.status, r.raw)
			}
			return r.status == http.StatusAccepted
		})
	}

	post()
	shared := nats()
	if shared.str("placement") != "shared" || shared.str("account") == "" {
		t.Fatalf("before the move: %s", shared.raw)
	}
	move("dedicated")
	r := waitPlacement("dedicated")
	inst, _ := r.body["instance"].(map[string]any)
	if r.str("url") == "" || inst == nil || inst["ready"] != true || r.str("account") != shared.str("account") {
		t.Fatalf("after the move: %s, want the same account on a ready instance", r.raw)
	}
	ready := e.must(http.StatusOK, req{method: "GET", path: "/readyz"})
	if list, _ := ready.body["tenant_nats"].([]any); len(list) != 1 {
		t.Fatalf("/readyz: %s, want acme's instance listed", ready.raw)
	}
	metrics := e.must(http.StatusOK, req{method: "GET", path: "/metrics"})
	if !strings.Contains(string(metrics.raw), `vrsky_tenant_nats_ready{tenant="acme"} 1`) {
		t.Fatalf("/metrics lacks acme's instance, ready:\n%s", metrics.raw)
	}
	post()
	move("shared")
	waitPlacement("shared")
	// The move removes the instance it left once every node has followed.
	runtimetest.WaitFor(t, 30*time.Second, "the instance removed after moving back", func() bool { return len(local.Health()) == 0 })
	post()
	runtimetest.WaitFor(t, 30*time.Second, fmt.Sprintf("all %d messages delivered", sent), func() bool {
		mu.Lock()
		defer mu.Unlock()
		for n := range sent {
			if !got[fmt.Sprintf(`{"n":%d}`, n)] {
				return false
			}
		}
		return true
	})

	// A dedicated tenant deleted: its instance goes with it.
	move("dedicated")
	waitPlacement("dedicated")
	e.must(http.StatusNoContent, req{method: "DELETE", path: "/api/v1/tenants/acme", key: testAdminKey})
	if hs := local.Health(); len(hs) != 0 {
		t.Fatalf("instances after the tenant's delete: %+v", hs)
	}
}

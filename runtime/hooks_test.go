package runtime_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/vrsky/vrsky/runtime"
)

// The webhook router: a path is one source's at a time per tenant, other
// tenants have paths of their own, and an unregistered path is ErrNoHook.
func TestHooksRouteByTenantAndPath(t *testing.T) {
	hooks := runtime.NewHooks()
	ctx := context.Background()
	answer := func(status int) runtime.HookHandler {
		return func(context.Context, *runtime.HookRequest) (*runtime.HookResponse, error) {
			return &runtime.HookResponse{Status: status}, nil
		}
	}
	unregister, err := hooks.Register("acme", "orders", answer(http.StatusAccepted))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hooks.Register("acme", "orders", answer(http.StatusTeapot)); err == nil || !strings.Contains(err.Error(), "already served") {
		t.Fatalf("a second source on acme/orders: err = %v, want a refusal", err)
	}
	other, err := hooks.Register("globex", "orders", answer(http.StatusTeapot))
	if err != nil {
		t.Fatalf("globex's own orders path: %v", err)
	}
	defer other()
	if resp, err := hooks.Serve(ctx, "acme", "orders", &runtime.HookRequest{Method: "POST"}); err != nil || resp.Status != http.StatusAccepted {
		t.Fatalf("acme/orders: %+v, %v", resp, err)
	}
	if resp, err := hooks.Serve(ctx, "globex", "orders", &runtime.HookRequest{Method: "POST"}); err != nil || resp.Status != http.StatusTeapot {
		t.Fatalf("globex/orders: %+v, %v", resp, err)
	}
	unregister()
	unregister() // twice is harmless
	if _, err := hooks.Serve(ctx, "acme", "orders", &runtime.HookRequest{Method: "POST"}); !errors.Is(err, runtime.ErrNoHook) {
		t.Fatalf("after unregister: err = %v, want ErrNoHook", err)
	}
	if _, err := hooks.Register("acme", "orders", answer(http.StatusAccepted)); err != nil {
		t.Fatalf("the freed path: %v", err)
	}
}

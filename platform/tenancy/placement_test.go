package tenancy_test

import (
	"context"
	"testing"

	"github.com/vrsky/vrsky/platform/natsx/natsxtest"
	"github.com/vrsky/vrsky/platform/provision"
	"github.com/vrsky/vrsky/platform/store"
	"github.com/vrsky/vrsky/platform/tenancy"
)

// TestFollowBeforeRemove: a node whose connections of a tenant still dial
// the platform servers (another node moved the tenant to a dedicated
// instance) finds the instance through the tenant's endpoint record
// (Follow), so Remove deletes the instance too, not just the platform
// account.
func TestFollowBeforeRemove(t *testing.T) {
	conn := natsxtest.Start(t)
	e := newEnv(t, conn, store.Tenant{Name: "acme"})
	ctx := context.Background()
	local, err := provision.NewLocal(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = local.Close() })
	e.m.SetProvisioner(tenancy.LocalProvisioner(local), false)
	tn, err := e.st.GetTenant(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	// Another node provisioned the instance and recorded the move.
	url, err := e.m.Provision(ctx, tn)
	if err != nil {
		t.Fatal(err)
	}
	acc, err := e.m.Account(tn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.PutEndpoint(ctx, store.Endpoint{Tenant: "acme", Placement: store.PlacementDedicated, URL: url, Account: acc}); err != nil {
		t.Fatal(err)
	}
	if got := e.m.DialURL("acme"); got != "" {
		t.Fatalf("before Follow this node dials %q, want the platform servers", got)
	}
	if err := e.m.Follow(ctx, tn); err != nil {
		t.Fatal(err)
	}
	if got := e.m.DialURL("acme"); got != url {
		t.Fatalf("after Follow this node dials %q, want %s", got, url)
	}
	c, err := e.m.Conn(ctx, "acme")
	if err != nil {
		t.Fatalf("Conn at the instance: %v", err)
	}
	stream(t, c, "acme")
	if err := e.m.Remove(ctx, tn); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if hs := local.Health(); len(hs) != 0 {
		t.Fatalf("instances after Remove: %+v, want none", hs)
	}
}

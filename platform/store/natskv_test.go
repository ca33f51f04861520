package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/vrsky/vrsky/platform/natsx/natsxtest"
	"github.com/vrsky/vrsky/platform/store"
	"github.com/vrsky/vrsky/platform/store/storetest"
)

func openNATS(t *testing.T) *store.NATSStore {
	t.Helper()
	conn := natsxtest.Start(t)
	s, err := store.NewNATS(context.Background(), conn.JS, conn.Replicas)
	if err != nil {
		t.Fatalf("NewNATS: %v", err)
	}
	return s
}

func TestNATSContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openNATS(t) })
}

// TestNATSReopen checks that a second NewNATS binds to the existing buckets
// and sees the data.
func TestNATSReopen(t *testing.T) {
	ctx := context.Background()
	conn := natsxtest.Start(t)
	s1, err := store.NewNATS(ctx, conn.JS, 1)
	if err != nil {
		t.Fatalf("NewNATS: %v", err)
	}
	if _, err := s1.CreateTenant(ctx, store.Tenant{Name: "acme"}); err != nil {
		t.Fatalf("CreateTenant: %v", err)
	}
	s2, err := store.NewNATS(ctx, conn.JS, 1)
	if err != nil {
		t.Fatalf("NewNATS again: %v", err)
	}
	if _, err := s2.GetTenant(ctx, "acme"); err != nil {
		t.Fatalf("GetTenant through the second store: %v", err)
	}
}

// TestNATSUnavailable checks that every method reports ErrUnavailable once
// the connection is gone.
func TestNATSUnavailable(t *testing.T) {
	conn := natsxtest.Start(t)
	s, err := store.NewNATS(context.Background(), conn.JS, 1)
	if err != nil {
		t.Fatalf("NewNATS: %v", err)
	}
	conn.NC.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	calls := []struct {
		name string
		call func() error
	}{
		{"Ping", func() error { return s.Ping(ctx) }},
		{"CreateTenant", func() error { _, err := s.CreateTenant(ctx, store.Tenant{Name: "a"}); return err }},
		{"GetTenant", func() error { _, err := s.GetTenant(ctx, "a"); return err }},
		{"ListTenants", func() error { _, err := s.ListTenants(ctx); return err }},
		{"UpdateTenant", func() error { _, err := s.UpdateTenant(ctx, store.Tenant{Name: "a", Revision: 1}); return err }},
		{"DeleteTenant", func() error { return s.DeleteTenant(ctx, "a") }},
		{"CreateKey", func() error { _, err := s.CreateKey(ctx, store.APIKey{ID: "k", Tenant: "a"}); return err }},
		{"GetKey", func() error { _, err := s.GetKey(ctx, "k"); return err }},
		{"ListKeys", func() error { _, err := s.ListKeys(ctx, "a"); return err }},
		{"DeleteKey", func() error { return s.DeleteKey(ctx, "a", "k") }},
		{"CreateIntegration", func() error {
			_, err := s.CreateIntegration(ctx, store.Integration{Tenant: "a", Name: "i", Spec: []byte(`{}`)})
			return err
		}},
		{"GetIntegration", func() error { _, err := s.GetIntegration(ctx, "a", "i"); return err }},
		{"ListIntegrations", func() error { _, err := s.ListIntegrations(ctx, ""); return err }},
		{"UpdateIntegration", func() error {
			_, err := s.UpdateIntegration(ctx, store.Integration{Tenant: "a", Name: "i", Revision: 1})
			return err
		}},
		{"DeleteIntegration", func() error { return s.DeleteIntegration(ctx, "a", "i") }},
		{"PutEndpoint", func() error { _, err := s.PutEndpoint(ctx, store.Endpoint{Tenant: "a"}); return err }},
		{"GetEndpoint", func() error { _, err := s.GetEndpoint(ctx, "a"); return err }},
		{"ListEndpoints", func() error { _, err := s.ListEndpoints(ctx); return err }},
		{"DeleteEndpoint", func() error { return s.DeleteEndpoint(ctx, "a") }},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			if err := c.call(); !errors.Is(err, store.ErrUnavailable) {
				t.Errorf("%s on a closed connection: %v, want ErrUnavailable", c.name, err)
			}
		})
	}
}

// TestNATSHalfDeletedTenant simulates a DeleteTenant that removed the tenant
// and then lost NATS before its cascade: the leftovers must neither
// authenticate, nor be started, nor route the tenant's NATS, nor reappear
// under a new tenant of the name.
func TestNATSHalfDeletedTenant(t *testing.T) {
	ctx := context.Background()
	conn := natsxtest.Start(t)
	s, err := store.NewNATS(ctx, conn.JS, 1)
	if err != nil {
		t.Fatalf("NewNATS: %v", err)
	}
	if _, err := s.CreateTenant(ctx, store.Tenant{Name: "acme"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateKey(ctx, store.APIKey{ID: "old-key", Tenant: "acme", Hash: []byte{1}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateIntegration(ctx, store.Integration{Tenant: "acme", Name: "orders", Spec: []byte(`{}`), Desired: store.StateRunning}); err != nil {
		t.Fatal(err)
	}
	oldEndpoint, err := s.PutEndpoint(ctx, store.Endpoint{Tenant: "acme", Placement: store.PlacementDedicated, URL: "nats://old:4222"})
	if err != nil {
		t.Fatal(err)
	}
	kv, err := conn.JS.KeyValue(ctx, store.BucketTenants)
	if err != nil {
		t.Fatal(err)
	}
	if err := kv.Purge(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetKey(ctx, "old-key"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetKey of a deleted tenant's key: %v, want ErrNotFound", err)
	}
	if l, err := s.ListIntegrations(ctx, ""); err != nil || len(l) != 0 {
		t.Errorf("ListIntegrations lists a deleted tenant's integrations: %v, %v", l, err)
	}
	if _, err := s.GetEndpoint(ctx, "acme"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetEndpoint of a deleted tenant: %v, want ErrNotFound", err)
	}
	if l, err := s.ListEndpoints(ctx); err != nil || len(l) != 0 {
		t.Errorf("ListEndpoints lists a deleted tenant's endpoint: %v, %v", l, err)
	}
	if _, err := s.PutEndpoint(ctx, oldEndpoint); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("PutEndpoint for a deleted tenant: %v, want ErrNotFound", err)
	}
	if _, err := s.CreateTenant(ctx, store.Tenant{Name: "acme"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetKey(ctx, "old-key"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the old tenant's key works for the new tenant: %v", err)
	}
	if l, err := s.ListKeys(ctx, "acme"); err != nil || len(l) != 0 {
		t.Errorf("new tenant has the old keys: %v, %v", l, err)
	}
	if l, err := s.ListIntegrations(ctx, "acme"); err != nil || len(l) != 0 {
		t.Errorf("new tenant has the old integrations: %v, %v", l, err)
	}
	if e, err := s.GetEndpoint(ctx, "acme"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("new tenant has the old endpoint: %+v, %v", e, err)
	}
	if _, err := s.PutEndpoint(ctx, oldEndpoint); !errors.Is(err, store.ErrConflict) {
		t.Errorf("PutEndpoint with the old tenant's revision: %v, want ErrConflict", err)
	}
	// The old record is gone, not just hidden: the new tenant can create its own.
	oldEndpoint.Revision = 0
	if _, err := s.PutEndpoint(ctx, oldEndpoint); err != nil {
		t.Errorf("PutEndpoint for the new tenant: %v", err)
	}
	// The old key's ID is free again.
	if _, err := s.CreateKey(ctx, store.APIKey{ID: "old-key", Tenant: "acme", Hash: []byte{2}}); err != nil {
		t.Errorf("CreateKey with the leftover's ID: %v", err)
	}
}

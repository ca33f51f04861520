// Package storetest is the contract suite of store.Store. Every
// implementation runs it from its own tests:
//
//	func TestContract(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { return openFresh(t) })
//	}
//
// open must return an empty store that no other test uses; teardown belongs
// in t.Cleanup.
package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/vrsky/vrsky/platform/store"
)

// Run runs every contract test against fresh stores from open, including
// the store.ConnectorStore tests when the store implements it.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	groups := []struct {
		name  string
		tests []test
	}{
		{"Tenants", tenantTests},
		{"Keys", keyTests},
		{"Integrations", integrationTests},
		{"Endpoints", endpointTests},
		{"Cascade", cascadeTests},
		{"Concurrency", concurrencyTests},
		{"Connectors", connectorTests},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			for _, tc := range g.tests {
				t.Run(tc.name, func(t *testing.T) {
					s := open(t)
					ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
					defer cancel()
					tc.run(ctx, t, s)
				})
			}
		})
	}
}

type test struct {
	name string
	run  func(ctx context.Context, t *testing.T, s store.Store)
}

var tenantTests = []test{
	{"Ping", func(ctx context.Context, t *testing.T, s store.Store) {
		if err := s.Ping(ctx); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	}},
	{"CreateGetRoundTrip", func(ctx context.Context, t *testing.T, s store.Store) {
		before := time.Now().Add(-time.Millisecond)
		in := store.Tenant{Name: "acme", DisplayName: "Acme Corp", Quotas: store.Quotas{
			MaxIntegrations: 5, MaxMessagesPerSecond: 100, MaxStorageBytes: 1 << 40}}
		got := mustTenant(t)(s.CreateTenant(ctx, in))
		if got.Revision == 0 {
			t.Errorf("CreateTenant: Revision = 0, want a revision")
		}
		if got.CreatedAt.Before(before) || got.CreatedAt.After(time.Now().Add(time.Millisecond)) {
			t.Errorf("CreateTenant: CreatedAt = %v, want about now", got.CreatedAt)
		}
		again := mustTenant(t)(s.GetTenant(ctx, "acme"))
		assertTenant(t, again, got)
	}},
	{"CreateDuplicate", func(ctx context.Context, t *testing.T, s store.Store) {
		mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: "acme"}))
		_, err := s.CreateTenant(ctx, store.Tenant{Name: "acme", DisplayName: "other"})
		wantErr(t, "CreateTenant twice", err, store.ErrExists)
		if got := mustTenant(t)(s.GetTenant(ctx, "acme")); got.DisplayName != "" {
			t.Errorf("duplicate create changed the tenant: %+v", got)
		}
	}},
	{"GetMissing", func(ctx context.Context, t *testing.T, s store.Store) {
		_, err := s.GetTenant(ctx, "nope")
		wantErr(t, "GetTenant", err, store.ErrNotFound)
	}},
	{"ListSortedByName", func(ctx context.Context, t *testing.T, s store.Store) {
		if l, err := s.ListTenants(ctx); err != nil || len(l) != 0 {
			t.Fatalf("ListTenants on an empty store = %v, %v; want none", l, err)
		}
		for _, n := range []string{"charlie", "alpha", "bravo"} {
			mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: n, DisplayName: "T " + n}))
		}
		l, err := s.ListTenants(ctx)
		if err != nil {
			t.Fatalf("ListTenants: %v", err)
		}
		assertNames(t, l, func(x store.Tenant) string { return x.Name }, "alpha", "bravo", "charlie")
		for _, x := range l {
			if x.Revision == 0 || x.CreatedAt.IsZero() || x.DisplayName != "T "+x.Name {
				t.Errorf("listed tenant incomplete: %+v", x)
			}
		}
	}},
	{"Update", func(ctx context.Context, t *testing.T, s store.Store) {
		orig := mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: "acme", DisplayName: "v1"}))
		up := orig
		up.DisplayName = "v2"
		up.Quotas.MaxIntegrations = 7
		up.CreatedAt = time.Time{} // the store keeps the original
		got := mustTenant(t)(s.UpdateTenant(ctx, up))
		if got.Revision == orig.Revision || got.Revision == 0 {
			t.Errorf("UpdateTenant: Revision %d -> %d, want a new one", orig.Revision, got.Revision)
		}
		if !got.CreatedAt.Equal(orig.CreatedAt) {
			t.Errorf("UpdateTenant: CreatedAt = %v, want %v", got.CreatedAt, orig.CreatedAt)
		}
		stored := mustTenant(t)(s.GetTenant(ctx, "acme"))
		assertTenant(t, stored, got)
		if stored.DisplayName != "v2" || stored.Quotas.MaxIntegrations != 7 {
			t.Errorf("UpdateTenant not stored: %+v", stored)
		}
	}},
	{"Placement", func(ctx context.Context, t *testing.T, s store.Store) {
		// The store keeps placement as given, "" (shared) included.
		ded := mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: "acme", Placement: store.PlacementDedicated}))
		if ded.Placement != store.PlacementDedicated {
			t.Errorf("CreateTenant: Placement = %q, want dedicated", ded.Placement)
		}
		assertTenant(t, mustTenant(t)(s.GetTenant(ctx, "acme")), ded)
		shared := mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: "globex", Placement: store.PlacementShared}))
		none := mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: "initech"}))
		l, err := s.ListTenants(ctx)
		if err != nil || len(l) != 3 {
			t.Fatalf("ListTenants = %v, %v; want 3 tenants", l, err)
		}
		for i, want := range []store.Tenant{ded, shared, none} {
			assertTenant(t, l[i], want)
		}
		// UpdateTenant replaces it, like the quotas: to shared, to "", back.
		cur := ded
		for _, p := range []string{store.PlacementShared, "", store.PlacementDedicated} {
			cur.Placement = p
			cur = mustTenant(t)(s.UpdateTenant(ctx, cur))
			if cur.Placement != p {
				t.Errorf("UpdateTenant returned Placement %q, want %q", cur.Placement, p)
			}
			assertTenant(t, mustTenant(t)(s.GetTenant(ctx, "acme")), cur)
		}
		// A stale update does not change it.
		stale := ded
		stale.Placement = store.PlacementShared
		_, err = s.UpdateTenant(ctx, stale)
		wantErr(t, "UpdateTenant with a stale revision", err, store.ErrConflict)
		if got := mustTenant(t)(s.GetTenant(ctx, "acme")); got.Placement != store.PlacementDedicated {
			t.Errorf("stale update changed Placement to %q", got.Placement)
		}
	}},
	{"UpdateStaleRevision", func(ctx context.Context, t *testing.T, s store.Store) {
		orig := mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: "acme", DisplayName: "v1"}))
		first := orig
		first.DisplayName = "v2"
		mustTenant(t)(s.UpdateTenant(ctx, first))
		stale := orig
		stale.DisplayName = "v3"
		_, err := s.UpdateTenant(ctx, stale)
		wantErr(t, "UpdateTenant with a stale revision", err, store.ErrConflict)
		if got := mustTenant(t)(s.GetTenant(ctx, "acme")); got.DisplayName != "v2" {
			t.Errorf("stale update was applied: %+v", got)
		}
	}},
	{"UpdateMissing", func(ctx context.Context, t *testing.T, s store.Store) {
		_, err := s.UpdateTenant(ctx, store.Tenant{Name: "nope", Revision: 1})
		wantErr(t, "UpdateTenant", err, store.ErrNotFound)
	}},
	{"Delete", func(ctx context.Context, t *testing.T, s store.Store) {
		mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: "acme"}))
		mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: "other"}))
		if err := s.DeleteTenant(ctx, "acme"); err != nil {
			t.Fatalf("DeleteTenant: %v", err)
		}
		_, err := s.GetTenant(ctx, "acme")
		wantErr(t, "GetTenant after delete", err, store.ErrNotFound)
		wantErr(t, "DeleteTenant twice", s.DeleteTenant(ctx, "acme"), store.ErrNotFound)
		l, err := s.ListTenants(ctx)
		if err != nil {
			t.Fatalf("ListTenants: %v", err)
		}
		assertNames(t, l, func(x store.Tenant) string { return x.Name }, "other")
		// The name is free again.
		again := mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: "acme", DisplayName: "new"}))
		if again.DisplayName != "new" {
			t.Errorf("recreated tenant: %+v", again)
		}
	}},
	{"DeleteMissing", func(ctx context.Context, t *testing.T, s store.Store) {
		wantErr(t, "DeleteTenant", s.DeleteTenant(ctx, "nope"), store.ErrNotFound)
	}},
	{"UnusualNames", func(ctx context.Context, t *testing.T, s store.Store) {
		// Names are validated by the API; the store must still keep any
		// name apart from its neighbours.
		names := []string{"a.b", "a_b", "a-b", "A", "a", "with space", "ünï", "a*", "a>"}
		for _, n := range names {
			mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: n, DisplayName: n}))
			mustIntegration(t)(s.CreateIntegration(ctx, store.Integration{Tenant: n, Name: n + ".x",
				Spec: []byte(`{}`), Desired: store.StateStopped}))
		}
		for _, n := range names {
			got := mustTenant(t)(s.GetTenant(ctx, n))
			if got.DisplayName != n {
				t.Errorf("GetTenant(%q) = %+v", n, got)
			}
			l, err := s.ListIntegrations(ctx, n)
			if err != nil {
				t.Fatalf("ListIntegrations(%q): %v", n, err)
			}
			assertNames(t, l, func(x store.Integration) string { return x.Name }, n+".x")
		}
		l, err := s.ListTenants(ctx)
		if err != nil || len(l) != len(names) {
			t.Errorf("ListTenants = %d tenants, %v; want %d", len(l), err, len(names))
		}
	}},
}

var keyTests = []test{
	{"CreateGetRoundTrip", func(ctx context.Context, t *testing.T, s store.Store) {
		mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: "acme"}))
		hash := bytes.Repeat([]byte{0xab, 0x00, 0xff}, 11)
		got := mustKey(t)(s.CreateKey(ctx, store.APIKey{ID: "k1", Tenant: "acme", Hash: hash, Name: "ci"}))
		if got.CreatedAt.IsZero() {
			t.Errorf("CreateKey: CreatedAt not set")
		}
		again := mustKey(t)(s.GetKey(ctx, "k1"))
		if again.ID != "k1" || again.Tenant != "acme" || !bytes.Equal(again.Hash, hash) ||
			again.Name != "ci" || !again.CreatedAt.Equal(got.CreatedAt) {
			t.Errorf("GetKey = %+v, want %+v", again, got)
		}
	}},
	{"CreateForMissingTenant", func(ctx context.Context, t *testing.T, s store.Store) {
		_, err := s.CreateKey(ctx, store.APIKey{ID: "k1", Tenant: "nope", Hash: []byte{1}})
		wantErr(t, "CreateKey", err, store.ErrNotFound)
		_, err = s.GetKey(ctx, "k1")
		wantErr(t, "GetKey", err, store.ErrNotFound)
	}},
	{"CreateDuplicateAcrossTenants", func(ctx context.Context, t *testing.T, s store.Store) {
		mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: "acme"}))
		mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: "globex"}))
		mustKey(t)(s.CreateKey(ctx, store.APIKey{ID: "k1", Tenant: "acme", Hash: []byte{1}}))
		_, err := s.CreateKey(ctx, store.APIKey{ID: "k1", Tenant: "globex", Hash: []byte{2}})
		wantErr(t, "CreateKey with a taken ID", err, store.ErrExists)
		if got := mustKey(t)(s.GetKey(ctx, "k1")); got.Tenant != "acme" {
			t.Errorf("key changed owner: %+v", got)
		}
	}},
	{"GetMissing", func(ctx context.Context, t *testing.T, s store.Store) {
		_, err := s.GetKey(ctx, "nope")
		wantErr(t, "GetKey", err, store.ErrNotFound)
	}},
	{"ListScopedAndSorted", func(ctx context.Context, t *testing.T, s store.Store) {
		mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: "acme"}))
		mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: "globex"}))
		for _, k := range []struct{ id, tenant string }{
			{"k3", "acme"}, {"k1", "acme"}, {"g1", "globex"}, {"k2", "acme"},
		} {
			mustKey(t)(s.CreateKey(ctx, store.APIKey{ID: k.id, Tenant: k.tenant, Hash: []byte(k.id)}))
		}
		l, err := s.ListKeys(ctx, "acme")
		if err != nil {
			t.Fatalf("ListKeys: %v", err)
		}
		assertNames(t, l, func(k store.APIKey) string { return k.ID }, "k1", "k2", "k3")
		for _, k := range l {
			if string(k.Hash) != k.ID || k.Tenant != "acme" {
				t.Errorf("listed key incomplete: %+v", k)
			}
		}
		l, err = s.ListKeys(ctx, "nobody")
		if err != nil || len(l) != 0 {
			t.Errorf("ListKeys(nobody) = %v, %v; want none", l, err)
		}
	}},
	{"DeleteScoped", func(ctx context.Context, t *testing.T, s store.Store) {
		mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: "acme"}))
		mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: "globex"}))
		mustKey(t)(s.CreateKey(ctx, store.APIKey{ID: "k1", Tenant: "acme", Hash: []byte{1}}))
		wantErr(t, "DeleteKey by another tenant", s.DeleteKey(ctx, "globex", "k1"), store.ErrNotFound)
		mustKey(t)(s.GetKey(ctx, "k1"))
		if err := s.DeleteKey(ctx, "acme", "k1"); err != nil {
			t.Fatalf("DeleteKey: %v", err)
		}
		_, err := s.GetKey(ctx, "k1")
		wantErr(t, "GetKey after delete", err, store.ErrNotFound)
		wantErr(t, "DeleteKey twice", s.DeleteKey(ctx, "acme", "k1"), store.ErrNotFound)
	}},
}

var integrationTests = []test{
	{"CreateGetRoundTrip", func(ctx context.Context, t *testing.T, s store.Store) {
		mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: "acme"}))
		spec := []byte(`{"name":"orders","source":{"connector":"http-webhook","config":{"path":"orders"}},"sinks":[{"name":"s","connector":"http"}],"n":1.5,"u":"\u00fc"}`)
		got := mustIntegration(t)(s.CreateIntegration(ctx, store.Integration{
			Tenant: "acme", Name: "orders", Spec: spec, Desired: store.StateRunning}))
		if got.Revision == 0 || got.CreatedAt.IsZero() || !got.UpdatedAt.Equal(got.CreatedAt) {
			t.Errorf("CreateIntegration = %+v; want a revision and CreatedAt = UpdatedAt", got)
		}
		again := mustIntegration(t)(s.GetIntegration(ctx, "acme", "orders"))
		assertIntegration(t, again, got)
		assertJSON(t, again.Spec, spec)
	}},
	{"CreateForMissingTenant", func(ctx context.Context, t *testing.T, s store.Store) {
		_, err := s.CreateIntegration(ctx, store.Integration{Tenant: "nope", Name: "x", Spec: []byte(`{}`), Desired: store.StateStopped})
		wantErr(t, "CreateIntegration", err, store.ErrNotFound)
	}},
	{"CreateDuplicate", func(ctx context.Context, t *testing.T, s store.Store) {
		mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: "acme"}))
		mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: "globex"}))
		in := store.Integration{Tenant: "acme", Name: "orders", Spec: []byte(`{"v":1}`), Desired: store.StateStopped}
		mustIntegration(t)(s.CreateIntegration(ctx, in))
		dup := in
		dup.Spec = []byte(`{"v":2}`)
		_, err := s.CreateIntegration(ctx, dup)
		wantErr(t, "CreateIntegration twice", err, store.ErrExists)
		assertJSON(t, mustIntegration(t)(s.GetIntegration(ctx, "acme", "orders")).Spec, in.Spec)
		// The same name in another tenant is a different integration.
		other := in
		other.Tenant = "globex"
		mustIntegration(t)(s.CreateIntegration(ctx, other))
	}},
	{"GetScopedToTenant", func(ctx context.Context, t *testing.T, s store.Store) {
		mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: "acme"}))
		mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: "globex"}))
		mustIntegration(t)(s.CreateIntegration(ctx, store.Integration{Tenant: "acme", Name: "orders", Spec: []byte(`{}`), Desired: store.StateStopped}))
		for _, tc := range []struct{ tenant, name string }{
			{"globex", "orders"}, {"acme", "nope"}, {"nobody", "orders"}, {"", "orders"},
		} {
			_, err := s.GetIntegration(ctx, tc.tenant, tc.name)
			wantErr(t, fmt.Sprintf("GetIntegration(%q, %q)", tc.tenant, tc.name), err, store.ErrNotFound)
		}
	}},
	{"ListScopedAndSorted", func(ctx context.Context, t *testing.T, s store.Store) {
		mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: "acme"}))
		mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: "globex"}))
		for _, in := range []struct{ tenant, name string }{
			{"globex", "b"}, {"acme", "c"}, {"acme", "a"}, {"globex", "a"}, {"acme", "b"},
		} {
			mustIntegration(t)(s.CreateIntegration(ctx, store.Integration{Tenant: in.tenant, Name: in.name,
				Spec: []byte(fmt.Sprintf(`{"t":%q,"n":%q}`, in.tenant, in.name)), Desired: store.StateRunning}))
		}
		l, err := s.ListIntegrations(ctx, "acme")
		if err != nil {
			t.Fatalf("ListIntegrations(acme): %v", err)
		}
		assertNames(t, l, func(x store.Integration) string { return x.Tenant + "/" + x.Name }, "acme/a", "acme/b", "acme/c")
		for _, x := range l {
			assertJSON(t, x.Spec, []byte(fmt.Sprintf(`{"t":%q,"n":%q}`, x.Tenant, x.Name)))
			if x.Revision == 0 || x.Desired != store.StateRunning {
				t.Errorf("listed integration incomplete: %+v", x)
			}
		}
		l, err = s.ListIntegrations(ctx, "")
		if err != nil {
			t.Fatalf("ListIntegrations(all): %v", err)
		}
		assertNames(t, l, func(x store.Integration) string { return x.Tenant + "/" + x.Name },
			"acme/a", "acme/b", "acme/c", "globex/a", "globex/b")
		l, err = s.ListIntegrations(ctx, "nobody")
		if err != nil || len(l) != 0 {
			t.Errorf("ListIntegrations(nobody) = %v, %v; want none", l, err)
		}
	}},
	{"Update", func(ctx context.Context, t *testing.T, s store.Store) {
		mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: "acme"}))
		orig := mustIntegration(t)(s.CreateIntegration(ctx, store.Integration{Tenant: "acme", Name: "orders", Spec: []byte(`{"v":1}`), Desired: store.StateStopped}))
		up := orig
		up.Spec = []byte(`{"v":2}`)
		up.Desired = store.StateRunning
		up.CreatedAt, up.UpdatedAt = time.Time{}, time.Time{}
		got := mustIntegration(t)(s.UpdateIntegration(ctx, up))
		if got.Revision == orig.Revision || got.Revision == 0 {
			t.Errorf("UpdateIntegration: Revision %d -> %d, want a new one", orig.Revision, got.Revision)
		}
		if !got.CreatedAt.Equal(orig.CreatedAt) || got.UpdatedAt.Before(orig.UpdatedAt) {
			t.Errorf("UpdateIntegration: times %v/%v after %v/%v", got.CreatedAt, got.UpdatedAt, orig.CreatedAt, orig.UpdatedAt)
		}
		stored := mustIntegration(t)(s.GetIntegration(ctx, "acme", "orders"))
		assertIntegration(t, stored, got)
		assertJSON(t, stored.Spec, []byte(`{"v":2}`))
		if stored.Desired != store.StateRunning {
			t.Errorf("Desired = %q, want running", stored.Desired)
		}
		// A second update from the fresh revision works too.
		stored.Desired = store.StateStopped
		mustIntegration(t)(s.UpdateIntegration(ctx, stored))
	}},
	{"UpdateStaleRevision", func(ctx context.Context, t *testing.T, s store.Store) {
		mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: "acme"}))
		orig := mustIntegration(t)(s.CreateIntegration(ctx, store.Integration{Tenant: "acme", Name: "orders", Spec: []byte(`{"v":1}`), Desired: store.StateStopped}))
		first := orig
		first.Desired = store.StateRunning
		mustIntegration(t)(s.UpdateIntegration(ctx, first))
		stale := orig
		stale.Spec = []byte(`{"v":3}`)
		_, err := s.UpdateIntegration(ctx, stale)
		wantErr(t, "UpdateIntegration with a stale revision", err, store.ErrConflict)
		got := mustIntegration(t)(s.GetIntegration(ctx, "acme", "orders"))
		assertJSON(t, got.Spec, []byte(`{"v":1}`))
	}},
	{"UpdateMissingOrOtherTenant", func(ctx context.Context, t *testing.T, s store.Store) {
		mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: "acme"}))
		mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: "globex"}))
		orig := mustIntegration(t)(s.CreateIntegration(ctx, store.Integration{Tenant: "acme", Name: "orders", Spec: []byte(`{}`), Desired: store.StateStopped}))
		missing := orig
		missing.Name = "nope"
		_, err := s.UpdateIntegration(ctx, missing)
		wantErr(t, "UpdateIntegration of a missing integration", err, store.ErrNotFound)
		foreign := orig
		foreign.Tenant = "globex"
		_, err = s.UpdateIntegration(ctx, foreign)
		wantErr(t, "UpdateIntegration in another tenant", err, store.ErrNotFound)
	}},
	{"Delete", func(ctx context.Context, t *testing.T, s store.Store) {
		mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: "acme"}))
		mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: "globex"}))
		for _, tn := range []string{"acme", "globex"} {
			mustIntegration(t)(s.CreateIntegration(ctx, store.Integration{Tenant: tn, Name: "orders", Spec: []byte(`{}`), Desired: store.StateStopped}))
		}
		wantErr(t, "DeleteIntegration of a missing one", s.DeleteIntegration(ctx, "acme", "nope"), store.ErrNotFound)
		if err := s.DeleteIntegration(ctx, "acme", "orders"); err != nil {
			t.Fatalf("DeleteIntegration: %v", err)
		}
		_, err := s.GetIntegration(ctx, "acme", "orders")
		wantErr(t, "GetIntegration after delete", err, store.ErrNotFound)
		wantErr(t, "DeleteIntegration twice", s.DeleteIntegration(ctx, "acme", "orders"), store.ErrNotFound)
		mustIntegration(t)(s.GetIntegration(ctx, "globex", "orders"))
		// The name is free again.
		mustIntegration(t)(s.CreateIntegration(ctx, store.Integration{Tenant: "acme", Name: "orders", Spec: []byte(`{}`), Desired: store.StateStopped}))
	}},
}

var cascadeTests = []test{
	{"DeleteTenantRemovesKeysAndIntegrations", func(ctx context.Context, t *testing.T, s store.Store) {
		for _, tn := range []string{"acme", "globex"} {
			mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: tn}))
			for i := range 3 {
				mustKey(t)(s.CreateKey(ctx, store.APIKey{ID: fmt.Sprintf("%s-k%d", tn, i), Tenant: tn, Hash: []byte{byte(i)}}))
				mustIntegration(t)(s.CreateIntegration(ctx, store.Integration{Tenant: tn, Name: fmt.Sprintf("i%d", i), Spec: []byte(`{}`), Desired: store.StateRunning}))
			}
		}
		if err := s.DeleteTenant(ctx, "acme"); err != nil {
			t.Fatalf("DeleteTenant: %v", err)
		}
		for i := range 3 {
			_, err := s.GetKey(ctx, fmt.Sprintf("acme-k%d", i))
			wantErr(t, "GetKey of a deleted tenant's key", err, store.ErrNotFound)
			_, err = s.GetIntegration(ctx, "acme", fmt.Sprintf("i%d", i))
			wantErr(t, "GetIntegration of a deleted tenant's integration", err, store.ErrNotFound)
		}
		if l, err := s.ListKeys(ctx, "acme"); err != nil || len(l) != 0 {
			t.Errorf("ListKeys(acme) = %v, %v; want none", l, err)
		}
		if l, err := s.ListIntegrations(ctx, "acme"); err != nil || len(l) != 0 {
			t.Errorf("ListIntegrations(acme) = %v, %v; want none", l, err)
		}
		// The other tenant keeps everything.
		if l, err := s.ListKeys(ctx, "globex"); err != nil || len(l) != 3 {
			t.Errorf("ListKeys(globex) = %d keys, %v; want 3", len(l), err)
		}
		l, err := s.ListIntegrations(ctx, "")
		if err != nil {
			t.Fatalf("ListIntegrations: %v", err)
		}
		assertNames(t, l, func(x store.Integration) string { return x.Tenant + "/" + x.Name }, "globex/i0", "globex/i1", "globex/i2")
		// A tenant created again under the name starts empty.
		mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: "acme"}))
		if l, err := s.ListIntegrations(ctx, "acme"); err != nil || len(l) != 0 {
			t.Errorf("recreated tenant has integrations %v, %v", l, err)
		}
		mustKey(t)(s.CreateKey(ctx, store.APIKey{ID: "acme-k0", Tenant: "acme", Hash: []byte{9}}))
	}},
}

const workers = 8

var concurrencyTests = []test{
	{"CreateTenantRace", func(ctx context.Context, t *testing.T, s store.Store) {
		errs := race(workers, func(i int) error {
			_, err := s.CreateTenant(ctx, store.Tenant{Name: "acme", DisplayName: fmt.Sprint(i)})
			return err
		})
		assertOneWinner(t, errs, store.ErrExists)
	}},
	{"UpdateTenantRace", func(ctx context.Context, t *testing.T, s store.Store) {
		orig := mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: "acme"}))
		errs := race(workers, func(i int) error {
			up := orig
			up.DisplayName = fmt.Sprint(i)
			_, err := s.UpdateTenant(ctx, up)
			return err
		})
		assertOneWinner(t, errs, store.ErrConflict)
	}},
	{"CreateIntegrationRace", func(ctx context.Context, t *testing.T, s store.Store) {
		mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: "acme"}))
		errs := race(workers, func(i int) error {
			_, err := s.CreateIntegration(ctx, store.Integration{Tenant: "acme", Name: "orders",
				Spec: []byte(fmt.Sprintf(`{"v":%d}`, i)), Desired: store.StateStopped})
			return err
		})
		assertOneWinner(t, errs, store.ErrExists)
	}},
	{"UpdateIntegrationRace", func(ctx context.Context, t *testing.T, s store.Store) {
		mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: "acme"}))
		orig := mustIntegration(t)(s.CreateIntegration(ctx, store.Integration{Tenant: "acme", Name: "orders", Spec: []byte(`{}`), Desired: store.StateStopped}))
		errs := race(workers, func(i int) error {
			up := orig
			up.Spec = []byte(fmt.Sprintf(`{"v":%d}`, i))
			_, err := s.UpdateIntegration(ctx, up)
			return err
		})
		assertOneWinner(t, errs, store.ErrConflict)
	}},
	{"CreateKeyRace", func(ctx context.Context, t *testing.T, s store.Store) {
		mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: "acme"}))
		errs := race(workers, func(i int) error {
			_, err := s.CreateKey(ctx, store.APIKey{ID: "k1", Tenant: "acme", Hash: []byte{byte(i)}})
			return err
		})
		assertOneWinner(t, errs, store.ErrExists)
	}},
	{"ManyWritersDistinctNames", func(ctx context.Context, t *testing.T, s store.Store) {
		mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: "acme"}))
		errs := race(4*workers, func(i int) error {
			_, err := s.CreateIntegration(ctx, store.Integration{Tenant: "acme", Name: fmt.Sprintf("i%02d", i),
				Spec: []byte(`{}`), Desired: store.StateRunning})
			return err
		})
		for i, err := range errs {
			if err != nil {
				t.Errorf("writer %d: %v", i, err)
			}
		}
		l, err := s.ListIntegrations(ctx, "acme")
		if err != nil || len(l) != 4*workers {
			t.Errorf("ListIntegrations = %d, %v; want %d", len(l), err, 4*workers)
		}
	}},
	{"ReadersDuringWrites", func(ctx context.Context, t *testing.T, s store.Store) {
		mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: "acme"}))
		cur := mustIntegration(t)(s.CreateIntegration(ctx, store.Integration{Tenant: "acme", Name: "orders", Spec: []byte(`{"v":0}`), Desired: store.StateStopped}))
		var wg sync.WaitGroup
		done := make(chan struct{})
		readErrs := make(chan error, workers)
		for range workers / 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-done:
						return
					default:
					}
					got, err := s.GetIntegration(ctx, "acme", "orders")
					if err != nil {
						readErrs <- err
						return
					}
					var v map[string]int
					if err := json.Unmarshal(got.Spec, &v); err != nil {
						readErrs <- fmt.Errorf("torn spec %q: %w", got.Spec, err)
						return
					}
				}
			}()
		}
		for i := 1; i <= 20; i++ {
			cur.Spec = []byte(fmt.Sprintf(`{"v":%d}`, i))
			var err error
			if cur, err = s.UpdateIntegration(ctx, cur); err != nil {
				t.Fatalf("update %d: %v", i, err)
			}
		}
		close(done)
		wg.Wait()
		close(readErrs)
		for err := range readErrs {
			t.Errorf("reader: %v", err)
		}
	}},
}

// race runs fn n times concurrently, released together, and returns the errors.
func race(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = fn(i)
		}()
	}
	close(start)
	wg.Wait()
	return errs
}

func assertOneWinner(t *testing.T, errs []error, loserErr error) {
	t.Helper()
	wins := 0
	for i, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, loserErr):
			t.Errorf("racer %d: %v, want nil or %v", i, err, loserErr)
		}
	}
	if wins != 1 {
		t.Errorf("%d racers succeeded, want exactly 1", wins)
	}
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: error %v, want %v", what, err, want)
	}
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return v
	}
}

func mustTenant(t *testing.T) func(store.Tenant, error) store.Tenant { return must[store.Tenant](t) }
func mustKey(t *testing.T) func(store.APIKey, error) store.APIKey    { return must[store.APIKey](t) }
func mustIntegration(t *testing.T) func(store.Integration, error) store.Integration {
	return must[store.Integration](t)
}

func assertTenant(t *testing.T, got, want store.Tenant) {
	t.Helper()
	if got.Name != want.Name || got.DisplayName != want.DisplayName || got.Quotas != want.Quotas ||
		got.Placement != want.Placement || !got.CreatedAt.Equal(want.CreatedAt) || got.Revision != want.Revision {
		t.Errorf("tenant = %+v, want %+v", got, want)
	}
}

func assertIntegration(t *testing.T, got, want store.Integration) {
	t.Helper()
	if got.Tenant != want.Tenant || got.Name != want.Name || got.Desired != want.Desired ||
		!got.CreatedAt.Equal(want.CreatedAt) || !got.UpdatedAt.Equal(want.UpdatedAt) || got.Revision != want.Revision {
		t.Errorf("integration = %+v, want %+v", got, want)
	}
	assertJSON(t, got.Spec, want.Spec)
}

// assertJSON compares specs as JSON values: backends may re-format them.
func assertJSON(t *testing.T, got, want []byte) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Errorf("spec %q is not JSON: %v", got, err)
		return
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("bad test spec %q: %v", want, err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if !bytes.Equal(gb, wb) {
		t.Errorf("spec = %s, want %s", got, want)
	}
}

func assertNames[T any](t *testing.T, got []T, name func(T) string, want ...string) {
	t.Helper()
	names := make([]string, len(got))
	for i, x := range got {
		names[i] = name(x)
	}
	if fmt.Sprint(names) != fmt.Sprint(want) {
		t.Errorf("listed %q, want %q", names, want)
	}
}

package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/vrsky/vrsky/platform/store"
)

func mustEndpoint(t *testing.T) func(store.Endpoint, error) store.Endpoint {
	return must[store.Endpoint](t)
}

// dedicated is an endpoint record of tenant on a dedicated instance.
func dedicated(tenant string) store.Endpoint {
	return store.Endpoint{Tenant: tenant, Placement: store.PlacementDedicated,
		URL: "nats://" + tenant + ".nats.example:4222", Account: "A" + tenant}
}

func assertEndpoint(t *testing.T, got, want store.Endpoint) {
	t.Helper()
	if got.Tenant != want.Tenant || got.Placement != want.Placement || got.URL != want.URL ||
		got.Account != want.Account || !got.UpdatedAt.Equal(want.UpdatedAt) || got.Revision != want.Revision {
		t.Errorf("endpoint = %+v, want %+v", got, want)
	}
	if !sameMoving(got.Moving, want.Moving) {
		t.Errorf("endpoint of %q: Moving = %s, want %s", want.Tenant, fmtMoving(got.Moving), fmtMoving(want.Moving))
	}
}

// sameMoving compares the records a tenant is moving to, as stored: every
// field but Revision, which is not part of a nested record.
func sameMoving(a, b *store.Endpoint) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Tenant == b.Tenant && a.Placement == b.Placement && a.URL == b.URL && a.Account == b.Account &&
		a.UpdatedAt.Equal(b.UpdatedAt) && sameMoving(a.Moving, b.Moving)
}

func fmtMoving(m *store.Endpoint) string {
	if m == nil {
		return "nil"
	}
	return fmt.Sprintf("&%+v (moving %s)", *m, fmtMoving(m.Moving))
}

// assertStoreTime checks a time the store set: about now, UTC, microseconds.
func assertStoreTime(t *testing.T, what string, got, before time.Time) {
	t.Helper()
	if got.Before(before) || got.After(time.Now().Add(time.Millisecond)) {
		t.Errorf("%s = %v, want about now", what, got)
	}
	if got.Location() != time.UTC || got.Nanosecond()%1000 != 0 {
		t.Errorf("%s = %v, want UTC with microsecond precision", what, got)
	}
}

var endpointTests = []test{
	{"CreateGetRoundTrip", func(ctx context.Context, t *testing.T, s store.Store) {
		mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: "acme"}))
		before := time.Now().Add(-time.Millisecond)
		in := dedicated("acme")
		in.UpdatedAt = time.Unix(1, 0) // the store sets it
		got := mustEndpoint(t)(s.PutEndpoint(ctx, in))
		if got.Revision == 0 {
			t.Errorf("PutEndpoint: Revision = 0, want a revision")
		}
		assertStoreTime(t, "PutEndpoint: UpdatedAt", got.UpdatedAt, before)
		in.UpdatedAt, in.Revision = got.UpdatedAt, got.Revision
		assertEndpoint(t, got, in)
		assertEndpoint(t, mustEndpoint(t)(s.GetEndpoint(ctx, "acme")), got)
	}},
	{"CreateTwice", func(ctx context.Context, t *testing.T, s store.Store) {
		mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: "acme"}))
		first := mustEndpoint(t)(s.PutEndpoint(ctx, dedicated("acme")))
		again := dedicated("acme")
		again.URL = "nats://elsewhere:4222"
		_, err := s.PutEndpoint(ctx, again)
		wantErr(t, "PutEndpoint with revision 0 over a record", err, store.ErrExists)
		assertEndpoint(t, mustEndpoint(t)(s.GetEndpoint(ctx, "acme")), first)
	}},
	{"Update", func(ctx context.Context, t *testing.T, s store.Store) {
		mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: "acme"}))
		orig := mustEndpoint(t)(s.PutEndpoint(ctx, store.Endpoint{Tenant: "acme", Placement: store.PlacementShared, Account: "Aacme"}))
		up := orig
		up.Placement, up.URL = store.PlacementDedicated, "nats://acme:4222"
		got := mustEndpoint(t)(s.PutEndpoint(ctx, up))
		if got.Revision == orig.Revision || got.Revision == 0 {
			t.Errorf("PutEndpoint: Revision %d -> %d, want a new one", orig.Revision, got.Revision)
		}
		if got.UpdatedAt.Before(orig.UpdatedAt) {
			t.Errorf("PutEndpoint: UpdatedAt %v -> %v", orig.UpdatedAt, got.UpdatedAt)
		}
		stored := mustEndpoint(t)(s.GetEndpoint(ctx, "acme"))
		assertEndpoint(t, stored, got)
		if stored.Placement != store.PlacementDedicated || stored.URL != "nats://acme:4222" || stored.Account != "Aacme" {
			t.Errorf("update not stored: %+v", stored)
		}
		// A second update from the fresh revision works too, and can
		// clear a field.
		stored.Placement, stored.URL = store.PlacementShared, ""
		again := mustEndpoint(t)(s.PutEndpoint(ctx, stored))
		assertEndpoint(t, mustEndpoint(t)(s.GetEndpoint(ctx, "acme")), again)
	}},
	{"UpdateStaleRevision", func(ctx context.Context, t *testing.T, s store.Store) {
		mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: "acme"}))
		orig := mustEndpoint(t)(s.PutEndpoint(ctx, dedicated("acme")))
		first := orig
		first.URL = "nats://v2:4222"
		cur := mustEndpoint(t)(s.PutEndpoint(ctx, first))
		stale := orig
		stale.URL = "nats://v3:4222"
		_, err := s.PutEndpoint(ctx, stale)
		wantErr(t, "PutEndpoint with a stale revision", err, store.ErrConflict)
		assertEndpoint(t, mustEndpoint(t)(s.GetEndpoint(ctx, "acme")), cur)
		// A record deleted since it was read: the revision is stale too,
		// and nothing is created.
		if err := s.DeleteEndpoint(ctx, "acme"); err != nil {
			t.Fatalf("DeleteEndpoint: %v", err)
		}
		_, err = s.PutEndpoint(ctx, cur)
		wantErr(t, "PutEndpoint with the revision of a deleted record", err, store.ErrConflict)
		_, err = s.GetEndpoint(ctx, "acme")
		wantErr(t, "GetEndpoint after a refused put", err, store.ErrNotFound)
		// Creating it again gives a revision never seen before.
		cur.Revision = 0
		again := mustEndpoint(t)(s.PutEndpoint(ctx, cur))
		if again.Revision == orig.Revision || again.Revision == first.Revision || again.Revision == 0 {
			t.Errorf("re-created endpoint has revision %d; earlier ones were %d and %d", again.Revision, orig.Revision, first.Revision)
		}
	}},
	{"Moving", func(ctx context.Context, t *testing.T, s store.Store) {
		mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: "acme"}))
		in := store.Endpoint{Tenant: "acme", Placement: store.PlacementShared, Account: "Aacme"}
		target := dedicated("acme")
		in.Moving = &target
		got := mustEndpoint(t)(s.PutEndpoint(ctx, in))
		if !sameMoving(got.Moving, &target) {
			t.Errorf("PutEndpoint returned Moving %s, want %s", fmtMoving(got.Moving), fmtMoving(&target))
		}
		stored := mustEndpoint(t)(s.GetEndpoint(ctx, "acme"))
		assertEndpoint(t, stored, got)
		if stored.Moving == nil || stored.Moving == &target {
			t.Fatalf("GetEndpoint: Moving = %s, want a copy of %+v", fmtMoving(stored.Moving), target)
		}
		// The move is done: the record is the target, not moving.
		done := stored
		done.Placement, done.URL, done.Moving = target.Placement, target.URL, nil
		got = mustEndpoint(t)(s.PutEndpoint(ctx, done))
		if got.Moving != nil {
			t.Errorf("PutEndpoint returned Moving %s, want nil", fmtMoving(got.Moving))
		}
		assertEndpoint(t, mustEndpoint(t)(s.GetEndpoint(ctx, "acme")), got)
		// Moving back, with a nested record that carries every field.
		back := store.Endpoint{Tenant: "acme", Placement: store.PlacementShared, Account: "Aacme2",
			UpdatedAt: time.Date(2030, 1, 2, 3, 4, 5, 6000, time.UTC),
			Moving:    &store.Endpoint{Placement: store.PlacementDedicated, URL: "nats://third:4222"}}
		got.Moving = &back
		got = mustEndpoint(t)(s.PutEndpoint(ctx, got))
		assertEndpoint(t, mustEndpoint(t)(s.GetEndpoint(ctx, "acme")), got)
		l, err := s.ListEndpoints(ctx)
		if err != nil || len(l) != 1 {
			t.Fatalf("ListEndpoints = %v, %v; want one", l, err)
		}
		assertEndpoint(t, l[0], got)
	}},
	{"GetAndDeleteMissing", func(ctx context.Context, t *testing.T, s store.Store) {
		mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: "acme"}))
		for _, tenant := range []string{"acme", "nobody", ""} {
			_, err := s.GetEndpoint(ctx, tenant)
			wantErr(t, fmt.Sprintf("GetEndpoint(%q)", tenant), err, store.ErrNotFound)
			wantErr(t, fmt.Sprintf("DeleteEndpoint(%q)", tenant), s.DeleteEndpoint(ctx, tenant), store.ErrNotFound)
		}
		mustEndpoint(t)(s.PutEndpoint(ctx, dedicated("acme")))
		if err := s.DeleteEndpoint(ctx, "acme"); err != nil {
			t.Fatalf("DeleteEndpoint: %v", err)
		}
		_, err := s.GetEndpoint(ctx, "acme")
		wantErr(t, "GetEndpoint after delete", err, store.ErrNotFound)
		wantErr(t, "DeleteEndpoint twice", s.DeleteEndpoint(ctx, "acme"), store.ErrNotFound)
		mustTenant(t)(s.GetTenant(ctx, "acme")) // the tenant stays
		// The record can be created again.
		mustEndpoint(t)(s.PutEndpoint(ctx, dedicated("acme")))
	}},
	{"PutForMissingTenant", func(ctx context.Context, t *testing.T, s store.Store) {
		_, err := s.PutEndpoint(ctx, dedicated("nope"))
		wantErr(t, "PutEndpoint (create) for a missing tenant", err, store.ErrNotFound)
		up := dedicated("nope")
		up.Revision = 42
		_, err = s.PutEndpoint(ctx, up)
		wantErr(t, "PutEndpoint (replace) for a missing tenant", err, store.ErrNotFound)
		_, err = s.PutEndpoint(ctx, dedicated(""))
		wantErr(t, "PutEndpoint for tenant \"\"", err, store.ErrNotFound)
		_, err = s.GetEndpoint(ctx, "nope")
		wantErr(t, "GetEndpoint", err, store.ErrNotFound)
		if l, err := s.ListEndpoints(ctx); err != nil || l == nil || len(l) != 0 {
			t.Errorf("ListEndpoints = %#v, %v; want an empty list", l, err)
		}
	}},
	{"ListSortedByTenant", func(ctx context.Context, t *testing.T, s store.Store) {
		if l, err := s.ListEndpoints(ctx); err != nil || l == nil || len(l) != 0 {
			t.Fatalf("ListEndpoints on an empty store = %#v, %v; want an empty list", l, err)
		}
		for _, n := range []string{"charlie", "alpha", "delta", "bravo"} {
			mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: n}))
		}
		want := map[string]store.Endpoint{}
		for _, n := range []string{"charlie", "alpha", "bravo"} { // delta has none
			want[n] = mustEndpoint(t)(s.PutEndpoint(ctx, dedicated(n)))
		}
		l, err := s.ListEndpoints(ctx)
		if err != nil {
			t.Fatalf("ListEndpoints: %v", err)
		}
		assertNames(t, l, func(e store.Endpoint) string { return e.Tenant }, "alpha", "bravo", "charlie")
		for _, e := range l {
			assertEndpoint(t, e, want[e.Tenant])
		}
	}},
	{"DeleteTenantRemovesEndpoint", func(ctx context.Context, t *testing.T, s store.Store) {
		for _, tn := range []string{"acme", "globex"} {
			mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: tn}))
		}
		old := mustEndpoint(t)(s.PutEndpoint(ctx, dedicated("acme")))
		kept := mustEndpoint(t)(s.PutEndpoint(ctx, dedicated("globex")))
		if err := s.DeleteTenant(ctx, "acme"); err != nil {
			t.Fatalf("DeleteTenant: %v", err)
		}
		_, err := s.GetEndpoint(ctx, "acme")
		wantErr(t, "GetEndpoint of a deleted tenant", err, store.ErrNotFound)
		l, err := s.ListEndpoints(ctx)
		if err != nil {
			t.Fatalf("ListEndpoints: %v", err)
		}
		assertNames(t, l, func(e store.Endpoint) string { return e.Tenant }, "globex")
		assertEndpoint(t, mustEndpoint(t)(s.GetEndpoint(ctx, "globex")), kept)
		// A tenant created again under the name has no endpoint, and the
		// old record's revision opens nothing.
		mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: "acme"}))
		_, err = s.GetEndpoint(ctx, "acme")
		wantErr(t, "GetEndpoint of a re-created tenant", err, store.ErrNotFound)
		_, err = s.PutEndpoint(ctx, old)
		wantErr(t, "PutEndpoint with the deleted tenant's revision", err, store.ErrConflict)
		fresh := old
		fresh.Revision = 0
		fresh = mustEndpoint(t)(s.PutEndpoint(ctx, fresh))
		if fresh.Revision == old.Revision {
			t.Errorf("the re-created tenant's endpoint reuses revision %d", old.Revision)
		}
		_, err = s.PutEndpoint(ctx, old)
		wantErr(t, "PutEndpoint with the deleted tenant's revision over the new record", err, store.ErrConflict)
		assertEndpoint(t, mustEndpoint(t)(s.GetEndpoint(ctx, "acme")), fresh)
	}},
	{"PrefixSafety", func(ctx context.Context, t *testing.T, s store.Store) {
		// "a" is a prefix of the others' names, and of their keys in a
		// key-value store; "a.b", "a*" and "a>" would be subject filters.
		names := []string{"a", "ab", "a.b", "a*", "a>", "a b"}
		for _, n := range names {
			mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: n}))
		}
		for _, n := range names[1:] {
			mustEndpoint(t)(s.PutEndpoint(ctx, dedicated(n)))
			mustIntegration(t)(s.CreateIntegration(ctx, store.Integration{Tenant: n, Name: "i", Spec: []byte(`{}`), Desired: store.StateStopped}))
		}
		_, err := s.GetEndpoint(ctx, "a")
		wantErr(t, `GetEndpoint("a") with only "ab" and others having one`, err, store.ErrNotFound)
		wantErr(t, `DeleteEndpoint("a")`, s.DeleteEndpoint(ctx, "a"), store.ErrNotFound)
		if l, err := s.ListIntegrations(ctx, "a"); err != nil || len(l) != 0 {
			t.Errorf("ListIntegrations(a) = %v, %v; want none", l, err)
		}
		mine := mustEndpoint(t)(s.PutEndpoint(ctx, dedicated("a")))
		assertEndpoint(t, mustEndpoint(t)(s.GetEndpoint(ctx, "a")), mine)
		if err := s.DeleteEndpoint(ctx, "a"); err != nil {
			t.Fatalf(`DeleteEndpoint("a"): %v`, err)
		}
		mustEndpoint(t)(s.PutEndpoint(ctx, dedicated("a")))
		if err := s.DeleteTenant(ctx, "a"); err != nil {
			t.Fatalf(`DeleteTenant("a"): %v`, err)
		}
		l, err := s.ListEndpoints(ctx)
		if err != nil {
			t.Fatalf("ListEndpoints: %v", err)
		}
		assertNames(t, l, func(e store.Endpoint) string { return e.Tenant }, "a b", "a*", "a.b", "a>", "ab")
		for _, n := range names[1:] {
			if got := mustEndpoint(t)(s.GetEndpoint(ctx, n)); got.URL != dedicated(n).URL {
				t.Errorf("GetEndpoint(%q) = %+v, want its own record", n, got)
			}
			if l, err := s.ListIntegrations(ctx, n); err != nil || len(l) != 1 {
				t.Errorf("ListIntegrations(%q) = %v, %v; want its one integration", n, l, err)
			}
		}
	}},
	{"CreateRace", func(ctx context.Context, t *testing.T, s store.Store) {
		mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: "acme"}))
		errs := race(workers, func(i int) error {
			e := dedicated("acme")
			e.URL = fmt.Sprintf("nats://n%d:4222", i)
			_, err := s.PutEndpoint(ctx, e)
			return err
		})
		assertOneWinner(t, errs, store.ErrExists)
	}},
	{"UpdateRace", func(ctx context.Context, t *testing.T, s store.Store) {
		mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: "acme"}))
		orig := mustEndpoint(t)(s.PutEndpoint(ctx, dedicated("acme")))
		urls := make([]string, workers)
		errs := race(workers, func(i int) error {
			up := orig
			up.URL = fmt.Sprintf("nats://n%d:4222", i)
			urls[i] = up.URL
			_, err := s.PutEndpoint(ctx, up)
			return err
		})
		assertOneWinner(t, errs, store.ErrConflict)
		got := mustEndpoint(t)(s.GetEndpoint(ctx, "acme"))
		for i, err := range errs {
			if err == nil && got.URL != urls[i] {
				t.Errorf("stored URL %q, want the winner's %q", got.URL, urls[i])
			}
		}
	}},
	{"PutRacesDeleteTenant", func(ctx context.Context, t *testing.T, s store.Store) {
		// Whichever wins, no endpoint outlives its tenant, and none
		// appears under a tenant created again.
		for round := range 5 {
			mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: "acme"}))
			errs := race(2, func(i int) error {
				if i == 0 {
					return s.DeleteTenant(ctx, "acme")
				}
				_, err := s.PutEndpoint(ctx, dedicated("acme"))
				return err
			})
			if errs[0] != nil {
				t.Fatalf("round %d: DeleteTenant: %v", round, errs[0])
			}
			if errs[1] != nil && !errors.Is(errs[1], store.ErrNotFound) {
				t.Errorf("round %d: PutEndpoint: %v, want nil or ErrNotFound", round, errs[1])
			}
			_, err := s.GetEndpoint(ctx, "acme")
			wantErr(t, fmt.Sprintf("round %d: GetEndpoint after DeleteTenant", round), err, store.ErrNotFound)
			if l, err := s.ListEndpoints(ctx); err != nil || len(l) != 0 {
				t.Errorf("round %d: ListEndpoints = %v, %v; want none", round, l, err)
			}
			mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: "acme"}))
			_, err = s.GetEndpoint(ctx, "acme")
			wantErr(t, fmt.Sprintf("round %d: GetEndpoint of the re-created tenant", round), err, store.ErrNotFound)
			// The record can be created for the new tenant.
			mustEndpoint(t)(s.PutEndpoint(ctx, dedicated("acme")))
			if err := s.DeleteTenant(ctx, "acme"); err != nil {
				t.Fatalf("round %d: DeleteTenant: %v", round, err)
			}
		}
	}},
}

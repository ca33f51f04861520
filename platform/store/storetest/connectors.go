package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/vrsky/vrsky/platform/store"
)

// connectorTest runs only on stores that implement store.ConnectorStore.
func connectorTest(name string, run func(ctx context.Context, t *testing.T, s store.Store, cs store.ConnectorStore)) test {
	return test{name, func(ctx context.Context, t *testing.T, s store.Store) {
		cs, ok := s.(store.ConnectorStore)
		if !ok {
			t.Logf("%T does not implement store.ConnectorStore: nothing to check", s)
			return
		}
		run(ctx, t, s, cs)
	}}
}

func cv(tenant, name, version string) store.ConnectorVersion {
	return store.ConnectorVersion{Tenant: tenant, Name: name, Version: version, Kind: "converter",
		Manifest:  []byte(fmt.Sprintf(`{"name":%q,"version":%q}`, name, version)),
		Digest:    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		Size:      1234,
		ModuleKey: fmt.Sprintf("modules/%s/%s/%s.wasm", tenant, name, version)}
}

func mustConnector(t *testing.T) func(store.ConnectorVersion, error) store.ConnectorVersion {
	return must[store.ConnectorVersion](t)
}

func connectorIDs(l []store.ConnectorVersion) []string {
	out := make([]string, len(l))
	for i, v := range l {
		out[i] = v.Tenant + "/" + v.Name + "@" + v.Version
	}
	return out
}

func assertConnectors(t *testing.T, what string, got []store.ConnectorVersion, err error, want ...string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if g := connectorIDs(got); fmt.Sprint(g) != fmt.Sprint(want) {
		t.Errorf("%s = %q, want %q", what, g, want)
	}
}

var connectorTests = []test{
	connectorTest("CreateGetRoundTrip", func(ctx context.Context, t *testing.T, s store.Store, cs store.ConnectorStore) {
		mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: "acme"}))
		for _, in := range []store.ConnectorVersion{cv("", "jq", "1.0.0"), cv("acme", "enrich", "0.1.0-beta.1")} {
			in.Deprecated = true
			got := mustConnector(t)(cs.CreateConnectorVersion(ctx, in))
			if got.CreatedAt.IsZero() || got.Visibility != store.VisibilityPrivate {
				t.Errorf("created %+v: want CreatedAt set and visibility private by default", got)
			}
			again := mustConnector(t)(cs.GetConnectorVersion(ctx, in.Tenant, in.Name, in.Version))
			assertJSON(t, again.Manifest, in.Manifest)
			again.Manifest, got.Manifest = nil, nil
			if fmt.Sprint(again) != fmt.Sprint(got) {
				t.Errorf("Get = %+v, want %+v", again, got)
			}
			if again.Digest != in.Digest || again.Size != in.Size || again.ModuleKey != in.ModuleKey ||
				again.Kind != in.Kind || !again.Deprecated {
				t.Errorf("Get lost fields: %+v, stored %+v", again, in)
			}
		}
	}),
	connectorTest("CreateErrors", func(ctx context.Context, t *testing.T, s store.Store, cs store.ConnectorStore) {
		mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: "acme"}))
		mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: "globex"}))
		mustConnector(t)(cs.CreateConnectorVersion(ctx, cv("acme", "x", "1")))
		_, err := cs.CreateConnectorVersion(ctx, cv("acme", "x", "1"))
		wantErr(t, "CreateConnectorVersion twice", err, store.ErrExists)
		_, err = cs.CreateConnectorVersion(ctx, cv("nobody", "x", "1"))
		wantErr(t, "CreateConnectorVersion for a missing tenant", err, store.ErrNotFound)
		// The name is acme's: nobody else may publish under it.
		_, err = cs.CreateConnectorVersion(ctx, cv("globex", "x", "1"))
		wantErr(t, "CreateConnectorVersion of acme's name by globex", err, store.ErrNameTaken)
		_, err = cs.CreateConnectorVersion(ctx, cv("", "x", "2"))
		wantErr(t, "CreateConnectorVersion of acme's name by the platform", err, store.ErrNameTaken)
		for _, tc := range []struct {
			name string
			edit func(*store.ConnectorVersion)
		}{
			{"NoName", func(v *store.ConnectorVersion) { v.Name = "" }},
			{"NoVersion", func(v *store.ConnectorVersion) { v.Version = "" }},
			{"NoKind", func(v *store.ConnectorVersion) { v.Kind = "" }},
			{"BadManifest", func(v *store.ConnectorVersion) { v.Manifest = []byte(`{"a":`) }},
			{"BadVisibility", func(v *store.ConnectorVersion) { v.Visibility = "everyone" }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				v := cv("acme", "bad", "1")
				tc.edit(&v)
				if _, err := cs.CreateConnectorVersion(ctx, v); err == nil {
					t.Errorf("CreateConnectorVersion accepted %+v", v)
				}
			})
		}
	}),
	connectorTest("GetMissing", func(ctx context.Context, t *testing.T, s store.Store, cs store.ConnectorStore) {
		mustConnector(t)(cs.CreateConnectorVersion(ctx, cv("", "jq", "1")))
		for _, id := range [][3]string{{"", "jq", "2"}, {"", "nope", "1"}, {"acme", "jq", "1"}} {
			_, err := cs.GetConnectorVersion(ctx, id[0], id[1], id[2])
			wantErr(t, fmt.Sprintf("GetConnectorVersion%q", id), err, store.ErrNotFound)
		}
	}),
	connectorTest("VersionsOldestFirst", func(ctx context.Context, t *testing.T, s store.Store, cs store.ConnectorStore) {
		for _, v := range []string{"2.0.0", "1.0.0", "10.0.0", "1.1.0"} {
			mustConnector(t)(cs.CreateConnectorVersion(ctx, cv("", "jq", v)))
		}
		mustConnector(t)(cs.CreateConnectorVersion(ctx, cv("", "jq2", "9")))
		l, err := cs.ListConnectorVersions(ctx, "", "jq")
		assertConnectors(t, "ListConnectorVersions", l, err, "/jq@2.0.0", "/jq@1.0.0", "/jq@10.0.0", "/jq@1.1.0")
		l, err = cs.ListConnectorVersions(ctx, "", "nope")
		assertConnectors(t, "ListConnectorVersions of a missing connector", l, err)
	}),
	connectorTest("CatalogueVisibility", func(ctx context.Context, t *testing.T, s store.Store, cs store.ConnectorStore) {
		mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: "acme"}))
		mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: "globex"}))
		add := func(tenant, name, version, vis string) {
			v := cv(tenant, name, version)
			v.Visibility = vis
			mustConnector(t)(cs.CreateConnectorVersion(ctx, v))
		}
		add("", "jq", "1", store.VisibilityPrivate) // the platform's: seen by all anyway
		add("", "jq", "2", store.VisibilityPublic)
		add("acme", "secret", "1", store.VisibilityPrivate)
		add("globex", "shared", "1", store.VisibilityPublic)
		add("globex", "was-public", "1", store.VisibilityPublic)
		add("globex", "was-public", "2", store.VisibilityPrivate) // the latest decides
		add("acme", "becomes-public", "1", store.VisibilityPrivate)
		add("acme", "becomes-public", "2", store.VisibilityPublic)
		for _, tc := range []struct {
			viewer string
			want   []string
		}{
			{"acme", []string{"/jq@2", "acme/becomes-public@2", "acme/secret@1", "globex/shared@1"}},
			{"globex", []string{"/jq@2", "acme/becomes-public@2", "globex/shared@1", "globex/was-public@2"}},
			{"", []string{"/jq@2", "acme/becomes-public@2", "globex/shared@1"}},
			{"initech", []string{"/jq@2", "acme/becomes-public@2", "globex/shared@1"}},
		} {
			l, err := cs.ListConnectors(ctx, tc.viewer)
			assertConnectors(t, fmt.Sprintf("ListConnectors(%q)", tc.viewer), l, err, tc.want...)
		}
		// Deleting the latest version makes the one before it the latest,
		// with its own visibility.
		if err := cs.DeleteConnectorVersion(ctx, "globex", "was-public", "2"); err != nil {
			t.Fatalf("DeleteConnectorVersion: %v", err)
		}
		l, err := cs.ListConnectors(ctx, "acme")
		assertConnectors(t, "ListConnectors(acme) after the delete", l, err,
			"/jq@2", "acme/becomes-public@2", "acme/secret@1", "globex/shared@1", "globex/was-public@1")
	}),
	connectorTest("Deprecate", func(ctx context.Context, t *testing.T, s store.Store, cs store.ConnectorStore) {
		mustConnector(t)(cs.CreateConnectorVersion(ctx, cv("", "jq", "1")))
		for _, dep := range []bool{true, false, true} {
			if err := cs.SetConnectorDeprecated(ctx, "", "jq", "1", dep); err != nil {
				t.Fatalf("SetConnectorDeprecated(%v): %v", dep, err)
			}
			if got := mustConnector(t)(cs.GetConnectorVersion(ctx, "", "jq", "1")); got.Deprecated != dep {
				t.Errorf("Deprecated = %v, want %v", got.Deprecated, dep)
			}
		}
		wantErr(t, "SetConnectorDeprecated of a missing version", cs.SetConnectorDeprecated(ctx, "", "jq", "2", true), store.ErrNotFound)
		l, err := cs.ListConnectors(ctx, "")
		if err != nil || len(l) != 1 || !l[0].Deprecated {
			t.Errorf("ListConnectors = %+v, %v; want the deprecated version listed as such", l, err)
		}
	}),
	connectorTest("Delete", func(ctx context.Context, t *testing.T, s store.Store, cs store.ConnectorStore) {
		mustConnector(t)(cs.CreateConnectorVersion(ctx, cv("", "jq", "1")))
		mustConnector(t)(cs.CreateConnectorVersion(ctx, cv("", "jq", "2")))
		wantErr(t, "DeleteConnectorVersion of a missing version", cs.DeleteConnectorVersion(ctx, "", "jq", "3"), store.ErrNotFound)
		for _, v := range []string{"2", "1"} {
			if err := cs.DeleteConnectorVersion(ctx, "", "jq", v); err != nil {
				t.Fatalf("DeleteConnectorVersion %s: %v", v, err)
			}
		}
		wantErr(t, "DeleteConnectorVersion twice", cs.DeleteConnectorVersion(ctx, "", "jq", "1"), store.ErrNotFound)
		l, err := cs.ListConnectors(ctx, "")
		assertConnectors(t, "ListConnectors after deleting every version", l, err)
		mustConnector(t)(cs.CreateConnectorVersion(ctx, cv("", "jq", "1")))
	}),
	connectorTest("TenantDeleteKeepsConnectors", func(ctx context.Context, t *testing.T, s store.Store, cs store.ConnectorStore) {
		mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: "acme"}))
		v := cv("acme", "shared", "1")
		v.Visibility = store.VisibilityPublic
		mustConnector(t)(cs.CreateConnectorVersion(ctx, v))
		if err := s.DeleteTenant(ctx, "acme"); err != nil {
			t.Fatalf("DeleteTenant: %v", err)
		}
		mustConnector(t)(cs.GetConnectorVersion(ctx, "acme", "shared", "1"))
	}),
	connectorTest("CreateRace", func(ctx context.Context, t *testing.T, s store.Store, cs store.ConnectorStore) {
		errs := race(workers, func(i int) error {
			_, err := cs.CreateConnectorVersion(ctx, cv("", "jq", "1"))
			return err
		})
		assertOneWinner(t, errs, store.ErrExists)
		errs = race(workers, func(i int) error {
			_, err := cs.CreateConnectorVersion(ctx, cv("", "jq", fmt.Sprint(i+2)))
			return err
		})
		for i, err := range errs {
			if err != nil {
				t.Errorf("distinct version %d: %v", i, err)
			}
		}
		if l, err := cs.ListConnectorVersions(ctx, "", "jq"); err != nil || len(l) != workers+1 {
			t.Errorf("ListConnectorVersions = %d, %v; want %d", len(l), err, workers+1)
		}
	}),
	connectorTest("NameOwnedByFirstPublisher", func(ctx context.Context, t *testing.T, s store.Store, cs store.ConnectorStore) {
		mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: "acme"}))
		mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: "globex"}))
		mustConnector(t)(cs.CreateConnectorVersion(ctx, cv("", "jq", "1")))
		mustConnector(t)(cs.CreateConnectorVersion(ctx, cv("acme", "enrich", "1")))
		// The owner publishes as many versions as it likes.
		for _, v := range []string{"2", "3", "1.0.0"} {
			mustConnector(t)(cs.CreateConnectorVersion(ctx, cv("acme", "enrich", v)))
		}
		taken := func(when string) {
			t.Helper()
			for _, c := range []store.ConnectorVersion{cv("globex", "enrich", "9"), cv("", "enrich", "9"), cv("acme", "jq", "9"), cv("globex", "jq", "1")} {
				_, err := cs.CreateConnectorVersion(ctx, c)
				wantErr(t, fmt.Sprintf("%s: CreateConnectorVersion %s/%s@%s", when, c.Tenant, c.Name, c.Version), err, store.ErrNameTaken)
			}
			for _, id := range [][2]string{{"globex", "enrich"}, {"", "enrich"}, {"acme", "jq"}, {"globex", "jq"}} {
				l, err := cs.ListConnectorVersions(ctx, id[0], id[1])
				assertConnectors(t, fmt.Sprintf("%s: ListConnectorVersions%q", when, id), l, err)
			}
		}
		taken("published")
		// The claim outlives the versions and the tenant: a name others
		// relied on never passes to another publisher.
		for _, v := range []string{"1", "2", "3", "1.0.0"} {
			if err := cs.DeleteConnectorVersion(ctx, "acme", "enrich", v); err != nil {
				t.Fatalf("DeleteConnectorVersion %s: %v", v, err)
			}
		}
		taken("every version deleted")
		mustConnector(t)(cs.CreateConnectorVersion(ctx, cv("acme", "enrich", "4")))
		if err := s.DeleteTenant(ctx, "acme"); err != nil {
			t.Fatalf("DeleteTenant: %v", err)
		}
		_, err := cs.CreateConnectorVersion(ctx, cv("globex", "enrich", "9"))
		wantErr(t, "CreateConnectorVersion of a deleted tenant's name", err, store.ErrNameTaken)
		// A tenant that does not exist claims nothing.
		_, err = cs.CreateConnectorVersion(ctx, cv("nobody", "fresh", "1"))
		wantErr(t, "CreateConnectorVersion for a missing tenant", err, store.ErrNotFound)
		mustConnector(t)(cs.CreateConnectorVersion(ctx, cv("globex", "fresh", "1")))
	}),
	connectorTest("NameClaimRace", func(ctx context.Context, t *testing.T, s store.Store, cs store.ConnectorStore) {
		// Tenants publishing the same new name at once: one tenant gets
		// it, every version of the others is refused with ErrNameTaken,
		// and the winner's own versions all succeed.
		tenants := []string{"acme", "globex", "initech", ""}
		for _, name := range tenants[:3] {
			mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: name}))
		}
		const racers = 4 * workers
		for round := range 5 {
			name := fmt.Sprintf("contested-%d", round)
			errs := race(racers, func(i int) error {
				_, err := cs.CreateConnectorVersion(ctx, cv(tenants[i%len(tenants)], name, fmt.Sprint(i)))
				return err
			})
			winner, won := "", false
			for i, err := range errs {
				if err == nil {
					tenant := tenants[i%len(tenants)]
					if won && tenant != winner {
						t.Fatalf("round %d: both %q and %q published %s", round, winner, tenant, name)
					}
					winner, won = tenant, true
				}
			}
			if !won {
				t.Fatalf("round %d: nobody published %s: %v", round, name, errs)
			}
			for i, err := range errs {
				tenant := tenants[i%len(tenants)]
				switch {
				case tenant == winner && err != nil:
					t.Errorf("round %d: winner %q's version %d: %v", round, winner, i, err)
				case tenant != winner && !errors.Is(err, store.ErrNameTaken):
					t.Errorf("round %d: %q's version %d: %v, want %v", round, tenant, i, err, store.ErrNameTaken)
				}
			}
			for _, tenant := range tenants {
				want := 0
				if tenant == winner {
					want = racers / len(tenants)
				}
				if l, err := cs.ListConnectorVersions(ctx, tenant, name); err != nil || len(l) != want {
					t.Errorf("round %d: %q has versions %q (%v), want %d", round, tenant, connectorIDs(l), err, want)
				}
			}
		}
	}),
	connectorTest("DeleteRacesCreate", func(ctx context.Context, t *testing.T, s store.Store, cs store.ConnectorStore) {
		// Deleting a connector's last version while another is created
		// must not lose the new one.
		for i := range 10 {
			old, next := fmt.Sprint(i), fmt.Sprint(i+1)
			if i == 0 {
				mustConnector(t)(cs.CreateConnectorVersion(ctx, cv("", "jq", old)))
			}
			errs := race(2, func(w int) error {
				if w == 0 {
					return cs.DeleteConnectorVersion(ctx, "", "jq", old)
				}
				_, err := cs.CreateConnectorVersion(ctx, cv("", "jq", next))
				return err
			})
			for _, err := range errs {
				if err != nil {
					t.Fatalf("round %d: %v", i, err)
				}
			}
			if _, err := cs.GetConnectorVersion(ctx, "", "jq", next); err != nil {
				t.Fatalf("round %d: the version created during the delete is gone: %v", i, err)
			}
		}
		if _, err := cs.GetConnectorVersion(ctx, "", "jq", "0"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("deleted version still there: %v", err)
		}
	}),
}

// LegacyNames checks that connector versions stored without a name claim,
// as a VRSky before claims stored them, keep their owner: the one the
// registry resolved the name to, the platform first, else the first tenant
// by name, tenants that exist before deleted ones. s must be empty;
// writeLegacy stores versions the way such a VRSky did (and, for a backend
// that claims names in a migration, runs it).
func LegacyNames(t *testing.T, s store.Store, writeLegacy func(ctx context.Context, vs []store.ConnectorVersion) error) {
	cs, ok := s.(store.ConnectorStore)
	if !ok {
		t.Fatalf("%T does not implement store.ConnectorStore", s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: "acme"}))
	mustTenant(t)(s.CreateTenant(ctx, store.Tenant{Name: "globex"}))
	// Tenant "gone" does not exist: it was deleted, its connectors stayed.
	cases := []struct {
		name   string
		owners []string // tenants holding versions of the name
		want   string
	}{
		{"solo", []string{"globex"}, "globex"},
		{"both", []string{"globex", "acme"}, "acme"},
		{"platform", []string{"acme", ""}, ""},
		{"deleted-first", []string{"gone", "globex"}, "globex"},
		{"deleted-only", []string{"gone"}, "gone"},
	}
	var legacy []store.ConnectorVersion
	for _, c := range cases {
		for _, o := range c.owners {
			v := cv(o, c.name, "1")
			v.Visibility = store.VisibilityPublic
			v.CreatedAt = time.Now().UTC().Truncate(time.Microsecond)
			legacy = append(legacy, v)
		}
	}
	if err := writeLegacy(ctx, legacy); err != nil {
		t.Fatalf("write connectors without claims: %v", err)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// The others try first: a claim for whoever asks first fails.
			tries := slices.DeleteFunc([]string{"acme", "globex", ""}, func(s string) bool { return s == c.want })
			for _, tenant := range append(tries, c.want) {
				if tenant == "gone" {
					continue // it cannot publish: it does not exist
				}
				_, err := cs.CreateConnectorVersion(ctx, cv(tenant, c.name, "2"))
				switch {
				case tenant == c.want && err != nil:
					t.Errorf("owner %q: CreateConnectorVersion: %v", tenant, err)
				case tenant != c.want && !errors.Is(err, store.ErrNameTaken):
					t.Errorf("%q (owner %q): CreateConnectorVersion: %v, want %v", tenant, c.want, err, store.ErrNameTaken)
				}
			}
		})
	}
}

package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"

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
		// The same name and version elsewhere is another connector.
		mustConnector(t)(cs.CreateConnectorVersion(ctx, cv("globex", "x", "1")))
		mustConnector(t)(cs.CreateConnectorVersion(ctx, cv("", "x", "1")))
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

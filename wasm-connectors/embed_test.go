package wasmconnectors

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/vrsky/vrsky/host"
	"github.com/vrsky/vrsky/host/hosttest"
	"github.com/vrsky/vrsky/registry"
)

// TestListManifests: every shipped connector is listed, and its manifest
// passes the registry's parser (the one the server uses) with the folder's
// name, kind step and ABI 1.
func TestListManifests(t *testing.T) {
	want := []string{"csv", "filter", "jq", "template", "xml"}
	var got []string
	for _, b := range List() {
		got = append(got, b.Name)
		m, err := registry.ParseManifest(b.Manifest)
		if err != nil {
			t.Errorf("%s: %v", b.Name, err)
			continue
		}
		if m.Name != b.Name || m.Kind != "step" || m.ABI != 1 {
			t.Errorf("%s: manifest %+v", b.Name, m)
		}
		if b.Err != nil && !strings.Contains(b.Err.Error(), "make wasm") {
			t.Errorf("%s: error does not say how to build: %v", b.Name, b.Err)
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("List() = %v, want %v", got, want)
	}
	if _, ok := Lookup("jq"); !ok {
		t.Fatal("Lookup(jq) failed")
	}
	if _, ok := Lookup("nope"); ok {
		t.Fatal("Lookup(nope) succeeded")
	}
}

var smokeConfig = map[string]string{
	"jq":       `{"query":"."}`,
	"filter":   `{"expr":"a == 1"}`,
	"csv":      `{"mode":"json_to_csv"}`,
	"xml":      `{"mode":"json_to_xml"}`,
	"template": `{"template":"{{.a}}"}`,
}

// TestEmbeddedModulesLoad loads every embedded module through the host.
// With CI=true (make test runs build.sh first) every module must be built.
func TestEmbeddedModulesLoad(t *testing.T) {
	rt := hosttest.Runtime(t, host.Config{})
	for _, b := range List() {
		wasm, err := b.Wasm()
		if err != nil {
			if os.Getenv("CI") == "true" {
				t.Errorf("%s: %v", b.Name, err)
			} else {
				t.Logf("%s: %v (fine on a fresh checkout; make test builds them)", b.Name, err)
			}
			continue
		}
		m, err := registry.ParseManifest(b.Manifest)
		if err != nil {
			t.Fatalf("%s: %v", b.Name, err)
		}
		spec := m.ModuleSpec(wasm)
		spec.Trusted = true
		mod, err := rt.Load(context.Background(), spec)
		if err != nil {
			t.Errorf("%s: %v", b.Name, err)
			continue
		}
		// One message through the embedded build, as vrsky serve runs it.
		p, err := mod.NewPool(host.PoolConfig{Tenant: "acme", Integration: "smoke", Config: []byte(smokeConfig[b.Name])})
		if err != nil {
			t.Errorf("%s: %v", b.Name, err)
			continue
		}
		res, err := p.Process(context.Background(), []host.Message{{ID: "1", Data: []byte(`{"a":1}`)}})
		p.Close()
		if err != nil || res[0].Status != host.StatusOK || len(res[0].Out) == 0 {
			t.Errorf("%s: %v %+v", b.Name, err, res)
		}
	}
}

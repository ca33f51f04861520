package wasmconnectors

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/vrsky/vrsky/host"
	"github.com/vrsky/vrsky/host/hosttest"
)

func TestListManifests(t *testing.T) {
	want := []string{"csv", "filter", "jq", "template", "xml"}
	var got []string
	for _, b := range List() {
		got = append(got, b.Manifest.Name)
		if b.Manifest.Kind != "step" || b.Manifest.ABI != 1 || len(b.Manifest.ConfigSchema) == 0 {
			t.Errorf("%s: manifest %+v", b.Manifest.Name, b.Manifest)
		}
		if b.Err != nil && !strings.Contains(b.Err.Error(), "make wasm") {
			t.Errorf("%s: error does not say how to build: %v", b.Manifest.Name, b.Err)
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
		spec, err := b.Spec()
		if err != nil {
			if os.Getenv("CI") == "true" {
				t.Errorf("%s: %v", b.Manifest.Name, err)
			} else {
				t.Logf("%s: %v (fine on a fresh checkout; make test builds them)", b.Manifest.Name, err)
			}
			continue
		}
		mod, err := rt.Load(context.Background(), spec)
		if err != nil {
			t.Errorf("%s: %v", b.Manifest.Name, err)
			continue
		}
		// One message through the embedded build, as vrsky serve runs it.
		p, err := mod.NewPool(host.PoolConfig{Tenant: "acme", Integration: "smoke", Config: []byte(smokeConfig[b.Manifest.Name])})
		if err != nil {
			t.Errorf("%s: %v", b.Manifest.Name, err)
			continue
		}
		res, err := p.Process(context.Background(), []host.Message{{ID: "1", Data: []byte(`{"a":1}`)}})
		p.Close()
		if err != nil || res[0].Status != host.StatusOK || len(res[0].Out) == 0 {
			t.Errorf("%s: %v %+v", b.Manifest.Name, err, res)
		}
	}
}

func TestParseManifestRejects(t *testing.T) {
	tests := []struct{ name, doc, errHas string }{
		{"unknown field", "name: x\nversion: 1.0.0\nkind: step\nabi: 1\nconfig_schema: {}\nbogus: 1\n", "bogus"},
		{"abi 2", "name: x\nversion: 1.0.0\nkind: step\nabi: 2\nconfig_schema: {}\n", "abi 2"},
		{"no schema", "name: x\nversion: 1.0.0\nkind: step\nabi: 1\n", "config_schema"},
		{"bad kind", "name: x\nversion: 1.0.0\nkind: magic\nabi: 1\nconfig_schema: {}\n", "kind"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseManifest([]byte(tc.doc)); err == nil || !strings.Contains(err.Error(), tc.errHas) {
				t.Fatalf("err = %v, want %q", err, tc.errHas)
			}
		})
	}
}

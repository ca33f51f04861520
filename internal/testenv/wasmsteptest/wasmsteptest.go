// Package wasmsteptest runs a shipped Wasm connector through the real
// host: it builds the module from source (hosttest), loads it with its
// manifest's capabilities (the manifest parsed by the registry, as the
// server parses it), checks each case's config against the manifest's
// JSON Schema, and compares statuses and outputs. It lives outside
// wasm-connectors because the shipped modules' package may import nothing
// of the host or the engine.
package wasmsteptest

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/vrsky/vrsky/host"
	"github.com/vrsky/vrsky/host/hosttest"
	"github.com/vrsky/vrsky/registry"
)

// Statuses, for Case.Status.
const (
	OK        = host.StatusOK
	Drop      = host.StatusDrop
	Retryable = host.StatusRetryable
	Permanent = host.StatusPermanent
)

// Case is one message through one configuration.
type Case struct {
	// Name names the subtest.
	Name string
	// Config is the step's JSON config.
	Config string
	// SchemaInvalid says Config is expected to fail the manifest's schema
	// (the case still runs, to check the guest's own validation).
	SchemaInvalid bool
	// In is the input payload; Headers its headers.
	In      string
	Headers map[string]string
	// Status is the expected status (OK by default).
	Status host.Status
	// Out are the expected outputs; nil means "do not check".
	Out []string
	// ErrHas must appear in the result's error.
	ErrHas string
	// OutHeaders must be set on every output.
	OutHeaders map[string]string
}

// Load builds and loads connector name (a folder of wasm-connectors) and
// returns its manifest and module spec.
func Load(tb testing.TB, name string) (*registry.Manifest, host.ModuleSpec) {
	tb.Helper()
	root, err := hosttest.ModuleRoot()
	if err != nil {
		tb.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join(root, "wasm-connectors", name, registry.ManifestFile))
	if err != nil {
		tb.Fatal(err)
	}
	m, err := registry.ParseManifest(doc)
	if err != nil {
		tb.Fatal(err)
	}
	spec := m.ModuleSpec(hosttest.Build(tb, "wasm-connectors/"+name))
	spec.Trusted = true
	return m, spec
}

// Run runs every case through connector name, on both the trusted and
// the untrusted runtime.
func Run(t *testing.T, name string, cases []Case) {
	t.Helper()
	m, spec := Load(t, name)
	c := jsonschema.NewCompiler()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(m.ConfigSchema))
	if err != nil {
		t.Fatalf("config_schema: %v", err)
	}
	if err := c.AddResource("mem://schema.json", doc); err != nil {
		t.Fatal(err)
	}
	schema, err := c.Compile("mem://schema.json")
	if err != nil {
		t.Fatalf("config_schema: %v", err)
	}
	rt := hosttest.Runtime(t, host.Config{})
	for _, trusted := range []bool{true, false} {
		spec.Trusted = trusted
		for _, tc := range cases {
			n := tc.Name
			if !trusted {
				n += "/untrusted"
			}
			t.Run(n, func(t *testing.T) {
				cfg, err := jsonschema.UnmarshalJSON(strings.NewReader(tc.Config))
				if err != nil {
					t.Fatalf("config: %v", err)
				}
				if err := schema.Validate(cfg); (err != nil) != tc.SchemaInvalid {
					t.Fatalf("schema validation of %s: %v (SchemaInvalid=%v)", tc.Config, err, tc.SchemaInvalid)
				}
				p := hosttest.Pool(t, rt, spec, host.PoolConfig{Config: []byte(tc.Config)})
				h := map[string][]string{}
				for k, v := range tc.Headers {
					h[k] = []string{v}
				}
				res, err := p.Process(context.Background(), []host.Message{{ID: "m", Headers: h, Data: []byte(tc.In)}})
				if err != nil {
					t.Fatal(err)
				}
				r := res[0]
				if r.Status != tc.Status || !strings.Contains(r.Error, tc.ErrHas) {
					t.Fatalf("status %v %q, want %v with %q", r.Status, r.Error, tc.Status, tc.ErrHas)
				}
				if tc.Out != nil {
					var got []string
					for _, o := range r.Out {
						got = append(got, string(o.Data))
					}
					if len(got) != len(tc.Out) || strings.Join(got, "\x00") != strings.Join(tc.Out, "\x00") {
						t.Fatalf("out\n got %q\nwant %q", got, tc.Out)
					}
				}
				for k, v := range tc.OutHeaders {
					for _, o := range r.Out {
						if got := o.Headers[k]; len(got) != 1 || got[0] != v {
							t.Fatalf("output header %s = %q, want %q", k, got, v)
						}
					}
				}
			})
		}
	}
}

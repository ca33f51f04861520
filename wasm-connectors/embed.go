// Package wasmconnectors holds the Wasm converters and filters that ship
// with VRSky: one folder each (guest source and vrsky-connector.yaml), built
// by build.sh (make wasm) into build/, and embedded here so that `vrsky
// serve` has them from its first start.
//
// On a checkout where build.sh has not run, List still returns every
// connector, with its manifest, and Builtin.Err says how to build it.
package wasmconnectors

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"sort"
	"sync"

	"sigs.k8s.io/yaml"

	"github.com/vrsky/vrsky/host"
)

// build/ always holds a committed README.md, so the pattern compiles on a
// clean checkout; the .wasm files appear once build.sh has run.
//
//go:embed build */vrsky-connector.yaml
var files embed.FS

// Manifest describes a connector (vrsky-connector.yaml).
type Manifest struct {
	// Name is the connector's name in integration specs ("jq").
	Name string `json:"name"`
	// Version is its semantic version.
	Version string `json:"version"`
	// Kind is where it goes in a pipeline: "step", "source" or "sink".
	Kind string `json:"kind"`
	// Category refines Kind for the catalogue: "converter", "filter", …
	Category string `json:"category,omitempty"`
	// Description is shown in the marketplace.
	Description string `json:"description"`
	// ABI is the host ABI version the module speaks (1).
	ABI int `json:"abi"`
	// Capabilities are what the module may use beyond its messages.
	Capabilities ManifestCapabilities `json:"capabilities"`
	// ConfigSchema is the JSON Schema of the step's config.
	ConfigSchema json.RawMessage `json:"config_schema"`
}

// ManifestCapabilities is the manifest's capabilities section.
type ManifestCapabilities struct {
	// NATS: publish/request on the tenant's subjects.
	NATS bool `json:"nats,omitempty"`
	// Objects: object store get/put by reference.
	Objects bool `json:"objects,omitempty"`
	// KV: the integration's key-value store.
	KV bool `json:"kv,omitempty"`
	// HTTPHosts: hosts HTTP calls may reach.
	HTTPHosts []string `json:"http_hosts,omitempty"`
	// WASIFileStubs: link unused WASI file/socket imports to failing stubs.
	WASIFileStubs bool `json:"wasi_file_stubs,omitempty"`
}

// ParseManifest reads a vrsky-connector.yaml document strictly (unknown
// fields are errors) and checks the required fields.
func ParseManifest(doc []byte) (Manifest, error) {
	var m Manifest
	if err := yaml.UnmarshalStrict(doc, &m); err != nil {
		return m, fmt.Errorf("manifest: %w", err)
	}
	switch {
	case m.Name == "":
		return m, fmt.Errorf("manifest: name is required")
	case m.Version == "":
		return m, fmt.Errorf("manifest %s: version is required", m.Name)
	case m.ABI != 1:
		return m, fmt.Errorf("manifest %s: abi %d is not supported (this host speaks 1)", m.Name, m.ABI)
	case m.Kind != "step" && m.Kind != "source" && m.Kind != "sink":
		return m, fmt.Errorf("manifest %s: kind %q must be step, source or sink", m.Name, m.Kind)
	case len(m.ConfigSchema) == 0:
		return m, fmt.Errorf("manifest %s: config_schema is required", m.Name)
	}
	return m, nil
}

// HostCapabilities converts the manifest's capabilities for host.ModuleSpec.
func (m Manifest) HostCapabilities() host.Capabilities {
	return host.Capabilities{NATS: m.Capabilities.NATS, Objects: m.Capabilities.Objects, KV: m.Capabilities.KV, HTTPHosts: m.Capabilities.HTTPHosts}
}

// ModuleSpec returns the spec to load this connector's module with.
func (m Manifest) ModuleSpec(wasm []byte, trusted bool) host.ModuleSpec {
	return host.ModuleSpec{Name: m.Name, Version: m.Version, Wasm: wasm, Trusted: trusted,
		Capabilities: m.HostCapabilities(), StubWASIFiles: m.Capabilities.WASIFileStubs}
}

// Builtin is one shipped connector.
type Builtin struct {
	// Manifest is the parsed vrsky-connector.yaml.
	Manifest Manifest
	// ManifestYAML is the document as written.
	ManifestYAML []byte
	// Digest is the module's SHA-256 (hex) and Size its length in bytes;
	// both are zero when Err is set.
	Digest string
	Size   int64
	// Err says why the module is missing (not built).
	Err error

	wasmPath string
}

// Wasm reads the built module out of the binary. Each call returns a fresh
// copy that nothing else holds: the shipped modules come to about 26 MB,
// and a server that kept them on its heap (twice, as it did) had its
// garbage-collection goal, and so its memory growth under load, raised by
// that much for modules it compiles once, if ever.
func (b Builtin) Wasm() ([]byte, error) {
	if b.Err != nil {
		return nil, b.Err
	}
	return files.ReadFile(b.wasmPath)
}

// Spec returns the module spec of a shipped (trusted) connector, or Err.
func (b Builtin) Spec() (host.ModuleSpec, error) {
	wasm, err := b.Wasm()
	if err != nil {
		return host.ModuleSpec{}, err
	}
	return b.Manifest.ModuleSpec(wasm, true), nil
}

// List returns every shipped connector, sorted by name. It panics if a
// committed manifest is invalid (a build error, caught by the tests).
func List() []Builtin {
	return slices.Clone(list())
}

var list = sync.OnceValue(func() []Builtin {
	manifests, _ := fs.Glob(files, "*/vrsky-connector.yaml")
	sort.Strings(manifests)
	out := make([]Builtin, 0, len(manifests))
	for _, p := range manifests {
		doc, _ := files.ReadFile(p)
		m, err := ParseManifest(doc)
		if err != nil {
			panic(fmt.Sprintf("wasmconnectors: %s: %v", p, err))
		}
		b := Builtin{Manifest: m, ManifestYAML: doc, wasmPath: "build/" + path.Dir(p) + ".wasm"}
		if b.Digest, b.Size, err = digest(b.wasmPath); err != nil {
			b.Err = fmt.Errorf("module %s not built: run `make wasm` (wasm-connectors/build.sh)", path.Dir(p))
		}
		out = append(out, b)
	}
	return out
})

// digest hashes an embedded file without copying it whole.
func digest(name string) (string, int64, error) {
	f, err := files.Open(name)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// Lookup returns the shipped connector with that name.
func Lookup(name string) (Builtin, bool) {
	for _, b := range List() {
		if b.Manifest.Name == name {
			return b, true
		}
	}
	return Builtin{}, false
}

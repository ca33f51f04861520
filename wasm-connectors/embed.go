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
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"sort"
	"sync"
)

// build/ always holds a committed README.md, so the pattern compiles on a
// clean checkout; the .wasm files appear once build.sh has run.
//
//go:embed build */vrsky-connector.yaml
var files embed.FS

// Builtin is one shipped connector: its bytes only. The registry parses
// the manifest (registry.ParseManifest, the one parser of manifests) and
// the host loads the module; this package imports neither.
type Builtin struct {
	// Name is the connector's folder, which is also its manifest's name
	// (the registry's tests check it).
	Name string
	// Manifest is the vrsky-connector.yaml document as written.
	Manifest []byte
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

// List returns every shipped connector, sorted by name.
func List() []Builtin {
	return slices.Clone(list())
}

var list = sync.OnceValue(func() []Builtin {
	manifests, _ := fs.Glob(files, "*/vrsky-connector.yaml")
	sort.Strings(manifests)
	out := make([]Builtin, 0, len(manifests))
	for _, p := range manifests {
		doc, _ := files.ReadFile(p)
		b := Builtin{Name: path.Dir(p), Manifest: doc, wasmPath: "build/" + path.Dir(p) + ".wasm"}
		var err error
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
		if b.Name == name {
			return b, true
		}
	}
	return Builtin{}, false
}

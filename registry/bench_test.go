package registry_test

import (
	"fmt"
	"testing"

	"github.com/vrsky/vrsky/registry"
)

// BenchmarkLookup: resolving an uploaded connector for the runtime. A
// pinned reference ("name@version", what stored specs hold) is served from
// the catalogue's cache; a bare name (a spec being created) asks the store.
//
//	go test -run XXX -bench Lookup ./registry/
func BenchmarkLookup(b *testing.B) {
	e := newEnv(b, natsBackend)
	wrap := fixture(b, "wrap.wasm")
	for _, v := range []string{"1.0.0", "1.1.0", "1.2.0"} {
		if _, err := e.reg.Publish(e.ctx, "acme", registry.Upload{Manifest: manifest("wrap", v), Module: wrap}); err != nil {
			b.Fatal(err)
		}
	}
	for _, ref := range []string{"wrap@1.1.0", "wrap"} {
		b.Run(ref, func(b *testing.B) {
			for b.Loop() {
				if _, ok := e.cat.Lookup(ref); !ok {
					b.Fatal("not found")
				}
			}
		})
	}
}

// BenchmarkPublish: the whole upload path for a small module (validate,
// compile, store), on the embedded backends.
//
//	go test -run XXX -bench Publish ./registry/
func BenchmarkPublish(b *testing.B) {
	e := newEnv(b, natsBackend)
	wrap := fixture(b, "wrap.wasm")
	i := 0
	for b.Loop() {
		i++
		if _, err := e.reg.Publish(e.ctx, "acme", registry.Upload{Manifest: manifest("wrap", fmt.Sprintf("1.0.%d", i)), Module: wrap}); err != nil {
			b.Fatal(err)
		}
	}
}

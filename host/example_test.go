package host_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/vrsky/vrsky/host"
	"github.com/vrsky/vrsky/host/hosttest"
)

// The runtime's view of the host: load a module once, make a pool per
// (module, config, integration), process batches.
func Example() {
	ctx := context.Background()
	wasm, err := hosttest.BuildPackage("host/testdata/probe") // normally: from the registry or wasmconnectors
	if err != nil {
		log.Fatal(err)
	}
	rt, err := host.New(ctx, host.Config{CacheDir: filepath.Join(os.TempDir(), "vrsky-example-cache")})
	if err != nil {
		log.Fatal(err)
	}
	defer rt.Close(ctx)
	mod, err := rt.Load(ctx, host.ModuleSpec{Name: "probe", Version: "1.0.0", Wasm: wasm, Trusted: true})
	if err != nil {
		log.Fatal(err)
	}
	pool, err := mod.NewPool(host.PoolConfig{Tenant: "acme", Integration: "orders", Config: []byte(`{}`)})
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	results, err := pool.Process(ctx, []host.Message{
		{ID: "1", Data: []byte("upper:hello")},
		{ID: "2", Data: []byte("multi:2")},
		{ID: "3", Data: []byte("drop")},
		{ID: "4", Data: []byte("fail:no total")},
	})
	if err != nil {
		log.Fatal(err)
	}
	for i, r := range results {
		fmt.Printf("%d %s %q", i, r.Status, r.Error)
		for _, o := range r.Out {
			fmt.Printf(" %s=%s", o.ID, o.Data)
		}
		fmt.Println()
	}
	// Output:
	// 0 ok "" 1=HELLO
	// 1 ok "" 2=0 2-1=1
	// 2 drop ""
	// 3 permanent "bad record: no total"
}

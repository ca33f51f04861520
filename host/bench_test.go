package host_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/vrsky/vrsky/host"
	"github.com/vrsky/vrsky/host/hosttest"
)

// payload200 is the 200-byte JSON object of DESIGN.md's benchmarks.
var payload200 = []byte(`{"order_id":12345,"amount":19.99,"qty":3,"currency":"EUR","customer":{"name":"Ann Example","tier":"gold","id":"c-778"},"status":"paid","note":"deliver to the back door, ring twice","sku":"SKU-1"}`)

func batch(n int, data []byte) []host.Message {
	msgs := make([]host.Message, n)
	for i := range msgs {
		msgs[i] = host.Message{ID: fmt.Sprint(i), Data: data}
	}
	return msgs
}

// runBatches processes b.N messages in batches of size and reports ns/msg.
func runBatches(b *testing.B, p *host.Pool, size int, data []byte) {
	msgs := batch(size, data)
	ctx := context.Background()
	b.ResetTimer()
	for done := 0; done < b.N; done += size {
		res, err := p.Process(ctx, msgs[:min(size, b.N-done)])
		if err != nil || res[0].Status != host.StatusOK {
			b.Fatalf("%v %+v", err, res[0])
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/msg")
}

var sink int

func nativeTrivial(m *host.Message) host.Result {
	if len(m.Data) > 0 && m.Data[0] == 'x' {
		return host.Result{Status: host.StatusDrop}
	}
	return host.Result{Out: []host.Message{*m}}
}

// BenchmarkTrivialFilter: the cost of a Wasm call over a native Go
// function, for a filter that looks at one byte (DESIGN.md target:
// ≤ 300 ns/msg over native, batched).
func BenchmarkTrivialFilter(b *testing.B) {
	b.Run("native", func(b *testing.B) {
		msgs := batch(256, payload200)
		for i := 0; i < b.N; i++ {
			r := nativeTrivial(&msgs[i%256])
			sink += len(r.Out)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/msg")
	})
	wasm := hosttest.Build(b, "host/testdata/trivial")
	rt := hosttest.Runtime(b, host.Config{})
	for _, trusted := range []bool{true, false} {
		p := hosttest.Pool(b, rt, host.ModuleSpec{Name: "trivial", Wasm: wasm, Trusted: trusted}, host.PoolConfig{Limits: host.Limits{MaxInstances: 1}})
		for _, size := range []int{1, 16, 256} {
			name := fmt.Sprintf("trusted=%v/batch=%d", trusted, size)
			b.Run(name, func(b *testing.B) { runBatches(b, p, size, payload200) })
		}
	}
	b.Run("extism/untrusted", func(b *testing.B) {
		p := hosttest.Pool(b, rt, host.ModuleSpec{Name: "xt", Wasm: hosttest.Build(b, "host/testdata/extismtrivial")}, host.PoolConfig{Limits: host.Limits{MaxInstances: 1}})
		runBatches(b, p, 256, payload200)
	})
	b.Run("extism/trusted", func(b *testing.B) {
		p := hosttest.Pool(b, rt, host.ModuleSpec{Name: "xt", Wasm: hosttest.Build(b, "host/testdata/extismtrivial"), Trusted: true}, host.PoolConfig{Limits: host.Limits{MaxInstances: 1}})
		runBatches(b, p, 256, payload200)
	})
}

// BenchmarkColdStart measures making a new instance (instantiate +
// _initialize) of an already compiled Go module, and the memory a warm
// instance holds.
func BenchmarkColdStart(b *testing.B) {
	rt := hosttest.Runtime(b, host.Config{})
	for _, name := range []string{"trivial", "probe"} {
		b.Run(name, func(b *testing.B) {
			mod, err := rt.Load(context.Background(), host.ModuleSpec{Name: name, Wasm: hosttest.Build(b, "host/testdata/"+name), Trusted: true})
			if err != nil {
				b.Fatal(err)
			}
			var mem int64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				p, err := mod.NewPool(host.PoolConfig{Tenant: "acme"})
				if err != nil {
					b.Fatal(err)
				}
				mem = p.Stats().IdleMemoryBytes
				p.Close()
			}
			b.ReportMetric(float64(mem), "guest-bytes/instance")
		})
	}
}

// BenchmarkCompile measures compiling a module, without and with the
// on-disk compilation cache.
func BenchmarkCompile(b *testing.B) {
	wasm := hosttest.Build(b, "host/testdata/probe")
	for _, cached := range []bool{false, true} {
		b.Run(fmt.Sprintf("cache=%v", cached), func(b *testing.B) {
			dir := b.TempDir()
			if cached {
				rt, _ := host.New(context.Background(), host.Config{CacheDir: dir})
				if _, err := rt.Load(context.Background(), host.ModuleSpec{Name: "p", Wasm: wasm}); err != nil {
					b.Fatal(err)
				}
				rt.Close(context.Background())
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				cfg := host.Config{}
				if cached {
					cfg.CacheDir = dir
				}
				rt, err := host.New(context.Background(), cfg)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := rt.Load(context.Background(), host.ModuleSpec{Name: "p", Wasm: wasm}); err != nil {
					b.Fatal(err)
				}
				rt.Close(context.Background())
			}
		})
	}
}

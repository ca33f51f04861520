package main

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/itchyny/gojq"

	"github.com/vrsky/vrsky/host"
	"github.com/vrsky/vrsky/host/hosttest"
	"github.com/vrsky/vrsky/internal/testenv/wasmsteptest"
)

const benchQuery = `{id: .order_id, total: (.amount * .qty), customer: .customer.name}`

var payload200 = []byte(`{"order_id":12345,"amount":19.99,"qty":3,"currency":"EUR","customer":{"name":"Ann Example","tier":"gold","id":"c-778"},"status":"paid","note":"deliver to the back door, ring twice","sku":"SKU-1"}`)

// BenchmarkJQ reports msgs/s of the jq step on one core (one instance),
// batches of 256, for a 200-byte object (DESIGN.md target ≥ 100,000).
func BenchmarkJQ(b *testing.B) {
	_, spec := wasmsteptest.Load(b, "jq")
	rt := hosttest.Runtime(b, host.Config{})
	for _, tc := range []struct {
		name, query string
		trusted     bool
	}{
		{"wasm/trusted", benchQuery, true},
		{"wasm/untrusted", benchQuery, false},
		{"wasm/trusted/identity", ".", true},
		{"wasm/trusted/gojq-path", benchQuery + " | select(true)", true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			spec.Trusted = tc.trusted
			cfg := []byte(fmt.Sprintf(`{"query":%q}`, tc.query))
			p := hosttest.Pool(b, rt, spec, host.PoolConfig{Config: cfg, Limits: host.Limits{MaxInstances: 1}})
			msgs := make([]host.Message, 256)
			for i := range msgs {
				msgs[i] = host.Message{ID: fmt.Sprint(i), Data: payload200}
			}
			b.ResetTimer()
			for done := 0; done < b.N; done += len(msgs) {
				res, err := p.Process(context.Background(), msgs[:min(len(msgs), b.N-done)])
				if err != nil || res[0].Status != host.StatusOK {
					b.Fatalf("%v %+v", err, res[0])
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
	b.Run("native-go", func(b *testing.B) {
		q, _ := gojq.Parse(benchQuery)
		code, _ := gojq.Compile(q)
		for i := 0; i < b.N; i++ {
			var v any
			if err := json.Unmarshal(payload200, &v); err != nil {
				b.Fatal(err)
			}
			it := code.Run(v)
			for {
				r, ok := it.Next()
				if !ok {
					break
				}
				if _, err := json.Marshal(r); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
}

// BenchmarkJQColdStart: a new instance of the jq module (instantiate,
// _initialize, then the first message, which compiles the query), and the
// linear memory it holds once warm.
func BenchmarkJQColdStart(b *testing.B) {
	_, spec := wasmsteptest.Load(b, "jq")
	rt := hosttest.Runtime(b, host.Config{})
	mod, err := rt.Load(context.Background(), spec)
	if err != nil {
		b.Fatal(err)
	}
	cfg := []byte(fmt.Sprintf(`{"query":%q}`, benchQuery))
	var mem int64
	for i := 0; i < b.N; i++ {
		p, err := mod.NewPool(host.PoolConfig{Tenant: "acme", Config: cfg})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := p.Process(context.Background(), []host.Message{{ID: "1", Data: payload200}}); err != nil {
			b.Fatal(err)
		}
		mem = p.Stats().IdleMemoryBytes
		p.Close()
	}
	b.ReportMetric(float64(mem), "guest-bytes/instance")
}

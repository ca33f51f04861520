package main

import (
	"context"
	"fmt"
	"testing"

	"github.com/vrsky/vrsky/host"
	"github.com/vrsky/vrsky/host/hosttest"
	"github.com/vrsky/vrsky/internal/testenv/wasmsteptest"
)

var payload200 = []byte(`{"order_id":12345,"amount":19.99,"qty":3,"currency":"EUR","customer":{"name":"Ann Example","tier":"gold","id":"c-778"},"status":"paid","note":"deliver to the back door, ring twice","sku":"SKU-1"}`)

// BenchmarkFilter reports msgs/s of the filter step on one core, batches
// of 256, for a 200-byte object.
func BenchmarkFilter(b *testing.B) {
	_, spec := wasmsteptest.Load(b, "filter")
	rt := hosttest.Runtime(b, host.Config{})
	for _, trusted := range []bool{true, false} {
		b.Run(fmt.Sprintf("trusted=%v", trusted), func(b *testing.B) {
			spec.Trusted = trusted
			p := hosttest.Pool(b, rt, spec, host.PoolConfig{Config: []byte(`{"expr":"amount * qty >= 10 && customer.tier == \"gold\""}`), Limits: host.Limits{MaxInstances: 1}})
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
}

package runtime_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vrsky/vrsky/runtime"
	"github.com/vrsky/vrsky/runtime/runtimetest"
)

// BenchmarkPipelineDirect is the hot path of a webhook → HTTP sink
// integration without the HTTP: 64 emitters (as 64 webhook clients) each
// emit a 200-byte JSON message and wait until it is durable, the pipeline
// routes it to a sink's subject, the sink stage delivers it to a
// recording sink and acknowledges it, and tracking writes its records.
// One op is one message end to end; the embedded NATS server runs in the
// same process, so allocs/op and cpu-µs/msg count its work too.
// cpu-µs/msg is the process's user+system CPU per message (getrusage),
// which depends far less on the machine's other load than ns/op.
func BenchmarkPipelineDirect(b *testing.B) {
	benchPipeline(b, "", 1)
}

// BenchmarkPipelineBatch is BenchmarkPipelineDirect with the messages
// emitted 100 at a time (EmitBatch, as a batch webhook does).
func BenchmarkPipelineBatch(b *testing.B) {
	benchPipeline(b, "", 100)
}

// BenchmarkPipelineStep is BenchmarkPipelineDirect through the input
// stage: a native step (gate) that passes it on, so every message crosses two subjects.
func BenchmarkPipelineStep(b *testing.B) {
	benchPipeline(b, "steps: [{name: gate, connector: gate}]\n", 1)
}

// benchPipeline drives the integration with 64 clients, each emitting
// batch messages at a time (Emit for 1, else EmitBatch).
func benchPipeline(b *testing.B, steps string, batch int) {
	h := runtimetest.Start(b, []runtime.Connector{gate}, manual)
	var delivered atomic.Int64
	rec := h.Sinks.New(func(string, int) error { delivered.Add(1); return nil })
	spec := specYAML("load", "load", sinkYAML("api", rec, "")) + steps
	h.Create(b, spec)
	em := h.Emitter(b, "load")
	body := []byte(`{"order_id":1234567,"customer":{"name":"Ada Lovelace","email":"ada@example.com"},"amount":42.5,"qty":3,"currency":"EUR","items":["widget","gadget"],"note":"padding to two hundred bytes"}`)
	const clients = 64
	run := func(n int) {
		var next atomic.Int64
		var wg sync.WaitGroup
		start := delivered.Load()
		for range clients {
			wg.Go(func() {
				for {
					last := next.Add(int64(batch))
					k := min(int64(batch), int64(n)-(last-int64(batch)))
					if k <= 0 {
						return
					}
					msgs := make([]*runtime.Message, k)
					for i := range msgs {
						msgs[i] = &runtime.Message{Header: runtime.Header{runtime.HeaderContentType: {"application/json"}}, Data: body}
					}
					var err error
					if batch == 1 {
						err = em.Emit(context.Background(), msgs[0])
					} else {
						err = em.EmitBatch(context.Background(), msgs)
					}
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		runtimetest.WaitFor(b, time.Minute, fmt.Sprintf("%d deliveries", n), func() bool { return delivered.Load()-start >= int64(n) })
	}
	run(2000) // warm up: streams, consumers, connections
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.ResetTimer()
	run(b.N)
	b.StopTimer()
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/msg")
}

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

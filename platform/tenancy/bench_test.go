package tenancy_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrsky/vrsky/platform/natsx/natsxtest"
	"github.com/vrsky/vrsky/platform/store"
	"github.com/vrsky/vrsky/platform/tenancy"
)

// BenchmarkPublishAccount is the per-message cost of a tenant's account
// against the platform's, where every tenant's streams lived before: the
// same work (async publish with acks into a work-queue stream, a pull
// consumer acking each message, 200-byte messages with a Nats-Msg-Id) on
// one embedded server, through the platform account's connection (shared)
// and through a tenant account's (tenant). One op is one message
// published, stored, consumed and acknowledged; the server runs in this
// process, so B/op, allocs/op and cpu-ns/msg (the process's CPU time per
// message) count its work too. cmd/vrsky-bench
// -accounts measures the same on many tenants at once.
func BenchmarkPublishAccount(b *testing.B) {
	ctx := context.Background()
	conn := natsxtest.Start(b)
	st, err := store.NewNATS(ctx, conn.JS, conn.Replicas)
	if err != nil {
		b.Fatal(err)
	}
	m := tenancy.New(conn, st, nil)
	b.Cleanup(m.Close)
	if _, err := st.CreateTenant(ctx, store.Tenant{Name: "bench"}); err != nil {
		b.Fatal(err)
	}
	tc, err := m.Conn(ctx, "bench")
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		nc   *nats.Conn
	}{
		{"shared", conn.NC},
		{"tenant", tc.NC},
	} {
		b.Run(bc.name, func(b *testing.B) { benchPubConsume(b, bc.nc) })
	}
}

// benchPubConsume publishes b.N messages through nc into a new work-queue
// stream, at most 4096 waiting for their acks (as cmd/vrsky-bench), while a pull consumer on nc
// acks them, and reports messages per second from the first publish to
// the last ack.
func benchPubConsume(b *testing.B, nc *nats.Conn) {
	ctx := context.Background()
	var ackErrs atomic.Int64
	var ackErr atomic.Value // the first error
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, _ *nats.Msg, err error) {
			ackErrs.Add(1)
			ackErr.CompareAndSwap(nil, err)
		}))
	if err != nil {
		b.Fatal(err)
	}
	const name, subject = "VRSKY_BENCH_ORDERS", "vrsky.bench.orders.in"
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{
		Name: name, Subjects: []string{subject},
		Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage,
		Duplicates: 2 * time.Minute, Discard: jetstream.DiscardNew,
	})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = js.DeleteStream(context.Background(), name) }()
	cons, err := js.CreateOrUpdateConsumer(ctx, name, jetstream.ConsumerConfig{
		Durable: "bench", AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Minute, MaxAckPending: 8192,
	})
	if err != nil {
		b.Fatal(err)
	}
	var acked atomic.Int64
	done := make(chan struct{})
	n := int64(b.N)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		if m.Ack() == nil && acked.Add(1) == n {
			close(done)
		}
	}, jetstream.PullMaxMessages(512))
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Stop()

	body := make([]byte, 200)
	for i := range body {
		body[i] = 'x'
	}
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	for i := range b.N {
		// A full window blocks the publisher (200 ms by default, then an
		// error): a busy machine can take longer to free it.
		if _, err := js.PublishAsync(subject, body, jetstream.WithMsgID(strconv.Itoa(i)), jetstream.WithStallWait(time.Minute)); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(time.Minute):
		b.Fatalf("%d publishes not acknowledged after a minute", js.PublishAsyncPending())
	}
	if e := ackErrs.Load(); e > 0 {
		b.Fatalf("%d publishes failed, the first: %v", e, ackErr.Load())
	}
	select {
	case <-done:
	case <-time.After(time.Minute):
		b.Fatalf("%d of %d messages consumed after a minute", acked.Load(), n)
	}
	elapsed, cpu := time.Since(start), cpuTime()-cpu0
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	// On a shared machine the process's CPU time per message is steadier
	// than wall time, which counts the time other processes had the cores.
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/msg")
}

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// jsRefResult is the raw JetStream reference: publish and consume on one
// stream of an embedded server, without VRSky.
type jsRefResult struct {
	Published, Consumed, PubErrors int64
	PubRate, ConsumeRate           float64 // msgs/s
	Elapsed                        time.Duration
	ErrSample                      string // one publish error, if any
	// CPUPerMsg is the CPU this process (publisher, consumer and the
	// embedded server) used per consumed message, in seconds.
	CPUPerMsg float64
}

// jsReference starts an embedded nats-server configured like VRSky's
// default (JetStream, file storage in a temp dir, the same fsync policy),
// and for d publishes 200-byte messages asynchronously (at most window
// unacknowledged, each with a Nats-Msg-Id as VRSky sets) to a work-queue
// stream, while a durable pull consumer consumes and acks them. The consume
// rate is consumed messages over the time from the first publish to the last
// ack (waiting at most drain for the consumer to catch up).
func jsReference(ctx context.Context, tmp string, syncAlways bool, d, drain time.Duration, window int) (*jsRefResult, error) {
	dir := filepath.Join(tmp, "jsref")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("jetstream reference: %w", err)
	}
	srv, err := server.NewServer(&server.Options{
		ServerName:         "vrsky-bench-ref",
		Host:               "127.0.0.1",
		Port:               -1,
		JetStream:          true,
		StoreDir:           filepath.Join(dir, "jetstream"),
		SyncAlways:         syncAlways,
		NoSigs:             true,
		NoLog:              true,
		MaxPayload:         8 << 20,
		JetStreamMaxMemory: -1,
		JetStreamMaxStore:  -1,
	})
	if err != nil {
		return nil, fmt.Errorf("jetstream reference: server: %w", err)
	}
	go srv.Start()
	defer func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	}()
	if !srv.ReadyForConnections(30 * time.Second) {
		return nil, errors.New("jetstream reference: server not ready in 30s")
	}
	// In-process connections, as VRSky's engine uses for its embedded server.
	connect := func(name string) (*nats.Conn, error) {
		nc, err := nats.Connect(srv.ClientURL(), nats.InProcessServer(srv), nats.Name(name))
		if err != nil {
			return nil, fmt.Errorf("jetstream reference: connect: %w", err)
		}
		return nc, nil
	}
	pnc, err := connect("ref-pub")
	if err != nil {
		return nil, err
	}
	defer pnc.Close()
	cnc, err := connect("ref-sub")
	if err != nil {
		return nil, err
	}
	defer cnc.Close()
	pc, err := newPubConsumer(ctx, pnc, cnc, "REF", "ref.in", window)
	if err != nil {
		return nil, fmt.Errorf("jetstream reference: %w", err)
	}
	defer pc.stop()
	cpu0 := procCPU(os.Getpid())
	res, err := pc.run(ctx, newClock(), d, drain)
	if err != nil {
		return nil, fmt.Errorf("jetstream reference: %w", err)
	}
	if res.Consumed > 0 {
		res.CPUPerMsg = (procCPU(os.Getpid()) - cpu0) / float64(res.Consumed)
	}
	return res, nil
}

// pubConsumer is the reference's work: a publisher and a durable pull
// consumer on one work-queue stream.
type pubConsumer struct {
	subject string
	pjs     jetstream.JetStream
	stream  jetstream.Stream
	cons    jetstream.Consumer
	ackErrs atomic.Int64
	ackErr  atomic.Value // string: the first publish error
}

// newPubConsumer creates the stream name (file storage, work-queue
// retention, 2-minute duplicate window, as VRSky's streams) on subject
// through pub, and its consumer through sub; pub and sub may be the same
// connection. At most window publishes wait for their acks at a time.
func newPubConsumer(ctx context.Context, pub, sub *nats.Conn, name, subject string, window int) (*pubConsumer, error) {
	p := &pubConsumer{subject: subject}
	pjs, err := jetstream.New(pub, jetstream.WithPublishAsyncMaxPending(window),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, _ *nats.Msg, err error) {
			p.ackErrs.Add(1)
			p.ackErr.CompareAndSwap(nil, err.Error())
		}))
	if err != nil {
		return nil, err
	}
	cjs, err := jetstream.New(sub)
	if err != nil {
		return nil, err
	}
	p.pjs = pjs
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	p.stream, err = pjs.CreateStream(sctx, jetstream.StreamConfig{
		Name:       name,
		Subjects:   []string{subject},
		Retention:  jetstream.WorkQueuePolicy,
		Storage:    jetstream.FileStorage,
		Duplicates: 2 * time.Minute,
		Discard:    jetstream.DiscardNew,
	})
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", name, err)
	}
	p.cons, err = cjs.CreateOrUpdateConsumer(sctx, name, jetstream.ConsumerConfig{
		Durable:       "ref",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       60 * time.Second,
		MaxAckPending: 8192,
	})
	if err != nil {
		p.stop()
		return nil, fmt.Errorf("consumer on %s: %w", name, err)
	}
	return p, nil
}

// stop deletes the stream (and so its consumer).
func (p *pubConsumer) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = p.pjs.DeleteStream(ctx, p.stream.CachedInfo().Config.Name)
}

// run publishes 200-byte messages asynchronously for d (each with a
// Nats-Msg-Id as VRSky sets) while the consumer consumes and acks them. The
// consume rate is consumed messages over the time from clk's start to the
// last ack (waiting at most drain for the consumer to catch up), so runs
// that share a clock started together share a time base.
func (p *pubConsumer) run(ctx context.Context, clk *clock, d, drain time.Duration) (*jsRefResult, error) {
	var consumed, lastAck atomic.Int64
	cc, err := p.cons.Consume(func(m jetstream.Msg) {
		if m.Ack() == nil {
			consumed.Add(1)
			lastAck.Store(clk.now())
		}
	}, jetstream.PullMaxMessages(512))
	if err != nil {
		return nil, fmt.Errorf("consume: %w", err)
	}
	defer cc.Stop()

	res := &jsRefResult{}
	body := make([]byte, 0, bodySize)
	id := make([]byte, 0, 32)
	deadline := clk.now() + int64(d)
	for n := int64(1); clk.now() < deadline && ctx.Err() == nil; n++ {
		body = appendOrder(body[:0], n)
		id = append(strconv.AppendInt(id[:0], n, 10), "-ref"...)
		// PublishAsync copies the data; it blocks while window acks are
		// pending (with SyncAlways the first acks can take seconds).
		if _, err := p.pjs.PublishAsync(p.subject, body, jetstream.WithMsgID(string(id)), jetstream.WithStallWait(d)); err != nil {
			res.PubErrors++
			p.ackErr.CompareAndSwap(nil, err.Error())
			continue
		}
		res.Published++
	}
	select {
	case <-p.pjs.PublishAsyncComplete():
	case <-time.After(drain):
		return nil, fmt.Errorf("%d publishes not acknowledged after %v", p.pjs.PublishAsyncPending(), drain)
	}
	pubEnd := clk.now()
	// Publishes whose ack reported an error do not count.
	res.PubErrors += p.ackErrs.Load()
	res.Published -= p.ackErrs.Load()
	stop := time.Now().Add(drain)
	for consumed.Load() < res.Published && time.Now().Before(stop) && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	res.Consumed = consumed.Load()
	if e, ok := p.ackErr.Load().(string); ok {
		res.ErrSample = e
	}
	res.Elapsed = time.Duration(lastAck.Load())
	if pubEnd > 0 {
		res.PubRate = float64(res.Published) / time.Duration(pubEnd).Seconds()
	}
	if res.Elapsed > 0 {
		res.ConsumeRate = float64(res.Consumed) / res.Elapsed.Seconds()
	}
	return res, nil
}

// httpHopReference drives a trivial net/http handler that reads the body and
// answers 202 with the same load clients as the VRSky run.
func httpHopReference(ctx context.Context, clk *clock, clients int, d time.Duration, seq *atomic.Int64) (*loadResult, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("http hop reference: %w", err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Vrsky-Msg-Id", "ref")
			w.WriteHeader(http.StatusAccepted)
			_, _ = io.WriteString(w, `{"id":"ref"}`)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-served
	}()
	return runLoad(ctx, clk, loadTarget{
		url: "http://" + ln.Addr().String() + "/hook", clients: clients, timeout: 10 * time.Second,
	}, d, seq)
}

package runtime

import (
	"cmp"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"
)

// The sink stages: one durable consumer per sink feeds its Sink (or its
// BatchSink, in batches); a delivery is acknowledged after it (see ack),
// a failure goes to retryOrDeadLetter (dlq.go).

// defaultSinkConc is how many deliveries to a Sink run at once.
const defaultSinkConc = 64

// sinkRunner is one sink's stage: its consumer, its Sink and the counters
// Status reports.
type sinkRunner struct {
	p       *pipeline
	spec    SinkSpec
	sink    Sink
	m       sinkMetrics
	consume jetstream.ConsumeContext
	wg      sync.WaitGroup
	acks    sync.WaitGroup // double acks in flight

	// Made once at start, not per message: the sink's subject, its
	// stage's wire form and its delivered counter.
	subject string
	stage   string

	delivered    atomic.Uint64
	failures     atomic.Uint64
	deadLettered atomic.Uint64
}

// start creates the sink's consumer and its workers.
func (r *sinkRunner) start(ctx context.Context) error {
	r.subject = SubjectOut(r.p.tenant, r.p.spec.Name, r.spec.Name)
	r.stage = sinkStage(r.spec.Name).String()
	conc, handle := defaultSinkConc, func(ch <-chan jetstream.Msg) {
		for m := range ch {
			r.handle(m)
		}
	}
	if bs, ok := r.sink.(BatchSink); ok {
		b := bs.Batching()
		b.MaxMessages = cmp.Or(b.MaxMessages, defaultBatch.MaxMessages)
		b.MaxWait = cmp.Or(b.MaxWait, defaultBatch.MaxWait)
		conc = cmp.Or(b.Concurrency, defaultBatch.Concurrency)
		handle = func(ch <-chan jetstream.Msg) {
			// Up to b.MaxMessages, waiting at most b.MaxWait after the
			// first, delivered in one call.
			gatherBatches(ch, b.MaxMessages, b.MaxWait, func(batch []jetstream.Msg) { r.deliverBatch(bs, batch) })
		}
	}
	cc, err := r.p.consume(ctx, sinkConsumerName(r.spec.Name), r.subject, conc, &r.wg, handle)
	r.consume = cc
	return err
}

var defaultBatch = Batching{MaxMessages: 500, MaxWait: 50 * time.Millisecond, Concurrency: 4}

// deliverBatch hands a batch to a BatchSink and acks, retries or
// dead-letters each message by its own result.
func (r *sinkRunner) deliverBatch(bs BatchSink, batch []jetstream.Msg) {
	p := r.p
	msgs := make([]*Message, len(batch))
	for i, m := range batch {
		msgs[i] = p.toMessage(m)
	}
	var spans []span // spans[i] is msgs[i]'s attempt; nil when tracing is off
	var prev [][]string
	if p.e.tracer != nil {
		spans, prev = make([]span, len(msgs)), make([][]string, len(msgs))
		for i, m := range msgs {
			spans[i] = p.stageSpan(m.Header, m.ID, sinkStage(r.spec.Name), attemptOf(batch[i]), trace.SpanKindClient)
			prev[i] = spans[i].inject(m.Header)
		}
	}
	start := time.Now()
	errs := bs.DeliverBatch(context.WithoutCancel(p.ctx), msgs)
	took := time.Since(start)
	if errs != nil && len(errs) != len(msgs) {
		err := fmt.Errorf("sink %s returned %d results for %d messages", r.spec.Name, len(errs), len(msgs))
		errs = make([]error, len(msgs))
		for i := range errs {
			errs[i] = err
		}
	}
	for i, sp := range spans {
		sp.restore(msgs[i].Header, prev[i])
		if errs == nil {
			sp.end(nil)
		} else {
			sp.end(errs[i])
		}
	}
	r.m.observeBatch(took, errs, len(batch))
	// Double acks (claim-checked payloads) run side by side: each is a
	// round trip. Plain acks do not wait.
	var wg sync.WaitGroup
	for i, m := range batch {
		if errs == nil || errs[i] == nil {
			if msgs[i].Header.Get(HeaderPayloadRef) == "" {
				r.ack(m, msgs[i])
			} else {
				wg.Go(func() { r.ack(m, msgs[i]) })
			}
			continue
		}
		p.retryOrDeadLetter(m, msgs[i], sinkStage(r.spec.Name), errs[i], r)
	}
	wg.Wait()
}

// ack confirms a delivery: only after it, never before. A plain ack is
// one message on the connection, no round trip: if it is lost (crash,
// leader change), JetStream redelivers after AckWait and the sink gets
// the message again under the same Idempotency-Key, which is the
// at-least-once the sinks are built for. A claim-checked payload is the
// exception: its object is released after the ack, and a redelivery
// after a lost ack would find the object gone, so that ack waits for the
// server's confirmation (a double ack) before the release.
func (r *sinkRunner) ack(m jetstream.Msg, msg *Message) {
	p := r.p
	ref := msg.Header.Get(HeaderPayloadRef)
	if ref == "" {
		if err := m.Ack(); err != nil {
			p.log.Warn("ack after delivery failed; the message may be delivered again", "sink", r.spec.Name, "msg_id", msg.ID, "err", err)
		}
		r.delivered.Add(1)
		r.m.delivered.Inc()
		p.trackAt(msg.ID, r.stage, StageRecord{Status: StatusDelivered, Attempt: attemptOf(m)})
		return
	}
	attempt := attemptOf(m)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.DoubleAck(ctx); err != nil {
		p.log.Warn("ack after delivery failed; the message may be delivered again", "sink", r.spec.Name, "msg_id", msg.ID, "err", err)
	}
	if err := p.e.claims.release(ctx, ref, r.spec.Name); err != nil {
		p.log.Warn("release claim-checked payload", "ref", ref, "err", err)
	}
	r.delivered.Add(1)
	r.m.delivered.Inc()
	p.trackAt(msg.ID, r.stage, StageRecord{Status: StatusDelivered, Attempt: attempt})
}

// handle delivers one message to the Sink.
func (r *sinkRunner) handle(m jetstream.Msg) {
	p := r.p
	msg := p.toMessage(m)
	var sp span
	if p.e.tracer != nil {
		sp = p.stageSpan(msg.Header, msg.ID, sinkStage(r.spec.Name), attemptOf(m), trace.SpanKindClient)
	}
	prev := sp.inject(msg.Header) // the sink's request names the attempt's span as its parent
	start := time.Now()
	err := r.sink.Deliver(context.WithoutCancel(p.ctx), msg)
	r.m.observeDelivery(time.Since(start), err)
	sp.restore(msg.Header, prev)
	sp.end(err)
	if err == nil {
		if msg.Header.Get(HeaderPayloadRef) == "" {
			r.ack(m, msg) // does not wait
			return
		}
		// The double ack's round trip runs beside the next delivery; the
		// consumer's MaxAckPending bounds how many are in flight.
		r.acks.Go(func() { r.ack(m, msg) })
		return
	}
	p.retryOrDeadLetter(m, msg, sinkStage(r.spec.Name), err, r)
}

// outMsg is m as published to r's subject: deduplicated per sink
// (<id>:<sink>), without EmitWait's reply subject, its trace context under
// its wire name (wireHeader). The header shares m's value slices (the
// publish only reads them) and adds its two ids in one allocation: a
// Clone cost a slice per header.
func (r *sinkRunner) outMsg(m *Message) *nats.Msg {
	h := wireHeader(m.Header, 2)
	delete(h, headerReply)
	ids := []string{m.ID, m.ID + ":" + r.spec.Name}
	h[HeaderMsgID], h[HeaderNatsMsgID] = ids[0:1:1], ids[1:2:2]
	return &nats.Msg{Subject: r.subject, Header: h, Data: m.Data}
}

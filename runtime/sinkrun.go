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
)

// The sink stages: one durable consumer per sink feeds its Sink (or its
// BatchSink, in batches); a delivery is acknowledged with a double ack,
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

	delivered    atomic.Uint64
	failures     atomic.Uint64
	deadLettered atomic.Uint64
}

// start creates the sink's consumer and its workers.
func (r *sinkRunner) start(ctx context.Context) error {
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
	cc, err := r.p.consume(ctx, sinkConsumerName(r.spec.Name), SubjectOut(r.p.tenant, r.p.spec.Name, r.spec.Name), conc, &r.wg, handle)
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
	r.m.observeBatch(took, errs, len(batch))
	// Acks run side by side: each double ack is a round trip.
	var wg sync.WaitGroup
	for i, m := range batch {
		if errs == nil || errs[i] == nil {
			wg.Go(func() { r.ack(m, msgs[i]) })
			continue
		}
		p.log.Debug("sink delivery failed", "sink", r.spec.Name, "msg_id", msgs[i].ID, "err", errs[i])
		p.retryOrDeadLetter(m, msgs[i], sinkStage(r.spec.Name), errs[i], r)
	}
	wg.Wait()
}

// ack confirms a delivery. The double ack waits for the server's
// confirmation, so a delivery is counted only once JetStream will not
// redeliver it; sinks get the message id as an idempotency key for the
// rare redelivery that still meets a late ack.
func (r *sinkRunner) ack(m jetstream.Msg, msg *Message) {
	p := r.p
	attempt := attemptOf(m)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.DoubleAck(ctx); err != nil {
		p.log.Warn("ack after delivery failed; the message may be delivered again", "sink", r.spec.Name, "msg_id", msg.ID, "err", err)
	}
	r.delivered.Add(1)
	r.m.delivered.Inc()
	if ref := msg.Header.Get(HeaderPayloadRef); ref != "" {
		if err := p.e.claims.release(ctx, ref, r.spec.Name); err != nil {
			p.log.Warn("release claim-checked payload", "ref", ref, "err", err)
		}
	}
	p.track(msg.ID, sinkStage(r.spec.Name), StageRecord{Status: StatusDelivered, Attempt: attempt})
}

// handle delivers one message to the Sink.
func (r *sinkRunner) handle(m jetstream.Msg) {
	p := r.p
	msg := p.toMessage(m)
	start := time.Now()
	err := r.sink.Deliver(context.WithoutCancel(p.ctx), msg)
	r.m.observeDelivery(time.Since(start), err)
	if err == nil {
		// The double ack's round trip runs beside the next delivery; the
		// consumer's MaxAckPending bounds how many are in flight.
		r.acks.Go(func() { r.ack(m, msg) })
		return
	}
	p.log.Debug("sink delivery failed", "sink", r.spec.Name, "msg_id", msg.ID, "err", err)
	p.retryOrDeadLetter(m, msg, sinkStage(r.spec.Name), err, r)
}

// outMsg is m as published to r's subject: deduplicated per sink
// (<id>:<sink>), without EmitWait's reply subject.
func (r *sinkRunner) outMsg(m *Message) *nats.Msg {
	h := m.Header.Clone()
	delete(h, headerReply)
	h.Set(HeaderMsgID, m.ID)
	h.Set(HeaderNatsMsgID, m.ID+":"+r.spec.Name)
	return &nats.Msg{Subject: SubjectOut(r.p.tenant, r.p.spec.Name, r.spec.Name), Header: nats.Header(h), Data: m.Data}
}

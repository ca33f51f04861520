package runtime

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrsky/vrsky/platform/natsx"
	"github.com/vrsky/vrsky/runtime/internal/claimref"
)

// JetStream plumbing of a pipeline: its streams and durable consumers,
// and the helpers every stage shares to read them (batches, attempt
// counts) and to wait for what it published (awaitAcks).

// Consumer tuning.
const (
	ackWait       = 30 * time.Second // > the longest sink timeout we default to
	pullExpiry    = 5 * time.Second  // short pulls notice a lost consumer leader quickly
	pullHeartbeat = 2 * time.Second
	maxAckPending = 8192
)

// ensureStreams creates (or updates) the integration's work-queue stream,
// bounded for back-pressure, and the tenant's dead-letter stream, and
// starts watching the stream's usage.
func (p *pipeline) ensureStreams(ctx context.Context) error {
	js := p.conn.JS
	maxMsgs, maxBytes := p.e.limits.maxMsgs, p.e.limits.maxBytes
	quota := p.storageQuota(ctx)
	if quota > 0 {
		// The tenant's account holds the quota for all its streams
		// together; JetStream would reserve a stream's own MaxBytes
		// against it, so the second stream could not be created.
		maxBytes = -1
	}
	err := ensureStream(ctx, js, jetstream.StreamConfig{
		Name:        streamName(p.tenant, p.spec.Name),
		Description: "VRSky integration " + p.tenant + "/" + p.spec.Name,
		Subjects:    []string{subjectBase(p.tenant, p.spec.Name) + ".>"},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    p.conn.Replicas,
		Duplicates:  2 * time.Minute,
		Discard:     jetstream.DiscardNew,
		MaxMsgs:     maxMsgs,
		MaxBytes:    maxBytes,
	})
	if err != nil {
		return fmt.Errorf("stream for %s/%s: %w", p.tenant, p.spec.Name, err)
	}
	go p.watchUsage(maxMsgs, maxBytes, quota)
	err = ensureStream(ctx, js, jetstream.StreamConfig{
		Name:        dlqStreamName(p.tenant),
		Description: "VRSky dead letters of tenant " + p.tenant,
		Subjects:    []string{"vrsky." + p.tenant + ".dlq.>"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    p.conn.Replicas,
		MaxAge:      DLQRetention,
	})
	if err != nil {
		return fmt.Errorf("dead-letter stream of %s: %w", p.tenant, err)
	}
	return nil
}

// ensureStream creates the stream of cfg, or updates it when its settings
// differ. An unchanged stream is left alone: every node starting an
// integration would otherwise update its stream while another creates a
// consumer on it, which nats-server 2.15.2 does not do safely (a data race
// between the filestore's UpdateConfig and ConsumerStore). natsx.Ensure
// tries again when another node creates it at the same moment.
func ensureStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) error {
	if s, err := js.Stream(ctx, cfg.Name); err == nil {
		have, want := s.CachedInfo().Config, cfg
		// What the server stores for settings left zero.
		if want.MaxMsgs == 0 {
			want.MaxMsgs = -1
		}
		if want.MaxBytes == 0 {
			want.MaxBytes = -1
		}
		if want.Duplicates == 0 {
			want.Duplicates = 2 * time.Minute
		}
		if want.Replicas == 0 {
			want.Replicas = 1
		}
		if slices.Equal(have.Subjects, want.Subjects) && have.Retention == want.Retention &&
			have.Storage == want.Storage && have.Replicas == want.Replicas && have.Duplicates == want.Duplicates &&
			have.Discard == want.Discard && have.MaxMsgs == want.MaxMsgs && have.MaxBytes == want.MaxBytes &&
			have.MaxAge == want.MaxAge && have.Description == want.Description {
			return nil
		}
	}
	_, err := natsx.Ensure(ctx, func(ctx context.Context) (jetstream.Stream, error) {
		return js.CreateOrUpdateStream(ctx, cfg)
	})
	return err
}

// storageQuota is the tenant's MaxStorageBytes quota, zero for none.
func (p *pipeline) storageQuota(ctx context.Context) int64 {
	if t, err := p.e.store.GetTenant(ctx, p.tenant); err == nil {
		return max(t.Quotas.MaxStorageBytes, 0)
	}
	return 0
}

// consume runs handle on workers goroutines fed by a durable pull consumer.
// Stopping drains: the consumer stops pulling, buffered messages are
// handled, then the workers exit and wg is done.
func (p *pipeline) consume(ctx context.Context, durable, subject string, workers int, wg *sync.WaitGroup, handle func(<-chan jetstream.Msg)) (jetstream.ConsumeContext, error) {
	stream := streamName(p.tenant, p.spec.Name)
	cons, err := p.conn.JS.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
		Durable:       durable,
		FilterSubject: subject,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxDeliver:    -1, // attempts are counted by the pipeline, which dead-letters
		MaxAckPending: maxAckPending,
	})
	if err != nil {
		return nil, fmt.Errorf("consumer %s on %s: %w", durable, stream, err)
	}
	ch := make(chan jetstream.Msg, 256)
	cc, err := cons.Consume(func(m jetstream.Msg) { ch <- m },
		jetstream.PullMaxMessages(512),
		jetstream.PullExpiry(pullExpiry),
		jetstream.PullHeartbeat(pullHeartbeat),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if !errors.Is(err, jetstream.ErrNoHeartbeat) {
				p.log.Debug("consume", "consumer", durable, "err", err)
			}
		}))
	if err != nil {
		return nil, fmt.Errorf("consume %s on %s: %w", durable, stream, err)
	}
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			handle(ch)
		}()
	}
	go func() {
		<-cc.Closed()
		close(ch)
	}()
	return cc, nil
}

// headerTraceWire is the name a message's Traceparent travels under in
// the pipeline's streams. nats-server reads every published message's
// headers into a map, a string per header, when one of them is a
// sampled traceparent (its own message tracing, which VRSky does not
// use), and every VRSky message carries one: 15 allocations and a tenth
// of the garbage per message on each publish. Stages see Traceparent, as
// it came: toMessage renames it back.
const headerTraceWire = "Vrsky-Traceparent"

// wireHeader is h as published to a pipeline subject, with room for
// extra more keys: the same value slices (the publish only reads them),
// the trace context under headerTraceWire. A header of that name that a
// step set is dropped: the name is the pipeline's.
func wireHeader(h Header, extra int) nats.Header {
	w := make(nats.Header, len(h)+extra)
	for k, v := range h {
		if k != HeaderTraceparent && k != headerTraceWire {
			w[k] = v
		}
	}
	if tp, ok := h[HeaderTraceparent]; ok {
		w[headerTraceWire] = tp
	}
	return w
}

// toMessage is a stage's view of m: its headers, its id and its payload,
// readable through Body when it is claim-checked. The trace context is
// renamed back from its wire name in m's own header map, so later reads
// of m.Headers() see Traceparent too; a message stored without the wire
// name (by an older version, or replayed from a dead letter) keeps its
// Traceparent.
func (p *pipeline) toMessage(m jetstream.Msg) *Message {
	h := Header(m.Headers())
	if h == nil {
		h = Header{}
	}
	if tp, ok := h[headerTraceWire]; ok {
		delete(h, headerTraceWire)
		h[HeaderTraceparent] = tp
	}
	id := h.Get(HeaderMsgID)
	if id == "" {
		id = h.Get(HeaderNatsMsgID)
	}
	msg := &Message{ID: id, Header: h, Data: m.Data()}
	if p.e.claims != nil {
		claimref.Attach(msg, p.e.claims.blobs)
	}
	return msg
}

// publishAsync publishes m without waiting for its acknowledgement. When
// the connection already has nats.go's most acknowledgements pending
// (4,000), it waits for room until ctx's deadline, or stallWait without
// one, instead of nats.go's 200 ms: a burst of batches (a webhook's, a
// stage's outputs) is slowed by the window, not failed by it.
func publishAsync(ctx context.Context, js jetstream.JetStream, m *nats.Msg) (jetstream.PubAckFuture, error) {
	wait := stallWait
	if dl, ok := ctx.Deadline(); ok {
		wait = max(time.Until(dl), time.Millisecond)
	}
	return js.PublishMsgAsync(m, jetstream.WithStallWait(wait))
}

// stallWait bounds publishAsync's wait for room without a deadline.
const stallWait = 10 * time.Second

// awaitAcks waits for the acknowledgements of futs, in order, and calls
// acked(i, err) for each as it comes: err is nil once JetStream has stored
// futs[i]'s message, else the publish's error. acked returns false to
// stop waiting. If ctx ends first, awaitAcks returns ctx's error: the
// publishes not acknowledged yet may or may not be stored. (Async
// publishes carry natsx.PublishAsyncTimeout, so each future resolves.)
func awaitAcks(ctx context.Context, futs []jetstream.PubAckFuture, acked func(i int, err error) bool) error {
	for i, f := range futs {
		var err error
		select {
		case <-f.Ok():
		case err = <-f.Err():
		case <-ctx.Done():
			return ctx.Err()
		}
		if !acked(i, err) {
			return nil
		}
	}
	return nil
}

// gatherBatches hands handle the messages of ch in batches until ch is
// closed: each batch is the next message and those that follow it, up to
// max in all, that arrive within wait of the first; a wait of zero takes
// only those already buffered, without waiting. The batch's slice is
// reused: handle must not keep it.
func gatherBatches(ch <-chan jetstream.Msg, max int, wait time.Duration, handle func([]jetstream.Msg)) {
	batch := make([]jetstream.Msg, 0, max)
	var timer *time.Timer
	if wait > 0 {
		timer = time.NewTimer(wait)
		defer timer.Stop()
	}
	for m := range ch {
		batch = append(batch[:0], m)
		if timer != nil {
			timer.Reset(wait)
		}
		for len(batch) < max {
			m, ok := nextMsg(ch, timer)
			if !ok {
				break
			}
			batch = append(batch, m)
		}
		handle(batch)
	}
}

// nextMsg returns the next message of ch: one already buffered when timer
// is nil, else one that arrives before timer fires. ok is false when there
// is none, or ch is closed.
func nextMsg(ch <-chan jetstream.Msg, timer *time.Timer) (m jetstream.Msg, ok bool) {
	if timer == nil {
		select {
		case m, ok = <-ch:
		default:
		}
		return m, ok
	}
	select {
	case m, ok = <-ch:
	case <-timer.C:
	}
	return m, ok
}

// attemptOf is the attempt that m's delivery is, counting from 1: JetStream's
// count of its deliveries (consumers run with MaxDeliver -1; the pipeline
// counts attempts itself, see retryOrDeadLetter). It is 1 when m carries
// no metadata.
func attemptOf(m jetstream.Msg) int {
	if md, err := m.Metadata(); err == nil {
		return int(md.NumDelivered)
	}
	return 1
}

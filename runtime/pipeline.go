package runtime

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrsky/vrsky/platform/blob"
)

// Pipeline tuning. Batches spread the fixed cost of a step call and of
// waiting for publish acknowledgements.
const (
	stepBatchMax    = 128
	inWorkers       = 4
	defaultSinkConc = 64
	ackWait         = 30 * time.Second // > the longest sink timeout we default to
	pullExpiry      = 5 * time.Second  // short pulls notice a lost consumer leader quickly
	pullHeartbeat   = 2 * time.Second
	maxAckPending   = 8192
)

// pipeline runs one integration on this node.
type pipeline struct {
	e      *Engine
	tenant string
	spec   *Spec
	rev    uint64
	log    *slog.Logger

	ctx       context.Context // the work context, cancelled once the stages are drained
	cancel    context.CancelFunc
	srcCtx    context.Context // cancelled first on stop: the source and the usage watcher end
	srcCancel context.CancelFunc

	source  Source
	srcDone chan struct{}
	sinks   []*sinkRunner
	routes  []*vm.Program // per sink; nil means every message
	inWG    sync.WaitGroup

	// mu guards what the step builder (buildSteps) hands over while the
	// pipeline may be stopping: the steps, the input stage, stopped.
	mu        sync.Mutex
	steps     []Step // set once every step is built; read-only after
	inConsume jetstream.ConsumeContext
	stopped   bool          // stop has begun: build nothing, start nothing
	stopping  chan struct{} // closed when stop begins

	ingested atomic.Uint64
	srcErr   atomic.Pointer[string]
	inErr    atomic.Pointer[string] // the input stage could not start
	full     atomic.Bool            // the stream is near its limits: refuse new messages
	leading  atomic.Bool            // the source runs on this node (always, unless Singleton)

	// The step builder's progress, for Status: stepsReady once the input
	// stage runs; stepsErr is the last failed attempt (nil after success);
	// stepsGaveUp once the retry policy is spent.
	stepsReady  atomic.Bool
	stepsErr    atomic.Pointer[string]
	stepsGaveUp atomic.Bool
}

type sinkRunner struct {
	p       *pipeline
	spec    SinkSpec
	sink    Sink
	consume jetstream.ConsumeContext
	wg      sync.WaitGroup
	acks    sync.WaitGroup // double acks in flight

	delivered    atomic.Uint64
	failures     atomic.Uint64
	deadLettered atomic.Uint64
}

// startPipeline creates the integration's stream and consumers, builds its
// connectors and starts consuming, sinks first so nothing waits on a stage
// that is not running yet.
func (e *Engine) startPipeline(tenant string, spec *Spec, rev uint64) (_ *pipeline, err error) {
	ctx, cancel := context.WithCancel(context.Background())
	srcCtx, srcCancel := context.WithCancel(ctx)
	p := &pipeline{
		e: e, tenant: tenant, spec: spec, rev: rev,
		log:    e.log.With("tenant", tenant, "integration", spec.Name),
		ctx:    ctx,
		cancel: cancel,
		srcCtx: srcCtx, srcCancel: srcCancel,
		stopping: make(chan struct{}),
	}
	defer func() {
		if err != nil {
			p.stop()
		}
	}()
	setup, cancelSetup := context.WithTimeout(ctx, 30*time.Second)
	defer cancelSetup()
	if err := p.ensureStreams(setup); err != nil {
		return nil, err
	}
	env := func(name string) Env { return e.env(tenant, spec.Name, name) }
	for _, sk := range spec.Sinks {
		var prog *vm.Program
		if sk.When != "" {
			if prog, err = compileWhen(sk.When); err != nil {
				return nil, fmt.Errorf("sink %s: when: %w", sk.Name, err)
			}
		}
		p.routes = append(p.routes, prog)
		c, ok := e.catalog.LookupKind(KindSink, sk.Connector)
		if !ok {
			return nil, fmt.Errorf("sink %s: unknown connector %q", sk.Name, sk.Connector)
		}
		s, err := c.NewSink(sk.Config, env(sk.Name))
		if err != nil {
			return nil, fmt.Errorf("sink %s: %w", sk.Name, err)
		}
		r := &sinkRunner{p: p, spec: sk, sink: s}
		p.sinks = append(p.sinks, r)
		if err := r.start(setup); err != nil {
			return nil, err
		}
	}
	if len(spec.Steps) == 0 {
		if err := p.startIn(setup); err != nil {
			return nil, err
		}
		p.stepsReady.Store(true)
	}
	c, ok := e.catalog.LookupKind(KindSource, spec.Source.Connector)
	if !ok {
		return nil, fmt.Errorf("source: unknown connector %q", spec.Source.Connector)
	}
	src, err := c.NewSource(spec.Source.Config, env(""))
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	p.source = src
	var release func()
	if b, ok := src.(Binder); ok && !c.Singleton {
		if release, err = b.Bind(p); err != nil {
			return nil, fmt.Errorf("source: %w", err)
		}
	}
	p.srcDone = make(chan struct{})
	run := src.Run
	if c.Singleton {
		run = func(ctx context.Context, _ Emitter) error { return p.runLeased(ctx, src) }
	} else {
		p.leading.Store(true)
	}
	go func() {
		defer close(p.srcDone)
		if release != nil {
			defer release()
		}
		if err := run(p.srcCtx, p); err != nil && p.srcCtx.Err() == nil {
			msg := err.Error()
			p.srcErr.Store(&msg)
			p.log.Error("source stopped", "err", err)
		}
	}()
	if len(spec.Steps) > 0 {
		go p.buildSteps()
	}
	return p, nil
}

// buildSteps makes the integration's steps in the background and starts
// the input stage once all of them are ready; until then the source's
// messages wait, durable, on the input subject. Building a step may take
// long: a Wasm step compiles and instantiates its module, and a module
// whose start function never returns runs until its instantiation
// deadline. Nothing waits for it: neither the start (Apply) nor a stop.
// A failed attempt is retried after the spec's backoff; after
// Retry.MaxAttempts attempts, or at once for a Permanent error (a private
// module of another tenant), the builder gives up: the source stops, the
// status says why (state "error"), and the engine does not try this
// revision again (an update, or a stop and a start, does).
func (p *pipeline) buildSteps() {
	steps := make([]Step, len(p.spec.Steps))
	closeAll := func() {
		for i, s := range steps {
			if s != nil {
				if err := s.Close(); err != nil {
					p.log.Warn("close step", "step", p.spec.Steps[i].Name, "err", err)
				}
			}
		}
	}
	retry := p.spec.Retry
	for attempt := 1; ; attempt++ {
		err := p.makeSteps(steps)
		if err == nil {
			break
		}
		if errors.Is(err, errPipelineStopped) || p.isStopping() {
			closeAll()
			return
		}
		if attempt >= retry.MaxAttempts || IsPermanent(err) {
			msg := fmt.Sprintf("%v (gave up after %d attempts)", err, attempt)
			p.stepsErr.Store(&msg)
			p.stepsGaveUp.Store(true)
			p.log.Error("integration failed to start: gave up", "attempts", attempt, "err", err)
			closeAll()
			p.srcCancel() // accept nothing that no step will ever take
			return
		}
		wait := retry.Backoff(attempt)
		msg := fmt.Sprintf("%v (attempt %d of %d; retrying in %s)", err, attempt, retry.MaxAttempts, wait)
		p.stepsErr.Store(&msg)
		p.log.Warn("integration steps failed to start; retrying", "attempt", attempt, "of", retry.MaxAttempts, "in", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-p.stopping:
			t.Stop()
			closeAll()
			return
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		closeAll()
		return
	}
	p.steps = steps
	setup, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	if err := p.startIn(setup); err != nil {
		msg := err.Error()
		p.inErr.Store(&msg)
		p.log.Error("input stage failed to start", "err", err)
		return
	}
	p.stepsErr.Store(nil)
	p.stepsReady.Store(true)
}

// makeSteps builds each step that steps lacks, in order, and stops at the
// first failure (the steps built so far are kept for the next attempt).
func (p *pipeline) makeSteps(steps []Step) error {
	for i, st := range p.spec.Steps {
		if steps[i] != nil {
			continue
		}
		if p.isStopping() {
			return errPipelineStopped
		}
		c, ok := p.e.catalog.LookupKind(KindStep, st.Connector)
		if !ok {
			return fmt.Errorf("step %s: unknown connector %q", st.Name, st.Connector)
		}
		env := p.e.env(p.tenant, p.spec.Name, st.Name)
		env.storage = &stepStorage{p: p}
		s, err := c.NewStep(st.Config, env)
		if err != nil {
			return fmt.Errorf("step %s: %w", st.Name, err)
		}
		steps[i] = s
	}
	return nil
}

// isStopping reports whether stop has begun.
func (p *pipeline) isStopping() bool {
	select {
	case <-p.stopping:
		return true
	default:
		return false
	}
}

func (p *pipeline) ensureStreams(ctx context.Context) error {
	js := p.e.conn.JS
	maxMsgs, maxBytes := p.e.limits.maxMsgs, p.e.limits.maxBytes
	if t, err := p.e.store.GetTenant(ctx, p.tenant); err == nil && t.Quotas.MaxStorageBytes > 0 {
		maxBytes = min(maxBytes, t.Quotas.MaxStorageBytes)
	}
	_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        streamName(p.tenant, p.spec.Name),
		Description: "VRSky integration " + p.tenant + "/" + p.spec.Name,
		Subjects:    []string{subjectBase(p.tenant, p.spec.Name) + ".>"},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    p.e.conn.Replicas,
		Duplicates:  2 * time.Minute,
		Discard:     jetstream.DiscardNew,
		MaxMsgs:     maxMsgs,
		MaxBytes:    maxBytes,
	})
	if err != nil {
		return fmt.Errorf("stream for %s/%s: %w", p.tenant, p.spec.Name, err)
	}
	go p.watchUsage(maxMsgs, maxBytes)
	_, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        dlqStreamName(p.tenant),
		Description: "VRSky dead letters of tenant " + p.tenant,
		Subjects:    []string{"vrsky." + p.tenant + ".dlq.>"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    p.e.conn.Replicas,
		MaxAge:      DLQRetention,
	})
	if err != nil {
		return fmt.Errorf("dead-letter stream of %s: %w", p.tenant, err)
	}
	return nil
}

// consume runs handle on workers goroutines fed by a durable pull consumer.
// Stopping drains: the consumer stops pulling, buffered messages are
// handled, then the workers exit and wg is done.
func (p *pipeline) consume(ctx context.Context, durable, subject string, workers int, wg *sync.WaitGroup, handle func(<-chan jetstream.Msg)) (jetstream.ConsumeContext, error) {
	stream := streamName(p.tenant, p.spec.Name)
	cons, err := p.e.conn.JS.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
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

func (p *pipeline) startIn(ctx context.Context) error {
	cc, err := p.consume(ctx, inConsumerName, SubjectIn(p.tenant, p.spec.Name), inWorkers, &p.inWG, func(ch <-chan jetstream.Msg) {
		batch := make([]jetstream.Msg, 0, stepBatchMax)
		for m := range ch {
			batch = append(batch[:0], m)
		gather:
			for len(batch) < stepBatchMax {
				select {
				case m, ok := <-ch:
					if !ok {
						break gather
					}
					batch = append(batch, m)
				default:
					break gather
				}
			}
			p.processIn(batch)
		}
	})
	p.inConsume = cc
	return err
}

// Emit implements Emitter for the pipeline's source.
func (p *pipeline) Emit(ctx context.Context, msg *Message) error {
	if p.direct() {
		_, err := p.emitDirect(ctx, []*Message{msg})
		return err
	}
	nm, err := p.prepare(ctx, msg)
	if err != nil {
		return err
	}
	_, err = p.e.conn.JS.PublishMsg(ctx, nm)
	return p.accepted(msg, err)
}

// EmitBatch implements Emitter: every publish is in flight at once and
// the batch returns when JetStream has acknowledged them all.
func (p *pipeline) EmitBatch(ctx context.Context, msgs []*Message) error {
	if p.direct() {
		_, err := p.emitDirect(ctx, msgs)
		return err
	}
	futs := make([]jetstream.PubAckFuture, len(msgs))
	var first error
	for i, msg := range msgs {
		nm, err := p.prepare(ctx, msg)
		if err == nil {
			futs[i], err = p.e.conn.JS.PublishMsgAsync(nm)
		}
		if err != nil {
			first = p.accepted(msg, err)
			break
		}
	}
	for i, f := range futs {
		if f == nil {
			break
		}
		var err error
		select {
		case <-f.Ok():
		case err = <-f.Err():
		case <-ctx.Done():
			return ctx.Err()
		}
		if err = p.accepted(msgs[i], err); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// EmitWait implements Emitter: it emits msg asking the input stage to
// report on a reply subject what the steps made of it.
func (p *pipeline) EmitWait(ctx context.Context, msg *Message) (Outcome, error) {
	if p.direct() { // routed at once: the outcome is known
		statuses, err := p.emitDirect(ctx, []*Message{msg})
		if err != nil {
			return Outcome{}, err
		}
		return Outcome{Status: statuses[0]}, nil
	}
	inbox := p.e.conn.NC.NewRespInbox()
	sub, err := p.e.conn.NC.SubscribeSync(inbox)
	if err != nil {
		return Outcome{}, fmt.Errorf("reply subscription: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if msg.Header == nil {
		msg.Header = Header{}
	}
	msg.Header.Set(headerReply, inbox)
	if err := p.Emit(ctx, msg); err != nil {
		return Outcome{}, err
	}
	reply, err := sub.NextMsgWithContext(ctx)
	if err != nil {
		return Outcome{Status: OutcomePending}, nil
	}
	var out Outcome
	if err := json.Unmarshal(reply.Data, &out); err != nil {
		return Outcome{Status: OutcomePending}, nil
	}
	return out, nil
}

// direct reports whether sources publish straight to the sinks'
// subjects. Without steps the input stage has nothing to do but route, and
// routing at emit saves a stream write, a delivery and an acknowledgement
// per message. Messages already on the input subject (from before an
// update that removed the steps, or replayed to a step) are still handled
// by the input stage.
func (p *pipeline) direct() bool { return len(p.spec.Steps) == 0 }

// emitDirect routes msgs at once: each goes to the subject of every sink
// whose `when` holds, under the same ids the input stage would give it, so
// an emit retried after a partial failure stores each copy once. It
// returns each message's routing status (passed or filtered) once
// JetStream has acknowledged every copy.
func (p *pipeline) emitDirect(ctx context.Context, msgs []*Message) ([]string, error) {
	type copyAck struct {
		msg int
		fut jetstream.PubAckFuture
	}
	var futs []copyAck
	routes := make([][]string, len(msgs))
	for i, msg := range msgs {
		if _, err := p.prepare(ctx, msg); err != nil {
			return nil, p.accepted(msg, err)
		}
		targets, err := p.route(msg)
		if err != nil {
			return nil, err
		}
		if ref := msg.Header.Get(HeaderPayloadRef); ref != "" {
			if len(targets) == 0 { // filtered, or dead-lettered by a `when` (which holds it)
				if err := p.e.claims.dropUnheld(ctx, ref); err != nil {
					p.log.Warn("delete claim-checked payload no sink takes", "ref", ref, "err", err)
				}
			} else if err := p.claimOutput(msg, targets); err != nil {
				return nil, fmt.Errorf("%w: %w", ErrPayloadStore, err)
			}
		}
		for _, r := range targets {
			f, err := p.e.conn.JS.PublishMsgAsync(r.outMsg(msg))
			if err != nil {
				return nil, p.accepted(msg, err)
			}
			futs = append(futs, copyAck{i, f})
			routes[i] = append(routes[i], r.spec.Name)
		}
	}
	for _, f := range futs {
		select {
		case <-f.fut.Ok():
		case err := <-f.fut.Err():
			return nil, p.accepted(msgs[f.msg], err)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	statuses := make([]string, len(msgs))
	for i, msg := range msgs {
		// One tracking record says both: accepted and routed, at once
		// (Trace shows the accepted stage from it).
		p.countIngested()
		statuses[i] = StatusPassed
		if len(routes[i]) == 0 {
			statuses[i] = StatusFiltered
		}
		p.track(msg.ID, StageRecord{Stage: stageRoute, Status: statuses[i], Outputs: routes[i]})
	}
	return statuses, nil
}

// headerReply carries EmitWait's reply subject to the input stage; it is
// not passed on to sinks.
const headerReply = "Vrsky-Reply"

// prepare stamps msg's headers and claim-checks a large payload.
func (p *pipeline) prepare(ctx context.Context, msg *Message) (*nats.Msg, error) {
	if p.full.Load() {
		return nil, ErrBackpressure
	}
	if msg.ID == "" {
		msg.ID = NewID()
	}
	if msg.Header == nil {
		msg.Header = Header{}
	}
	msg.Header.Set(HeaderNatsMsgID, msg.ID)
	msg.Header.Set(HeaderMsgID, msg.ID)
	msg.Header.Set(HeaderTenant, p.tenant)
	msg.Header.Set(HeaderIntegration, p.spec.Name)
	if err := p.e.claims.checkIn(ctx, p.tenant, p.spec.Name, msg); err != nil {
		return nil, err
	}
	return &nats.Msg{Subject: SubjectIn(p.tenant, p.spec.Name), Header: nats.Header(msg.Header), Data: msg.Data}, nil
}

// accepted counts and tracks msg once its publish succeeded, and turns a
// full stream into ErrBackpressure.
func (p *pipeline) accepted(msg *Message, err error) error {
	if isStreamFull(err) {
		p.full.Store(true)
		return fmt.Errorf("%w: %w", ErrBackpressure, err)
	}
	if errors.Is(err, ErrBackpressure) || errors.Is(err, ErrPayloadStore) || errors.Is(err, ErrPayloadRead) {
		return err
	}
	if err != nil {
		return fmt.Errorf("make message durable: %w", err)
	}
	p.countIngested()
	p.track(msg.ID, StageRecord{Stage: stageAccepted, Status: StatusAccepted})
	return nil
}

func (p *pipeline) countIngested() {
	p.ingested.Add(1)
	p.e.metrics.ingested.WithLabelValues(p.tenant, p.spec.Name).Inc()
}

// item follows one input message through the steps.
type item struct {
	src       jetstream.Msg
	id        string     // the input's message id
	msgs      []*Message // current outputs
	err       error      // set when a step failed
	step      string     // the step that failed
	routes    []string   // where the outputs went: sink, or <output id>@<sink>
	claimRefs []string   // claim-checked payloads the steps took as input
	reply     string     // where EmitWait waits for the outcome
}

func (p *pipeline) toMessage(m jetstream.Msg) *Message {
	h := Header(m.Headers())
	if h == nil {
		h = Header{}
	}
	id := h.Get(HeaderMsgID)
	if id == "" {
		id = h.Get(HeaderNatsMsgID)
	}
	msg := &Message{ID: id, Header: h, Data: m.Data()}
	if p.e.claims != nil {
		msg.blobs = p.e.claims.blobs
	}
	return msg
}

// processIn runs a batch from the input subject through the steps and
// publishes every output to each sink whose route matches. An input is
// acknowledged only after all its outputs are durable.
func (p *pipeline) processIn(batch []jetstream.Msg) {
	items := make([]*item, len(batch))
	for i, m := range batch {
		in := p.toMessage(m)
		items[i] = &item{src: m, id: in.ID, msgs: []*Message{in}, reply: in.Header.Get(headerReply)}
	}
	for si, step := range p.steps {
		p.runStep(si, step, items)
	}
	type pending struct {
		it  *item
		fut jetstream.PubAckFuture
	}
	var futs []pending
	for _, it := range items {
		if it.err != nil {
			continue
		}
		for _, out := range it.msgs {
			targets, err := p.route(out)
			if err != nil {
				it.err = err
				break
			}
			if len(targets) == 0 {
				continue
			}
			if err := p.claimOutput(out, targets); err != nil {
				it.err = err
				break
			}
			for _, r := range targets {
				f, err := p.e.conn.JS.PublishMsgAsync(r.outMsg(out))
				if err != nil {
					it.err = err
					break
				}
				futs = append(futs, pending{it, f})
				route := r.spec.Name
				if out.ID != it.id {
					route = out.ID + "@" + r.spec.Name
				}
				it.routes = append(it.routes, route)
			}
		}
	}
	for _, f := range futs {
		select {
		case <-f.fut.Ok():
		case err := <-f.fut.Err():
			if f.it.err == nil {
				f.it.err = err
			}
		}
	}
	for _, it := range items {
		switch {
		case it.err == nil:
			_ = it.src.Ack()
			status := StatusPassed
			if len(it.routes) == 0 {
				status = StatusFiltered
			}
			p.track(it.id, StageRecord{Stage: stageRoute, Status: status, Outputs: it.routes})
			p.dropInputObjects(it)
			p.reply(it, Outcome{Status: status})
		default:
			// A step failed, or routing and publishing its outputs did
			// (stage "route"): either way one more counted attempt, and the
			// DLQ after the last one or at once for a permanent error.
			stage := stageRoute
			if it.step != "" {
				stage = "step:" + it.step
			}
			p.reply(it, Outcome{Status: StatusFailed, Stage: stage, Error: clip(it.err.Error())})
			p.retryOrDeadLetter(it.src, p.toMessage(it.src), stage, it.err, nil)
		}
	}
}

// reply tells a source waiting in EmitWait what the steps made of it.
// Core NATS, fire and forget: the message is durable either way.
func (p *pipeline) reply(it *item, out Outcome) {
	if it.reply == "" {
		return
	}
	b, _ := json.Marshal(out)
	_ = p.e.conn.NC.Publish(it.reply, b)
}

// route returns the sinks whose `when` holds for out. A condition that
// cannot be evaluated (an expression error, a payload too large to read)
// is permanent: the message is dead-lettered for that sink at once. An
// error means the routing itself failed and out must come back: the
// payload could not be read for a condition (retryable), or a dead letter
// could not be written.
func (p *pipeline) route(out *Message) ([]*sinkRunner, error) {
	var env map[string]any
	var envErr error
	var targets []*sinkRunner
	for i, r := range p.sinks {
		if prog := p.routes[i]; prog != nil {
			if env == nil && envErr == nil {
				env, envErr = p.routeEnv(out)
				if envErr != nil && !IsPermanent(envErr) {
					return nil, fmt.Errorf("sink %s: when %q: %w", r.spec.Name, r.spec.When, envErr)
				}
			}
			ok, err := any(nil), envErr
			if err == nil {
				ok, err = expr.Run(prog, env)
			}
			if err != nil {
				if err := r.deadLetter(out, 1, fmt.Errorf("when %q: %w", r.spec.When, err), "route:"+r.spec.Name); err != nil {
					return nil, err
				}
				continue
			}
			if ok != true {
				continue
			}
		}
		targets = append(targets, r)
	}
	return targets, nil
}

// ClaimReader is implemented by a step that reads claim-checked payloads
// itself, by reference (a Wasm module with the objects capability streams
// them through the ABI's object functions). Any other step gets such a
// payload loaded into Data, without the reference headers.
type ClaimReader interface {
	ReadsClaims() bool
}

func readsClaims(s Step) bool {
	cr, ok := s.(ClaimReader)
	return ok && cr.ReadsClaims()
}

// takeClaimed prepares a claim-checked step input: it remembers the
// reference (dropInputObjects deletes the object once nothing refers to
// it) and, for a step that cannot read by reference, loads the payload.
func (p *pipeline) takeClaimed(it *item, m *Message, byRef bool) error {
	ref := m.Header.Get(HeaderPayloadRef)
	if !slices.Contains(it.claimRefs, ref) {
		it.claimRefs = append(it.claimRefs, ref)
	}
	if byRef {
		return nil
	}
	data, err := m.Bytes(p.ctx)
	if err != nil {
		return err
	}
	m.Data = data
	// The header map may be the JetStream message's own: a dead letter of
	// this input is built from it and must keep the reference.
	m.Header = withoutRef(m.Header)
	return nil
}

// withoutRef is a copy of h without the claim-check headers.
func withoutRef(h Header) Header {
	h = h.Clone()
	for _, k := range []string{HeaderPayloadRef, HeaderPayloadSize, HeaderPayloadSHA256} {
		delete(h, k)
	}
	return h
}

// checkOutputRef vets the payload reference of a step's output. An output
// that inherited its input's reference but carries a payload of its own
// is that payload: the reference goes. Any other reference must name one
// of the tenant's claim-check objects, and only a step that works by
// reference may make one: a header is no way into another tenant's data.
func (p *pipeline) checkOutputRef(in, out *Message, byRef bool) error {
	ref := out.Header.Get(HeaderPayloadRef)
	if ref == "" {
		return nil
	}
	if ref == in.Header.Get(HeaderPayloadRef) {
		if len(out.Data) > 0 {
			out.Header = withoutRef(out.Header)
		}
		return nil
	}
	if !byRef {
		return Permanent(fmt.Errorf("output sets %s, but the step does not work by reference (no objects capability)", HeaderPayloadRef))
	}
	return checkPayloadRef(p.tenant, ref)
}

// claimOutput makes sure a large output travels by reference and that each
// target sink holds the object until it has delivered it.
func (p *pipeline) claimOutput(out *Message, targets []*sinkRunner) error {
	c := p.e.claims
	if c == nil {
		return nil
	}
	if !out.Claimed() {
		if err := c.checkIn(p.ctx, p.tenant, p.spec.Name, out); err != nil {
			return err
		}
		if !out.Claimed() {
			return nil
		}
	}
	names := make([]string, len(targets))
	for i, r := range targets {
		names[i] = r.spec.Name
	}
	return c.hold(p.ctx, out.Header.Get(HeaderPayloadRef), names)
}

// dropInputObjects deletes the claim-checked payloads that the steps
// replaced (or filtered out): once the input is acknowledged nothing
// refers to them, unless an output passes one on to the sinks.
func (p *pipeline) dropInputObjects(it *item) {
	if p.e.claims == nil {
		return
	}
	refs := it.claimRefs
	if len(refs) == 0 && len(it.routes) == 0 {
		if h := Header(it.src.Headers()); h != nil && h.Get(HeaderPayloadRef) != "" {
			refs = []string{h.Get(HeaderPayloadRef)}
		}
	}
next:
	for _, ref := range refs {
		for _, out := range it.msgs {
			if out.Header.Get(HeaderPayloadRef) == ref {
				continue next // passed on; the sinks hold it
			}
		}
		if err := p.e.claims.blobs.Delete(p.ctx, ref); err != nil && !errors.Is(err, blob.ErrNotFound) {
			p.log.Warn("delete claim-checked input", "ref", ref, "err", err)
		}
	}
}

// runStep applies one step to every live item.
func (p *pipeline) runStep(si int, step Step, items []*item) {
	name := p.spec.Steps[si].Name
	byRef := readsClaims(step)
	var in []*Message
	var owner []*item
	for _, it := range items {
		if it.err != nil {
			continue
		}
		for _, m := range it.msgs {
			if m.Claimed() {
				if err := p.takeClaimed(it, m, byRef); err != nil {
					it.err, it.step = err, name
					break
				}
			}
			in = append(in, m)
			owner = append(owner, it)
		}
		it.msgs = it.msgs[:0]
	}
	if len(in) == 0 {
		return
	}
	res, err := step.Process(p.ctx, in)
	if err == nil && len(res) != len(in) {
		err = fmt.Errorf("step returned %d results for %d messages", len(res), len(in))
	}
	for i, it := range owner {
		if it.err != nil {
			continue
		}
		switch {
		case err != nil:
			it.err, it.step = err, name
		case res[i].Err != nil:
			it.err, it.step = res[i].Err, name
		default:
			outs := res[i].Out
			if len(outs) == 0 {
				p.e.metrics.dropped.WithLabelValues(p.tenant, p.spec.Name, name).Inc()
			}
			for k, o := range outs {
				if o.ID == "" {
					o.ID = in[i].ID
					if len(outs) > 1 {
						o.ID += "." + strconv.Itoa(k)
					}
				}
				if o.Header == nil {
					o.Header = in[i].Header.Clone()
				}
				if o.Header.Get(HeaderMsgID) != o.ID {
					// The next step sees the output's own id (a module
					// names its objects after it).
					o.Header = o.Header.Clone()
					o.Header.Set(HeaderMsgID, o.ID)
				}
				if err := p.checkOutputRef(in[i], o, byRef); err != nil {
					it.err, it.step = err, name
				}
			}
			if it.err == nil {
				it.msgs = append(it.msgs, outs...)
			}
		}
	}
}

// retryOrDeadLetter naks m with backoff or, after the last attempt or a
// permanent error, copies msg (m as received) to the DLQ and terminates m.
// r is the sink that failed, or nil for a step.
func (p *pipeline) retryOrDeadLetter(m jetstream.Msg, msg *Message, stage string, err error, r *sinkRunner) {
	attempt := 1
	if md, mdErr := m.Metadata(); mdErr == nil {
		attempt = int(md.NumDelivered)
	}
	p.e.metrics.failures.WithLabelValues(p.tenant, p.spec.Name, stage).Inc()
	if r != nil {
		r.failures.Add(1)
	}
	p.track(msg.ID, StageRecord{Stage: stage, Status: StatusFailed, Attempt: attempt, Error: clip(err.Error())})
	if !IsPermanent(err) && attempt < p.spec.Retry.MaxAttempts {
		_ = m.NakWithDelay(p.spec.Retry.Backoff(attempt))
		return
	}
	if dlErr := p.publishDeadLetter(msg, attempt, err, stage); dlErr != nil {
		// Not in the DLQ: keep it in the stream and try again later.
		p.log.Error("dead-letter write failed; redelivering", "stage", stage, "err", dlErr)
		_ = m.NakWithDelay(p.spec.Retry.Backoff(attempt))
		return
	}
	if r != nil {
		r.deadLettered.Add(1)
	}
	_ = m.Term()
}

// publishDeadLetter copies msg to the tenant's DLQ with the stage, the
// attempt count and every attempt's time and error.
func (p *pipeline) publishDeadLetter(msg *Message, attempts int, cause error, stage string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	log := attemptLog(p.e.tracker.attempts(ctx, p.tenant, p.spec.Name, msg.ID, stage), attempts, cause)
	h := msg.Header.Clone()
	h.Set(HeaderNatsMsgID, "dlq:"+stage+":"+msg.ID)
	h.Set(HeaderStage, stage)
	h.Set(HeaderError, clip(cause.Error()))
	h.Set(HeaderAttempts, strconv.Itoa(attempts))
	h.Set(HeaderAttemptLog, log)
	_, err := p.e.conn.JS.PublishMsg(ctx, &nats.Msg{Subject: SubjectDLQ(p.tenant, p.spec.Name), Header: nats.Header(h), Data: msg.Data})
	if err != nil {
		return err
	}
	p.e.metrics.deadLettered.WithLabelValues(p.tenant, p.spec.Name, stage).Inc()
	p.track(msg.ID, StageRecord{Stage: stage, Status: StatusDeadLettered, Attempt: attempts, Error: clip(cause.Error())})
	p.log.Warn("message dead-lettered", "id", msg.ID, "stage", stage, "attempts", attempts, "err", cause)
	return nil
}

// Stages that are not a step or a sink.
const (
	stageAccepted = "accepted"
	stageRoute    = "route"
)

func (p *pipeline) track(id string, rec StageRecord) {
	p.e.tracker.record(p.tenant, p.spec.Name, id, rec)
}

// attemptLog renders the failed attempts of a stage as JSON, completing
// the record with the attempt that just failed (its write may still be
// queued).
func attemptLog(recs []StageRecord, attempt int, cause error) string {
	type entry struct {
		Attempt int       `json:"attempt"`
		At      time.Time `json:"at"`
		Error   string    `json:"error"`
	}
	var out []entry
	seen := map[int]bool{}
	for _, r := range recs {
		if r.Status == StatusFailed && !seen[r.Attempt] {
			seen[r.Attempt] = true
			out = append(out, entry{r.Attempt, r.At, clip(r.Error)})
		}
	}
	if !seen[attempt] {
		out = append(out, entry{attempt, time.Now().UTC(), clip(cause.Error())})
	}
	b, _ := json.Marshal(out)
	return string(b)
}

// maxErrorText bounds an error text kept in headers and tracking records:
// a guest may quote its whole input in an error, and NATS headers are small.
const maxErrorText = 1024

// clip shortens s to maxErrorText bytes, on a UTF-8 boundary.
func clip(s string) string {
	if len(s) <= maxErrorText {
		return s
	}
	cut := maxErrorText
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// maxRouteBytes bounds a claim-checked payload that a when expression
// reads: routing needs it parsed whole.
const maxRouteBytes = 16 << 20

// routeEnv is the payload as a when expression sees it: a JSON object's
// fields, or nothing for anything else. A claim-checked payload is read from the object store
// (verified), up to maxRouteBytes.
func (p *pipeline) routeEnv(m *Message) (map[string]any, error) {
	data := m.Data
	if m.Claimed() {
		if size := m.Size(); size > maxRouteBytes {
			return nil, Permanent(fmt.Errorf("the payload (%d bytes) is over the %d bytes a when expression may read", size, maxRouteBytes))
		}
		var err error
		if data, err = m.Bytes(p.ctx); err != nil {
			return nil, err
		}
	}
	var env map[string]any
	if json.Unmarshal(data, &env) != nil || env == nil {
		env = map[string]any{}
	}
	return env, nil
}

func (r *sinkRunner) outMsg(m *Message) *nats.Msg {
	h := m.Header.Clone()
	delete(h, headerReply)
	h.Set(HeaderMsgID, m.ID)
	h.Set(HeaderNatsMsgID, m.ID+":"+r.spec.Name)
	return &nats.Msg{Subject: SubjectOut(r.p.tenant, r.p.spec.Name, r.spec.Name), Header: nats.Header(h), Data: m.Data}
}

// deadLetter copies m to the DLQ for this sink without it ever reaching
// the sink's subject (a permanent routing failure): a claim-checked
// payload is held for the dead letter first. An error means m is not in
// the DLQ, and the caller must keep its input (redelivered) rather than
// let it go.
func (r *sinkRunner) deadLetter(m *Message, attempts int, err error, stage string) error {
	if m.Claimed() && r.p.e.claims != nil {
		if hErr := r.p.e.claims.hold(r.p.ctx, m.Header.Get(HeaderPayloadRef), []string{r.spec.Name}); hErr != nil {
			return fmt.Errorf("%s: hold the payload for its dead letter: %w: %w", stage, ErrPayloadStore, hErr)
		}
	}
	if dlErr := r.p.publishDeadLetter(m, attempts, err, stage); dlErr != nil {
		return fmt.Errorf("%s: dead-letter write: %w", stage, dlErr)
	}
	r.deadLettered.Add(1)
	return nil
}

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
		handle = func(ch <-chan jetstream.Msg) { r.handleBatches(ch, bs, b) }
	}
	cc, err := r.p.consume(ctx, sinkConsumerName(r.spec.Name), SubjectOut(r.p.tenant, r.p.spec.Name, r.spec.Name), conc, &r.wg, handle)
	r.consume = cc
	return err
}

var defaultBatch = Batching{MaxMessages: 500, MaxWait: 50 * time.Millisecond, Concurrency: 4}

// handleBatches gathers up to b.MaxMessages, waiting at most b.MaxWait
// after the first, and delivers them in one call.
func (r *sinkRunner) handleBatches(ch <-chan jetstream.Msg, bs BatchSink, b Batching) {
	batch := make([]jetstream.Msg, 0, b.MaxMessages)
	timer := time.NewTimer(b.MaxWait)
	for m := range ch {
		batch = append(batch[:0], m)
		timer.Reset(b.MaxWait)
	gather:
		for len(batch) < b.MaxMessages {
			select {
			case m, ok := <-ch:
				if !ok {
					break gather
				}
				batch = append(batch, m)
			case <-timer.C:
				break gather
			}
		}
		r.deliverBatch(bs, batch)
	}
	timer.Stop()
}

func (r *sinkRunner) deliverBatch(bs BatchSink, batch []jetstream.Msg) {
	p := r.p
	msgs := make([]*Message, len(batch))
	for i, m := range batch {
		msgs[i] = p.toMessage(m)
	}
	start := time.Now()
	errs := bs.DeliverBatch(context.WithoutCancel(p.ctx), msgs)
	p.e.metrics.deliverTime.WithLabelValues(p.tenant, p.spec.Name, r.spec.Name).Observe(time.Since(start).Seconds())
	if errs != nil && len(errs) != len(msgs) {
		err := fmt.Errorf("sink %s returned %d results for %d messages", r.spec.Name, len(errs), len(msgs))
		errs = make([]error, len(msgs))
		for i := range errs {
			errs[i] = err
		}
	}
	// Acks run side by side: each double ack is a round trip.
	var wg sync.WaitGroup
	for i, m := range batch {
		if errs == nil || errs[i] == nil {
			wg.Go(func() { r.ack(m, msgs[i]) })
			continue
		}
		p.log.Debug("sink delivery failed", "sink", r.spec.Name, "id", msgs[i].ID, "err", errs[i])
		p.retryOrDeadLetter(m, msgs[i], "sink:"+r.spec.Name, errs[i], r)
	}
	wg.Wait()
}

// ack confirms a delivery. The double ack waits for the server's
// confirmation, so a delivery is counted only once JetStream will not
// redeliver it; sinks get the message id as an idempotency key for the
// rare redelivery that still meets a late ack.
func (r *sinkRunner) ack(m jetstream.Msg, msg *Message) {
	p := r.p
	attempt := 1
	if md, err := m.Metadata(); err == nil {
		attempt = int(md.NumDelivered)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.DoubleAck(ctx); err != nil {
		p.log.Warn("ack after delivery failed; the message may be delivered again", "sink", r.spec.Name, "id", msg.ID, "err", err)
	}
	r.delivered.Add(1)
	p.e.metrics.delivered.WithLabelValues(p.tenant, p.spec.Name, r.spec.Name).Inc()
	if ref := msg.Header.Get(HeaderPayloadRef); ref != "" {
		if err := p.e.claims.release(ctx, ref, r.spec.Name); err != nil {
			p.log.Warn("release claim-checked payload", "ref", ref, "err", err)
		}
	}
	p.track(msg.ID, StageRecord{Stage: "sink:" + r.spec.Name, Status: StatusDelivered, Attempt: attempt})
}

func (r *sinkRunner) handle(m jetstream.Msg) {
	p := r.p
	msg := p.toMessage(m)
	start := time.Now()
	err := r.sink.Deliver(context.WithoutCancel(p.ctx), msg)
	labels := []string{p.tenant, p.spec.Name, r.spec.Name}
	p.e.metrics.deliverTime.WithLabelValues(labels...).Observe(time.Since(start).Seconds())
	if err == nil {
		// The double ack's round trip runs beside the next delivery; the
		// consumer's MaxAckPending bounds how many are in flight.
		r.acks.Go(func() { r.ack(m, msg) })
		return
	}
	p.log.Debug("sink delivery failed", "sink", r.spec.Name, "id", msg.ID, "err", err)
	p.retryOrDeadLetter(m, msg, "sink:"+r.spec.Name, err, r)
}

// stop ends the source, then drains the input stage and each sink so that
// nothing in flight is abandoned half-way, then closes the connectors.
// Work in flight keeps its context until the drain is over, so a stop
// never counts as a failed attempt.
func (p *pipeline) stop() {
	p.mu.Lock()
	if !p.stopped {
		p.stopped = true
		close(p.stopping)
	}
	inConsume, steps := p.inConsume, p.steps
	p.mu.Unlock()
	p.srcCancel()
	defer p.cancel()
	if p.srcDone != nil {
		<-p.srcDone
	}
	if inConsume != nil {
		inConsume.Drain()
	}
	p.inWG.Wait()
	for _, r := range p.sinks {
		if r.consume != nil {
			r.consume.Drain()
		}
	}
	for _, r := range p.sinks {
		r.wg.Wait()
		r.acks.Wait()
		if err := r.sink.Close(); err != nil {
			p.log.Warn("close sink", "sink", r.spec.Name, "err", err)
		}
	}
	// Steps still being built are the builder's to close.
	for i, s := range steps {
		if err := s.Close(); err != nil {
			p.log.Warn("close step", "step", p.spec.Steps[i].Name, "err", err)
		}
	}
}

package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/expr-lang/expr/vm"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrsky/vrsky/platform/natsx"
)

// This file holds a pipeline's life: start (startPipeline), the
// background build of its steps (buildSteps) and stop. Its parts live
// beside it: streams.go (the stream, consumers,
// publish acknowledgements, batches), emit.go (the source's Emitter),
// input.go (the input stage: steps and routing), sinkrun.go (the sink
// stages), claimcheck.go (claim-checked payloads) and dlq.go (retries
// and dead letters).

// pipeline runs one integration on this node.
type pipeline struct {
	e      *Engine
	conn   *natsx.Conn // the tenant's own account's connection
	tenant string
	spec   *Spec
	rev    uint64
	log    *slog.Logger
	m      *pipelineMetrics // its series, taken once

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
	full     atomic.Int32           // a fullness: near the stream's bounds or the tenant's storage quota, new messages are refused
	leading  atomic.Bool            // the source runs on this node (always, unless Singleton)
	push     bool                   // the source is pushed to (a webhook): over a rate quota it is refused, not slowed

	// The step builder's progress, for Status: stepsReady once the input
	// stage runs; stepsErr is the last failed attempt (nil after success);
	// stepsGaveUp once the retry policy is spent.
	stepsReady  atomic.Bool
	stepsErr    atomic.Pointer[string]
	stepsGaveUp atomic.Bool
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
		m:      e.metrics.pipeline(tenant, spec),
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
	if p.conn, err = e.tenants.Conn(setup, tenant); err != nil {
		return nil, err
	}
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
		r := &sinkRunner{p: p, spec: sk, sink: s, m: e.metrics.sink(tenant, spec.Name, sk.Name)}
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
		p.push = true
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
		env.Storage = &stepStorage{p: p}
		env.GuestNATS = func(ctx context.Context) (*nats.Conn, error) { return p.e.tenants.GuestNATS(ctx, p.tenant) }
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

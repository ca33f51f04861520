package host

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vrsky/vrsky/abi"
)

// Status is a message's outcome; see abi.Status.
type Status = abi.Status

// Message statuses, re-exported from abi for the runtime's convenience.
const (
	StatusOK        = abi.StatusOK
	StatusDrop      = abi.StatusDrop
	StatusRetryable = abi.StatusRetryable
	StatusPermanent = abi.StatusPermanent
)

// Message is one message in or out of a step.
type Message struct {
	// ID identifies the message. Outputs of input "x" are "x" for the
	// first and "x-1", "x-2", … for the next ones, so redelivery produces
	// the same IDs (NATS deduplication holds).
	ID string
	// Headers are the message's headers, with the underlying type of
	// nats.Header, http.Header and runtime.Header (keys in canonical MIME
	// form, "Content-Type"; guests see the first value). Outputs may share
	// the input's map when the guest did not change them: treat maps as
	// read-only.
	Headers map[string][]string
	// Data is the payload. A forwarded output shares the input's slice.
	Data []byte
}

// Result is the outcome of one input message.
type Result struct {
	// Status is OK, Drop, Retryable or Permanent.
	Status Status
	// Error explains a Retryable or Permanent status.
	Error string
	// Out holds the outputs (0..n) when Status is OK; nil otherwise.
	Out []Message
}

// Limits bound a pool's instances. Zero fields take the defaults shown.
type Limits struct {
	// Timeout is the wall-clock deadline of one guest call (one batch).
	// Enforced for untrusted modules only: the instance is closed when it
	// passes. Default 5s.
	Timeout time.Duration
	// InitTimeout is the deadline of an instance's initialisation
	// (_initialize: the Go runtime and package init), untrusted modules
	// only. Default 10s.
	InitTimeout time.Duration
	// MaxMemoryPages is the most memory (64 KiB pages) an instance may
	// keep; past it the instance is discarded after its call. The runtime's
	// Config.MaxMemoryPages is the hard ceiling enforced by memory.grow.
	// Default: the runtime's ceiling.
	MaxMemoryPages uint32
	// MaxOutputBytes bounds the payload bytes the outputs of one guest call
	// hold, all messages of the batch together (ABI.md §4.1). Selecting a
	// message again with input() resets nothing. An emit or forward past it
	// returns abi.ErrTooLarge: a message that alone would pass it fails
	// permanently; one that finds it spent by other messages of the batch
	// is run again in a call of its own. Default DefaultMaxOutputBytes.
	MaxOutputBytes int
	// MaxOutputs bounds the outputs of one guest call, in the same way
	// as MaxOutputBytes. Default DefaultMaxOutputs.
	MaxOutputs int
	// MaxHeaderSets bounds the header_set calls on one message in one
	// guest call; past it the message fails permanently. Default
	// DefaultMaxHeaderSets.
	MaxHeaderSets int
	// MaxHeaderBytes bounds the name and value bytes of all header_set
	// calls on one message in one guest call (replaced values count too);
	// past it the message fails permanently. Default DefaultMaxHeaderBytes.
	MaxHeaderBytes int
	// MaxBatch is the most messages passed in one guest call; larger
	// inputs to Process are split. Default 256.
	MaxBatch int
	// MaxInstances bounds warm instances (and concurrent calls). Default
	// GOMAXPROCS.
	MaxInstances int
	// IdleTimeout closes instances unused this long. Default 1 minute.
	IdleTimeout time.Duration
	// MaxHTTPResponseBytes bounds an HTTP response body. Default 4 MiB.
	MaxHTTPResponseBytes int64
}

// Defaults of the call's budgets (ABI.md §4.1, RATIONALE.md "Why budgets
// per call?").
const (
	// DefaultMaxOutputBytes is the default Limits.MaxOutputBytes: 16 MiB
	// per call, what one input could emit before the budgets.
	DefaultMaxOutputBytes = 16 << 20
	// DefaultMaxOutputs is the default Limits.MaxOutputs: 65,536 outputs
	// per call, so that outputs of 256 bytes or more meet the byte budget
	// first and the host's bookkeeping of small ones stays near 10 MiB.
	DefaultMaxOutputs = 1 << 16
	// DefaultMaxHeaderSets is the default Limits.MaxHeaderSets: 64
	// header_set calls per message (the shipped connectors make at most 4).
	DefaultMaxHeaderSets = 64
	// DefaultMaxHeaderBytes is the default Limits.MaxHeaderBytes: 64 KiB
	// of header names and values per message.
	DefaultMaxHeaderBytes = 64 << 10
)

func (l Limits) withDefaults(rtMax uint32) Limits {
	if l.Timeout <= 0 {
		l.Timeout = 5 * time.Second
	}
	if l.InitTimeout <= 0 {
		l.InitTimeout = 10 * time.Second
	}
	if l.MaxMemoryPages == 0 || l.MaxMemoryPages > rtMax {
		l.MaxMemoryPages = rtMax
	}
	if l.MaxOutputBytes <= 0 {
		l.MaxOutputBytes = DefaultMaxOutputBytes
	}
	if l.MaxOutputs <= 0 {
		l.MaxOutputs = DefaultMaxOutputs
	}
	if l.MaxHeaderSets <= 0 {
		l.MaxHeaderSets = DefaultMaxHeaderSets
	}
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if l.MaxBatch <= 0 {
		l.MaxBatch = 256
	}
	if l.MaxInstances <= 0 {
		l.MaxInstances = runtime.GOMAXPROCS(0)
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = time.Minute
	}
	if l.MaxHTTPResponseBytes <= 0 {
		l.MaxHTTPResponseBytes = 4 << 20
	}
	return l
}

// PoolConfig configures a pool: one module with one step configuration
// for one integration.
type PoolConfig struct {
	// Config is the step's configuration (JSON), read by the guest.
	Config []byte
	// Tenant and Integration scope the capabilities (subjects, keys).
	Tenant      string
	Integration string
	// Env provides the capabilities' backends.
	Env Env
	// Limits bound the instances.
	Limits Limits
}

// Pool is a bounded set of warm instances of one module with one
// configuration. Process may be called from many goroutines: each call
// takes one instance for its duration (never one per message). Instances
// are created on demand up to Limits.MaxInstances and closed after
// Limits.IdleTimeout unused.
type Pool struct {
	mod    *Module
	cfg    PoolConfig
	limits Limits
	log    *slog.Logger
	obs    CallObserver

	sem  chan struct{}
	stop chan struct{}
	done chan struct{}

	created, discarded, calls, messages atomic.Int64

	mu     sync.Mutex
	idle   []*pooled // LIFO: the warmest instance first
	live   int
	closed bool
}

type pooled struct {
	inst     instance
	lastUsed time.Time
}

// instance is one live guest: an ABI v1 module (abiInstance, call.go) or
// an Extism plugin (extismInstance, extism.go).
type instance interface {
	// state is the instance's call state, which its host functions read;
	// each instance has its own, reused from call to call.
	state() *callState
	// run processes st's batch; an error means the instance is broken.
	run(ctx context.Context, st *callState) error
	// memoryPages is the size of the instance's linear memory in 64 KiB
	// pages.
	memoryPages() uint32
	// close frees the instance.
	close(ctx context.Context)
}

// NewPool makes a pool and starts one instance at once, so that a module
// that cannot instantiate (or whose initialisation fails) is reported here.
func (m *Module) NewPool(cfg PoolConfig) (*Pool, error) {
	cfg.Config = append([]byte(nil), cfg.Config...)
	if cfg.Tenant == "" {
		return nil, errors.New("host: pool: tenant is required")
	}
	p := &Pool{
		mod:    m,
		cfg:    cfg,
		limits: cfg.Limits.withDefaults(m.rt.cfg.MaxMemoryPages),
		log: m.rt.log.With("module", m.spec.Name, "version", m.spec.Version,
			"tenant", cfg.Tenant, "integration", cfg.Integration),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	p.sem = make(chan struct{}, p.limits.MaxInstances)
	inst, err := p.newInstance(context.Background())
	if err != nil {
		return nil, err
	}
	p.live = 1
	p.idle = append(p.idle, &pooled{inst: inst, lastUsed: time.Now()})
	p.obs = m.rt.obs.Pool(m.label())
	m.rt.mu.Lock()
	if m.rt.pools != nil {
		m.rt.pools[p] = struct{}{}
	}
	m.rt.mu.Unlock()
	go p.reclaimLoop()
	return p, nil
}

// Stats reports the pool's instances.
type Stats struct {
	// Live counts instances, busy or idle.
	Live int
	// Idle counts warm instances waiting for work.
	Idle int
	// IdleMemoryBytes is the linear memory held by the idle instances.
	IdleMemoryBytes int64
	// Created counts instances started since the pool was made.
	Created int64
	// Discarded counts instances thrown away after a trap, an exit, a
	// deadline or a memory overrun (not idle reclaims).
	Discarded int64
	// Calls and Messages count guest calls and the messages they carried.
	Calls, Messages int64
}

// Stats returns the current instance counts.
func (p *Pool) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := Stats{Live: p.live, Idle: len(p.idle), Created: p.created.Load(), Discarded: p.discarded.Load(),
		Calls: p.calls.Load(), Messages: p.messages.Load()}
	for _, pi := range p.idle {
		s.IdleMemoryBytes += int64(pi.inst.memoryPages()) * 65536
	}
	return s
}

// Process runs the step over msgs and returns one Result per input, in
// order. A failure of one message is in its Result; err is non-nil only
// when the pool cannot run at all (closed, ctx done, or no instance could
// be created), and then no message was processed.
//
// A trap, a deadline overrun, an exit or running out of memory discards the
// instance; the message being processed and those after it in the batch
// get StatusRetryable, earlier ones keep their results.
func (p *Pool) Process(ctx context.Context, msgs []Message) ([]Result, error) {
	results := make([]Result, len(msgs))
	if len(msgs) == 0 {
		return results, nil
	}
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("host: waiting for an instance: %w", ctx.Err())
	}
	defer func() { <-p.sem }()
	for start := 0; start < len(msgs); start += p.limits.MaxBatch {
		end := min(start+p.limits.MaxBatch, len(msgs))
		if err := p.call(ctx, msgs[start:end], results[start:end]); err != nil {
			if start == 0 {
				return nil, err
			}
			for i := start; i < len(msgs); i++ {
				results[i] = Result{Status: StatusRetryable, Error: err.Error()}
			}
			return results, nil
		}
	}
	return results, nil
}

// call runs one guest call over msgs, then runs again, in a call of their
// own, the messages it deferred because other messages of the batch had
// spent the call's output budget (ABI.md §4.1). An error means that no
// instance could be had for the first call, and nothing was processed.
//
// It ends: a message is deferred only while another holds outputs, and
// the last one to hold them when the call ends is not deferred, so each
// new call has fewer messages than the one before.
func (p *Pool) call(ctx context.Context, msgs []Message, results []Result) error {
	inst, err := p.acquire(ctx)
	if err != nil {
		return err
	}
	st := inst.inst.state()
	st.begin(msgs, results)
	start := time.Now()
	err = inst.inst.run(ctx, st)
	took := time.Since(start)
	p.calls.Add(1)
	p.messages.Add(int64(len(msgs)))
	broken := err != nil
	if err != nil {
		st.failRest(err)
		p.log.Warn("instance discarded", "err", err)
	} else if pages := inst.inst.memoryPages(); pages > p.limits.MaxMemoryPages {
		broken = true
		p.log.Warn("instance discarded: memory above limit", "pages", pages, "limit", p.limits.MaxMemoryPages)
	}
	p.obs.Call(len(msgs), took, callOutcome(err, broken))
	deferred := st.finish()
	p.release(inst, broken)
	if len(deferred) == 0 || len(deferred) == len(msgs) {
		// All deferred cannot happen (see above); if it did, the results
		// stay retryable rather than loop.
		return nil
	}
	again := make([]Message, len(deferred))
	res := make([]Result, len(deferred))
	for k, i := range deferred {
		again[k] = msgs[i]
	}
	if err := p.call(ctx, again, res); err != nil {
		for k := range res {
			res[k] = Result{Status: StatusRetryable, Error: fmt.Sprintf("%s: %v", errDeferred, err)}
		}
	}
	for k, i := range deferred {
		results[i] = res[k]
	}
	return nil
}

func (p *Pool) acquire(ctx context.Context) (*pooled, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, errors.New("host: pool closed")
	}
	if n := len(p.idle); n > 0 {
		pi := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return pi, nil
	}
	p.live++
	p.mu.Unlock()
	inst, err := p.newInstance(ctx)
	if err != nil {
		p.mu.Lock()
		p.live--
		p.mu.Unlock()
		return nil, err
	}
	return &pooled{inst: inst}, nil
}

func (p *Pool) release(pi *pooled, broken bool) {
	p.mu.Lock()
	if broken || p.closed {
		p.live--
		p.mu.Unlock()
		if broken {
			p.discarded.Add(1)
		}
		pi.inst.close(context.Background())
		return
	}
	pi.lastUsed = time.Now()
	p.idle = append(p.idle, pi)
	p.mu.Unlock()
}

func (p *Pool) newInstance(ctx context.Context) (instance, error) {
	var inst instance
	var err error
	if p.mod.extism != nil {
		inst, err = p.newExtismInstance(ctx)
	} else {
		inst, err = p.newABIInstance(ctx)
	}
	if err == nil {
		p.created.Add(1)
	}
	return inst, err
}

func (p *Pool) reclaimLoop() {
	defer close(p.done)
	t := time.NewTicker(max(p.limits.IdleTimeout/2, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case now := <-t.C:
			p.reclaim(now)
		}
	}
}

// reclaim closes instances idle since before now minus IdleTimeout and
// returns how many it closed. reclaimLoop calls it periodically; tests call
// it through export_test.go.
func (p *Pool) reclaim(now time.Time) int {
	p.mu.Lock()
	var old []*pooled
	keep := p.idle[:0]
	for _, pi := range p.idle { // oldest first
		if now.Sub(pi.lastUsed) >= p.limits.IdleTimeout {
			old = append(old, pi)
		} else {
			keep = append(keep, pi)
		}
	}
	p.idle = keep
	p.live -= len(old)
	p.mu.Unlock()
	for _, pi := range old {
		pi.inst.close(context.Background())
	}
	return len(old)
}

// Close closes idle instances and makes later Process calls fail; busy
// instances close when their call returns.
func (p *Pool) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	idle := p.idle
	p.idle = nil
	p.live -= len(idle)
	p.mu.Unlock()
	p.mod.rt.mu.Lock()
	delete(p.mod.rt.pools, p)
	p.mod.rt.mu.Unlock()
	close(p.stop)
	<-p.done
	for _, pi := range idle {
		pi.inst.close(context.Background())
	}
	return nil
}

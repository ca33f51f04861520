package runtime

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrsky/vrsky/platform/blob"
	"github.com/vrsky/vrsky/platform/egress"
	"github.com/vrsky/vrsky/platform/natsx"
	"github.com/vrsky/vrsky/platform/store"
)

// Config wires an Engine. Conn, Store and Catalog are required.
type Config struct {
	// Conn is the NATS connection the pipelines run on.
	Conn *natsx.Conn
	// Store holds the integrations and their desired state.
	Store store.Store
	// Catalog resolves the connectors that specs name.
	Catalog *Catalog
	// Metrics receives the data-plane series; nil creates unregistered ones.
	Metrics *Metrics
	// ReconcileInterval is how often the engine compares what runs here
	// with the store (other nodes may have changed it). Zero means 5s.
	ReconcileInterval time.Duration
	// Logger; nil uses slog.Default().
	Logger *slog.Logger
	// DisableTracking turns message tracking off (GET .../messages/{id}).
	DisableTracking bool
	// Blobs stores claim-checked payloads; nil keeps every payload inline
	// (and bounded by the NATS max payload).
	Blobs blob.Store
	// ClaimThreshold is the largest payload that travels inline; zero
	// means DefaultClaimThreshold (256 KiB).
	ClaimThreshold int
	// StreamMaxMsgs and StreamMaxBytes bound each integration's stream;
	// zero means DefaultStreamMaxMsgs and DefaultStreamMaxBytes. A tenant's
	// MaxStorageBytes quota lowers the byte bound.
	StreamMaxMsgs  int64
	StreamMaxBytes int64
	// SecretEnvPrefix, when set, limits the environment variables a
	// tenant's connector configs may name (the *_env fields) to those
	// starting with <prefix><TENANT>_ (the tenant's name in upper case,
	// '-' as '_'), so a tenant can neither read the server's own settings
	// (its database URL, its cloud credentials) nor another tenant's
	// secrets. Empty allows any variable: only for single-tenant servers.
	SecretEnvPrefix string
	// LeaseTTL is how long a singleton source (schedule, file, CDC) whose
	// node died waits before another node runs it; zero means
	// DefaultLeaseTTL. Every node of a deployment must use the same.
	LeaseTTL time.Duration
	// Egress is what outbound connectors may connect to (Env.Egress);
	// the zero value is egress.Private.
	Egress egress.Policy
}

// Engine runs the integrations whose desired state is "running" on this
// node. Several nodes may run the same integration: they share its durable
// consumers, so each message is handled once.
type Engine struct {
	conn     *natsx.Conn
	store    store.Store
	catalog  *Catalog
	hooks    *Hooks
	metrics  *Metrics
	log      *slog.Logger
	interval time.Duration
	tracker  *tracker // nil when tracking is off
	claims   *claims  // nil without an object store
	egress   egress.Policy
	limits   struct{ maxMsgs, maxBytes int64 }
	state    jetstream.KeyValue // connector checkpoints
	leases   jetstream.KeyValue // singleton-source leases
	node     string             // this engine's identity in leases
	leaseTTL time.Duration
	envPref  string

	mu    sync.Mutex
	pipes map[string]*entry      // by tenant/name
	locks map[string]*sync.Mutex // serialise Apply/stop per integration
}

// entry is an integration this node runs or failed to start.
type entry struct {
	rev  uint64
	pipe *pipeline // nil when start failed
	err  error
}

// NewEngine returns an engine; Run starts its reconcile loop.
func NewEngine(cfg Config) (*Engine, error) {
	if cfg.Conn == nil || cfg.Store == nil || cfg.Catalog == nil {
		return nil, errors.New("runtime: Conn, Store and Catalog are required")
	}
	e := &Engine{
		conn:     cfg.Conn,
		store:    cfg.Store,
		catalog:  cfg.Catalog,
		hooks:    NewHooks(),
		metrics:  cfg.Metrics,
		log:      cfg.Logger,
		interval: cfg.ReconcileInterval,
		egress:   cfg.Egress,
		pipes:    map[string]*entry{},
		locks:    map[string]*sync.Mutex{},
	}
	if e.metrics == nil {
		e.metrics = NewMetrics(nil)
	}
	if e.log == nil {
		e.log = slog.Default()
	}
	if e.interval == 0 {
		e.interval = 5 * time.Second
	}
	e.envPref = cfg.SecretEnvPrefix
	e.limits.maxMsgs, e.limits.maxBytes = cfg.StreamMaxMsgs, cfg.StreamMaxBytes
	if e.limits.maxMsgs <= 0 {
		e.limits.maxMsgs = DefaultStreamMaxMsgs
	}
	if e.limits.maxBytes <= 0 {
		e.limits.maxBytes = DefaultStreamMaxBytes
	}
	{
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var err error
		if e.state, err = newStateBucket(ctx, cfg.Conn.JS, cfg.Conn.Replicas); err != nil {
			return nil, err
		}
		e.leaseTTL = cmp.Or(cfg.LeaseTTL, DefaultLeaseTTL)
		if e.leases, err = newLeaseBucket(ctx, cfg.Conn.JS, cfg.Conn.Replicas, e.leaseTTL); err != nil {
			return nil, err
		}
		e.node = NewID()
	}
	if !cfg.DisableTracking {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		t, err := newTracker(ctx, cfg.Conn.JS, cfg.Conn.Replicas)
		if err != nil {
			return nil, err
		}
		e.tracker = t
	}
	if cfg.Blobs != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := newClaims(ctx, cfg.Conn.JS, cfg.Conn.Replicas, cfg.Blobs, cfg.ClaimThreshold)
		if err != nil {
			return nil, err
		}
		e.claims = c
	}
	return e, nil
}

// Hooks is the webhook router the API serves /hooks from.
func (e *Engine) Hooks() *Hooks { return e.hooks }

// Catalog is the connector catalogue specs are checked against.
func (e *Engine) Catalog() *Catalog { return e.catalog }

// ParseSpec parses and validates a spec against the engine's catalogue.
func (e *Engine) ParseSpec(doc []byte) (*Spec, error) { return ParseSpec(doc, e.catalog) }

// ParseSpecFor is ParseSpec for tenant: connectors private to another
// tenant are unknown to it.
func (e *Engine) ParseSpecFor(tenant string, doc []byte) (*Spec, error) {
	return ParseSpecFor(doc, e.catalog, tenant)
}

// Run reconciles at once (restarting what was running before a restart),
// then periodically, until ctx ends; then it stops every pipeline,
// draining in-flight work.
func (e *Engine) Run(ctx context.Context) error {
	t := time.NewTicker(e.interval)
	defer t.Stop()
	for {
		if err := e.Reconcile(ctx); err != nil && ctx.Err() == nil {
			e.log.Warn("reconcile", "err", err)
		}
		select {
		case <-ctx.Done():
			e.StopAll()
			e.tracker.close()
			return nil
		case <-t.C:
		}
	}
}

// Reconcile brings this node in line with the store: start what should run,
// restart what changed, stop what should not run or is gone.
func (e *Engine) Reconcile(ctx context.Context) error {
	list, err := e.store.ListIntegrations(ctx, "")
	if err != nil {
		return fmt.Errorf("list integrations: %w", err)
	}
	want := make(map[string]bool, len(list))
	for _, in := range list {
		want[key(in.Tenant, in.Name)] = in.Desired == store.StateRunning
		e.Apply(in)
	}
	e.mu.Lock()
	var gone []string
	for k := range e.pipes {
		if !want[k] {
			gone = append(gone, k)
		}
	}
	e.mu.Unlock()
	for _, k := range gone {
		e.stopKey(k)
	}
	return nil
}

func key(tenant, name string) string { return tenant + "/" + name }

// lock serialises changes to one integration: the reconcile loop and API
// calls may race to start or stop it.
func (e *Engine) lock(k string) func() {
	e.mu.Lock()
	l := e.locks[k]
	if l == nil {
		l = &sync.Mutex{}
		e.locks[k] = l
	}
	e.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// Apply starts, restarts or stops one integration to match its stored
// state. A start that fails is recorded and retried at the next reconcile.
func (e *Engine) Apply(in store.Integration) {
	k := key(in.Tenant, in.Name)
	defer e.lock(k)()
	e.mu.Lock()
	cur := e.pipes[k]
	e.mu.Unlock()
	if in.Desired != store.StateRunning {
		e.stopLocked(k)
		return
	}
	if cur != nil && cur.rev == in.Revision && cur.pipe != nil && cur.pipe.srcErr.Load() == nil {
		return // running the current spec
	}
	e.stopLocked(k)
	spec, err := ParseSpec(in.Spec, e.catalog)
	var p *pipeline
	if err == nil {
		p, err = e.startPipeline(in.Tenant, spec, in.Revision)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if err != nil {
		if cur == nil || cur.err == nil || cur.err.Error() != err.Error() {
			e.log.Error("integration failed to start", "tenant", in.Tenant, "integration", in.Name, "err", err)
		}
		e.pipes[k] = &entry{rev: in.Revision, err: err}
		return
	}
	e.log.Info("integration running", "tenant", in.Tenant, "integration", in.Name, "revision", in.Revision)
	e.pipes[k] = &entry{rev: in.Revision, pipe: p}
}

func (e *Engine) stopKey(k string) {
	defer e.lock(k)()
	e.stopLocked(k)
}

func (e *Engine) stopLocked(k string) {
	e.mu.Lock()
	cur := e.pipes[k]
	delete(e.pipes, k)
	e.mu.Unlock()
	if cur != nil && cur.pipe != nil {
		cur.pipe.stop()
		e.log.Info("integration stopped", "integration", k)
	}
}

// Stop stops the integration on this node, draining in-flight work.
func (e *Engine) Stop(tenant, name string) { e.stopKey(key(tenant, name)) }

// StopAll stops every pipeline on this node.
func (e *Engine) StopAll() {
	e.mu.Lock()
	keys := make([]string, 0, len(e.pipes))
	for k := range e.pipes {
		keys = append(keys, k)
	}
	e.mu.Unlock()
	var wg sync.WaitGroup
	for _, k := range keys {
		wg.Go(func() { e.stopKey(k) })
	}
	wg.Wait()
}

// Remove stops the integration and deletes its stream and consumers, and
// with them every message still waiting in it, and its connectors'
// checkpoints. Connectors with a Remove hook release what they hold
// outside VRSky (spec may be nil when the stored spec no longer parses;
// the hooks are then skipped). Its dead letters stay in the tenant's DLQ
// until they expire.
func (e *Engine) Remove(ctx context.Context, tenant, name string, spec *Spec) error {
	e.Stop(tenant, name)
	if spec != nil {
		var errs []error
		spec.each(func(kind Kind, cs *ConnectorSpec, stage, _ string) {
			if x, ok := e.catalog.LookupKind(kind, cs.Connector); ok && x.Remove != nil {
				if err := x.Remove(ctx, cs.Config, e.env(tenant, name, stage)); err != nil {
					errs = append(errs, fmt.Errorf("%s %s: %w", kind, cs.Connector, err))
				}
			}
		})
		if err := errors.Join(errs...); err != nil {
			return fmt.Errorf("remove %s/%s: %w", tenant, name, err)
		}
	}
	err := e.conn.JS.DeleteStream(ctx, streamName(tenant, name))
	if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("delete stream of %s/%s: %w", tenant, name, err)
	}
	if err := purgeState(ctx, e.state, tenant, name); err != nil {
		return err
	}
	return nil
}

// CheckSpec runs each connector's Check against the world (the table
// exists, its columns match). It returns a *SpecError naming the field.
func (e *Engine) CheckSpec(ctx context.Context, tenant string, spec *Spec) error {
	var first error
	spec.each(func(kind Kind, cs *ConnectorSpec, stage, field string) {
		if first != nil {
			return
		}
		if err := e.checkSecretEnv(tenant, cs.Config, field+".config"); err != nil {
			first = err
			return
		}
		x, ok := e.catalog.LookupKind(kind, cs.Connector)
		if !ok || x.Check == nil {
			return
		}
		err := x.Check(ctx, cs.Config, e.env(tenant, spec.Name, stage))
		if err == nil {
			return
		}
		var fe *SpecError
		if errors.As(err, &fe) {
			first = &SpecError{Field: field + ".config" + fieldSuffix(fe.Field), Reason: fe.Reason}
			return
		}
		first = specErr(field+".config", "%v", err)
	})
	return first
}

// SecretEnvScope is the prefix of the environment variables tenant may
// name in its configs under prefix (see Config.SecretEnvPrefix).
func SecretEnvScope(prefix, tenant string) string {
	return prefix + strings.ToUpper(strings.ReplaceAll(tenant, "-", "_")) + "_"
}

// checkSecretEnv refuses a *_env field naming a variable outside the
// tenant's scope, anywhere in a connector's config.
func (e *Engine) checkSecretEnv(tenant string, cfg json.RawMessage, field string) error {
	if e.envPref == "" || len(cfg) == 0 {
		return nil
	}
	var doc any
	if json.Unmarshal(cfg, &doc) != nil {
		return nil // the schema check reports it
	}
	scope := SecretEnvScope(e.envPref, tenant)
	var walk func(v any, path string) error
	walk = func(v any, path string) error {
		switch v := v.(type) {
		case map[string]any:
			keys := make([]string, 0, len(v))
			for k := range v {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				name, isStr := v[k].(string)
				if strings.HasSuffix(k, "_env") && isStr && !strings.HasPrefix(name, scope) {
					return specErr(path+"."+k, "environment variable %q is not one tenant %s may use: its name must start with %s", name, tenant, scope)
				}
				if err := walk(v[k], path+"."+k); err != nil {
					return err
				}
			}
		case []any:
			for i, x := range v {
				if err := walk(x, fmt.Sprintf("%s[%d]", path, i)); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return walk(doc, field)
}

// fieldSuffix joins a connector's own field name onto "....config".
func fieldSuffix(f string) string {
	switch {
	case f == "":
		return ""
	case f[0] == '[':
		return f
	default:
		return "." + f
	}
}

// env is what a connector of tenant/integration named stage gets.
func (e *Engine) env(tenant, integration, stage string) Env {
	return Env{
		Tenant: tenant, Integration: integration, Name: stage, Hooks: e.hooks,
		Logger: e.log.With("tenant", tenant, "integration", integration, "connector", stage),
		State:  &kvState{kv: e.state, prefix: stateScope(tenant, integration, stage)},
		Egress: e.egress,
	}
}

// Status is what an integration is doing, as this node sees it.
type Status struct {
	// State is "running", "stopped" or "error".
	State string `json:"state"`
	// Error says why the integration is in state "error".
	Error string `json:"error,omitempty"`
	// SourceStandby: the source is a singleton that runs on another node
	// (this node takes over if that one goes).
	SourceStandby bool `json:"source_standby,omitempty"`
	// Ingested counts messages this node's source made durable since it started.
	Ingested uint64 `json:"ingested"`
	// Pending counts messages waiting for the steps (input subject).
	Pending uint64 `json:"pending"`
	// Sinks has one entry per sink.
	Sinks []SinkStatus `json:"sinks"`
}

// SinkStatus counts one sink's work.
type SinkStatus struct {
	Name string `json:"name"`
	// Delivered, Failures and DeadLettered count since this node started it.
	Delivered    uint64 `json:"delivered"`
	Failures     uint64 `json:"failures"`
	DeadLettered uint64 `json:"dead_lettered"`
	// Pending counts messages waiting for this sink, cluster-wide.
	Pending uint64 `json:"pending"`
	// InFlight counts messages handed out but not yet acknowledged.
	InFlight uint64 `json:"in_flight"`
}

// Status reports an integration's state and counters. Pending counts come
// from JetStream and are cluster-wide.
func (e *Engine) Status(ctx context.Context, tenant string, spec *Spec) Status {
	e.mu.Lock()
	cur := e.pipes[key(tenant, spec.Name)]
	e.mu.Unlock()
	st := Status{State: store.StateStopped}
	var p *pipeline
	switch {
	case cur == nil:
	case cur.err != nil:
		st.State, st.Error = "error", cur.err.Error()
	default:
		p = cur.pipe
		st.State = store.StateRunning
		if msg := p.srcErr.Load(); msg != nil {
			st.State, st.Error = "error", "source: "+*msg
		}
		st.Ingested = p.ingested.Load()
		st.SourceStandby = !p.leading.Load()
	}
	stream := streamName(tenant, spec.Name)
	if ci, err := e.conn.JS.Consumer(ctx, stream, inConsumerName); err == nil {
		if info, err := ci.Info(ctx); err == nil {
			st.Pending = info.NumPending + uint64(info.NumAckPending)
		}
	}
	for _, sk := range spec.Sinks {
		ss := SinkStatus{Name: sk.Name}
		if p != nil {
			for _, r := range p.sinks {
				if r.spec.Name == sk.Name {
					ss.Delivered, ss.Failures, ss.DeadLettered = r.delivered.Load(), r.failures.Load(), r.deadLettered.Load()
				}
			}
		}
		if ci, err := e.conn.JS.Consumer(ctx, stream, sinkConsumerName(sk.Name)); err == nil {
			if info, err := ci.Info(ctx); err == nil {
				ss.Pending, ss.InFlight = info.NumPending, uint64(info.NumAckPending)
			}
		}
		st.Sinks = append(st.Sinks, ss)
	}
	return st
}

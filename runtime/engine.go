package runtime

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"github.com/vrsky/vrsky/platform/blob"
	"github.com/vrsky/vrsky/platform/egress"
	"github.com/vrsky/vrsky/platform/natsx"
	"github.com/vrsky/vrsky/platform/store"
	"github.com/vrsky/vrsky/platform/tenancy"
)

// Config wires an Engine. Conn, Store and Catalog are required.
type Config struct {
	// Conn is the platform account's NATS connection: the engine's own
	// buckets (checkpoints, leases, message tracking, claim-checks) live
	// there. Each tenant's streams live in the tenant's own account,
	// reached through Tenancy.
	Conn *natsx.Conn
	// Tenancy hands out tenants' connections; nil makes a
	// platform/tenancy Manager on Conn and Store.
	Tenancy Tenancy
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
	// zero means DefaultStreamMaxMsgs and DefaultStreamMaxBytes. A tenant
	// with a MaxStorageBytes quota has no byte bound per stream: its
	// account bounds all its streams together.
	StreamMaxMsgs  int64
	StreamMaxBytes int64
	// SecretEnvPrefix, when set, limits the environment variables a
	// tenant's connector configs may name (the *_env fields) to those
	// starting with <prefix><TENANT>__ (the tenant's name in upper case,
	// '-' as '_', then two underscores: see SecretEnvScope), so a tenant can neither read the server's own settings
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
	// DedicatedAboveRate and DedicatedAboveBytes, when positive, move a
	// shared tenant to a dedicated NATS instance once this node ingests
	// more than that many of its messages per second (between two
	// reconciles), or once its account stores more than that many bytes.
	// Zero leaves placement to the API.
	DedicatedAboveRate  int
	DedicatedAboveBytes int64
	// StepKVMaxBytes bounds each integration's step KV bucket (Wasm
	// steps' kv_* functions); zero means DefaultStepKVMaxBytes. A tenant
	// with a MaxStorageBytes quota has its account's bound instead.
	StepKVMaxBytes int64
	// Tracing, when set, receives a span for each stage of each message
	// (trace.go); nil records none, and messages only carry their trace
	// context in their headers.
	Tracing trace.TracerProvider
}

// Tenancy hands out each tenant's NATS connections, as users of the
// tenant's own account (platform/tenancy's Manager implements it).
type Tenancy interface {
	// Conn is the tenant's data-plane connection: its integrations'
	// streams, consumers, dead letters and step KV buckets.
	Conn(ctx context.Context, tenant string) (*natsx.Conn, error)
	// GuestNATS is the connection the Wasm host's NATS functions use for
	// the tenant's steps: a user limited to the subjects guests may use.
	GuestNATS(ctx context.Context, tenant string) (*nats.Conn, error)
}

// Engine runs the integrations whose desired state is "running" on this
// node. Several nodes may run the same integration: they share its durable
// consumers, so each message is handled once.
type Engine struct {
	conn     *natsx.Conn // the platform account's
	tenants  Tenancy
	ownTen   *tenancy.Manager // made by NewEngine, closed by Run
	rates    rates            // tenants' rate quotas on this node
	missing  map[string]bool  // tenants held but not in the store at the last reconcile (e.mu)
	mvMu     sync.RWMutex
	followMu sync.Mutex // serialises followPlacements
	auto     struct {
		mu    sync.Mutex // Reconcile may run from more than one goroutine
		rate  int
		bytes int64
		last  autoState
	} // automatic placement (placement.go), used by the reconcile loop only
	moves    moveState // tenants being moved (placement.go)
	store    store.Store
	catalog  *Catalog
	hooks    *Hooks
	metrics  *Metrics
	log      *slog.Logger
	interval time.Duration
	tracker  *tracker     // nil when tracking is off
	tracer   trace.Tracer // nil when tracing is off
	claims   *claims      // nil without an object store
	egress   egress.Policy
	limits   struct{ maxMsgs, maxBytes, stepKVBytes int64 }
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
	tenant, name string
	rev          uint64
	pipe         *pipeline // nil when start failed
	err          error
}

// current reports whether e already does what in asks: nothing to run,
// or a pipeline of in's revision whose source and input stage are up (or
// whose steps the retry policy gave up on: that revision is not tried
// again).
func (e *entry) current(in store.Integration) bool {
	if in.Desired != store.StateRunning {
		return e == nil
	}
	return e != nil && e.rev == in.Revision && e.pipe != nil &&
		e.pipe.srcErr.Load() == nil && e.pipe.inErr.Load() == nil
}

// applyTimeout bounds the store read behind Apply.
const applyTimeout = 10 * time.Second

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
	if cfg.Tracing != nil {
		e.tracer = cfg.Tracing.Tracer(tracerName)
	}
	e.metrics.queues.bind(e)
	if e.log == nil {
		e.log = slog.Default()
	}
	e.auto.rate, e.auto.bytes = cfg.DedicatedAboveRate, cfg.DedicatedAboveBytes
	e.tenants = cfg.Tenancy
	if e.tenants == nil {
		e.ownTen = tenancy.New(cfg.Conn, cfg.Store, e.log.With("component", "tenancy"))
		e.tenants = e.ownTen
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
	e.limits.stepKVBytes = cmp.Or(max(cfg.StepKVMaxBytes, 0), DefaultStepKVMaxBytes)
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

// forgetDeletedTenants closes this node's connections of tenants another
// node deleted (whose accounts are gone), when the Tenancy can say which
// it holds. A tenant is forgotten once it has been missing from the store
// for two reconciles in a row, so that a delete in progress here (record
// first, streams after: see the API) keeps its connection meanwhile.
func (e *Engine) forgetDeletedTenants(ctx context.Context) {
	f, ok := e.tenants.(interface {
		Tenants() []string
		Forget(tenant string)
	})
	if !ok {
		return
	}
	held := f.Tenants()
	if len(held) == 0 {
		return
	}
	ts, err := e.store.ListTenants(ctx)
	if err != nil {
		return
	}
	live := make(map[string]bool, len(ts))
	for _, t := range ts {
		live[t.Name] = true
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	missing := map[string]bool{}
	for _, name := range held {
		running := false
		for _, ent := range e.pipes {
			running = running || ent.tenant == name
		}
		if live[name] || running {
			continue
		}
		if e.missing[name] {
			f.Forget(name)
			continue
		}
		missing[name] = true
	}
	e.missing = missing
}

// Tenants is what hands out the tenants' connections (Config.Tenancy, or
// the Manager NewEngine made).
func (e *Engine) Tenants() Tenancy { return e.tenants }

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
			if e.ownTen != nil {
				e.ownTen.Close()
			}
			return nil
		case <-t.C:
		}
	}
}

// Reconcile brings this node in line with the store: start what should run,
// restart what changed, stop what should not run or is gone.
func (e *Engine) Reconcile(ctx context.Context) error {
	e.followPlacements(ctx)
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
	var gone []store.Integration
	for k, ent := range e.pipes {
		if !want[k] {
			gone = append(gone, store.Integration{Tenant: ent.tenant, Name: ent.name, Desired: store.StateStopped})
		}
	}
	e.mu.Unlock()
	// The list may be older than what runs here (an API call started an
	// integration after it was taken): Apply checks with the store first.
	for _, in := range gone {
		e.Apply(in)
	}
	e.forgetDeletedTenants(ctx)
	e.restarted(nil) // every integration was applied: the switched tenants run again
	e.autoPlace(ctx)
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
// state. in says what the caller saw; before it changes what runs, Apply
// reads the integration's current record from the store and acts on that,
// so that a stale copy (a reconcile pass lists every integration before it
// applies them, and an API call may stop or delete one meanwhile) can
// neither restart an integration that was stopped or deleted nor stop one
// that was started. When the store cannot be read nothing changes: the
// next reconcile tries again.
//
// Apply returns once the integration's stream, sinks and source are up:
// its steps are built in the background (see pipeline.buildSteps) and
// Status reports how that goes. A start that fails otherwise is recorded
// and retried at the next reconcile.
func (e *Engine) Apply(in store.Integration) {
	k := key(in.Tenant, in.Name)
	defer e.lock(k)()
	e.mu.Lock()
	cur := e.pipes[k]
	e.mu.Unlock()
	if e.isHeld(in.Tenant) { // being moved: nothing of it runs (placement.go)
		e.stopLocked(k)
		return
	}
	if cur.current(in) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), applyTimeout)
	fresh, err := e.store.GetIntegration(ctx, in.Tenant, in.Name)
	cancel()
	switch {
	case errors.Is(err, store.ErrNotFound):
		e.stopLocked(k)
		return
	case err != nil:
		e.log.Warn("integration not applied: its record could not be read", "tenant", in.Tenant, "integration", in.Name, "err", err)
		return
	}
	in = fresh
	if cur.current(in) {
		return
	}
	e.stopLocked(k)
	if in.Desired != store.StateRunning {
		return
	}
	spec, err := ParseSpec(in.Spec, e.catalog)
	var p *pipeline
	if err == nil {
		p, err = e.startPipeline(in.Tenant, spec, in.Revision)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	ent := &entry{tenant: in.Tenant, name: in.Name, rev: in.Revision, pipe: p, err: err}
	if err != nil {
		if cur == nil || !sameFailure(cur.err, err) {
			e.log.Error("integration failed to start", "tenant", in.Tenant, "integration", in.Name, "err", err)
		}
		ent.pipe = nil
	} else {
		e.log.Info("integration running", "tenant", in.Tenant, "integration", in.Name, "revision", in.Revision)
	}
	e.pipes[k] = ent
}

// sameFailure reports whether err is the failure prev was. A start that
// fails is tried again at every reconcile; each new failure is logged,
// the same one again is not. Errors are compared as values (the same
// wrapping of the same causes), not by their texts.
func sameFailure(prev, err error) bool {
	return prev != nil && reflect.DeepEqual(prev, err)
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
		e.log.Info("integration stopped", "tenant", cur.tenant, "integration", cur.name)
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
// with them every message still waiting in it, its connectors'
// checkpoints, and what its steps stored (see storage.go): its step KV
// bucket, its payload objects with their claim-check markers, and its
// dead letters, which name those objects. Connectors with a Remove hook
// release what they hold outside VRSky (spec may be nil when the stored
// spec no longer parses; the hooks are then skipped). Delete the
// integration's record first: Apply then never starts it again, on any
// node.
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
	conn, err := e.tenants.Conn(ctx, tenant)
	if err != nil {
		return fmt.Errorf("remove %s/%s: %w", tenant, name, err)
	}
	err = conn.JS.DeleteStream(ctx, streamName(tenant, name))
	if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("delete stream of %s/%s: %w", tenant, name, err)
	}
	if err := purgeState(ctx, e.state, tenant, name); err != nil {
		return err
	}
	return e.removeStorage(ctx, tenant, name)
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
// name in its configs under prefix (see Config.SecretEnvPrefix):
// prefix + the tenant's name in upper case with '-' as '_' + "__", e.g.
// VRSKY_SECRET_ACME_X__ for tenant acme-x.
//
// The scopes of two distinct tenants are never prefixes of one another,
// given what tenant names are (api: a DNS label without "--", so the
// mapped name u(t) is non-empty, is made of [A-Z0-9_], neither starts
// nor ends with '_' and holds no "__"; u is one-to-one). Suppose u(a)+"__"
// were a prefix of u(b)+"__" with a != b. Equal lengths would mean
// u(a) = u(b), so a = b. If u(a) is shorter by one, the last byte of u(b)
// is '_'; if by two or more, u(b) holds "__" at len(u(a)). Both are
// impossible, so a tenant's scope covers its own variables only: the
// single '_' that used to end it let tenant acme name acme-x's
// VRSKY_SECRET_ACME_X_TOKEN. TestSecretEnvScopesDisjoint checks this.
func SecretEnvScope(prefix, tenant string) string {
	return prefix + strings.ToUpper(strings.ReplaceAll(tenant, "-", "_")) + "__"
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
				if strings.HasSuffix(k, "_env") && isStr && (len(name) <= len(scope) || !strings.HasPrefix(name, scope)) {
					return specErr(path+"."+k, "environment variable %q is not one tenant %s may use: its name must start with %s and go on (e.g. %sTOKEN)", name, tenant, scope, scope)
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
// consumerInfo reads a consumer of the tenant's stream; nil when the
// tenant's NATS or the consumer cannot be reached.
func (e *Engine) consumerInfo(ctx context.Context, tenant, stream, consumer string) *jetstream.ConsumerInfo {
	c, err := e.tenants.Conn(ctx, tenant)
	if err != nil {
		return nil
	}
	ci, err := c.JS.Consumer(ctx, stream, consumer)
	if err != nil {
		return nil
	}
	info, err := ci.Info(ctx)
	if err != nil {
		return nil
	}
	return info
}

func (e *Engine) env(tenant, integration, stage string) Env {
	return Env{
		Tenant: tenant, Integration: integration, Name: stage, Hooks: e.hooks,
		Logger: e.log.With("tenant", tenant, "integration", integration, "connector", stage),
		State:  &kvState{kv: e.state, prefix: stateScope(tenant, integration, stage)},
		Egress: e.egress,
	}
}

// StateError is the state (Status.State) of an integration that should
// run but does not, or not whole: its start failed, its steps could not be
// built, or its source or input stage stopped. The other states are the
// store's desired states, store.StateRunning and store.StateStopped.
const StateError = "error"

// Status is what an integration is doing, as this node sees it.
type Status struct {
	// State is store.StateRunning, store.StateStopped or StateError
	// ("running", "stopped", "error"). An integration whose
	// steps are still being built is "running" (its source accepts
	// messages, which wait for the steps) until an attempt fails; it is
	// "error" while the next attempt waits, and stays "error" once the
	// retry policy is spent.
	State string `json:"state"`
	// Error says why the integration is in state "error".
	Error string `json:"error,omitempty"`
	// Starting: the steps are still being built (a Wasm module compiles
	// and instantiates); messages wait on the input subject meanwhile.
	Starting bool `json:"starting,omitempty"`
	// SourceStandby: the source is a singleton that runs on another node
	// (this node takes over if that one goes).
	SourceStandby bool `json:"source_standby,omitempty"`
	// IngestedTotal counts messages this node's source made durable since
	// it started: a running total.
	IngestedTotal uint64 `json:"ingested_total"`
	// Ingested is IngestedTotal, under its older name.
	Ingested uint64 `json:"ingested"`
	// Pending counts messages waiting for the steps (input subject).
	Pending uint64 `json:"pending"`
	// DLQDepth counts the integration's dead letters the DLQ holds now,
	// every stage's, cluster-wide: replaying or deleting one lowers it.
	DLQDepth uint64 `json:"dlq_depth"`
	// Sinks has one entry per sink.
	Sinks []SinkStatus `json:"sinks"`
}

// SinkStatus counts one sink's work.
type SinkStatus struct {
	Name string `json:"name"`
	// DeliveredTotal, FailuresTotal (failed attempts: each retry counts)
	// and DeadLetteredTotal (messages this sink sent to the DLQ, at stage
	// sink:<name> or route:<name>) are running totals since this node
	// started the sink; they never go down.
	DeliveredTotal    uint64 `json:"delivered_total"`
	FailuresTotal     uint64 `json:"failures_total"`
	DeadLetteredTotal uint64 `json:"dead_lettered_total"`
	// Delivered, Failures and DeadLettered are the same totals under
	// their older names (DeadLettered is not what the DLQ holds: that is
	// DLQDepth).
	Delivered    uint64 `json:"delivered"`
	Failures     uint64 `json:"failures"`
	DeadLettered uint64 `json:"dead_lettered"`
	// DLQDepth counts this sink's dead letters the DLQ holds now (stages
	// sink:<name> and route:<name>), cluster-wide.
	DLQDepth uint64 `json:"dlq_depth"`
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
		st.State, st.Error = StateError, cur.err.Error()
	default:
		p = cur.pipe
		st.State = store.StateRunning
		st.Starting = !p.stepsReady.Load() && !p.stepsGaveUp.Load()
		if msg := p.stepsErr.Load(); msg != nil {
			st.State, st.Error = StateError, "steps: "+*msg
		}
		if msg := p.inErr.Load(); msg != nil {
			st.State, st.Error = StateError, "input stage: "+*msg
		}
		if msg := p.srcErr.Load(); msg != nil {
			st.State, st.Error = StateError, "source: "+*msg
		}
		st.Ingested = p.ingested.Load()
		st.IngestedTotal = st.Ingested
		st.SourceStandby = !p.leading.Load()
	}
	stream := streamName(tenant, spec.Name)
	if info := e.consumerInfo(ctx, tenant, stream, inConsumerName); info != nil {
		st.Pending = info.NumPending + uint64(info.NumAckPending)
	}
	depths, err := e.dlqDepths(ctx, tenant)
	if err != nil {
		e.log.Debug("status: dead-letter counts", "tenant", tenant, "integration", spec.Name, "err", err)
	}
	for _, n := range depths[spec.Name] {
		st.DLQDepth += n
	}
	for _, sk := range spec.Sinks {
		ss := SinkStatus{Name: sk.Name}
		ss.DLQDepth = depths[spec.Name][sinkStage(sk.Name).String()] + depths[spec.Name][whenStage(sk.Name).String()]
		if p != nil {
			for _, r := range p.sinks {
				if r.spec.Name == sk.Name {
					ss.Delivered, ss.Failures, ss.DeadLettered = r.delivered.Load(), r.failures.Load(), r.deadLettered.Load()
					ss.DeliveredTotal, ss.FailuresTotal, ss.DeadLetteredTotal = ss.Delivered, ss.Failures, ss.DeadLettered
				}
			}
		}
		if info := e.consumerInfo(ctx, tenant, stream, sinkConsumerName(sk.Name)); info != nil {
			ss.Pending, ss.InFlight = info.NumPending, uint64(info.NumAckPending)
		}
		st.Sinks = append(st.Sinks, ss)
	}
	return st
}

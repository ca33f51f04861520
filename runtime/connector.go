package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vrsky/vrsky/platform/egress"
	"github.com/vrsky/vrsky/platform/schema"
)

// Kind says where in a pipeline a connector goes.
type Kind string

const (
	KindSource Kind = "source"
	KindStep   Kind = "step"
	KindSink   Kind = "sink"
)

// Source produces messages for one integration.
type Source interface {
	// Run emits messages until ctx is cancelled, then returns nil. An
	// error ends the source and is reported in the integration's status.
	Run(ctx context.Context, emit Emitter) error
}

// Binder is a Source that claims something before it serves, as a
// webhook claims its path. The pipeline calls Bind before the integration
// counts as running, so that a request right after the start finds it and
// a conflict fails the start; release is called once Run has returned.
// Singleton sources are not bound: they run only where they hold the lease.
type Binder interface {
	Bind(emit Emitter) (release func(), err error)
}

// Emitter makes a source's messages durable.
type Emitter interface {
	// Emit stores msg on the integration's input subject and returns once
	// JetStream has acknowledged it. msg.ID is assigned when empty and is
	// the dedup key: emitting the same ID twice within the dedup window
	// stores it once.
	Emit(ctx context.Context, msg *Message) error
	// EmitBatch stores msgs and returns once JetStream has acknowledged
	// every one of them. On error some may be durable and some not; emit
	// them again with the same IDs and the duplicates are dropped.
	EmitBatch(ctx context.Context, msgs []*Message) error
	// EmitWait stores msg like Emit, then waits until the steps have taken
	// it (passed, filtered or failed) or ctx ends. The message is durable
	// once the Emit part returns, so a timeout is not a failure: Outcome
	// is then "pending".
	EmitWait(ctx context.Context, msg *Message) (Outcome, error)
}

// Outcome is what the steps made of a message (see EmitWait).
type Outcome struct {
	// Status is StatusPassed, StatusFiltered, StatusFailed (the step
	// failure that will be retried or dead-lettered is in Error) or
	// "pending" when the wait ended first.
	Status string `json:"status"`
	// Error is the failing step's error, for StatusFailed.
	Error string `json:"error,omitempty"`
	// Stage names the failing step, for StatusFailed.
	Stage string `json:"stage,omitempty"`
}

// OutcomePending is the Outcome status of a wait that ended before the
// steps took the message.
const OutcomePending = "pending"

// Step transforms or filters a batch of messages.
type Step interface {
	// Process returns one result per input message, in order.
	Process(ctx context.Context, batch []*Message) ([]StepResult, error)
	// Close releases the step's resources.
	Close() error
}

// StepResult is what a step made of one input message: zero or more
// outputs (zero means the message is dropped), or an error. Wrap the error
// with Permanent when retrying cannot help.
type StepResult struct {
	Out []*Message
	Err error
}

// Sink delivers messages to a destination.
type Sink interface {
	// Deliver sends msg; nil means the destination has it. Wrap the error
	// with Permanent when retrying cannot help (e.g. a 400 from an API).
	Deliver(ctx context.Context, msg *Message) error
	// Close releases the sink's resources.
	Close() error
}

// BatchSink is a Sink that delivers several messages at once: a COPY into
// a table, a JSON array in one POST. The pipeline hands it up to
// Batching().MaxMessages messages, waiting at most MaxWait for a batch to
// fill, on Concurrency workers.
type BatchSink interface {
	Sink
	// DeliverBatch delivers msgs. It returns nil when every message was
	// delivered, or one error per message, in order (nil for a message
	// that was delivered), so one bad row fails alone.
	DeliverBatch(ctx context.Context, msgs []*Message) []error
	// Batching says how the pipeline should batch for this sink.
	Batching() Batching
}

// Batching tunes how a BatchSink is fed. Zero fields take defaults:
// 500 messages, 50ms, 4 workers.
type Batching struct {
	MaxMessages int
	MaxWait     time.Duration
	Concurrency int
}

// State is a small key-value store scoped to one connector of one
// integration, kept across restarts and shared by every node: a source's
// checkpoint (the file offset it reached, the last schedule tick).
// Keys are made of letters, digits, '-', '_', '=' and '.'.
type State interface {
	// Get returns the value of key, or ErrNoState.
	Get(ctx context.Context, key string) ([]byte, error)
	// Put stores value under key.
	Put(ctx context.Context, key string, value []byte) error
	// Delete removes key; a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// Keys lists the keys that exist.
	Keys(ctx context.Context) ([]string, error)
}

// ErrNoState: the key has no value.
var ErrNoState = errors.New("no state under this key")

// Env is what a connector may use besides its config.
type Env struct {
	// Tenant and Integration name the pipeline the connector runs in.
	Tenant, Integration string
	// Name is the step or sink name ("" for the source).
	Name string
	// Hooks routes webhook requests to sources that serve them.
	Hooks *Hooks
	// Logger is scoped to the connector.
	Logger *slog.Logger
	// State keeps the connector's checkpoints; nil outside a pipeline
	// that has one (Check and Remove get it too).
	State State
	// Egress is what the connector may connect to: outbound connectors
	// dial through Egress.Control.
	Egress egress.Policy

	// storage is the integration's step storage (Wasm steps' KV), set by
	// the pipeline for its steps only.
	storage *stepStorage
}

// Connector describes one connector in the catalogue and builds instances.
// Exactly one of NewSource, NewStep, NewSink is set, matching Kind.
type Connector struct {
	// Name is unique in the catalogue, e.g. "http-webhook".
	Name string
	// Version is the connector's version (semver).
	Version string
	// Kind is where the connector goes in a pipeline.
	Kind Kind
	// Description is one line for the catalogue.
	Description string
	// ConfigSchema is the JSON Schema of the connector's config.
	ConfigSchema json.RawMessage
	// Builtin marks native Go connectors (as opposed to Wasm modules).
	Builtin bool

	NewSource func(cfg json.RawMessage, env Env) (Source, error)
	NewStep   func(cfg json.RawMessage, env Env) (Step, error)
	NewSink   func(cfg json.RawMessage, env Env) (Sink, error)

	// Singleton runs the source on one node at a time: the node holding
	// the integration's lease. Sources that own something outside VRSky
	// (a replication slot, a directory, a schedule) set it; webhooks
	// don't, so every node serves them.
	Singleton bool
	// Check, when set, verifies a config against the world at create and
	// update time (the table exists, its columns match). A *SpecError
	// names the field; other errors are reported on "config".
	Check func(ctx context.Context, cfg json.RawMessage, env Env) error
	// Remove, when set, releases what the connector holds outside VRSky
	// when its integration is deleted (a replication slot).
	Remove func(ctx context.Context, cfg json.RawMessage, env Env) error

	// Owner, when set, is the only tenant that may use the connector (a
	// private module in the registry); to every other tenant it is an
	// unknown connector (ParseSpecFor).
	Owner string

	schema *schema.Schema
	// resolved marks a connector that came from the Resolver: specs that
	// name it bare are pinned to its version.
	resolved bool
}

// Resolver finds connectors that are not registered in the catalogue
// itself: the registry's uploaded modules, which appear and go while the
// platform runs. The catalogue asks it on a miss.
type Resolver interface {
	// ResolveConnector returns the connector name at version, or at its
	// latest version that is not deprecated when version is "". ok is
	// false when there is none.
	ResolveConnector(ctx context.Context, name, version string) (c Connector, ok bool, err error)
}

// resolveTimeout bounds one Resolver call (a store look-up).
const resolveTimeout = 10 * time.Second

// Catalog holds the connectors an integration may use. It is safe for
// concurrent use.
type Catalog struct {
	mu       sync.RWMutex
	conns    map[string]*Connector
	resolver Resolver
	// pinned caches resolved connectors by "name@version" (immutable).
	pinned map[string]*Connector
	log    *slog.Logger
}

// SetResolver makes the catalogue ask r for connectors it does not hold.
// Call it before the catalogue is used.
func (c *Catalog) SetResolver(r Resolver, log *slog.Logger) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.resolver = r
	c.log = log
}

// Forget drops the cached resolutions of name (a version was deleted or
// changed in the registry).
func (c *Catalog) Forget(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.pinned {
		if n, _, _ := strings.Cut(k, "@"); n == name {
			delete(c.pinned, k)
		}
	}
}

// NewCatalog returns a catalogue holding cs; see Register.
func NewCatalog(cs ...Connector) (*Catalog, error) {
	c := &Catalog{conns: map[string]*Connector{}, pinned: map[string]*Connector{}}
	for _, x := range cs {
		if err := c.Register(x); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Register adds a connector. It refuses duplicates, a kind without its
// constructor and a config schema that does not compile.
func (c *Catalog) Register(x Connector) error {
	if err := prepare(&x); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	k := catalogKey(x.Kind, x.Name)
	if _, dup := c.conns[k]; dup {
		return fmt.Errorf("runtime: %s connector %s is already registered", x.Kind, x.Name)
	}
	c.conns[k] = &x
	return nil
}

// catalogKey: a source and a sink may share a name ("file"), as they
// never stand in the same place of a spec.
func catalogKey(kind Kind, name string) string { return string(kind) + "/" + name }

// Lookup finds a connector by name, of any kind: the source, step or sink
// of that name, in that order of preference. Specs use LookupKind, which
// knows the kind from the connector's place.
func (c *Catalog) Lookup(ref string) (*Connector, bool) {
	for _, k := range []Kind{KindSource, KindStep, KindSink} {
		if x, ok := c.lookup(k, ref, true); ok {
			return x, true
		}
	}
	return c.lookup("", ref, false)
}

// LookupKind finds the connector of kind named by ref; see Lookup.
func (c *Catalog) LookupKind(kind Kind, ref string) (*Connector, bool) {
	return c.lookup(kind, ref, false)
}

// lookup finds ref among the registered connectors of kind, then (unless
// registeredOnly) asks the Resolver; kind "" accepts any kind from it. A
// "@version" suffix must match the registered version; names the
// catalogue does not hold are asked of the Resolver, and a bare name gets
// the latest version.
func (c *Catalog) lookup(kind Kind, ref string, registeredOnly bool) (*Connector, bool) {
	name, version, _ := strings.Cut(ref, "@")
	c.mu.RLock()
	x, ok := c.conns[catalogKey(kind, name)]
	r := c.resolver
	cached := c.pinned[ref]
	c.mu.RUnlock()
	if ok {
		if version != "" && version != x.Version {
			return nil, false
		}
		return x, true
	}
	if registeredOnly {
		return nil, false
	}
	if cached != nil {
		if kind != "" && cached.Kind != kind {
			return nil, false
		}
		return cached, true
	}
	if r == nil || name == "" {
		return nil, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), resolveTimeout)
	defer cancel()
	got, ok, err := r.ResolveConnector(ctx, name, version)
	if err != nil {
		if c.log != nil {
			c.log.Warn("connector resolution failed", "connector", ref, "err", err)
		}
		return nil, false
	}
	if !ok || got.Name != name || (version != "" && got.Version != version) || (kind != "" && got.Kind != kind) {
		return nil, false
	}
	if err := prepare(&got); err != nil {
		if c.log != nil {
			c.log.Warn("resolved connector unusable", "connector", ref, "err", err)
		}
		return nil, false
	}
	got.resolved = true
	c.mu.Lock()
	defer c.mu.Unlock()
	key := name + "@" + got.Version
	if prev := c.pinned[key]; prev != nil {
		return prev, true
	}
	c.pinned[key] = &got
	return &got, true
}

// prepare checks a connector's kind and constructor and compiles its
// config schema.
func prepare(x *Connector) error {
	if x.Name == "" {
		return errors.New("runtime: connector without a name")
	}
	ok := (x.Kind == KindSource && x.NewSource != nil) ||
		(x.Kind == KindStep && x.NewStep != nil) ||
		(x.Kind == KindSink && x.NewSink != nil)
	if !ok {
		return fmt.Errorf("runtime: connector %s: kind %q needs its constructor", x.Name, x.Kind)
	}
	if len(x.ConfigSchema) == 0 {
		x.ConfigSchema = json.RawMessage(`{"type":"object"}`)
	}
	s, err := schema.Compile(x.Name, x.ConfigSchema)
	if err != nil {
		return fmt.Errorf("runtime: connector %s: %w", x.Name, err)
	}
	x.schema = s
	return nil
}

// List returns every connector registered in the catalogue itself (not
// those of the Resolver), sorted by name.
func (c *Catalog) List() []*Connector {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]*Connector, 0, len(c.conns))
	for _, x := range c.conns {
		out = append(out, x)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Kind < out[j].Kind
	})
	return out
}

// checkConfig resolves cs.Connector for kind and validates cs.Config
// against its schema; field prefixes the error's field. A connector owned
// by a tenant other than tenant is unknown (tenant "" skips the check:
// specs read back from the store). A bare name of a resolved (registry)
// connector is pinned: cs.Connector becomes "name@version".
func (c *Catalog) checkConfig(kind Kind, cs *ConnectorSpec, field, tenant string) error {
	x, ok := c.LookupKind(kind, cs.Connector)
	if !ok {
		x, ok = c.Lookup(cs.Connector) // to say it is of another kind
	}
	if !ok || (tenant != "" && x.Owner != "" && x.Owner != tenant) {
		return specErr(field+".connector", "unknown connector %q", cs.Connector)
	}
	if x.resolved && !strings.Contains(cs.Connector, "@") {
		cs.Connector = x.Name + "@" + x.Version
	}
	if x.Kind != kind {
		return specErr(field+".connector", "connector %q is a %s, not a %s", cs.Connector, x.Kind, kind)
	}
	if len(cs.Config) == 0 {
		cs.Config = json.RawMessage("{}")
	}
	var doc any
	dec := json.NewDecoder(strings.NewReader(string(cs.Config)))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return specErr(field+".config", "not valid JSON: %v", err)
	}
	if fe := x.schema.Validate(doc, field+".config"); fe != nil {
		return fe
	}
	return nil
}

// permanentError marks an error that retrying cannot fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as not worth retrying: the message goes to the
// dead-letter queue at once.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err (or an error it wraps) was marked Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

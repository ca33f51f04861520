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

// Emitter makes a source's messages durable.
type Emitter interface {
	// Emit stores msg on the integration's input subject and returns once
	// JetStream has acknowledged it. msg.ID is assigned when empty and is
	// the dedup key: emitting the same ID twice within the dedup window
	// stores it once.
	Emit(ctx context.Context, msg *Message) error
}

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

	schema *schema.Schema
}

// Catalog holds the connectors an integration may use. It is safe for
// concurrent use.
type Catalog struct {
	mu    sync.RWMutex
	conns map[string]*Connector
}

// NewCatalog returns a catalogue holding cs; see Register.
func NewCatalog(cs ...Connector) (*Catalog, error) {
	c := &Catalog{conns: map[string]*Connector{}}
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
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, dup := c.conns[x.Name]; dup {
		return fmt.Errorf("runtime: connector %s is already registered", x.Name)
	}
	c.conns[x.Name] = &x
	return nil
}

// Lookup finds a connector by name; a "@version" suffix must match the
// registered version.
func (c *Catalog) Lookup(ref string) (*Connector, bool) {
	name, version, _ := strings.Cut(ref, "@")
	c.mu.RLock()
	x, ok := c.conns[name]
	c.mu.RUnlock()
	if !ok || (version != "" && version != x.Version) {
		return nil, false
	}
	return x, true
}

// List returns every connector sorted by name.
func (c *Catalog) List() []*Connector {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]*Connector, 0, len(c.conns))
	for _, x := range c.conns {
		out = append(out, x)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// checkConfig resolves cs.Connector for kind and validates cs.Config
// against its schema; field prefixes the error's field.
func (c *Catalog) checkConfig(kind Kind, cs *ConnectorSpec, field string) error {
	x, ok := c.Lookup(cs.Connector)
	if !ok {
		return specErr(field+".connector", "unknown connector %q", cs.Connector)
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

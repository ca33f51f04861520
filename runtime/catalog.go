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

	"github.com/vrsky/vrsky/platform/schema"
)

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
	conns    map[string]*catEntry
	resolver Resolver
	// pinned caches resolved connectors by "name@version" (immutable).
	pinned map[string]*catEntry
	log    *slog.Logger
}

// catEntry is a connector in the catalogue, with what the catalogue made of it.
type catEntry struct {
	Connector
	schema *schema.Schema
	// resolved marks a connector that came from the Resolver: specs that
	// name it bare are pinned to its version.
	resolved bool
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
	c := &Catalog{conns: map[string]*catEntry{}, pinned: map[string]*catEntry{}}
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
	e, err := prepare(x)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	k := catalogKey(x.Kind, x.Name)
	if _, dup := c.conns[k]; dup {
		return fmt.Errorf("runtime: %s connector %s is already registered", x.Kind, x.Name)
	}
	c.conns[k] = e
	return nil
}

// catalogKey: a source and a sink may share a name ("file"), as they
// never stand in the same place of a spec.
func catalogKey(kind Kind, name string) string { return string(kind) + "/" + name }

// Lookup finds a connector by name, of any kind: the source, step or sink
// of that name, in that order of preference. Specs use LookupKind, which
// knows the kind from the connector's place.
func (c *Catalog) Lookup(ref string) (*Connector, bool) {
	e, ok := c.lookupAny(ref)
	if !ok {
		return nil, false
	}
	return &e.Connector, true
}

func (c *Catalog) lookupAny(ref string) (*catEntry, bool) {
	for _, k := range []Kind{KindSource, KindStep, KindSink} {
		if x, ok := c.lookup(k, ref, true); ok {
			return x, true
		}
	}
	return c.lookup("", ref, false)
}

// LookupKind finds the connector of kind named by ref; see Lookup.
func (c *Catalog) LookupKind(kind Kind, ref string) (*Connector, bool) {
	e, ok := c.lookup(kind, ref, false)
	if !ok {
		return nil, false
	}
	return &e.Connector, true
}

// lookup finds ref among the registered connectors of kind, then (unless
// registeredOnly) asks the Resolver; kind "" accepts any kind from it. A
// "@version" suffix must match the registered version; names the
// catalogue does not hold are asked of the Resolver, and a bare name gets
// the latest version.
func (c *Catalog) lookup(kind Kind, ref string, registeredOnly bool) (*catEntry, bool) {
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
	e, err := prepare(got)
	if err != nil {
		if c.log != nil {
			c.log.Warn("resolved connector unusable", "connector", ref, "err", err)
		}
		return nil, false
	}
	e.resolved = true
	c.mu.Lock()
	defer c.mu.Unlock()
	key := name + "@" + got.Version
	if prev := c.pinned[key]; prev != nil {
		return prev, true
	}
	c.pinned[key] = e
	return e, true
}

// prepare checks a connector's kind and constructor and compiles its
// config schema.
func prepare(x Connector) (*catEntry, error) {
	if x.Name == "" {
		return nil, errors.New("runtime: connector without a name")
	}
	ok := (x.Kind == KindSource && x.NewSource != nil) ||
		(x.Kind == KindStep && x.NewStep != nil) ||
		(x.Kind == KindSink && x.NewSink != nil)
	if !ok {
		return nil, fmt.Errorf("runtime: connector %s: kind %q needs its constructor", x.Name, x.Kind)
	}
	if len(x.ConfigSchema) == 0 {
		x.ConfigSchema = json.RawMessage(`{"type":"object"}`)
	}
	s, err := schema.Compile(x.Name, x.ConfigSchema)
	if err != nil {
		return nil, fmt.Errorf("runtime: connector %s: %w", x.Name, err)
	}
	return &catEntry{Connector: x, schema: s}, nil
}

// List returns every connector registered in the catalogue itself (not
// those of the Resolver), sorted by name.
func (c *Catalog) List() []*Connector {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]*Connector, 0, len(c.conns))
	for _, x := range c.conns {
		out = append(out, &x.Connector)
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
	x, ok := c.lookup(kind, cs.Connector, false)
	if !ok {
		x, ok = c.lookupAny(cs.Connector) // to say it is of another kind
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

package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/vrsky/vrsky/platform/store"
	"github.com/vrsky/vrsky/runtime"
)

// Viewer is who looks at the catalogue: a tenant, or the admin (who sees
// and may change everything).
type Viewer struct {
	Tenant string
	Admin  bool
}

// Where a catalogue entry comes from.
const (
	OriginBuiltin  = "builtin"  // native Go, in the binary
	OriginShipped  = "shipped"  // a Wasm module in the binary
	OriginUploaded = "uploaded" // a Wasm module from the registry
)

// Entry is one connector in the catalogue.
type Entry struct {
	Name        string       `json:"name"`
	Kind        runtime.Kind `json:"kind"`
	Category    string       `json:"category,omitempty"`
	Description string       `json:"description,omitempty"`
	// Builtin is true for native Go connectors.
	Builtin bool `json:"builtin"`
	// Origin is builtin, shipped or uploaded.
	Origin string `json:"origin"`
	// Latest is the version a bare name resolves to.
	Latest string `json:"version"`
	// Versions lists every version, newest first.
	Versions []Version `json:"versions"`
	// ConfigSchema is the latest version's config schema.
	ConfigSchema json.RawMessage `json:"config_schema,omitempty"`
	// Capabilities of the latest version (Wasm modules).
	Capabilities *Capabilities `json:"capabilities,omitempty"`
	// Digest is the latest version's module SHA-256 (Wasm modules).
	Digest     string   `json:"digest,omitempty"`
	Author     string   `json:"author,omitempty"`
	License    string   `json:"license,omitempty"`
	Tags       []string `json:"tags,omitempty"`
	Icon       string   `json:"icon,omitempty"`
	Visibility string   `json:"visibility"`
	// Uploader is the publishing tenant ("" for the platform).
	Uploader string `json:"uploader"`
	// Usage counts the integrations that use the connector (any version).
	Usage int `json:"usage"`
}

// Version is one version of a connector.
type Version struct {
	Version    string     `json:"version"`
	Digest     string     `json:"digest,omitempty"`
	Size       int64      `json:"size,omitempty"`
	Deprecated bool       `json:"deprecated"`
	SignedBy   string     `json:"signed_by,omitempty"`
	CreatedAt  *time.Time `json:"created_at,omitempty"`
	// Usage counts the integrations pinned to this version.
	Usage int `json:"usage"`
	// Manifest is the version's manifest (details only).
	Manifest *Manifest `json:"manifest,omitempty"`
}

// Query filters and pages the catalogue.
type Query struct {
	// Kind keeps one kind (source, step, sink).
	Kind string
	// Tag keeps connectors with this tag.
	Tag string
	// Text keeps connectors whose name, description or tags contain it
	// (case-insensitive).
	Text string
	// Page is 1-based; Limit is the page size (default 50, at most 500).
	Page, Limit int
}

// Page is one page of the catalogue, sorted by name.
type Page struct {
	Connectors []Entry `json:"connectors"`
	Total      int     `json:"total"`
	Page       int     `json:"page"`
	Limit      int     `json:"limit"`
}

// usage counts integrations by connector reference ("name" and
// "name@version"), every tenant's.
func (r *Registry) usage(ctx context.Context) (map[string]int, map[string][]string, error) {
	list, err := r.cfg.Store.ListIntegrations(ctx, "")
	if err != nil {
		return nil, nil, fmt.Errorf("registry: list integrations: %w", err)
	}
	count := map[string]int{}
	users := map[string][]string{}
	for _, in := range list {
		var spec runtime.Spec
		if json.Unmarshal(in.Spec, &spec) != nil {
			continue
		}
		seen := map[string]bool{}
		refs := []string{spec.Source.Connector}
		for _, st := range spec.Steps {
			refs = append(refs, st.Connector)
		}
		for _, sk := range spec.Sinks {
			refs = append(refs, sk.Connector)
		}
		for _, ref := range refs {
			if seen[ref] {
				continue
			}
			seen[ref] = true
			count[ref]++
			users[ref] = append(users[ref], in.Tenant+"/"+in.Name)
			if name, _, pinned := strings.Cut(ref, "@"); pinned && !seen[name+"@*"] {
				seen[name+"@*"] = true
				count[name+"@*"]++
			}
		}
	}
	return count, users, nil
}

// nameUsage is how many integrations use name at any version.
func nameUsage(count map[string]int, name string) int { return count[name] + count[name+"@*"] }

// entries returns every connector viewer sees, unfiltered, by name.
func (r *Registry) entries(ctx context.Context, v Viewer) ([]Entry, error) {
	count, _, err := r.usage(ctx)
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, x := range r.cfg.Catalog.List() {
		out = append(out, r.staticEntry(x, count, false))
	}
	viewer := v.Tenant
	latestList, err := r.cfg.Store.ListConnectors(ctx, viewer)
	if err != nil {
		return nil, fmt.Errorf("registry: list connectors: %w", err)
	}
	for _, cv := range latestList {
		if !visible(cv, v.Tenant, v.Admin) {
			continue
		}
		vs, err := r.cfg.Store.ListConnectorVersions(ctx, cv.Tenant, cv.Name)
		if err != nil {
			return nil, fmt.Errorf("registry: %w", err)
		}
		if len(vs) == 0 {
			continue
		}
		sort.SliceStable(vs, func(i, j int) bool { return compareSemver(vs[i].Version, vs[j].Version) > 0 })
		e, err := uploadedEntry(vs, count, false)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// staticEntry describes a connector of the runtime's own catalogue.
func (r *Registry) staticEntry(x *runtime.Connector, count map[string]int, details bool) Entry {
	e := Entry{
		Name: x.Name, Kind: x.Kind, Description: x.Description, Builtin: x.Builtin, Origin: OriginBuiltin,
		Latest: x.Version, ConfigSchema: x.ConfigSchema, Visibility: store.VisibilityPublic,
		Usage: nameUsage(count, x.Name),
	}
	ver := Version{Version: x.Version, Usage: count[x.Name+"@"+x.Version] + count[x.Name]}
	if sh, ok := r.cfg.Shipped[x.Name]; ok && !x.Builtin {
		e.Origin = OriginShipped
		if m, err := ParseManifest(sh.Manifest); err == nil {
			e.Category, e.Author, e.License, e.Tags, e.Icon = m.Category, m.Author, m.License, m.Tags, m.Icon
			caps := m.Capabilities
			e.Capabilities = &caps
			if details {
				ver.Manifest = m
			}
		}
		if sh.Digest != "" {
			e.Digest = sh.Digest
			ver.Digest, ver.Size = sh.Digest, sh.Size
		}
	}
	e.Versions = []Version{ver}
	return e
}

// uploadedEntry describes an uploaded connector from its versions,
// newest first.
func uploadedEntry(vs []store.ConnectorVersion, count map[string]int, details bool) (Entry, error) {
	lv := latest(vs)
	rec, err := decodeRecord(lv)
	if err != nil {
		return Entry{}, err
	}
	m := rec.Manifest
	caps := m.Capabilities
	e := Entry{
		Name: lv.Name, Kind: runtime.Kind(m.Kind), Category: m.Category, Description: m.Description,
		Origin: OriginUploaded, Latest: lv.Version, ConfigSchema: m.ConfigSchema, Capabilities: &caps,
		Digest: lv.Digest, Author: m.Author, License: m.License, Tags: m.Tags, Icon: m.Icon,
		Visibility: lv.Visibility, Uploader: lv.Tenant, Usage: nameUsage(count, lv.Name),
	}
	for _, cv := range vs {
		created := cv.CreatedAt
		ver := Version{Version: cv.Version, Digest: cv.Digest, Size: cv.Size, Deprecated: cv.Deprecated,
			CreatedAt: &created, Usage: count[cv.Name+"@"+cv.Version]}
		if cv.Version == lv.Version {
			ver.Usage += count[cv.Name]
		}
		rec, err := decodeRecord(cv)
		if err != nil {
			return Entry{}, err
		}
		ver.SignedBy = rec.SignedBy
		if details {
			man := rec.Manifest
			ver.Manifest = &man
		}
		e.Versions = append(e.Versions, ver)
	}
	return e, nil
}

// List returns one page of the catalogue viewer sees: built-in, shipped
// and uploaded connectors, filtered by q, sorted by name.
func (r *Registry) List(ctx context.Context, v Viewer, q Query) (Page, error) {
	all, err := r.entries(ctx, v)
	if err != nil {
		return Page{}, err
	}
	text := strings.ToLower(q.Text)
	var kept []Entry
	for _, e := range all {
		if q.Kind != "" && string(e.Kind) != q.Kind {
			continue
		}
		if q.Tag != "" && !contains(e.Tags, q.Tag) {
			continue
		}
		if text != "" && !strings.Contains(strings.ToLower(e.Name+"\n"+e.Description+"\n"+strings.Join(e.Tags, "\n")), text) {
			continue
		}
		e.ConfigSchema = nil // in details only: keeps the list small
		for i := range e.Versions {
			e.Versions[i].Manifest = nil
		}
		kept = append(kept, e)
	}
	if q.Limit <= 0 {
		q.Limit = 50
	}
	q.Limit = min(q.Limit, 500)
	if q.Page <= 0 {
		q.Page = 1
	}
	p := Page{Connectors: []Entry{}, Total: len(kept), Page: q.Page, Limit: q.Limit}
	from := (q.Page - 1) * q.Limit
	if from < len(kept) {
		p.Connectors = kept[from:min(from+q.Limit, len(kept))]
	}
	return p, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Get returns one connector with every version's manifest; ErrNotFound
// when viewer does not see it.
func (r *Registry) Get(ctx context.Context, v Viewer, name string) (Entry, error) {
	return r.GetKind(ctx, v, name, "")
}

// GetKind is Get for the connector of one kind: a built-in source and
// sink may share a name ("file"). Kind "" takes the first of source,
// step, sink.
func (r *Registry) GetKind(ctx context.Context, v Viewer, name, kind string) (Entry, error) {
	count, _, err := r.usage(ctx)
	if err != nil {
		return Entry{}, err
	}
	kinds := []runtime.Kind{runtime.KindSource, runtime.KindStep, runtime.KindSink}
	if kind != "" {
		kinds = []runtime.Kind{runtime.Kind(kind)}
	}
	list := r.cfg.Catalog.List() // what the platform holds, not the uploads
	for _, k := range kinds {
		for _, x := range list {
			if x.Name == name && x.Kind == k {
				return r.staticEntry(x, count, true), nil
			}
		}
	}
	vs, _, err := r.versions(ctx, name)
	if err != nil {
		return Entry{}, err
	}
	if len(vs) == 0 || !visible(vs[0], v.Tenant, v.Admin) || (kind != "" && vs[0].Kind != kind) {
		return Entry{}, fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	return uploadedEntry(vs, count, true)
}

// GetVersion returns one version of a connector, with its manifest.
func (r *Registry) GetVersion(ctx context.Context, v Viewer, name, version string) (Entry, Version, error) {
	e, err := r.Get(ctx, v, name)
	if err != nil {
		return Entry{}, Version{}, err
	}
	for _, ver := range e.Versions {
		if ver.Version == version {
			return e, ver, nil
		}
	}
	return Entry{}, Version{}, fmt.Errorf("%w: %s@%s", ErrNotFound, name, version)
}

// Module returns a version's Wasm bytes (uploaded or shipped).
func (r *Registry) Module(ctx context.Context, v Viewer, name, version string) ([]byte, error) {
	e, _, err := r.GetVersion(ctx, v, name, version)
	if err != nil {
		return nil, err
	}
	switch e.Origin {
	case OriginBuiltin:
		return nil, fmt.Errorf("%w: %s is native Go, it has no module", ErrNotFound, name)
	case OriginShipped:
		if read := r.cfg.Shipped[name].Wasm; read != nil {
			return read()
		}
		return nil, fmt.Errorf("%w: the module of %s was not built into this binary", ErrNotFound, name)
	}
	owner, _, err := r.owner(ctx, name)
	if err != nil {
		return nil, err
	}
	cv, err := r.cfg.Store.GetConnectorVersion(ctx, owner, name, version)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s@%s", ErrNotFound, name, version)
	}
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	return r.moduleBytes(ctx, cv)
}

// editable finds a version viewer may change: its publisher or the admin.
func (r *Registry) editable(ctx context.Context, v Viewer, name, version string) (store.ConnectorVersion, error) {
	for _, x := range r.cfg.Catalog.List() {
		if x.Name == name {
			return store.ConnectorVersion{}, fmt.Errorf("%w: %s ships with VRSky", ErrBuiltin, name)
		}
	}
	_, owner, err := r.versions(ctx, name)
	if err != nil {
		return store.ConnectorVersion{}, err
	}
	cv, err := r.cfg.Store.GetConnectorVersion(ctx, owner, name, version)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !visible(cv, v.Tenant, v.Admin)) {
		return store.ConnectorVersion{}, fmt.Errorf("%w: %s@%s", ErrNotFound, name, version)
	}
	if err != nil {
		return store.ConnectorVersion{}, fmt.Errorf("registry: %w", err)
	}
	if !v.Admin && cv.Tenant != v.Tenant {
		return store.ConnectorVersion{}, fmt.Errorf("%w: only its publisher may change %s@%s", ErrForbidden, name, version)
	}
	return cv, nil
}

// ErrForbidden: the caller may see the connector but not change it.
var ErrForbidden = errors.New("not the connector's publisher")

// Deprecate marks a version deprecated (or not): a bare name no longer
// resolves to it; integrations pinned to it keep running.
func (r *Registry) Deprecate(ctx context.Context, v Viewer, name, version string, deprecated bool) error {
	cv, err := r.editable(ctx, v, name, version)
	if err != nil {
		return err
	}
	if err := r.cfg.Store.SetConnectorDeprecated(ctx, cv.Tenant, name, version, deprecated); err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	r.cfg.Catalog.Forget(name)
	return nil
}

// Delete removes a version; ErrInUse (naming the integrations) while an
// integration uses it. The module stays in the object store: it is keyed
// by content and may back other versions.
func (r *Registry) Delete(ctx context.Context, v Viewer, name, version string) error {
	cv, err := r.editable(ctx, v, name, version)
	if err != nil {
		return err
	}
	_, users, err := r.usage(ctx)
	if err != nil {
		return err
	}
	inUse := users[name+"@"+version]
	if vs, _, err := r.versions(ctx, name); err == nil && len(vs) > 0 && latest(vs).Version == version {
		inUse = append(inUse, users[name]...)
	}
	if len(inUse) > 0 {
		sort.Strings(inUse)
		return fmt.Errorf("%w: %s@%s is used by %s", ErrInUse, name, version, strings.Join(inUse, ", "))
	}
	if err := r.cfg.Store.DeleteConnectorVersion(ctx, cv.Tenant, name, version); err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	r.cfg.Catalog.Forget(name)
	r.log.Info("connector version deleted", "tenant", cv.Tenant, "connector", name, "version", version)
	return nil
}

package registry

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/vrsky/vrsky/host"
	"github.com/vrsky/vrsky/host/wasmcheck"
	"github.com/vrsky/vrsky/platform/blob"
	"github.com/vrsky/vrsky/platform/store"
	"github.com/vrsky/vrsky/runtime"
	"github.com/vrsky/vrsky/runtime/wasmstep"
)

// DefaultMaxModuleSize bounds an uploaded module when Config.MaxModuleSize
// is zero: 32 MiB (Go modules are 2–10 MiB).
const DefaultMaxModuleSize = 32 << 20

// Store is what the registry needs from the control plane: connector
// metadata, tenants (to find a name's owner) and integrations (usage).
type Store interface {
	store.ConnectorStore
	ListTenants(ctx context.Context) ([]store.Tenant, error)
	ListIntegrations(ctx context.Context, tenant string) ([]store.Integration, error)
}

// Shipped is a Wasm module that ships inside the binary, for the
// catalogue's details (capabilities, digest) and module download.
type Shipped struct {
	// Manifest is its vrsky-connector.yaml.
	Manifest []byte
	// Digest (SHA-256, hex) and Size describe the module; Digest is
	// empty when it was not built.
	Digest string
	Size   int64
	// Wasm reads the module when it is downloaded; nil when it was not
	// built. The registry does not hold shipped modules in memory.
	Wasm func() ([]byte, error)
}

// Config configures a Registry. Store, Blobs, Host and Catalog are required.
type Config struct {
	// Store keeps the metadata.
	Store Store
	// Blobs keeps the modules, by SHA-256.
	Blobs blob.Store
	// Host compiles modules: to validate uploads, and to run them.
	Host *host.Runtime
	// Catalog is the runtime's catalogue of built-in and shipped
	// connectors; New makes the registry its Resolver.
	Catalog *runtime.Catalog
	// Shipped describes the shipped Wasm modules by name.
	Shipped map[string]Shipped
	// Env backs uploaded modules' capabilities (NATS, objects, KV, HTTP).
	Env host.Env
	// Limits bound uploaded modules' instances (zero: the host's defaults).
	Limits host.Limits
	// MaxModuleSize bounds an upload, in bytes (default DefaultMaxModuleSize).
	MaxModuleSize int
	// RequireSignatures makes every upload need a signature by TrustedKeys.
	RequireSignatures bool
	// SignedTenants lists tenants whose uploads need a signature even when
	// RequireSignatures is off.
	SignedTenants []string
	// TrustedKeys verify signatures.
	TrustedKeys []ed25519.PublicKey
	// SmokeTimeout bounds the smoke run (default 30s: a cold Go module
	// initialises in well under that).
	SmokeTimeout time.Duration
	// Logger receives the registry's logs; nil uses slog.Default().
	Logger *slog.Logger
}

// Registry validates, stores and lists connectors. Safe for concurrent use.
type Registry struct {
	cfg  Config
	log  *slog.Logger
	sign map[string]bool

	mu      sync.Mutex
	owners  map[string]string  // connector name → owning tenant ("" platform)
	modules map[string]*module // digest+capabilities → compiled module
}

// module is a lazily compiled uploaded module.
type module struct {
	mu  sync.Mutex
	mod *host.Module
}

// New checks cfg and makes the registry the resolver of cfg.Catalog.
func New(cfg Config) (*Registry, error) {
	switch {
	case cfg.Store == nil, cfg.Blobs == nil, cfg.Host == nil, cfg.Catalog == nil:
		return nil, errors.New("registry: Store, Blobs, Host and Catalog are required")
	}
	if cfg.MaxModuleSize <= 0 {
		cfg.MaxModuleSize = DefaultMaxModuleSize
	}
	if cfg.SmokeTimeout <= 0 {
		cfg.SmokeTimeout = 30 * time.Second
	}
	r := &Registry{cfg: cfg, log: cfg.Logger, sign: map[string]bool{}, owners: map[string]string{}, modules: map[string]*module{}}
	if r.log == nil {
		r.log = slog.Default()
	}
	for _, t := range cfg.SignedTenants {
		r.sign[t] = true
	}
	cfg.Catalog.SetResolver(r, r.log)
	return r, nil
}

// Close releases the compiled modules.
func (r *Registry) Close(ctx context.Context) error {
	r.mu.Lock()
	mods := r.modules
	r.modules = map[string]*module{}
	r.mu.Unlock()
	var errs []error
	for _, m := range mods {
		m.mu.Lock()
		if m.mod != nil {
			errs = append(errs, m.mod.Close(ctx))
		}
		m.mu.Unlock()
	}
	return errors.Join(errs...)
}

// Refusal is an upload that failed a rule. Rule is one of the Rule*
// constants; Field names the input to fix ("module", "manifest.version").
// What a rule means to a client (an HTTP status) is the API's to say.
type Refusal struct {
	Rule   string
	Field  string
	Reason string
}

func (e *Refusal) Error() string { return fmt.Sprintf("rule %s: %s", e.Rule, e.Reason) }

// The upload rules, in the order they are checked.
const (
	RuleManifest = "manifest"
	RuleKind     = "kind"
	RuleSize     = "size"
	RuleWasm     = "wasm"
	RuleLimits   = "limits"
	RuleCompile  = "compile"
	// RuleCompileBounds: compiling the module went past the server's
	// time or memory bound (host.CompileError with a Limit).
	RuleCompileBounds = "compile_bounds"
	RuleImports       = "imports"
	RuleCapabilities  = "capabilities"
	RuleExports       = "exports"
	RuleSchema        = "schema"
	RuleName          = "name"
	RuleVersion       = "version"
	RuleSmoke         = "smoke"
	RuleSignature     = "signature"
)

func refuse(rule, field string, format string, args ...any) *Refusal {
	return &Refusal{Rule: rule, Field: field, Reason: fmt.Sprintf(format, args...)}
}

// loadRefusal maps the host's refusals of a module to upload rules: the
// structure check's limits, a binary that does not decode, the compiler's
// refusal and its bounds, and imports outside the ABI. Other errors (an
// export missing) are nil here.
func loadRefusal(err error) *Refusal {
	var (
		le *wasmcheck.LimitError
		fe *wasmcheck.FormatError
		ce *host.CompileError
		ie *host.ImportError
	)
	switch {
	case errors.Is(err, wasmcheck.ErrNotWasm):
		return refuse(RuleWasm, "module", "%v", wasmcheck.ErrNotWasm)
	case errors.As(err, &le):
		return refuse(RuleLimits, "module", "the module is over a limit of ABI v1 (abi/ABI.md, module limits): %v", le)
	case errors.As(err, &fe):
		return refuse(RuleCompile, "module", "the module does not compile: it does not decode %v", fe)
	case errors.As(err, &ce) && ce.Limit != "":
		return refuse(RuleCompileBounds, "module", "the module could not be compiled within the server's bounds: %v", ce)
	case errors.As(err, &ce):
		return refuse(RuleCompile, "module", "the module does not compile: %s", ce.Reason)
	case errors.As(err, &ie):
		return refuse(RuleImports, "module", "%v", ie)
	}
	return nil
}

// ErrNotFound: no such connector or version (or not visible to the caller).
var ErrNotFound = errors.New("connector not found")

// ErrInUse: the version is used by integrations.
var ErrInUse = errors.New("connector version in use")

// ErrBuiltin: built-in and shipped connectors cannot be changed.
var ErrBuiltin = errors.New("built-in connector")

// Upload is one upload: the manifest and module as sent, and an optional
// signature.
type Upload struct {
	Manifest  []byte
	Module    []byte
	Signature []byte
}

// Publish validates an upload by tenant ("" for the platform), in the
// order of the Rule constants, then stores the module and its metadata. A
// failed rule is a *Refusal.
func (r *Registry) Publish(ctx context.Context, tenant string, up Upload) (store.ConnectorVersion, error) {
	m, err := ParseManifest(up.Manifest)
	if err != nil {
		var fe *FieldError
		errors.As(err, &fe)
		field := "manifest"
		if fe != nil && fe.Field != "" {
			field += "." + fe.Field
		}
		return store.ConnectorVersion{}, refuse(RuleManifest, field, "%v", err)
	}
	if m.Kind != string(runtime.KindStep) {
		return store.ConnectorVersion{}, refuse(RuleKind, "manifest.kind",
			"kind %q cannot be uploaded: the host runs Wasm steps only", m.Kind)
	}
	if len(up.Module) > r.cfg.MaxModuleSize {
		return store.ConnectorVersion{}, refuse(RuleSize, "module",
			"the module is %d bytes, over the limit of %d", len(up.Module), r.cfg.MaxModuleSize)
	}
	if len(up.Module) == 0 {
		return store.ConnectorVersion{}, refuse(RuleWasm, "module", "the module is empty")
	}
	mod, err := r.cfg.Host.Load(ctx, m.ModuleSpec(up.Module))
	var loadErr error
	if err != nil {
		if rf := loadRefusal(err); rf != nil {
			return store.ConnectorVersion{}, rf
		}
		loadErr = err // an export missing: reported after the capabilities
	} else {
		defer mod.Close(context.WithoutCancel(ctx))
	}
	if err := checkCapabilities(up.Module, m.Capabilities); err != nil {
		return store.ConnectorVersion{}, err
	}
	if loadErr != nil {
		return store.ConnectorVersion{}, refuse(RuleExports, "module", "%v", loadErr)
	}
	if err := checkSchema(m.ConfigSchema); err != nil {
		return store.ConnectorVersion{}, refuse(RuleSchema, "manifest.config_schema", "not a valid JSON Schema: %v", err)
	}
	if err := r.checkName(ctx, tenant, m); err != nil {
		return store.ConnectorVersion{}, err
	}
	if m.Example != nil {
		if err := r.smoke(ctx, mod, m); err != nil {
			return store.ConnectorVersion{}, err
		}
	}
	sum := sha256.Sum256(up.Module)
	digest := hex.EncodeToString(sum[:])
	var signedBy string
	if len(bytes.TrimSpace(up.Signature)) > 0 || r.cfg.RequireSignatures || r.sign[tenant] {
		if len(bytes.TrimSpace(up.Signature)) == 0 {
			return store.ConnectorVersion{}, refuse(RuleSignature, "signature",
				"uploads must be signed by a trusted key (vrsky connector sign)")
		}
		if signedBy, err = verify(r.cfg.TrustedKeys, up.Signature, digest, up.Manifest); err != nil {
			return store.ConnectorVersion{}, refuse(RuleSignature, "signature", "%v", err)
		}
	}
	key := "modules/sha256/" + digest
	if _, err := r.cfg.Blobs.Put(ctx, key, bytes.NewReader(up.Module)); err != nil {
		return store.ConnectorVersion{}, fmt.Errorf("registry: store module of %s@%s: %w", m.Name, m.Version, err)
	}
	rec, err := json.Marshal(record{Manifest: *m, SignedBy: signedBy})
	if err != nil {
		return store.ConnectorVersion{}, fmt.Errorf("registry: %w", err)
	}
	cv, err := r.cfg.Store.CreateConnectorVersion(ctx, store.ConnectorVersion{
		Tenant: tenant, Name: m.Name, Version: m.Version, Kind: m.Kind, Visibility: m.Visibility,
		Manifest: rec, Digest: digest, Size: int64(len(up.Module)), ModuleKey: key,
	})
	if errors.Is(err, store.ErrNameTaken) {
		// Another publisher claimed the name since checkName looked (or
		// owns it with no version left): the store's claim decides.
		return store.ConnectorVersion{}, nameTaken(m.Name)
	}
	if errors.Is(err, store.ErrExists) {
		return store.ConnectorVersion{}, refuse(RuleVersion, "manifest.version",
			"%s@%s exists already: versions are immutable, publish a new one", m.Name, m.Version)
	}
	if err != nil {
		return store.ConnectorVersion{}, fmt.Errorf("registry: store %s@%s: %w", m.Name, m.Version, err)
	}
	r.mu.Lock()
	r.owners[m.Name] = tenant
	r.mu.Unlock()
	r.log.Info("connector published", "tenant", tenant, "connector", m.Name, "version", m.Version, "digest", digest, "signed_by", signedBy)
	return cv, nil
}

// record is what the store keeps as a version's manifest.
type record struct {
	Manifest
	// SignedBy is the fingerprint of the key that signed the upload.
	SignedBy string `json:"signed_by,omitempty"`
}

func decodeRecord(cv store.ConnectorVersion) (record, error) {
	var rec record
	if err := json.Unmarshal(cv.Manifest, &rec); err != nil {
		return rec, fmt.Errorf("registry: stored manifest of %s@%s: %w", cv.Name, cv.Version, err)
	}
	return rec, nil
}

// checkName refuses a name of the built-in catalogue, a name another
// publisher owns, and a version that exists. It is the early answer, before
// the smoke run; the store's name claim in CreateConnectorVersion is the
// atomic one, for uploads that race (Publish maps its ErrNameTaken to the
// same refusal).
func (r *Registry) checkName(ctx context.Context, tenant string, m *Manifest) error {
	for _, x := range r.cfg.Catalog.List() {
		if x.Name == m.Name {
			return refuse(RuleName, "manifest.name", "%q is a built-in connector's name", m.Name)
		}
	}
	owner, found, err := r.findOwner(ctx, m.Name, true)
	if err != nil {
		return err
	}
	if found && owner != tenant {
		return nameTaken(m.Name)
	}
	if found {
		if _, err := r.cfg.Store.GetConnectorVersion(ctx, tenant, m.Name, m.Version); err == nil {
			return refuse(RuleVersion, "manifest.version",
				"%s@%s exists already: versions are immutable, publish a new one", m.Name, m.Version)
		} else if !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("registry: %w", err)
		}
	}
	return nil
}

// nameTaken is the refusal of a name another publisher owns.
func nameTaken(name string) *Refusal {
	return refuse(RuleName, "manifest.name", "%q belongs to another publisher", name)
}

// owner finds the tenant that owns name ("" the platform). A cached owner
// is trusted; fresh skips the cache (it named a connector that has gone).
func (r *Registry) owner(ctx context.Context, name string) (string, bool, error) {
	return r.findOwner(ctx, name, false)
}

func (r *Registry) findOwner(ctx context.Context, name string, fresh bool) (string, bool, error) {
	r.mu.Lock()
	o, ok := r.owners[name]
	r.mu.Unlock()
	if ok && !fresh {
		return o, true, nil
	}
	tenants, err := r.cfg.Store.ListTenants(ctx)
	if err != nil {
		return "", false, fmt.Errorf("registry: list tenants: %w", err)
	}
	cands := []string{""}
	for _, t := range tenants {
		cands = append(cands, t.Name)
	}
	for _, t := range cands {
		vs, err := r.cfg.Store.ListConnectorVersions(ctx, t, name)
		if err != nil {
			return "", false, fmt.Errorf("registry: %w", err)
		}
		if len(vs) > 0 {
			r.mu.Lock()
			r.owners[name] = t
			r.mu.Unlock()
			return t, true, nil
		}
	}
	r.mu.Lock()
	delete(r.owners, name)
	r.mu.Unlock()
	return "", false, nil
}

// versions returns name's versions, newest first, and their owner.
func (r *Registry) versions(ctx context.Context, name string) ([]store.ConnectorVersion, string, error) {
	var vs []store.ConnectorVersion
	var owner string
	for _, fresh := range []bool{false, true} {
		o, found, err := r.findOwner(ctx, name, fresh)
		if err != nil || !found {
			return nil, "", err
		}
		if vs, err = r.cfg.Store.ListConnectorVersions(ctx, o, name); err != nil {
			return nil, "", fmt.Errorf("registry: %w", err)
		}
		if owner = o; len(vs) > 0 {
			break
		}
	}
	sort.SliceStable(vs, func(i, j int) bool { return compareSemver(vs[i].Version, vs[j].Version) > 0 })
	return vs, owner, nil
}

// latest is the newest version that is not deprecated, else the newest.
func latest(vs []store.ConnectorVersion) store.ConnectorVersion {
	for _, v := range vs {
		if !v.Deprecated {
			return v
		}
	}
	return vs[0]
}

// visible reports whether viewer sees cv; admin sees everything.
func visible(cv store.ConnectorVersion, viewer string, admin bool) bool {
	return admin || cv.Tenant == "" || cv.Tenant == viewer || cv.Visibility == store.VisibilityPublic
}

// ResolveConnector implements runtime.Resolver: an uploaded step, at
// version or at its latest version that is not deprecated.
func (r *Registry) ResolveConnector(ctx context.Context, name, version string) (runtime.Connector, bool, error) {
	vs, _, err := r.versions(ctx, name)
	if err != nil || len(vs) == 0 {
		return runtime.Connector{}, false, err
	}
	var cv *store.ConnectorVersion
	for i := range vs {
		if (version == "" && !vs[i].Deprecated) || (version != "" && vs[i].Version == version) {
			cv = &vs[i]
			break
		}
	}
	if cv == nil {
		return runtime.Connector{}, false, nil
	}
	rec, err := decodeRecord(*cv)
	if err != nil {
		return runtime.Connector{}, false, err
	}
	return r.connector(*cv, rec), true, nil
}

// connector makes an uploaded version a runtime step, compiled on first use.
func (r *Registry) connector(cv store.ConnectorVersion, rec record) runtime.Connector {
	m := rec.Manifest
	owner := ""
	if cv.Tenant != "" && cv.Visibility != store.VisibilityPublic {
		owner = cv.Tenant
	}
	c := wasmstep.New(wasmstep.Info{
		Name: cv.Name, Version: cv.Version, Description: m.Description, ConfigSchema: m.ConfigSchema,
		Env: r.cfg.Env, Limits: r.cfg.Limits,
		Module: func(ctx context.Context) (*host.Module, error) { return r.module(ctx, cv, &m) },
	})
	c.Owner = owner
	if owner != "" {
		newStep := c.NewStep
		c.NewStep = func(cfg json.RawMessage, env runtime.Env) (runtime.Step, error) {
			if env.Tenant != owner {
				return nil, runtime.Permanent(fmt.Errorf("unknown connector %q", cv.Name))
			}
			return newStep(cfg, env)
		}
		// Engine.CheckSpec passes the tenant: the safety net for specs
		// parsed without ParseSpecFor.
		c.Check = func(_ context.Context, _ json.RawMessage, env runtime.Env) error {
			if env.Tenant != owner {
				return &runtime.SpecError{Reason: fmt.Sprintf("unknown connector %q", cv.Name)}
			}
			return nil
		}
	}
	return c
}

// module returns the compiled module of cv, fetching and compiling it on
// first use.
func (r *Registry) module(ctx context.Context, cv store.ConnectorVersion, m *Manifest) (*host.Module, error) {
	key := fmt.Sprintf("%s|%+v|%v", cv.Digest, m.Capabilities, m.Name+"@"+m.Version)
	r.mu.Lock()
	e := r.modules[key]
	if e == nil {
		e = &module{}
		r.modules[key] = e
	}
	r.mu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.mod != nil {
		return e.mod, nil
	}
	wasm, err := r.moduleBytes(ctx, cv)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	mod, err := r.cfg.Host.Load(context.WithoutCancel(ctx), m.ModuleSpec(wasm))
	if err != nil {
		return nil, fmt.Errorf("registry: load %s@%s: %w", cv.Name, cv.Version, err)
	}
	r.log.Info("uploaded connector compiled", "connector", cv.Name, "version", cv.Version, "took", time.Since(start))
	e.mod = mod
	return mod, nil
}

// moduleBytes reads a stored module and checks its digest.
func (r *Registry) moduleBytes(ctx context.Context, cv store.ConnectorVersion) ([]byte, error) {
	rc, _, err := r.cfg.Blobs.Get(ctx, cv.ModuleKey)
	if err != nil {
		return nil, fmt.Errorf("registry: module of %s@%s: %w", cv.Name, cv.Version, err)
	}
	defer rc.Close()
	wasm, err := io.ReadAll(io.LimitReader(rc, int64(r.cfg.MaxModuleSize)+1))
	if err != nil {
		return nil, fmt.Errorf("registry: read module of %s@%s: %w", cv.Name, cv.Version, err)
	}
	if sum := sha256.Sum256(wasm); hex.EncodeToString(sum[:]) != cv.Digest {
		return nil, fmt.Errorf("registry: module of %s@%s does not match its digest %s", cv.Name, cv.Version, cv.Digest)
	}
	return wasm, nil
}

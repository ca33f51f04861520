// Package host runs VRSky's WebAssembly steps under wazero, behind ABI v1
// (abi/ABI.md). It owns the compilation cache, compiles each module once,
// keeps a bounded pool of warm instances per (module, config), enforces
// limits (deadline, memory pages, output size), and implements the ABI's
// host functions, one file per group (fn_*.go). Modules that import the
// Extism kernel run through extism/go-sdk with the same capabilities.
//
// Typical use by the runtime:
//
//	rt, err := host.New(ctx, host.Config{CacheDir: dir, Logger: log})
//	mod, err := rt.Load(ctx, host.ModuleSpec{Name: "jq", Version: "1.0.0", Wasm: wasm, Trusted: true})
//	pool, err := mod.NewPool(host.PoolConfig{Config: cfg, Tenant: "acme", Integration: "orders", Env: env})
//	results, err := pool.Process(ctx, []host.Message{{ID: "1", Data: data}})
//	pool.Close()
package host

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/vrsky/vrsky/abi"
	"github.com/vrsky/vrsky/host/wasmcheck"
)

// DefaultMaxMemoryPages bounds a guest's linear memory (64 KiB pages) when
// Config.MaxMemoryPages is zero: 4096 pages, 256 MiB.
const DefaultMaxMemoryPages = 4096

// Config configures a Runtime. It is read once by New.
type Config struct {
	// CacheDir holds wazero's compilation cache, so a restart does not
	// recompile modules. Empty keeps the cache in memory only.
	CacheDir string
	// Logger receives guest logs and stdout/stderr. Nil discards them.
	Logger *slog.Logger
	// MaxMemoryPages is the hard ceiling on any instance's memory, in
	// 64 KiB pages; memory.grow past it fails inside the guest. Zero means
	// DefaultMaxMemoryPages.
	MaxMemoryPages uint32
	// AllowPrivateNetworks lets the host's HTTP client reach loopback and
	// private addresses (tests, or an on-premises install that means it).
	AllowPrivateNetworks bool
	// CompileTimeout bounds the compilation of an untrusted module, which
	// runs in a child process of this binary. Zero means
	// DefaultCompileTimeout.
	CompileTimeout time.Duration
	// CompileMemory bounds the memory of that child process, in bytes.
	// Zero means DefaultCompileMemory.
	CompileMemory int64
	// ModuleLimits bound every module's structure, checked before it is
	// compiled. The zero value means wasmcheck.DefaultLimits (ABI v1's).
	ModuleLimits wasmcheck.Limits
	// Observer receives call and compilation measurements. Nil discards
	// them.
	Observer Observer
}

// Runtime compiles and runs modules. It holds two wazero runtimes: a
// trusted one for first-party modules (no context watcher, fastest) and
// an untrusted one that closes an instance when its call's deadline
// passes. Safe for concurrent use.
type Runtime struct {
	cfg       Config
	log       *slog.Logger
	obs       Observer
	cacheDir  string // the compilation cache's directory
	tempCache bool   // cacheDir is New's own, removed by Close
	cache     wazero.CompilationCache
	http      *http.Client
	trusted   wazero.Runtime
	untrusted wazero.Runtime

	mu       sync.Mutex
	compiled map[moduleKey]*compiledEntry
	plugins  map[*extismModule]bool
	pools    map[*Pool]struct{} // the open pools, for PoolStats
	closed   bool
}

type moduleKey struct {
	sum     [32]byte
	trusted bool
}

// New creates a Runtime: the compilation cache, both wazero runtimes, and
// on each the WASI and "vrsky" host modules.
func New(ctx context.Context, cfg Config) (*Runtime, error) {
	if cfg.MaxMemoryPages == 0 {
		cfg.MaxMemoryPages = DefaultMaxMemoryPages
	}
	if cfg.CompileTimeout <= 0 {
		cfg.CompileTimeout = DefaultCompileTimeout
	}
	if cfg.CompileMemory <= 0 {
		cfg.CompileMemory = DefaultCompileMemory
	}
	if cfg.ModuleLimits == (wasmcheck.Limits{}) {
		cfg.ModuleLimits = wasmcheck.DefaultLimits()
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	r := &Runtime{cfg: cfg, log: log, obs: cfg.Observer, cacheDir: cfg.CacheDir, compiled: map[moduleKey]*compiledEntry{},
		plugins: map[*extismModule]bool{}, pools: map[*Pool]struct{}{}, http: newHTTPClient(cfg.AllowPrivateNetworks)}
	if r.obs == nil {
		r.obs = nopObserver{}
	}
	// The cache is always on disk: the compile sandbox (sandbox.go) writes
	// its result there for this process to read.
	if r.cacheDir == "" {
		dir, err := os.MkdirTemp("", "vrsky-wasm-cache-")
		if err != nil {
			return nil, fmt.Errorf("host: cache dir: %w", err)
		}
		r.cacheDir, r.tempCache = dir, true
	}
	if err := os.MkdirAll(r.cacheDir, 0o755); err != nil {
		return nil, fmt.Errorf("host: cache dir: %w", err)
	}
	c, err := wazero.NewCompilationCacheWithDir(r.cacheDir)
	if err != nil {
		return nil, fmt.Errorf("host: compilation cache %s: %w", r.cacheDir, err)
	}
	r.cache = c
	if r.trusted, err = newWazero(ctx, runtimeConfig(r.cache, cfg.MaxMemoryPages, false)); err != nil {
		return nil, err
	}
	if r.untrusted, err = newWazero(ctx, runtimeConfig(r.cache, cfg.MaxMemoryPages, true)); err != nil {
		r.trusted.Close(ctx)
		return nil, err
	}
	return r, nil
}

// runtimeConfig is the wazero configuration of the trusted or untrusted
// runtime. The compile sandbox uses it too: the compilation cache finds a
// module only when both sides compiled it alike.
func runtimeConfig(cache wazero.CompilationCache, pages uint32, untrusted bool) wazero.RuntimeConfig {
	return wazero.NewRuntimeConfig().
		WithCompilationCache(cache).
		WithMemoryLimitPages(pages).
		WithCoreFeatures(api.CoreFeaturesV2).
		WithCloseOnContextDone(untrusted)
}

func newWazero(ctx context.Context, rc wazero.RuntimeConfig) (wazero.Runtime, error) {
	w := wazero.NewRuntimeWithConfig(ctx, rc)
	if _, err := instantiateWASI(ctx, w); err != nil {
		w.Close(ctx)
		return nil, fmt.Errorf("host: wasi: %w", err)
	}
	if err := instantiateVRSky(ctx, w); err != nil {
		w.Close(ctx)
		return nil, fmt.Errorf("host: vrsky host module: %w", err)
	}
	return w, nil
}

// wasiNames returns every WASI preview1 function name.
var wasiNames = sync.OnceValue(func() map[string]bool {
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	names, err := instantiateWASI(ctx, r)
	if err != nil {
		panic(err)
	}
	return names
})

// Close releases both runtimes and every module and pool made from them.
func (r *Runtime) Close(ctx context.Context) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	plugins := r.plugins
	r.plugins, r.compiled, r.pools = nil, nil, nil
	r.mu.Unlock()
	var errs []error
	for x := range plugins {
		errs = append(errs, x.Close(ctx))
	}
	errs = append(errs, r.trusted.Close(ctx), r.untrusted.Close(ctx), r.cache.Close(ctx))
	if r.tempCache {
		errs = append(errs, os.RemoveAll(r.cacheDir))
	}
	r.http.CloseIdleConnections()
	return errors.Join(errs...)
}

// Capabilities are what a module's manifest declares it needs. Anything
// not granted here is denied at call time with abi.ErrDenied.
type Capabilities struct {
	// NATS allows publish and request on the tenant's guest subjects,
	// "vrsky.<tenant>._app.>" and "vrsky.<tenant>.<token>" (ABI.md §5),
	// never a platform stream's.
	NATS bool
	// Objects allows object get/put by reference under the tenant's keys.
	Objects bool
	// KV allows the key-value store, scoped to the integration.
	KV bool
	// HTTPHosts lists the hosts HTTP calls may reach: "api.example.com",
	// "api.example.com:8443", or "*.example.com" for any subdomain.
	HTTPHosts []string
}

// ModuleSpec describes a module to load.
type ModuleSpec struct {
	// Name and Version identify the module in logs and errors.
	Name    string
	Version string
	// Wasm is the module's binary.
	Wasm []byte
	// Trusted marks a first-party module (shipped with VRSky): it runs
	// without a deadline watcher. Uploaded modules must leave it false.
	Trusted bool
	// Capabilities are those the manifest declares.
	Capabilities Capabilities
	// StubWASIFiles accepts imports of WASI file, directory and socket
	// functions and links them to stubs that always fail (ENOTCAPABLE).
	// Go guests that use reflection-heavy packages (text/template,
	// expr-lang) link such functions without calling them. Without it, Load
	// refuses those imports. Manifest key: capabilities.wasi_file_stubs.
	StubWASIFiles bool
}

// compiledEntry is compiled code shared by the Modules loaded from the
// same bytes on the same runtime.
type compiledEntry struct {
	code wazero.CompiledModule
	refs int
}

// Module is a validated, compiled module with its spec (capabilities).
// Pools made from it share the compiled code.
type Module struct {
	rt       *Runtime
	key      moduleKey
	spec     ModuleSpec
	wz       wazero.Runtime
	compiled wazero.CompiledModule
	extism   *extismModule // non-nil for Extism plugins
	closed   bool
}

// Spec returns the spec the module was loaded with (Wasm omitted).
func (m *Module) Spec() ModuleSpec {
	s := m.spec
	s.Wasm = nil
	return s
}

// IsExtism reports whether the module runs through the Extism path.
func (m *Module) IsExtism() bool { return m.extism != nil }

// Close releases the module's compiled code once no other Module loaded
// from the same bytes uses it. Close its pools first.
func (m *Module) Close(ctx context.Context) error {
	r := m.rt
	r.mu.Lock()
	defer r.mu.Unlock()
	if m.closed || r.closed {
		return nil
	}
	m.closed = true
	if m.extism != nil {
		delete(r.plugins, m.extism)
		return m.extism.Close(ctx)
	}
	e := r.compiled[m.key]
	if e == nil {
		return nil
	}
	if e.refs--; e.refs == 0 {
		delete(r.compiled, m.key)
		return e.code.Close(ctx)
	}
	return nil
}

// Load validates a module against ABI v1 (exports, and imports limited to
// the ABI and allowed WASI; or the Extism kernel) and compiles it. Every
// call returns a new Module carrying spec's capabilities; Modules loaded
// from the same bytes share one compilation, which the compilation cache
// also keeps across restarts.
func (r *Runtime) Load(ctx context.Context, spec ModuleSpec) (*Module, error) {
	name := spec.Name
	if spec.Version != "" {
		name += "@" + spec.Version
	}
	if _, err := wasmcheck.Check(spec.Wasm, r.cfg.ModuleLimits); err != nil {
		return nil, fmt.Errorf("host: module %s: %w", name, err)
	}
	key := moduleKey{sum: sha256.Sum256(spec.Wasm), trusted: spec.Trusted}
	wz := r.untrusted
	if spec.Trusted {
		wz = r.trusted
	}
	code, err := r.compile(ctx, key, wz, spec.Wasm)
	if err != nil {
		return nil, fmt.Errorf("host: module %s: %w", name, err)
	}
	m := &Module{rt: r, key: key, spec: spec, wz: wz, compiled: code}
	m.spec.Wasm = nil
	kind, err := validate(code, spec.StubWASIFiles)
	if err != nil {
		m.Close(ctx)
		return nil, fmt.Errorf("host: module %s: %w", name, err)
	}
	if kind == kindExtism {
		m.Close(ctx)
		m = &Module{rt: r, key: key, spec: m.spec}
		if m.extism, err = r.loadExtism(ctx, spec); err != nil {
			return nil, fmt.Errorf("host: module %s: %w", name, err)
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.closed {
			m.extism.Close(ctx)
			return nil, errors.New("host: runtime closed")
		}
		r.plugins[m.extism] = true
	}
	return m, nil
}

// compile returns the shared compilation of wasm, taking a reference.
func (r *Runtime) compile(ctx context.Context, key moduleKey, wz wazero.Runtime, wasm []byte) (wazero.CompiledModule, error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, errors.New("host: runtime closed")
	}
	if e, ok := r.compiled[key]; ok {
		e.refs++
		r.mu.Unlock()
		return e.code, nil
	}
	r.mu.Unlock()
	// Outside the lock: seconds for a big module. An untrusted one is
	// compiled in a child process first, so that no module, however
	// crafted, compiles here unbounded (sandbox.go).
	var code wazero.CompiledModule
	var err error
	start := time.Now()
	if key.trusted {
		code, err = wz.CompileModule(ctx, wasm)
	} else {
		code, err = r.compileUntrusted(ctx, key, wz, wasm)
	}
	if err == nil {
		r.obs.Compiled(key.trusted, time.Since(start))
	}
	var ce *CompileError
	if err != nil && !errors.As(err, &ce) && ctx.Err() == nil {
		err = &CompileError{Reason: err.Error()}
	}
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		code.Close(ctx)
		return nil, errors.New("host: runtime closed")
	}
	if e, ok := r.compiled[key]; ok { // compiled concurrently
		code.Close(ctx)
		e.refs++
		return e.code, nil
	}
	r.compiled[key] = &compiledEntry{code: code, refs: 1}
	return code, nil
}

// moduleKind tells the two guest flavours apart.
type moduleKind int

const (
	kindABI moduleKind = iota
	kindExtism
)

// ImportError reports an import outside what ABI v1 allows.
type ImportError struct {
	// Module and Name are the refused import.
	Module, Name string
	// Reason says why it is refused.
	Reason string
	// Others lists further refused imports ("module.name").
	Others []string
}

func (e *ImportError) Error() string {
	msg := fmt.Sprintf("import %s.%s refused: %s", e.Module, e.Name, e.Reason)
	if len(e.Others) > 0 {
		msg += "; also refused: " + strings.Join(e.Others, ", ")
	}
	return msg
}

// validate checks exports and imports and returns the module's kind.
func validate(c wazero.CompiledModule, stubFiles bool) (moduleKind, error) {
	imports := c.ImportedFunctions()
	kind := kindABI
	for _, f := range imports {
		if mod, _, _ := f.Import(); mod == abi.ExtismEnvModule {
			kind = kindExtism
		}
	}
	var refused *ImportError
	for _, f := range imports {
		mod, name, _ := f.Import()
		reason := ""
		switch {
		case mod == abi.WASIModule:
			if !abi.AllowedWASI[name] && !(stubFiles && wasiNames()[name]) {
				reason = "WASI offers clocks, random and stdout/stderr only (no files, directories or sockets)"
			}
		case mod == abi.ModuleName && kind == kindABI:
			if !vrskyFunctionNames[name] {
				reason = "not a function of ABI v1"
			} else if want := vrskyFunction(name); !sameTypes(f.ParamTypes(), want.params) || !sameTypes(f.ResultTypes(), want.results) {
				reason = "signature differs from ABI v1 (see abi/ABI.md)"
			}
		case mod == abi.ExtismEnvModule && kind == kindExtism:
		case mod == abi.ExtismUserModule && kind == kindExtism:
			if !extismUserNames[name] {
				reason = "not a VRSky capability for Extism plugins"
			}
		default:
			reason = "module outside the ABI"
		}
		if reason == "" {
			continue
		}
		if refused == nil {
			refused = &ImportError{Module: mod, Name: name, Reason: reason}
		} else {
			refused.Others = append(refused.Others, mod+"."+name)
		}
	}
	if refused != nil {
		return 0, refused
	}
	for _, m := range c.ImportedMemories() {
		mod, name, _ := m.Import()
		return 0, &ImportError{Module: mod, Name: name, Reason: "guests must define their own memory"}
	}
	exports := c.ExportedFunctions()
	if kind == kindExtism {
		if _, ok := exports[abi.ExportProcess]; !ok {
			return 0, fmt.Errorf("extism plugin lacks export %q", abi.ExportProcess)
		}
		return kind, nil
	}
	if _, ok := exports[abi.ExportMarker]; !ok {
		return 0, fmt.Errorf("not an ABI v1 module: export %q missing", abi.ExportMarker)
	}
	p, ok := exports[abi.ExportProcess]
	if !ok {
		return 0, fmt.Errorf("export %q missing", abi.ExportProcess)
	}
	if !sameTypes(p.ParamTypes(), []api.ValueType{api.ValueTypeI32}) || !sameTypes(p.ResultTypes(), []api.ValueType{api.ValueTypeI32}) {
		return 0, fmt.Errorf("export %q must have type (i32) -> i32", abi.ExportProcess)
	}
	if _, ok := c.ExportedMemories()[abi.ExportMemory]; !ok {
		return 0, fmt.Errorf("export %q (linear memory) missing", abi.ExportMemory)
	}
	return kind, nil
}

func sameTypes(a, b []api.ValueType) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

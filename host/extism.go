package host

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"

	extism "github.com/extism/go-sdk"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"

	"github.com/vrsky/vrsky/abi"
)

// The Extism path: a module that imports the Extism kernel
// ("extism:host/env") runs through extism/go-sdk. It is called once per
// message: export "vrsky_process" reads the message as Extism input. Its
// outputs are what it passes to vrsky_emit, or else its Extism output
// when not empty; an empty output with no emit drops the message. An
// Extism error (rc != 0, error_set) is a permanent error; a trap, exit or
// deadline breaks the instance and is retryable.
//
// VRSky's capabilities are offered in "extism:host/user" with Extism's
// memory-offset convention (i64 offsets of kernel blocks):
//
//	vrsky_emit(data i64) -> i32
//	vrsky_status(code i32, msg i64) -> i32
//	vrsky_header_get(name i64) -> i64        offset of the value, 0 if absent
//	vrsky_header_set(name i64, value i64) -> i32
//	vrsky_nats_publish(subject i64, data i64) -> i32
//	vrsky_nats_request(subject i64, data i64, timeout_ms i32) -> i64   offset, or a negative error code
//	vrsky_kv_get(key i64) -> i64             offset, or a negative error code
//	vrsky_kv_put(key i64, value i64) -> i32
//
// HTTP goes through Extism's own http_request, limited to the manifest's
// hosts (Extism's allowed_hosts).

type extismModule struct {
	compiled *extism.CompiledPlugin
}

func (e *extismModule) Close(ctx context.Context) error { return e.compiled.Close(ctx) }

const i64 = api.ValueTypeI64

var extismUserNames = map[string]bool{}

func extismFunctions() []extism.HostFunction {
	fns := []extism.HostFunction{
		extism.NewHostFunctionWithStack("vrsky_emit", xEmit, []api.ValueType{i64}, one),
		extism.NewHostFunctionWithStack("vrsky_status", xStatus, []api.ValueType{i32, i64}, one),
		extism.NewHostFunctionWithStack("vrsky_header_get", xHeaderGet, []api.ValueType{i64}, []api.ValueType{i64}),
		extism.NewHostFunctionWithStack("vrsky_header_set", xHeaderSet, []api.ValueType{i64, i64}, one),
		extism.NewHostFunctionWithStack("vrsky_nats_publish", xPublish, []api.ValueType{i64, i64}, one),
		extism.NewHostFunctionWithStack("vrsky_nats_request", xRequest, []api.ValueType{i64, i64, i32}, []api.ValueType{i64}),
		extism.NewHostFunctionWithStack("vrsky_kv_get", xKVGet, []api.ValueType{i64}, []api.ValueType{i64}),
		extism.NewHostFunctionWithStack("vrsky_kv_put", xKVPut, []api.ValueType{i64, i64}, one),
	}
	return fns
}

func init() {
	for _, f := range extismFunctions() {
		extismUserNames[f.Name] = true
	}
}

func (r *Runtime) loadExtism(ctx context.Context, spec ModuleSpec) (*extismModule, error) {
	rc := wazero.NewRuntimeConfig().
		WithCompilationCache(r.cache).
		WithMemoryLimitPages(r.cfg.MaxMemoryPages).
		WithCloseOnContextDone(!spec.Trusted)
	manifest := extism.Manifest{
		Wasm:         []extism.Wasm{extism.WasmData{Data: spec.Wasm}},
		AllowedHosts: spec.Capabilities.HTTPHosts,
		Memory:       &extism.ManifestMemory{MaxPages: r.cfg.MaxMemoryPages},
	}
	if len(manifest.AllowedHosts) == 0 {
		manifest.AllowedHosts = []string{}
	}
	cp, err := extism.NewCompiledPlugin(ctx, manifest, extism.PluginConfig{RuntimeConfig: rc, EnableWasi: true}, extismFunctions())
	if err != nil {
		return nil, fmt.Errorf("extism: %w", err)
	}
	return &extismModule{compiled: cp}, nil
}

type extismInstance struct {
	pool   *Pool
	plugin *extism.Plugin
	st     *callState
}

func (p *Pool) newExtismInstance(ctx context.Context) (*extismInstance, error) {
	mc := wazero.NewModuleConfig().
		WithStdout(logWriter{p.log, slog.LevelInfo, "stdout"}).
		WithStderr(logWriter{p.log, slog.LevelWarn, "stderr"}).
		WithSysWalltime().WithSysNanotime().WithSysNanosleep().
		WithRandSource(rand.Reader)
	pl, err := p.mod.extism.compiled.Instance(ctx, extism.PluginInstanceConfig{ModuleConfig: mc})
	if err != nil {
		return nil, fmt.Errorf("host: module %s: extism instance: %w", p.mod.spec.Name, err)
	}
	pl.SetLogger(func(level extism.LogLevel, msg string) {
		p.log.Log(context.Background(), extismLevel(level), msg)
	})
	pl.Config = map[string]string{"config": string(p.cfg.Config)}
	return &extismInstance{pool: p, plugin: pl, st: newCallState(p)}, nil
}

func extismLevel(l extism.LogLevel) slog.Level {
	switch l {
	case extism.LogLevelTrace, extism.LogLevelDebug:
		return slog.LevelDebug
	case extism.LogLevelWarn:
		return slog.LevelWarn
	case extism.LogLevelError:
		return slog.LevelError
	}
	return slog.LevelInfo
}

func (i *extismInstance) run(ctx context.Context, st *callState) error {
	cctx, cancel := i.pool.callContext(ctx, st, i.pool.limits.Timeout)
	defer cancel()
	for k := range st.msgs {
		st.selectMessage(k)
		rc, out, err := i.plugin.CallWithContext(cctx, abi.ExportProcess, st.msgs[k].Data)
		if err != nil {
			if i.broken(cctx, err) {
				return callError(cctx, err)
			}
			st.results[k] = Result{Status: StatusPermanent, Error: err.Error()}
			continue
		}
		r := &st.results[k]
		switch {
		case rc != 0:
			r.Status, r.Error = StatusPermanent, fmt.Sprintf("plugin returned %d", rc)
		case r.Status != StatusOK || len(r.Out) > 0:
		case len(out) > 0:
			st.addOutput(out)
		default:
			r.Status = StatusDrop
		}
	}
	return nil
}

// broken tells an instance failure (a trap, an exit, a passed deadline, a
// closed module) from an error the plugin reported. A plugin reports its
// errors through the Extism kernel's error slot, which each call clears
// first, so a call error with nothing in the slot is the instance's. (The
// libraries export no type for a trap or a closed module to match instead:
// wazero's trap error is internal, extism's "module is closed" a plain
// fmt.Errorf.)
func (i *extismInstance) broken(ctx context.Context, err error) bool {
	var exit *sys.ExitError
	if ctx.Err() != nil || errors.As(err, &exit) {
		return true
	}
	return i.plugin.GetErrorWithContext(context.WithoutCancel(ctx)) == ""
}

func (i *extismInstance) state() *callState { return i.st }

var _ instance = (*extismInstance)(nil)

func (i *extismInstance) memoryPages() uint32 {
	if mem := i.plugin.Memory(); mem != nil {
		return mem.Size() / 65536
	}
	return 0
}

func (i *extismInstance) close(ctx context.Context) { i.plugin.Close(ctx) }

// Extism host functions. They share the checks of the ABI functions.

func xState(ctx context.Context) (*callState, bool) {
	st := stateFrom(ctx)
	if st == nil {
		return nil, false
	}
	_, ok := st.current()
	return st, ok
}

func xRead(p *extism.CurrentPlugin, off uint64) ([]byte, bool) {
	if off == 0 {
		return nil, true
	}
	b, err := p.ReadBytes(off)
	return b, err == nil
}

func xEmit(ctx context.Context, p *extism.CurrentPlugin, stack []uint64) {
	st, ok := xState(ctx)
	b, ok2 := xRead(p, stack[0])
	if !ok || !ok2 {
		ret(stack, abi.ErrInvalid)
		return
	}
	ret(stack, st.addOutput(b))
}

func xStatus(ctx context.Context, p *extism.CurrentPlugin, stack []uint64) {
	st, ok := xState(ctx)
	code := abi.Status(api.DecodeI32(stack[0]))
	msg, ok2 := xRead(p, stack[1])
	if !ok || !ok2 || code < abi.StatusOK || code > abi.StatusPermanent {
		ret(stack, abi.ErrInvalid)
		return
	}
	r := &st.results[st.cur]
	r.Status, r.Error = code, string(msg)
	ret(stack, 0)
}

// xWrite allocates a kernel block holding b and returns its offset.
func xWrite(p *extism.CurrentPlugin, b []byte) uint64 {
	off, err := p.WriteBytes(b)
	if err != nil {
		return api.EncodeI64(int64(abi.ErrTooLarge))
	}
	return off
}

func xHeaderGet(ctx context.Context, p *extism.CurrentPlugin, stack []uint64) {
	st, ok := xState(ctx)
	name, ok2 := xRead(p, stack[0])
	if !ok || !ok2 {
		stack[0] = 0
		return
	}
	v, found := st.headerGet(string(name))
	if !found {
		stack[0] = 0
		return
	}
	stack[0] = xWrite(p, []byte(v))
}

func xHeaderSet(ctx context.Context, p *extism.CurrentPlugin, stack []uint64) {
	st, ok := xState(ctx)
	name, ok2 := xRead(p, stack[0])
	val, ok3 := xRead(p, stack[1])
	if !ok || !ok2 || !ok3 || len(name) == 0 {
		ret(stack, abi.ErrInvalid)
		return
	}
	st.headerSet(string(name), string(val))
	ret(stack, 0)
}

func xNATS(ctx context.Context, p *extism.CurrentPlugin, stack []uint64) (Messaging, string, []byte, int32) {
	st, ok := xState(ctx)
	if !ok {
		return nil, "", nil, abi.ErrInvalid
	}
	if !st.pool.mod.spec.Capabilities.NATS {
		return nil, "", nil, abi.ErrDenied
	}
	subj, ok1 := xRead(p, stack[0])
	data, ok2 := xRead(p, stack[1])
	if !ok1 || !ok2 {
		return nil, "", nil, abi.ErrInvalid
	}
	if !SubjectAllowed(st.pool.cfg.Tenant, string(subj)) {
		return nil, "", nil, abi.ErrDenied
	}
	if st.pool.cfg.Env.Messaging == nil {
		return nil, "", nil, abi.ErrUnavailable
	}
	return st.pool.cfg.Env.Messaging, string(subj), data, 0
}

func xPublish(ctx context.Context, p *extism.CurrentPlugin, stack []uint64) {
	msg, subj, data, code := xNATS(ctx, p, stack)
	if code != 0 {
		ret(stack, code)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, capabilityTimeout)
	defer cancel()
	if err := msg.Publish(ctx, subj, data); err != nil {
		ret(stack, errCode(ctx, err))
		return
	}
	ret(stack, 0)
}

func xRequest(ctx context.Context, p *extism.CurrentPlugin, stack []uint64) {
	msg, subj, data, code := xNATS(ctx, p, stack)
	if code != 0 {
		stack[0] = api.EncodeI64(int64(code))
		return
	}
	timeout := defaultRequestTimeout
	if ms := api.DecodeU32(stack[2]); ms > 0 {
		timeout = min(msDuration(ms), maxRequestTimeout)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	reply, err := msg.Request(ctx, subj, data, timeout)
	if err != nil {
		stack[0] = api.EncodeI64(int64(errCode(ctx, err)))
		return
	}
	stack[0] = xWrite(p, reply)
}

func xKV(ctx context.Context, p *extism.CurrentPlugin, off uint64) (KV, string, int32) {
	st, ok := xState(ctx)
	if !ok {
		return nil, "", abi.ErrInvalid
	}
	if !st.pool.mod.spec.Capabilities.KV {
		return nil, "", abi.ErrDenied
	}
	key, ok := xRead(p, off)
	if !ok || !kvKeyValid(string(key)) {
		return nil, "", abi.ErrInvalid
	}
	if st.pool.cfg.Env.KV == nil {
		return nil, "", abi.ErrUnavailable
	}
	return st.pool.cfg.Env.KV, st.pool.cfg.Tenant + "." + st.pool.cfg.Integration + "." + string(key), 0
}

func xKVGet(ctx context.Context, p *extism.CurrentPlugin, stack []uint64) {
	kv, key, code := xKV(ctx, p, stack[0])
	if code != 0 {
		stack[0] = api.EncodeI64(int64(code))
		return
	}
	ctx, cancel := context.WithTimeout(ctx, capabilityTimeout)
	defer cancel()
	v, err := kv.Get(ctx, key)
	if err != nil {
		stack[0] = api.EncodeI64(int64(errCode(ctx, err)))
		return
	}
	stack[0] = xWrite(p, v)
}

func xKVPut(ctx context.Context, p *extism.CurrentPlugin, stack []uint64) {
	kv, key, code := xKV(ctx, p, stack[0])
	if code != 0 {
		ret(stack, code)
		return
	}
	v, ok := xRead(p, stack[1])
	if !ok {
		ret(stack, abi.ErrInvalid)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, capabilityTimeout)
	defer cancel()
	if err := kv.Put(ctx, key, v); err != nil {
		ret(stack, errCode(ctx, err))
		return
	}
	ret(stack, 0)
}

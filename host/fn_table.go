package host

import (
	"context"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/vrsky/vrsky/abi"
)

const i32 = api.ValueTypeI32

// hostFn is one function of the "vrsky" host module.
type hostFn struct {
	name    string
	params  []api.ValueType
	results []api.ValueType
	fn      func(ctx context.Context, st *callState, m api.Module, stack []uint64)
}

func params(n int) []api.ValueType {
	p := make([]api.ValueType, n)
	for i := range p {
		p[i] = i32
	}
	return p
}

var one = []api.ValueType{i32}

// vrskyFunctions is the table of ABI v1 host functions; each group lives in
// its own fn_*.go file.
var vrskyFunctions = []hostFn{
	{abi.FnInput, params(3), one, fnInput},
	{abi.FnHeaderGet, params(4), one, fnHeaderGet},
	{abi.FnHeaderSet, params(4), one, fnHeaderSet},
	{abi.FnHeaderList, params(2), one, fnHeaderList},
	{abi.FnEmit, params(2), one, fnEmit},
	{abi.FnForward, nil, one, fnForward},
	{abi.FnStatus, params(3), one, fnStatus},
	{abi.FnConfig, params(2), one, fnConfig},
	{abi.FnLog, params(3), nil, fnLog},
	{abi.FnResult, params(2), one, fnResult},
	{abi.FnNATSPublish, params(4), one, fnNATSPublish},
	{abi.FnNATSRequest, params(7), one, fnNATSRequest},
	{abi.FnObjectOpen, params(2), one, fnObjectOpen},
	{abi.FnObjectCreate, params(2), one, fnObjectCreate},
	{abi.FnObjectRead, params(3), one, fnObjectRead},
	{abi.FnObjectWrite, params(3), one, fnObjectWrite},
	{abi.FnObjectClose, params(1), one, fnObjectClose},
	{abi.FnKVGet, params(4), one, fnKVGet},
	{abi.FnKVPut, params(4), one, fnKVPut},
	{abi.FnKVDelete, params(2), one, fnKVDelete},
	{abi.FnHTTPRequest, params(10), one, fnHTTPRequest},
}

var vrskyFunctionNames = func() map[string]bool {
	m := map[string]bool{}
	for _, f := range vrskyFunctions {
		m[f.name] = true
	}
	return m
}()

func vrskyFunction(name string) hostFn {
	for _, f := range vrskyFunctions {
		if f.name == name {
			return f
		}
	}
	return hostFn{}
}

// wrap turns a hostFn into a wazero function: it finds the call's state,
// and answers abi.ErrInvalid when called outside a call (no state).
func wrap(f hostFn) api.GoModuleFunc {
	return func(ctx context.Context, m api.Module, stack []uint64) {
		st := stateFrom(ctx)
		if st == nil || st.msgs == nil && f.name != abi.FnConfig && f.name != abi.FnLog && f.name != abi.FnResult {
			if len(f.results) > 0 {
				stack[0] = api.EncodeI32(abi.ErrInvalid)
			}
			return
		}
		f.fn(ctx, st, m, stack)
	}
}

func instantiateVRSky(ctx context.Context, r wazero.Runtime) error {
	b := r.NewHostModuleBuilder(abi.ModuleName)
	for _, f := range vrskyFunctions {
		b.NewFunctionBuilder().WithGoModuleFunction(wrap(f), f.params, f.results).Export(f.name)
	}
	_, err := b.Instantiate(ctx)
	return err
}

// ret writes an i32 result.
func ret(stack []uint64, v int32) { stack[0] = api.EncodeI32(v) }

// u32 reads parameter i as an unsigned 32-bit value.
func u32(stack []uint64, i int) uint32 { return api.DecodeU32(stack[i]) }

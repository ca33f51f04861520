package host

import (
	"context"
	"fmt"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/vrsky/vrsky/abi"
)

// errnoNotCapable is WASI's ENOTCAPABLE.
const errnoNotCapable = 76

// instantiateWASI installs wasi_snapshot_preview1 with wazero's
// implementation of the functions in abi.AllowedWASI and, for every other
// WASI function, a stub that does nothing and returns ENOTCAPABLE. A module
// may import those stubs only when its spec sets StubWASIFiles; otherwise
// Load refuses the import. Either way no guest can reach a file, a
// directory or a socket. It returns the names of all WASI functions.
func instantiateWASI(ctx context.Context, r wazero.Runtime) (map[string]bool, error) {
	full := r.NewHostModuleBuilder(abi.WASIModule)
	wasi_snapshot_preview1.NewFunctionExporter().ExportFunctions(full)
	compiled, err := full.Compile(ctx)
	if err != nil {
		return nil, err
	}
	defs := compiled.ExportedFunctions()
	compiled.Close(ctx)

	b := r.NewHostModuleBuilder(abi.WASIModule)
	wasi_snapshot_preview1.NewFunctionExporter().ExportFunctions(b)
	names := map[string]bool{}
	for name, def := range defs {
		names[name] = true
		if abi.AllowedWASI[name] {
			continue
		}
		if len(def.ResultTypes()) != 1 || def.ResultTypes()[0] != api.ValueTypeI32 {
			return nil, fmt.Errorf("wasi %s: unexpected result types", name)
		}
		b.NewFunctionBuilder().
			WithGoModuleFunction(api.GoModuleFunc(func(_ context.Context, _ api.Module, stack []uint64) {
				stack[0] = errnoNotCapable
			}), def.ParamTypes(), def.ResultTypes()).
			Export(name)
	}
	if _, err := b.Instantiate(ctx); err != nil {
		return nil, err
	}
	return names, nil
}

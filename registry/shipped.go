package registry

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/vrsky/vrsky/host"
	"github.com/vrsky/vrsky/runtime"
	"github.com/vrsky/vrsky/runtime/wasmstep"
)

// ShippedStep makes a Wasm module that ships inside the binary a step of
// the catalogue: manifest is its vrsky-connector.yaml (parsed by
// ParseManifest, like an upload's), wasm reads the module, and the module
// is read and compiled, trusted, on rt the first time an integration uses
// it, so that a server which never runs it never holds it. Its
// capabilities are backed by env.
func ShippedStep(ctx context.Context, manifest []byte, wasm func() ([]byte, error), rt *host.Runtime, env host.Env, log *slog.Logger) (runtime.Connector, error) {
	m, err := ParseManifest(manifest)
	if err != nil {
		return runtime.Connector{}, fmt.Errorf("registry: shipped connector: %w", err)
	}
	if log == nil {
		log = slog.Default()
	}
	load := sync.OnceValues(func() (*host.Module, error) {
		start := time.Now()
		b, err := wasm() // read only now, and not kept
		if err != nil {
			return nil, err
		}
		spec := m.ModuleSpec(b)
		spec.Trusted = true
		mod, err := rt.Load(context.WithoutCancel(ctx), spec)
		if err != nil {
			return nil, fmt.Errorf("load shipped connector %s: %w", m.Name, err)
		}
		log.Info("wasm connector compiled", "connector", m.Name, "took", time.Since(start))
		return mod, nil
	})
	return wasmstep.New(wasmstep.Info{
		Name: m.Name, Version: m.Version, Description: m.Description,
		ConfigSchema: m.ConfigSchema, Env: env,
		Module: func(context.Context) (*host.Module, error) { return load() },
	}), nil
}

package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/vrsky/vrsky/host"
)

// WasmStepInfo describes a loaded Wasm module for the catalogue.
type WasmStepInfo struct {
	// Name and Version identify the connector ("jq", "1.0.0").
	Name, Version string
	// Description is one line for the catalogue.
	Description string
	// ConfigSchema is the JSON Schema of the step's config, from the manifest.
	ConfigSchema json.RawMessage
	// Module returns the compiled module. It is called when a step first
	// needs it, so that a start does not wait for modules nobody uses
	// (compiling a Go module cold takes seconds); it should cache its result.
	Module func(ctx context.Context) (*host.Module, error)
	// Env backs the ABI's I/O functions (NATS, objects, KV, HTTP); the
	// host scopes every call to the pool's tenant and integration. In a
	// step of an integration, Objects takes writes only under the
	// integration's payload prefix, and objects a call wrote that none of
	// its outputs names are deleted after it (when Objects can Delete);
	// inside an Engine, KV is replaced by the integration's own bounded
	// bucket, deleted with it (see storage.go).
	Env host.Env
	// Limits bound each pool's instances; zero fields take the host's defaults.
	Limits host.Limits
}

// WasmStep makes a loaded Wasm module a step connector: each integration
// step that names it gets its own pool of warm instances with its config.
func WasmStep(w WasmStepInfo) Connector {
	return Connector{
		Name:         w.Name,
		Version:      w.Version,
		Kind:         KindStep,
		Description:  w.Description,
		ConfigSchema: w.ConfigSchema,
		NewStep: func(cfg json.RawMessage, env Env) (Step, error) {
			mod, err := w.Module(context.Background())
			if err != nil {
				return nil, fmt.Errorf("wasm step %s: %w", w.Name, err)
			}
			penv, step := w.Env, &wasmStep{byRef: mod.Spec().Capabilities.Objects}
			if penv.Objects != nil && env.Tenant != "" && env.Integration != "" {
				step.deleter, _ = penv.Objects.(objectDeleter)
				penv.Objects = scopedObjects{inner: penv.Objects, prefix: claimPrefix(env.Tenant) + env.Integration + "/"}
			}
			if env.storage != nil {
				penv.KV = nil
				if mod.Spec().Capabilities.KV {
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					kv, err := env.storage.kv(ctx)
					cancel()
					if err != nil {
						return nil, fmt.Errorf("wasm step %s: %w", w.Name, err)
					}
					penv.KV = host.NATSKV{KV: kv}
				}
			}
			step.pool, err = mod.NewPool(host.PoolConfig{
				Config: cfg, Tenant: env.Tenant, Integration: env.Integration, Env: penv, Limits: w.Limits,
			})
			if err != nil {
				return nil, fmt.Errorf("wasm step %s: %w", w.Name, err)
			}
			return step, nil
		},
	}
}

type wasmStep struct {
	pool  *host.Pool
	byRef bool // the module may open objects: it streams claim-checked payloads
	// deleter removes the objects a call wrote and no output names; nil
	// when the object store cannot delete (or there is none).
	deleter objectDeleter
}

// objectDeleter is the part of blob.Store that drops a step's leftovers.
type objectDeleter interface {
	Delete(ctx context.Context, key string) error
}

// ReadsClaims implements ClaimReader: a module with the objects capability
// gets a claim-checked payload by reference (ABI.md §7).
func (s *wasmStep) ReadsClaims() bool { return s.byRef }

// Process hands the batch to one guest call (or a few, past the pool's
// batch size) and maps each message's status: OK → outputs, Drop → none,
// Retryable → error, Permanent → Permanent error.
func (s *wasmStep) Process(ctx context.Context, batch []*Message) ([]StepResult, error) {
	in := make([]host.Message, len(batch))
	for i, m := range batch {
		in[i] = host.Message{ID: m.ID, Headers: m.Header, Data: m.Data}
	}
	var log *objectLog
	if s.deleter != nil {
		ctx, log = withObjectLog(ctx)
	}
	res, err := s.pool.Process(ctx, in)
	if log != nil {
		s.dropUnnamed(ctx, log.written(), res)
	}
	if err != nil {
		return nil, err
	}
	out := make([]StepResult, len(res))
	for i, r := range res {
		switch r.Status {
		case host.StatusOK:
			msgs := make([]*Message, len(r.Out))
			for k, o := range r.Out {
				// The host may share the input's header map: the pipeline
				// clones before it changes headers.
				msgs[k] = &Message{ID: o.ID, Header: Header(o.Headers), Data: o.Data}
			}
			out[i].Out = msgs
		case host.StatusDrop:
		case host.StatusPermanent:
			out[i].Err = Permanent(errors.New(r.Error))
		default:
			out[i].Err = errors.New(r.Error)
		}
	}
	return out, nil
}

func (s *wasmStep) Close() error { return s.pool.Close() }

// dropUnnamed deletes the objects of written that no output of res names
// (ABI.md §7): a write that is not passed on would otherwise stay until
// the payload sweep. A failed delete is left to that sweep.
func (s *wasmStep) dropUnnamed(ctx context.Context, written []string, res []host.Result) {
	if len(written) == 0 {
		return
	}
	named := map[string]bool{}
	for _, r := range res {
		if r.Status != host.StatusOK {
			continue
		}
		for _, o := range r.Out {
			if ref := Header(o.Headers).Get(HeaderPayloadRef); ref != "" {
				named[ref] = true
			}
		}
	}
	ctx = context.WithoutCancel(ctx)
	for _, k := range written {
		if !named[k] {
			_ = s.deleter.Delete(ctx, k)
		}
	}
}

// Package wasmstep makes a compiled Wasm module (package host) a step
// connector. It is the engine's one bridge to the Wasm host: package
// runtime does not import host, and connectors import neither.
// A pipeline hands each step the integration's storage through
// connector.Env.Storage; the adapter scopes the module's object writes to
// the integration's payload prefix and drops the objects a call wrote
// that none of its outputs names (ABI.md §7).
package wasmstep

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/vrsky/vrsky/host"
	"github.com/vrsky/vrsky/platform/blob"
	"github.com/vrsky/vrsky/runtime/connector"
)

// ErrObjectScope: a Wasm step tried to write an object outside its
// integration's payload prefix.
// It wraps host.ErrDenied, so the guest sees ERR_DENIED.
var ErrObjectScope = fmt.Errorf("object key outside the integration's payload prefix: %w", host.ErrDenied)

// Info describes a loaded Wasm module for the catalogue.
type Info struct {
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
	// inside an Engine (Env.Storage set), KV is replaced by the
	// integration's own bounded bucket, deleted with it (see the engine's
	// storage.go).
	Env host.Env
	// Limits bound each pool's instances; zero fields take the host's defaults.
	Limits host.Limits
}

// New makes a loaded Wasm module a step connector: each integration
// step that names it gets its own pool of warm instances with its config.
func New(w Info) connector.Connector {
	return connector.Connector{
		Name:         w.Name,
		Version:      w.Version,
		Kind:         connector.KindStep,
		Description:  w.Description,
		ConfigSchema: w.ConfigSchema,
		NewStep: func(cfg json.RawMessage, env connector.Env) (connector.Step, error) {
			mod, err := w.Module(context.Background())
			if err != nil {
				return nil, fmt.Errorf("wasm step %s: %w", w.Name, err)
			}
			penv, step := w.Env, &wasmStep{byRef: mod.Spec().Capabilities.Objects}
			if penv.Objects != nil && env.Tenant != "" && env.Integration != "" {
				step.deleter, _ = penv.Objects.(objectDeleter)
				penv.Objects = scopedObjects{inner: penv.Objects, prefix: connector.PayloadPrefix + env.Tenant + "/" + env.Integration + "/"}
			}
			if env.GuestNATS != nil {
				penv.Messaging = nil
				if mod.Spec().Capabilities.NATS {
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					nc, err := env.GuestNATS(ctx)
					cancel()
					if err != nil {
						return nil, fmt.Errorf("wasm step %s: %w", w.Name, err)
					}
					penv.Messaging = host.NATSMessaging{NC: nc}
				}
			}
			if env.Storage != nil {
				penv.KV = nil
				if mod.Spec().Capabilities.KV {
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					kv, err := env.Storage.KV(ctx)
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

// ReadsClaims implements the engine's runtime.ClaimReader: a module with the objects capability
// gets a claim-checked payload by reference (ABI.md §7).
func (s *wasmStep) ReadsClaims() bool { return s.byRef }

// Process hands the batch to one guest call (or a few, past the pool's
// batch size) and maps each message's status: OK → outputs, Drop → none,
// Retryable → error, Permanent → Permanent error.
func (s *wasmStep) Process(ctx context.Context, batch []*connector.Message) ([]connector.StepResult, error) {
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
	out := make([]connector.StepResult, len(res))
	for i, r := range res {
		switch r.Status {
		case host.StatusOK:
			msgs := make([]*connector.Message, len(r.Out))
			for k, o := range r.Out {
				// The host may share the input's header map: the pipeline
				// clones before it changes headers.
				msgs[k] = &connector.Message{ID: o.ID, Header: connector.Header(o.Headers), Data: o.Data}
			}
			out[i].Out = msgs
		case host.StatusDrop:
		case host.StatusPermanent:
			out[i].Err = connector.Permanent(errors.New(r.Error))
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
			if ref := connector.Header(o.Headers).Get(connector.HeaderPayloadRef); ref != "" {
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

// scopedObjects is the object store as one integration's Wasm steps see
// it: reads as the host allows them, writes only under the integration's
// payload prefix, each write recorded for the call that made it (see
// withObjectLog).
type scopedObjects struct {
	inner  host.Objects
	prefix string // payloads/<tenant>/<integration>/
}

var _ host.Objects = scopedObjects{}

// Get implements host.Objects.
func (o scopedObjects) Get(ctx context.Context, key string) (io.ReadCloser, blob.Info, error) {
	return o.inner.Get(ctx, key)
}

// Put implements host.Objects: a key outside the prefix is refused with
// ErrObjectScope before anything is written.
func (o scopedObjects) Put(ctx context.Context, key string, r io.Reader) (blob.Info, error) {
	if !strings.HasPrefix(key, o.prefix) {
		return blob.Info{}, fmt.Errorf("%w: %q is not under %s", ErrObjectScope, key, o.prefix)
	}
	if l, ok := ctx.Value(objectLogKey{}).(*objectLog); ok {
		l.add(key)
	}
	return o.inner.Put(ctx, key, r)
}

// objectLog collects the keys one guest call wrote.
type objectLog struct {
	mu   sync.Mutex
	keys []string
}

type objectLogKey struct{}

func (l *objectLog) add(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.keys = append(l.keys, key)
}

func (l *objectLog) written() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.keys...)
}

// withObjectLog returns ctx carrying a fresh log of the objects written
// through scopedObjects under it.
func withObjectLog(ctx context.Context) (context.Context, *objectLog) {
	l := &objectLog{}
	return context.WithValue(ctx, objectLogKey{}, l), l
}

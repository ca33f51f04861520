package runtime

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// HookRequest is an inbound webhook call, independent of the HTTP server
// that received it.
type HookRequest struct {
	Method string
	Header Header
	// Body is valid only until the handler returns: the server reuses its
	// buffer. A handler that keeps the bytes must copy them.
	Body []byte
}

// HookResponse is what the webhook answers.
type HookResponse struct {
	Status int
	Header Header
	Body   []byte
}

// HookHandler serves the webhook of one integration.
type HookHandler func(ctx context.Context, req *HookRequest) (*HookResponse, error)

// ErrNoHook: no running integration serves that tenant and path.
var ErrNoHook = errors.New("no webhook at this path")

// Hooks routes /hooks/{tenant}/{path} to the sources that serve them. The
// API server calls Serve; sources Register while they run.
type Hooks struct {
	mu sync.RWMutex
	m  map[string]HookHandler
}

// NewHooks returns an empty router.
func NewHooks() *Hooks { return &Hooks{m: map[string]HookHandler{}} }

func hookKey(tenant, path string) string { return tenant + "/" + path }

// Register routes tenant/path to fn until the returned func is called. It
// fails if another source of the tenant holds the path.
func (h *Hooks) Register(tenant, path string, fn HookHandler) (unregister func(), err error) {
	k := hookKey(tenant, path)
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, taken := h.m[k]; taken {
		return nil, fmt.Errorf("webhook path %q is already served by another integration of tenant %s", path, tenant)
	}
	h.m[k] = fn
	var once sync.Once
	return func() {
		once.Do(func() {
			h.mu.Lock()
			delete(h.m, k)
			h.mu.Unlock()
		})
	}, nil
}

// Serve hands req to the handler of tenant/path, or returns ErrNoHook.
func (h *Hooks) Serve(ctx context.Context, tenant, path string, req *HookRequest) (*HookResponse, error) {
	h.mu.RLock()
	fn, ok := h.m[hookKey(tenant, path)]
	h.mu.RUnlock()
	if !ok {
		return nil, ErrNoHook
	}
	return fn(ctx, req)
}

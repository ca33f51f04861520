package connector

import (
	"context"
	"errors"
	"fmt"
	"io"
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
	// BodyStream, when not nil, carries a large body instead of Body: it
	// is read while the handler runs (into the object store, by
	// Message.Stream) and never held whole. Reads fail with
	// ErrBodyTooLarge past the server's limit. ContentLength is its
	// announced length, or -1 when the client sent it chunked.
	BodyStream    io.Reader
	ContentLength int64
}

// ErrBodyTooLarge: a streamed body went past its size limit.
var ErrBodyTooLarge = errors.New("request body too large")

// LimitBody returns r cut at limit bytes: past it, reads fail with
// ErrBodyTooLarge (rather than io.LimitReader's silent EOF).
func LimitBody(r io.Reader, limit int64) io.Reader { return &limitedBody{r: r, left: limit} }

type limitedBody struct {
	r    io.Reader
	left int64
}

func (l *limitedBody) Read(p []byte) (int, error) {
	if l.left < 0 {
		return 0, ErrBodyTooLarge
	}
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1] // one byte more tells "at the limit" from "over it"
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		return n + int(l.left), ErrBodyTooLarge
	}
	return n, err
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

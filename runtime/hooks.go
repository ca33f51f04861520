package runtime

import (
	"io"

	"github.com/vrsky/vrsky/runtime/connector"
)

// Webhooks; see package connector.
type (
	HookRequest  = connector.HookRequest
	HookResponse = connector.HookResponse
	HookHandler  = connector.HookHandler
	Hooks        = connector.Hooks
)

var (
	// ErrBodyTooLarge: a streamed body went past its size limit.
	ErrBodyTooLarge = connector.ErrBodyTooLarge
	// ErrNoHook: no running integration serves that tenant and path.
	ErrNoHook = connector.ErrNoHook
)

// NewHooks returns an empty router.
func NewHooks() *Hooks { return connector.NewHooks() }

// LimitBody returns r cut at limit bytes: past it, reads fail with
// ErrBodyTooLarge.
func LimitBody(r io.Reader, limit int64) io.Reader { return connector.LimitBody(r, limit) }

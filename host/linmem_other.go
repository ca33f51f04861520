//go:build !(linux || darwin)

package host

import (
	"context"
	"log/slog"
	"sync/atomic"
)

// liveMappings stays zero: guest memory is not mapped here.
var liveMappings atomic.Int64

// linearMemory is nil: wazero keeps guest memory on the Go heap (see
// linmem_unix.go).
type linearMemory struct{}

func newLinearMemory(uint32, *slog.Logger) *linearMemory { return nil }

func (*linearMemory) withAllocator(ctx context.Context) context.Context { return ctx }
func (*linearMemory) pin() bool                                         { return true }
func (*linearMemory) unpin()                                            {}

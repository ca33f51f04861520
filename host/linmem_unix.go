//go:build linux || darwin

package host

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/tetratelabs/wazero/experimental"
)

// Guest linear memory outside the Go heap (see RATIONALE.md): each
// instance's memory is one anonymous mapping of its maximum size. Pages
// cost nothing until the guest touches them, memory.grow only reslices,
// and the bytes never count towards the Go GC's goal.

// liveMappings counts mappings not yet unmapped (tests check that
// discarded instances give theirs back).
var liveMappings atomic.Int64

// linearMemory is one instance's memory: the allocator wazero calls once
// while instantiating, then the mapping it made, which the host pins
// while it calls the guest. wazero frees an instance's memory when the
// instance closes, which a Runtime.Close does at any time: unpinned, the
// mapping would go under a running guest, or before the next call to an
// idle one (a SIGSEGV, where wazero's Go-heap memory gives an error).
type linearMemory struct {
	limit uint64 // bytes; wazero never asks for more, this is a backstop
	log   *slog.Logger
	mem   *mmapMemory // nil before Allocate, or when on the heap
}

// newLinearMemory returns the memory of an instance of a runtime whose
// ceiling is maxPages (64 KiB pages). log receives mmap failures.
func newLinearMemory(maxPages uint32, log *slog.Logger) *linearMemory {
	return &linearMemory{limit: uint64(maxPages) << 16, log: log}
}

// withAllocator returns ctx for InstantiateModule.
func (l *linearMemory) withAllocator(ctx context.Context) context.Context {
	return experimental.WithMemoryAllocator(ctx, l)
}

// pin keeps the mapping while the guest runs; false means wazero freed
// it already (the instance is closed) and the guest must not run. unpin
// ends a pin, unmapping the memory if wazero freed it meanwhile.
func (l *linearMemory) pin() bool {
	if l.mem == nil {
		return true
	}
	m := l.mem
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.freed {
		return false
	}
	m.pins++
	return true
}

func (l *linearMemory) unpin() {
	if m := l.mem; m != nil {
		m.mu.Lock()
		defer m.mu.Unlock()
		m.pins--
		m.release()
	}
}

// Allocate reserves max bytes, the module's declared maximum or else the
// runtime's ceiling (WithMemoryLimitPages); capacity is ignored. wazero
// calls Reallocate on the result at once and cannot take a nil
// LinearMemory, so when mmap fails the memory lives on the Go heap, as
// without an allocator, and the guest still runs.
func (l *linearMemory) Allocate(capacity, max uint64) experimental.LinearMemory {
	max = min(max, l.limit)
	page := uint64(os.Getpagesize())
	size := (max + page - 1) &^ (page - 1)
	if size == 0 || size > math.MaxInt {
		return &heapMemory{max: max}
	}
	flags := syscall.MAP_PRIVATE | syscall.MAP_ANON
	if runtime.GOOS == "linux" {
		flags |= syscall.MAP_NORESERVE // address space only: no swap reserved
	}
	b, err := syscall.Mmap(-1, 0, int(size), syscall.PROT_READ|syscall.PROT_WRITE, flags)
	if err != nil {
		if l.log != nil {
			l.log.Warn("guest memory falls back to the Go heap", "err", fmt.Errorf("host: mmap %d bytes: %w", size, err))
		}
		return &heapMemory{max: max, buf: make([]byte, 0, min(capacity, max))}
	}
	liveMappings.Add(1)
	m := &mmapMemory{mapping: b}
	// Safety net. wazero frees an instance's memory when the instance
	// closes, but not when instantiation fails after the memory was made
	// (a bad data segment), nor when a guest traps while a deadline is
	// closing its module (the close then skips resources). The mapping
	// then goes when the instance is collected: wazero and the host hold
	// m while they may use the mapping.
	m.cleanup = runtime.AddCleanup(m, unmap, b)
	l.mem = m
	return m
}

// mmapMemory is one instance's mapping.
type mmapMemory struct {
	mu      sync.Mutex
	mapping []byte // the whole reservation; nil once unmapped
	pins    int    // guest calls in progress
	freed   bool
	cleanup runtime.Cleanup
}

// Reallocate returns the first size bytes of the mapping, at the same
// address every time, or nil past the reservation or once freed.
func (m *mmapMemory) Reallocate(size uint64) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.freed || size > uint64(len(m.mapping)) {
		return nil
	}
	return m.mapping[:size:size]
}

// Free unmaps the memory, or has the last unpin do it; later calls do
// nothing. Slices of it must not outlive the instance: the host copies
// what it keeps from guest memory.
func (m *mmapMemory) Free() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.freed = true
	m.release()
}

// release unmaps a freed, unpinned memory; m.mu is held.
func (m *mmapMemory) release() {
	if !m.freed || m.pins > 0 || m.mapping == nil {
		return
	}
	m.cleanup.Stop()
	unmap(m.mapping)
	m.mapping = nil
}

func unmap(b []byte) {
	// Munmap fails only for a slice it did not map: a bug here, and a
	// leaked mapping is better than a crash in a cleanup.
	if err := syscall.Munmap(b); err == nil {
		liveMappings.Add(-1)
	}
}

// heapMemory is wazero's own scheme, for when mmap fails: a Go slice that
// grows by copying. Wasm memory never shrinks.
type heapMemory struct {
	buf []byte
	max uint64
}

func (m *heapMemory) Reallocate(size uint64) []byte {
	if size > m.max {
		return nil
	}
	if n := uint64(len(m.buf)); size > n {
		m.buf = append(m.buf, make([]byte, size-n)...)
	}
	return m.buf[:size]
}

func (m *heapMemory) Free() { m.buf = nil }

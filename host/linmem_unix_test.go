//go:build linux || darwin

package host

import (
	"runtime"
	"testing"
	"time"

	"github.com/tetratelabs/wazero/experimental"
)

const wasmPage = 65536

func TestLinearMemory(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mem    func() experimental.LinearMemory
		mapped bool // one mapping: the base never moves
	}{
		{"mmap", func() experimental.LinearMemory { return newLinearMemory(16, nil).Allocate(2*wasmPage, 8*wasmPage) }, true},
		{"heap fallback", func() experimental.LinearMemory { return &heapMemory{max: 8 * wasmPage} }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			live := liveMappings.Load()
			m := tc.mem()
			b := m.Reallocate(2 * wasmPage)
			if len(b) != 2*wasmPage {
				t.Fatalf("initial length %d", len(b))
			}
			for i := range b {
				b[i] = byte(i * 7)
			}
			g := m.Reallocate(8 * wasmPage)
			if len(g) != 8*wasmPage {
				t.Fatalf("grown length %d", len(g))
			}
			if tc.mapped && &g[0] != &b[0] {
				t.Fatal("growth moved the memory")
			}
			for i := range b {
				if g[i] != byte(i*7) {
					t.Fatalf("byte %d lost in growth", i)
				}
			}
			for i, c := range g[2*wasmPage:] {
				if c != 0 {
					t.Fatalf("new byte %d is %d, not zero", i, c)
				}
			}
			if m.Reallocate(8*wasmPage+1) != nil {
				t.Fatal("grew past max")
			}
			if tc.mapped && liveMappings.Load() != live+1 {
				t.Fatalf("live mappings %d, want %d", liveMappings.Load(), live+1)
			}
			m.Free()
			m.Free()
			if tc.mapped && m.Reallocate(wasmPage) != nil {
				t.Fatal("freed memory reallocated")
			}
			if n := liveMappings.Load(); n != live {
				t.Fatalf("live mappings %d after Free, want %d", n, live)
			}
		})
	}
}

func TestMmapAllocatorBounds(t *testing.T) {
	a := newLinearMemory(16, nil) // a 1 MiB ceiling
	for _, tc := range []struct {
		name     string
		max      uint64
		reserved uint64 // the most Reallocate grants
	}{
		{"max above the ceiling is capped", 64 * wasmPage, 16 * wasmPage},
		{"max zero", 0, 0},
		{"max below the ceiling", 3 * wasmPage, 3 * wasmPage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := a.Allocate(0, tc.max)
			defer m.Free()
			if b := m.Reallocate(tc.reserved); uint64(len(b)) != tc.reserved {
				t.Fatalf("Reallocate(%d) gave %d bytes", tc.reserved, len(b))
			}
			if m.Reallocate(tc.reserved+wasmPage) != nil {
				t.Fatalf("grew past %d", tc.reserved)
			}
		})
	}
}

// TestMmapMemoryCleanup: a memory wazero never frees (failed
// instantiation) is unmapped once collected.
func TestMmapMemoryCleanup(t *testing.T) {
	live := liveMappings.Load()
	func() {
		m := newLinearMemory(16, nil).Allocate(0, 16*wasmPage)
		m.Reallocate(wasmPage)[0] = 1
	}()
	deadline := time.Now().Add(10 * time.Second)
	for liveMappings.Load() != live {
		if time.Now().After(deadline) {
			t.Fatalf("live mappings %d, want %d: the lost memory was not unmapped", liveMappings.Load(), live)
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}

// TestPinnedMemoryOutlivesFree: memory freed during a guest call stays
// mapped until the call ends, and a freed memory cannot be pinned.
func TestPinnedMemoryOutlivesFree(t *testing.T) {
	live := liveMappings.Load()
	l := newLinearMemory(16, nil)
	m := l.Allocate(0, 16*wasmPage)
	b := m.Reallocate(wasmPage)
	if !l.pin() {
		t.Fatal("fresh memory not pinned")
	}
	m.Free() // as wazero does when the Runtime closes during a call
	b[0] = 1 // still mapped: would fault otherwise
	if liveMappings.Load() != live+1 {
		t.Fatal("pinned memory unmapped")
	}
	l.unpin()
	if liveMappings.Load() != live {
		t.Fatal("freed memory not unmapped at unpin")
	}
	if l.pin() {
		t.Fatal("freed memory pinned")
	}
}

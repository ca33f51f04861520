//go:build linux || darwin

package host_test

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vrsky/vrsky/host"
	"github.com/vrsky/vrsky/host/hosttest"
)

func growSpec(t testing.TB, trusted bool) host.ModuleSpec {
	return host.ModuleSpec{Name: "grow", Wasm: hosttest.Build(t, "host/testdata/grow"), Trusted: trusted}
}

// TestGuestMemoryOffHeap: a guest that grows its memory by 32 MiB costs
// the Go heap next to nothing (it cost the growth, copied, on wazero's
// default allocator).
func TestGuestMemoryOffHeap(t *testing.T) {
	rt := hosttest.Runtime(t, host.Config{})
	p := hosttest.Pool(t, rt, growSpec(t, true), host.PoolConfig{})
	before := p.Stats().IdleMemoryBytes
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	r := process1(t, p, "32", nil)
	runtime.ReadMemStats(&m1)
	if r.Status != host.StatusOK || outs(r)[0] != "32" {
		t.Fatalf("%v %q %q", r.Status, r.Error, outs(r))
	}
	growth := p.Stats().IdleMemoryBytes - before
	alloc := int64(m1.TotalAlloc - m0.TotalAlloc)
	t.Logf("guest memory %d → %d KiB (+%d KiB); Go heap allocated %d KiB", before>>10, (before+growth)>>10, growth>>10, alloc>>10)
	if growth < 32<<20 {
		t.Fatalf("guest grew only %d bytes", growth)
	}
	if alloc > growth/4 {
		t.Fatalf("Go heap allocated %d bytes for %d of guest growth", alloc, growth)
	}
}

// TestGuestMemoryReleased: guests grow through the pool and keep their
// contents, and every instance discarded (trap, exit, deadline, memory
// above the pool's limit) or closed gives its mapping back.
func TestGuestMemoryReleased(t *testing.T) {
	rt := hosttest.Runtime(t, host.Config{MaxMemoryPages: 1024}) // 64 MiB
	probe, grow := probeSpec(t, true, host.Capabilities{}), growSpec(t, true)
	untrusted := func(s host.ModuleSpec) host.ModuleSpec { s.Trusted = false; return s }
	long := host.Limits{Timeout: 2 * time.Minute} // growth under the race detector is slow
	for _, tc := range []struct {
		name   string
		spec   host.ModuleSpec
		limits host.Limits
		ins    []string
		outs   []string // "" for a retryable failure
		kept   bool
	}{
		{"grows and keeps its contents", grow, long, []string{"4", "8", "4"}, []string{"4", "12", "16"}, true},
		{"grows untrusted", untrusted(grow), long, []string{"8", "8"}, []string{"8", "16"}, true},
		{"out of memory", grow, long, []string{"100"}, []string{""}, false},
		{"out of memory untrusted", untrusted(grow), long, []string{"100"}, []string{""}, false},
		{"exit", probe, long, []string{"exit"}, []string{""}, false},
		{"deadline", untrusted(probe), host.Limits{Timeout: 300 * time.Millisecond}, []string{"loop"}, []string{""}, false},
		{"above the pool's page limit", grow, host.Limits{Timeout: time.Minute, MaxMemoryPages: 200}, []string{"16"}, []string{"16"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := host.LiveMappings()
			p := hosttest.Pool(t, rt, tc.spec, host.PoolConfig{Limits: tc.limits})
			for k, in := range tc.ins {
				r := process1(t, p, in, nil)
				if tc.outs[k] == "" {
					if r.Status != host.StatusRetryable {
						t.Fatalf("%q: %v %q, want retryable", in, r.Status, r.Error)
					}
				} else if r.Status != host.StatusOK || outs(r)[0] != tc.outs[k] {
					t.Fatalf("%q: %v %q %q, want %q", in, r.Status, r.Error, outs(r), tc.outs[k])
				}
			}
			s := p.Stats()
			if (s.Live == 1) != tc.kept || s.Live > 1 {
				t.Fatalf("instance kept %v: %+v", tc.kept, s)
			}
			if host.LiveMappings() != base+int64(s.Live) {
				t.Fatalf("%d mappings live, want %d", host.LiveMappings(), base+int64(s.Live))
			}
			p.Close()
			if n := host.LiveMappings(); n != base {
				t.Fatalf("%d mappings live after Close, want %d", n, base)
			}
		})
	}
}

// TestRuntimeCloseUnderPool: a call to an instance whose Runtime was
// closed fails (retryable) instead of faulting on unmapped memory. (A
// Runtime closed during a call is TestPinnedMemoryOutlivesFree: wazero
// itself races then, which the race detector reports.)
func TestRuntimeCloseUnderPool(t *testing.T) {
	for _, trusted := range []bool{true, false} {
		base := host.LiveMappings()
		rt := hosttest.Runtime(t, host.Config{})
		p := hosttest.Pool(t, rt, growSpec(t, trusted), host.PoolConfig{})
		rt.Close(context.Background())
		if r := process1(t, p, "1", nil); r.Status != host.StatusRetryable || !strings.Contains(r.Error, "instance closed") {
			t.Fatalf("trusted %v: %v %q", trusted, r.Status, r.Error)
		}
		p.Close()
		if n := host.LiveMappings(); n != base {
			t.Fatalf("%d mappings live, want %d", n, base)
		}
	}
}

package host_test

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/vrsky/vrsky/host"
	"github.com/vrsky/vrsky/host/hosttest"
	"github.com/vrsky/vrsky/host/wasmcheck"
	"github.com/vrsky/vrsky/host/wasmcheck/wasmchecktest"
)

// TestLoadRefusesHostileModules loads the modules that used to end or
// swell the server (a 100-byte module with 2^32-1 locals asked the OS for
// 32 GiB) as an upload would: untrusted. Each is refused by the structure
// check, naming the limit and the function, before any compiler runs, and
// the Go heap does not grow by more than the module itself.
func TestLoadRefusesHostileModules(t *testing.T) {
	rt := hosttest.Runtime(t, host.Config{})
	tests := []struct {
		name  string
		wasm  []byte
		limit string
	}{
		{"2^32-1 i32 locals", wasmchecktest.ManyLocals(0xffffffff, wasmchecktest.I32), wasmcheck.LimitLocals},
		{"50,000,000 i64 locals", wasmchecktest.ManyLocals(50_000_000, wasmchecktest.I64), wasmcheck.LimitLocals},
		{"1,000,000 nested blocks", wasmchecktest.NestedBlocks(1_000_000), wasmcheck.LimitNestingDepth},
		{"br_table of 1,000,000 targets", wasmchecktest.BrTable(1_000_000), wasmcheck.LimitBrTableTargets},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			start := time.Now()
			_, err := rt.Load(context.Background(), host.ModuleSpec{Name: "hostile", Wasm: tc.wasm})
			took := time.Since(start)
			runtime.ReadMemStats(&after)
			var le *wasmcheck.LimitError
			if !errors.As(err, &le) || le.Limit != tc.limit || le.Func != 1 {
				t.Fatalf("Load = %v, want the %q limit on function 1", err, tc.limit)
			}
			if took > 2*time.Second {
				t.Errorf("refused after %v", took)
			}
			if grew := int64(after.TotalAlloc-before.TotalAlloc) - int64(len(tc.wasm)); grew > 16<<20 {
				t.Errorf("Load allocated %d MiB beyond the module", grew>>20)
			}
		})
	}
}

// TestCompileSandboxBounds compiles a real Go guest, untrusted, with
// bounds it cannot meet: the child process that compiles it is stopped,
// and Load answers a *CompileError naming the bound. With the default
// bounds the same module loads, and runs.
func TestCompileSandboxBounds(t *testing.T) {
	wasm := hosttest.Build(t, "host/testdata/grow")
	tests := []struct {
		name  string
		cfg   host.Config
		limit string
	}{
		{"time", host.Config{CompileTimeout: time.Millisecond}, host.CompileLimitTime},
		{"memory", host.Config{CompileMemory: 24 << 20}, host.CompileLimitMemory},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rt := hosttest.Runtime(t, tc.cfg)
			// A byte of a custom section makes the module one no other test
			// (or subtest) has proven in this process.
			unique := append(append([]byte{}, wasm...), 0, 3, 1, tc.name[0], 0)
			_, err := rt.Load(context.Background(), host.ModuleSpec{Name: "grow", Wasm: unique})
			var ce *host.CompileError
			if !errors.As(err, &ce) || ce.Limit != tc.limit {
				t.Fatalf("Load = %v, want a *CompileError for %q", err, tc.limit)
			}
		})
	}
	t.Run("within bounds", func(t *testing.T) {
		rt := hosttest.Runtime(t, host.Config{})
		mod, err := rt.Load(context.Background(), host.ModuleSpec{Name: "grow", Wasm: wasm})
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		t.Cleanup(func() { mod.Close(context.Background()) })
	})
}

// TestCompileSandboxInvalidModule: a module that passes the structure
// check but is not valid Wasm (a call to a function that does not exist)
// is a *CompileError without a bound, with the compiler's reason.
func TestCompileSandboxInvalidModule(t *testing.T) {
	rt := hosttest.Runtime(t, host.Config{})
	bad := wasmchecktest.Guest(nil, []byte{0x10, 0x7f, 0x41, 0, 0x0b}) // call 127
	_, err := rt.Load(context.Background(), host.ModuleSpec{Name: "bad", Wasm: bad})
	var ce *host.CompileError
	if !errors.As(err, &ce) || ce.Limit != "" || ce.Reason == "" {
		t.Fatalf("Load = %v, want a *CompileError with the compiler's reason", err)
	}
}

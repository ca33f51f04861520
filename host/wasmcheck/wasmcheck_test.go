package wasmcheck_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/vrsky/vrsky/host/wasmcheck"
	"github.com/vrsky/vrsky/host/wasmcheck/wasmchecktest"
)

// compile is the oracle: wazero with the features the host enables.
func compile(t testing.TB, b []byte) error {
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCoreFeatures(api.CoreFeaturesV2))
	defer rt.Close(ctx)
	_, err := rt.CompileModule(ctx, b)
	return err
}

func TestCheckRefusesHostileModules(t *testing.T) {
	const process = 1 // the guests' vrsky_process: function 1, after the marker
	tests := []struct {
		name  string
		wasm  []byte
		limit string
		value uint64
	}{
		{"4,294,967,295 i32 locals", wasmchecktest.ManyLocals(0xffffffff, wasmchecktest.I32), wasmcheck.LimitLocals, 0xffffffff + 1},
		{"50,000,000 i64 locals", wasmchecktest.ManyLocals(50_000_000, wasmchecktest.I64), wasmcheck.LimitLocals, 50_000_001},
		{"one local over the limit", wasmchecktest.ManyLocals(50_000, wasmchecktest.I32), wasmcheck.LimitLocals, 50_001},
		{"1,000,000 nested blocks", wasmchecktest.NestedBlocks(1_000_000), wasmcheck.LimitNestingDepth, 10_001},
		{"br_table of 1,000,000 targets", wasmchecktest.BrTable(1_000_000), wasmcheck.LimitBrTableTargets, 1_000_000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			_, err := wasmcheck.Check(tc.wasm, wasmcheck.DefaultLimits())
			var le *wasmcheck.LimitError
			if !errors.As(err, &le) {
				t.Fatalf("Check = %v, want a *LimitError", err)
			}
			if le.Limit != tc.limit || le.Func != process || le.Value != tc.value {
				t.Errorf("got %+v, want limit %q, function %d, value %d", le, tc.limit, process, tc.value)
			}
			if took := time.Since(start); took > time.Second {
				t.Errorf("Check took %v", took)
			}
		})
	}
}

func TestCheckAcceptsWhatIsWithinTheLimits(t *testing.T) {
	tests := []struct {
		name string
		wasm []byte
	}{
		{"plain guest", wasmchecktest.Guest(nil, wasmchecktest.Ret)},
		{"locals at the limit", wasmchecktest.ManyLocals(49_999, wasmchecktest.I32)},
		{"nesting at the limit", wasmchecktest.NestedBlocks(9_999)},
		{"br_table at the limit", wasmchecktest.BrTable(65_520)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := wasmcheck.Check(tc.wasm, wasmcheck.DefaultLimits()); err != nil {
				t.Fatalf("Check: %v", err)
			}
			if testing.Short() {
				return
			}
			if err := compile(t, tc.wasm); err != nil { // the builder makes valid modules
				t.Fatalf("wazero refuses it: %v", err)
			}
		})
	}
}

func TestCheckModuleWideLimits(t *testing.T) {
	guest := wasmchecktest.Guest(nil, wasmchecktest.Ret)
	tests := []struct {
		name  string
		lower func(*wasmcheck.Limits)
		limit string
	}{
		{"module size", func(l *wasmcheck.Limits) { l.ModuleBytes = 10 }, wasmcheck.LimitModuleBytes},
		{"types", func(l *wasmcheck.Limits) { l.Types = 1 }, wasmcheck.LimitTypes},
		{"functions", func(l *wasmcheck.Limits) { l.Functions = 1 }, wasmcheck.LimitFunctions},
		{"exports", func(l *wasmcheck.Limits) { l.Exports = 2 }, wasmcheck.LimitExports},
		{"memories", func(l *wasmcheck.Limits) { l.Memories = 0 }, wasmcheck.LimitMemories},
		{"body size", func(l *wasmcheck.Limits) { l.BodyBytes = 2 }, wasmcheck.LimitBodyBytes},
		{"params", func(l *wasmcheck.Limits) { l.Params = 0 }, wasmcheck.LimitParams},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := wasmcheck.DefaultLimits()
			tc.lower(&l)
			_, err := wasmcheck.Check(guest, l)
			var le *wasmcheck.LimitError
			if !errors.As(err, &le) || le.Limit != tc.limit {
				t.Fatalf("Check = %v, want the %q limit", err, tc.limit)
			}
		})
	}
}

func TestCheckMalformed(t *testing.T) {
	guest := wasmchecktest.Guest(nil, wasmchecktest.Ret)
	tests := []struct {
		name string
		wasm []byte
		want error
	}{
		{"empty", nil, wasmcheck.ErrNotWasm},
		{"not wasm", []byte("\x7fELF\x02\x01\x01\x00"), wasmcheck.ErrNotWasm},
		{"truncated", guest[:len(guest)-3], &wasmcheck.FormatError{}},
		{"section overruns", append(append([]byte{}, guest[:8]...), 1, 0xff, 0x01), &wasmcheck.FormatError{}},
		{"unknown opcode", wasmchecktest.Guest(nil, []byte{0xff, 0x0b}), &wasmcheck.FormatError{}},
		{"LEB over 32 bits", append(append([]byte{}, guest[:8]...), 1, 0x80, 0x80, 0x80, 0x80, 0x70), &wasmcheck.FormatError{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := wasmcheck.Check(tc.wasm, wasmcheck.DefaultLimits())
			if fe := (*wasmcheck.FormatError)(nil); errors.As(tc.want, &fe) {
				if !errors.As(err, &fe) {
					t.Fatalf("Check = %v, want a *FormatError", err)
				}
				if compile(t, tc.wasm) == nil {
					t.Fatalf("wazero compiles what Check calls malformed")
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Check = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestShippedModulesWithinLimits keeps the Go guests that ship with VRSky
// inside the limits, with the headroom RATIONALE.md quotes. make test
// builds them first (make wasm).
func TestShippedModulesWithinLimits(t *testing.T) {
	files, _ := filepath.Glob("../../wasm-connectors/build/*.wasm")
	if len(files) == 0 {
		t.Fatal("no shipped modules in wasm-connectors/build: run make wasm")
	}
	l := wasmcheck.DefaultLimits()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		info, err := wasmcheck.Check(b, l)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		lg := info.Largest
		t.Logf("%s: %d functions, largest: %d locals, %d-byte body, depth %d, br_table %d",
			filepath.Base(f), info.Functions, lg.Locals, lg.BodyBytes, lg.NestingDepth, lg.BrTableTargets)
		if lg.NestingDepth*2 > l.NestingDepth || lg.BrTableTargets*4 > l.BrTableTargets || lg.BodyBytes*4 > l.BodyBytes {
			t.Errorf("%s comes within a factor of 2 (depth) or 4 (br_table, body) of the limits: %+v", f, lg)
		}
	}
}

func BenchmarkCheckShipped(b *testing.B) {
	wasm, err := os.ReadFile("../../wasm-connectors/build/jq.wasm")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(wasm)))
	for b.Loop() {
		if _, err := wasmcheck.Check(wasm, wasmcheck.DefaultLimits()); err != nil {
			b.Fatal(err)
		}
	}
}

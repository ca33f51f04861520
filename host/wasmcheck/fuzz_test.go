package wasmcheck_test

import (
	"errors"
	"testing"

	"github.com/vrsky/vrsky/host/wasmcheck"
	"github.com/vrsky/vrsky/host/wasmcheck/wasmchecktest"
)

// fuzzLimits are low, so that the fuzzer reaches every limit with small
// inputs and the oracle never compiles anything large.
func fuzzLimits() wasmcheck.Limits {
	l := wasmcheck.DefaultLimits()
	l.Locals, l.NestingDepth, l.BrTableTargets, l.BodyBytes = 64, 16, 16, 4096
	return l
}

// FuzzCheck: Check never panics, and what it accepts wazero decodes and
// compiles without running out of memory: Check's job is to keep the
// compiler's allocations bounded by the limits. (The converse, that Check
// never calls malformed what wazero accepts, is checked on real modules in
// TestCheckAgreesWithTheCompiler; wazero cannot be the oracle for inputs
// Check refuses, since some of them make wazero itself allocate gigabytes:
// testdata/fuzz/FuzzCheck/fe81aea1a84db65a, a type section whose parameter
// count runs past its end.) The corpus starts from the hostile modules.
func FuzzCheck(f *testing.F) {
	f.Add(wasmchecktest.Guest(nil, wasmchecktest.Ret))
	f.Add(wasmchecktest.ManyLocals(0xffffffff, wasmchecktest.I32))
	f.Add(wasmchecktest.ManyLocals(50_000_000, wasmchecktest.I64))
	f.Add(wasmchecktest.NestedBlocks(20))
	f.Add(wasmchecktest.BrTable(20))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := wasmcheck.Check(b, fuzzLimits())
		var le *wasmcheck.LimitError
		var fe *wasmcheck.FormatError
		switch {
		case err == nil:
			_ = compile(t, b) // must return, valid or not, without exhausting memory
		case errors.As(err, &le), errors.As(err, &fe), errors.Is(err, wasmcheck.ErrNotWasm):
		default:
			t.Fatalf("Check returned an untyped error: %v", err)
		}
	})
}

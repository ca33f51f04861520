package host_test

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vrsky/vrsky/host"
	"github.com/vrsky/vrsky/host/hosttest"
	"github.com/vrsky/vrsky/host/wasmcheck/wasmchecktest"
)

// loopGuest describes a hand-assembled hostile guest (no toolchain): its
// vrsky_process runs n iterations of "select a message, make one host
// call", the way the guests of issue 21 did.
type loopGuest struct {
	op        string // "emit" (emit(0, size)) or "header_set" (a new 4-byte name each time, a value of size bytes)
	size      int32  // bytes per call, read from address 0
	n         int32  // iterations
	alternate bool   // select message k % count before each call (else message 0, once per call)
	statusOK  bool   // call status(OK) after each call, as a guest that ignores errors would
	pages     byte   // linear memory, in 64 KiB pages
}

// wasm assembles the guest. It imports input, emit, header_set and status
// with their ABI v1 signatures; appendU32 is rawwasm_test.go's.
func (g loopGuest) wasm() []byte {
	b := []byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00}
	section := func(id byte, content []byte) {
		b = append(b, id)
		b = wasmchecktest.U32(b, uint32(len(content)))
		b = append(b, content...)
	}
	name := func(c []byte, s string) []byte { return append(wasmchecktest.U32(c, uint32(len(s))), s...) }
	const i32 = 0x7f
	// types: 0 = (i32 i32 i32) -> i32, 1 = (i32 i32) -> i32,
	// 2 = (i32 i32 i32 i32) -> i32, 3 = () -> (), 4 = (i32) -> i32
	section(1, []byte{5,
		0x60, 3, i32, i32, i32, 1, i32,
		0x60, 2, i32, i32, 1, i32,
		0x60, 4, i32, i32, i32, i32, 1, i32,
		0x60, 0, 0,
		0x60, 1, i32, 1, i32})
	imports := []struct {
		fn  string
		typ byte
	}{{"input", 0}, {"emit", 1}, {"header_set", 2}, {"status", 0}}
	c := wasmchecktest.U32(nil, uint32(len(imports)))
	for _, im := range imports {
		c = name(name(c, "vrsky"), im.fn)
		c = append(c, 0x00, im.typ)
	}
	section(2, c)
	const fnInput, fnEmit, fnHeaderSet, fnStatus, fnMarker, fnProcess = 0, 1, 2, 3, 4, 5
	section(3, []byte{2, 3, 4})
	section(5, []byte{1, 0x00, g.pages})
	e := wasmchecktest.U32(nil, 3)
	e = append(name(e, "vrsky_abi_v1"), 0, fnMarker)
	e = append(name(e, "vrsky_process"), 0, fnProcess)
	e = append(name(e, "memory"), 2, 0)
	section(7, e)

	// vrsky_process(count): local 0 is count, local 1 the iteration k.
	code := []byte{1, 1, i32}       // one i32 local
	code = append(code, 0x03, 0x40) // loop
	if g.alternate {
		code = append(code, 0x20, 1, 0x20, 0, 0x70) // k % count
	} else {
		code = wasmchecktest.I32Const(code, 0)
	}
	code = wasmchecktest.I32Const(wasmchecktest.I32Const(code, 0), 0)
	code = append(code, 0x10, fnInput, 0x1a) // input(i, 0, 0); drop
	switch g.op {
	case "emit":
		code = wasmchecktest.I32Const(wasmchecktest.I32Const(code, 0), g.size)
		code = append(code, 0x10, fnEmit, 0x1a) // emit(0, size); drop
	case "header_set":
		code = wasmchecktest.I32Const(code, 0)
		code = append(code, 0x20, 1, 0x36, 2, 0) // store k at 0: the name
		code = wasmchecktest.I32Const(wasmchecktest.I32Const(wasmchecktest.I32Const(wasmchecktest.I32Const(code, 0), 4), 0), g.size)
		code = append(code, 0x10, fnHeaderSet, 0x1a) // header_set(0, 4, 0, size); drop
	default:
		panic("loopGuest: op " + g.op)
	}
	if g.statusOK {
		code = wasmchecktest.I32Const(wasmchecktest.I32Const(wasmchecktest.I32Const(code, 0), 0), 0)
		code = append(code, 0x10, fnStatus, 0x1a) // status(OK, 0, 0); drop
	}
	code = append(code, 0x20, 1)
	code = wasmchecktest.I32Const(code, 1)
	code = append(code, 0x6a, 0x22, 1) // k = k + 1 (kept on the stack)
	code = wasmchecktest.I32Const(code, g.n)
	code = append(code, 0x49, 0x0d, 0, 0x0b) // k < n: again; end loop
	code = wasmchecktest.I32Const(code, 0)
	code = append(code, 0x0b) // return 0
	body := wasmchecktest.U32([]byte{2, 2, 0, 0x0b}, uint32(len(code)))
	section(10, append(body, code...))
	return b
}

// allocated runs f and returns how many bytes the Go heap allocated
// meanwhile (TotalAlloc: every allocation, whether the GC has freed it
// or not) and how much the live heap grew.
func allocated(f func()) (total, growth int64) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.GC()
	runtime.ReadMemStats(&after)
	return int64(after.TotalAlloc - before.TotalAlloc), int64(after.HeapAlloc) - int64(before.HeapAlloc)
}

// TestBudgetsRefuseHostileGuests replays the guests of issue 21 against the
// default budgets: each message fails permanently at a budget, and what
// the host allocates for it stays within a bound far below what the guest
// asked for.
func TestBudgetsRefuseHostileGuests(t *testing.T) {
	rt := hosttest.Runtime(t, host.Config{})
	const mib = 1 << 20
	tests := []struct {
		name     string
		guest    loopGuest
		batch    int
		errHas   string
		asked    int64 // bytes the guest tried to make the host hold
		maxAlloc int64 // bound on the host's allocations during the call
	}{
		{
			// No value is ever copied: the first is over the 64 KiB budget.
			name:  "header_set 2000 times 1 MiB",
			guest: loopGuest{op: "header_set", size: mib, n: 2000, pages: 17},
			batch: 1, errHas: "header limit exceeded: more than 65536 bytes",
			asked: 2000 * mib, maxAlloc: 4 * mib,
		},
		{
			name:  "header_set 2000 small headers",
			guest: loopGuest{op: "header_set", size: 16, n: 2000, pages: 1},
			batch: 1, errHas: "header limit exceeded: more than 64 header_set calls",
			asked: 2000 * 20, maxAlloc: 4 * mib,
		},
		{
			// Selecting the other message again resets nothing. The host
			// copies at most the call's 16 MiB per message (once for the
			// message deferred, once again in its own call): 48 MiB.
			name:  "emit across input() in a 2-message batch",
			guest: loopGuest{op: "emit", size: mib, n: 600, alternate: true, statusOK: true, pages: 17},
			batch: 2, errHas: "output limit exceeded: more than 16777216 bytes",
			asked: 600 * mib, maxAlloc: 48*mib + 8*mib,
		},
		{
			// Empty outputs: the byte budget never sees them, the count
			// does. 65,536 outputs hold about 4 MiB (48-byte entries and
			// their IDs); growing the slice to them allocates about 18 MiB
			// in all. 200,000 would allocate about 50 MiB.
			name:  "200000 empty outputs",
			guest: loopGuest{op: "emit", size: 0, n: 200_000, pages: 1},
			batch: 1, errHas: "output limit exceeded: more than 65536 outputs",
			maxAlloc: 24 * mib,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := host.ModuleSpec{Name: "hostile", Wasm: tc.guest.wasm()}
			p := hosttest.Pool(t, rt, spec, host.PoolConfig{Limits: host.Limits{Timeout: time.Minute}})
			msgs := make([]host.Message, tc.batch)
			for i := range msgs {
				msgs[i] = host.Message{ID: string(rune('a' + i)), Data: []byte("x")}
			}
			var res []host.Result
			var err error
			total, growth := allocated(func() { res, err = p.Process(context.Background(), msgs) })
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range res {
				if r.Status != host.StatusPermanent || !strings.Contains(r.Error, tc.errHas) || r.Out != nil {
					t.Errorf("message %d: %v %q with %d outputs, want permanent with %q", i, r.Status, r.Error, len(r.Out), tc.errHas)
				}
			}
			t.Logf("asked %d MiB, host allocated %.1f MiB, live heap grew %.1f MiB", tc.asked/mib, float64(total)/mib, float64(growth)/mib)
			if total > tc.maxAlloc {
				t.Errorf("host allocated %d bytes during the call, bound %d", total, tc.maxAlloc)
			}
			if growth > 4*mib {
				t.Errorf("live heap grew %d bytes, bound %d", growth, 4*mib)
			}
			// The pool is healthy: the instance was not discarded.
			if s := p.Stats(); s.Discarded != 0 {
				t.Errorf("instance discarded: %+v", s)
			}
		})
	}
}

// TestBudgetBoundaries checks each budget at and one past its limit, with
// the Go SDK's probe guest and with small configured limits.
func TestBudgetBoundaries(t *testing.T) {
	rt := hosttest.Runtime(t, host.Config{})
	tests := []struct {
		name   string
		limits host.Limits
		guest  *loopGuest // nil: the probe
		in     string
		status host.Status
		errHas string
		outs   int
	}{
		{name: "outputs at the count", limits: host.Limits{MaxOutputs: 10}, in: "multi:10", status: host.StatusOK, outs: 10},
		{name: "outputs past the count", limits: host.Limits{MaxOutputs: 10}, in: "multi:11", status: host.StatusPermanent, errHas: "more than 10 outputs"},
		{name: "probe 200000 outputs, default count", in: "multi:200000", status: host.StatusPermanent, errHas: "more than 65536 outputs"},
		{name: "bytes at the budget", limits: host.Limits{MaxOutputBytes: 1000}, in: "big:1000", status: host.StatusOK, outs: 1},
		{name: "bytes past the budget", limits: host.Limits{MaxOutputBytes: 1000}, in: "big:1001", status: host.StatusPermanent, errHas: "more than 1000 bytes"},
		{name: "header_set at the count", guest: &loopGuest{op: "header_set", size: 1, n: 64, pages: 1}, status: host.StatusOK},
		{name: "header_set past the count", guest: &loopGuest{op: "header_set", size: 1, n: 65, pages: 1}, status: host.StatusPermanent, errHas: "more than 64 header_set calls"},
		{name: "header bytes at the budget", limits: host.Limits{MaxHeaderBytes: 4 * 104}, guest: &loopGuest{op: "header_set", size: 100, n: 4, pages: 1}, status: host.StatusOK},
		{name: "header bytes past the budget", limits: host.Limits{MaxHeaderBytes: 4*104 - 1}, guest: &loopGuest{op: "header_set", size: 100, n: 4, pages: 1}, status: host.StatusPermanent, errHas: "more than 415 bytes"},
		{name: "status(OK) cannot undo a budget", limits: host.Limits{MaxOutputs: 3}, guest: &loopGuest{op: "emit", size: 1, n: 5, statusOK: true, pages: 1}, status: host.StatusPermanent, errHas: "more than 3 outputs"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := probeSpec(t, false, host.Capabilities{})
			if tc.guest != nil {
				spec = host.ModuleSpec{Name: "loop", Wasm: tc.guest.wasm()}
			}
			tc.limits.Timeout = time.Minute
			p := hosttest.Pool(t, rt, spec, host.PoolConfig{Limits: tc.limits})
			r := process1(t, p, tc.in, nil)
			if r.Status != tc.status || !strings.Contains(r.Error, tc.errHas) || len(r.Out) != tc.outs {
				t.Fatalf("got %v %q with %d outputs, want %v with %q and %d outputs", r.Status, r.Error, len(r.Out), tc.status, tc.errHas, tc.outs)
			}
		})
	}
}

// TestBudgetDefersToOwnCall: messages that find the call's output budget
// spent by others of the batch are not failed; the host runs them again in
// a call of their own, and the outputs and their IDs are what one call
// would have made.
func TestBudgetDefersToOwnCall(t *testing.T) {
	rt := hosttest.Runtime(t, host.Config{})
	tests := []struct {
		name   string
		limits host.Limits
		in     []string
		calls  int64
		outs   []int
		status []host.Status
	}{
		{name: "bytes", limits: host.Limits{MaxOutputBytes: 1000}, in: []string{"big:600", "big:600", "big:600"}, calls: 3,
			outs: []int{1, 1, 1}, status: []host.Status{host.StatusOK, host.StatusOK, host.StatusOK}},
		{name: "count", limits: host.Limits{MaxOutputs: 5}, in: []string{"multi:3", "multi:3", "drop", "multi:2"}, calls: 2,
			outs: []int{3, 3, 0, 2}, status: []host.Status{host.StatusOK, host.StatusOK, host.StatusDrop, host.StatusOK}},
		{name: "a failure among them", limits: host.Limits{MaxOutputBytes: 1000}, in: []string{"big:600", "big:1001", "big:600"}, calls: 2,
			outs: []int{1, 0, 1}, status: []host.Status{host.StatusOK, host.StatusPermanent, host.StatusOK}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := hosttest.Pool(t, rt, probeSpec(t, true, host.Capabilities{}), host.PoolConfig{Limits: tc.limits})
			msgs := make([]host.Message, len(tc.in))
			for i, in := range tc.in {
				msgs[i] = host.Message{ID: "m" + string(rune('0'+i)), Data: []byte(in)}
			}
			res, err := p.Process(context.Background(), msgs)
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range res {
				if r.Status != tc.status[i] || len(r.Out) != tc.outs[i] {
					t.Errorf("message %d (%s): %v %q with %d outputs, want %v with %d", i, tc.in[i], r.Status, r.Error, len(r.Out), tc.status[i], tc.outs[i])
				}
				for k, o := range r.Out {
					want := msgs[i].ID
					if k > 0 {
						want += "-" + string(rune('0'+k))
					}
					if o.ID != want {
						t.Errorf("message %d output %d: ID %q, want %q", i, k, o.ID, want)
					}
				}
			}
			if s := p.Stats(); s.Calls != tc.calls || s.Discarded != 0 {
				t.Errorf("stats %+v, want %d calls and no instance discarded", s, tc.calls)
			}
		})
	}
}

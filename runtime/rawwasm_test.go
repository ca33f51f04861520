package runtime_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/vrsky/vrsky/host"
	"github.com/vrsky/vrsky/host/hosttest"
	"github.com/vrsky/vrsky/host/wasmcheck/wasmchecktest"
	"github.com/vrsky/vrsky/runtime"
	"github.com/vrsky/vrsky/runtime/wasmstep"
)

// rawWasm is a module of ABI v1's shape assembled by hand, without a
// toolchain, as host/rawwasm_test.go does: imports from module "vrsky"
// (every parameter and result i32), one exported memory, data segments,
// the marker, vrsky_process and, optionally, a start function. It is how
// these tests play a hostile module: one that loops in its start
// function, or one that does what no shipped module does with its
// capabilities.
type rawWasm struct {
	// imports are vrsky functions with their parameter counts (1..4);
	// they take function indexes 0, 1, … in order.
	imports []rawImport
	// pages is the memory's initial size in 64 KiB pages (at least 1).
	pages uint32
	// data is copied into memory at instantiation.
	data []rawData
	// process is vrsky_process's body: instructions that leave its i32
	// result on the stack (the final end is added). Local 0 is the
	// message count, local 1 an i32 scratch.
	process []byte
	// start, when set, is the body of a () -> () function named by the
	// start section, so it runs when the module is instantiated.
	start []byte
}

type rawImport struct {
	name   string
	params int
}

type rawData struct {
	offset int32
	bytes  []byte
}

// bytes assembles the module.
func (w rawWasm) bytes() []byte {
	b := []byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00}
	section := func(id byte, content []byte) {
		b = append(b, id)
		b = wasmchecktest.U32(b, uint32(len(content)))
		b = append(b, content...)
	}
	name := func(c []byte, s string) []byte { return append(wasmchecktest.U32(c, uint32(len(s))), s...) }
	// Types: 0 = () -> (); n (1..4) = (i32 × n) -> i32.
	types := []byte{5, 0x60, 0, 0}
	for n := 1; n <= 4; n++ {
		types = append(types, 0x60, byte(n))
		for range n {
			types = append(types, 0x7f)
		}
		types = append(types, 1, 0x7f)
	}
	section(1, types)
	if len(w.imports) > 0 {
		c := wasmchecktest.U32(nil, uint32(len(w.imports)))
		for _, im := range w.imports {
			c = name(c, "vrsky")
			c = name(c, im.name)
			c = append(c, 0x00, byte(im.params))
		}
		section(2, c)
	}
	k := uint32(len(w.imports)) // the marker's index; process k+1, start k+2
	funcs := []byte{0, 1}       // marker: type 0, process: type 1
	if w.start != nil {
		funcs = append(funcs, 0)
	}
	section(3, append(wasmchecktest.U32(nil, uint32(len(funcs))), funcs...))
	section(5, append([]byte{1, 0x00}, wasmchecktest.U32(nil, max(w.pages, 1))...))
	e := wasmchecktest.U32(nil, 3)
	e = wasmchecktest.U32(append(name(e, "vrsky_abi_v1"), 0), k)
	e = wasmchecktest.U32(append(name(e, "vrsky_process"), 0), k+1)
	e = append(name(e, "memory"), 2, 0)
	section(7, e)
	if w.start != nil {
		section(8, wasmchecktest.U32(nil, k+2))
	}
	body := func(c []byte, locals []byte, instr []byte) []byte {
		fn := append(append(append([]byte(nil), locals...), instr...), 0x0b)
		return append(wasmchecktest.U32(c, uint32(len(fn))), fn...)
	}
	code := wasmchecktest.U32(nil, uint32(len(funcs)))
	code = body(code, []byte{0}, nil)                // marker
	code = body(code, []byte{1, 1, 0x7f}, w.process) // process: one i32 local
	if w.start != nil {
		code = body(code, []byte{0}, w.start)
	}
	section(10, code)
	if len(w.data) > 0 {
		d := wasmchecktest.U32(nil, uint32(len(w.data)))
		for _, seg := range w.data {
			d = append(d, 0x00)
			d = append(wasmchecktest.I32Const(d, seg.offset), 0x0b)
			d = append(wasmchecktest.U32(d, uint32(len(seg.bytes))), seg.bytes...)
		}
		section(11, d)
	}
	return b
}

// Instructions, appended to b.

func call(b []byte, fn uint32) []byte { return wasmchecktest.U32(append(b, 0x10), fn) }

const (
	opDrop     = 0x1a
	opLocalGet = 0x20
	opLocalSet = 0x21
	opI32Add   = 0x6a
	opI32LtU   = 0x49
	opEnd      = 0x0b
)

// spinForever is a body that never returns: loop { br 0 }.
var spinForever = []byte{0x03, 0x40, 0x0c, 0x00, 0x0b}

// rawStep loads w through the real host (untrusted: the instantiation
// and call deadlines apply) and makes it step connector name with the
// given capabilities and limits. counter, when not nil, counts the
// module's instantiations as NewStep calls and returns.
func rawStep(t *testing.T, name string, w rawWasm, caps host.Capabilities, env host.Env, limits host.Limits, counter *buildCounter) runtime.Connector {
	t.Helper()
	rt := hosttest.Runtime(t, host.Config{})
	mod, err := rt.Load(context.Background(), host.ModuleSpec{Name: name, Version: "1.0.0", Wasm: w.bytes(), Capabilities: caps})
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	c := wasmstep.New(wasmstep.Info{
		Name: name, Version: "1.0.0", Description: "a hand-assembled test module",
		Module: func(context.Context) (*host.Module, error) { return mod, nil },
		Env:    env, Limits: limits,
	})
	if counter != nil {
		newStep := c.NewStep
		c.NewStep = func(cfg json.RawMessage, env runtime.Env) (runtime.Step, error) {
			counter.started.Add(1)
			defer counter.ended.Add(1)
			return newStep(cfg, env)
		}
	}
	return c
}

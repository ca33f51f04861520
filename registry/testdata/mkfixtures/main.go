// Command mkfixtures writes the registry's test modules, hand-assembled
// Wasm binaries of a few hundred bytes (no toolchain needed):
//
//	go run ./registry/testdata/mkfixtures
//
// wrap.wasm        a good ABI v1 step: each payload P becomes {"wrapped":P}
// trap.wasm        valid, but vrsky_process traps (fails a smoke run)
// forbidden.wasm   imports env.system (outside the ABI)
// kv.wasm          imports vrsky.kv_get (needs capabilities.kv)
// noprocess.wasm   lacks the vrsky_process export
// broken.wasm      the Wasm magic, then garbage (does not compile)
package main

import (
	"log"
	"os"
	"path/filepath"
)

func u32(b []byte, v uint32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			b = append(b, c|0x80)
			continue
		}
		return append(b, c)
	}
}

func s32(b []byte, v int32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func name(b []byte, s string) []byte { return append(u32(b, uint32(len(s))), s...) }

const (
	i32 = 0x7f
	// opcodes
	block, loop, end, br, brIf, call, drop = 0x02, 0x03, 0x0b, 0x0c, 0x0d, 0x10, 0x1a
	localGet, localSet, i32Const           = 0x20, 0x21, 0x41
	i32Store8, i32GeS, i32Add, unreach     = 0x3a, 0x4e, 0x6a, 0x00
)

type imp struct {
	mod, name string
	typ       uint32
}

// types: 0 () -> (); 1 (i32) -> i32; 2 (i32 i32 i32) -> i32; 3 (i32 i32) -> i32; 4 (i32 i32 i32 i32) -> i32
var types = []byte{5,
	0x60, 0, 0,
	0x60, 1, i32, 1, i32,
	0x60, 3, i32, i32, i32, 1, i32,
	0x60, 2, i32, i32, 1, i32,
	0x60, 4, i32, i32, i32, i32, 1, i32,
}

// module assembles imports, a marker, vrsky_process with body (locals:
// 2 i32 after the parameter) and one page of memory holding data at 0.
func module(imports []imp, body []byte, exportProcess bool, data string) []byte {
	b := []byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00}
	section := func(id byte, c []byte) { b = append(append(u32(append(b, id), uint32(len(c)))), c...) }
	section(1, types)
	if len(imports) > 0 {
		c := u32(nil, uint32(len(imports)))
		for _, im := range imports {
			c = name(name(c, im.mod), im.name)
			c = u32(append(c, 0x00), im.typ)
		}
		section(2, c)
	}
	n := uint32(len(imports))
	section(3, []byte{2, 0, 1})    // marker: type 0, process: type 1
	section(5, []byte{1, 0x00, 1}) // one memory, min 1 page
	e := u32(nil, 3)
	if !exportProcess {
		e = u32(nil, 2)
	}
	e = u32(append(name(e, "vrsky_abi_v1"), 0), n)
	if exportProcess {
		e = u32(append(name(e, "vrsky_process"), 0), n+1)
	}
	e = append(name(e, "memory"), 2, 0)
	section(7, e)
	fn := append([]byte{1, 2, i32}, body...) // 2 locals of i32
	code := u32(nil, 2)
	code = append(code, 2, 0, end) // marker: no locals, end
	code = u32(code, uint32(len(fn)))
	code = append(code, fn...)
	section(10, code)
	if data != "" {
		d := []byte{1, 0, i32Const, 0, end}
		d = append(name(d, data), []byte{}...)
		section(11, d)
	}
	return b
}

func main() {
	dir := "registry/testdata"
	if _, err := os.Stat(dir); err != nil {
		dir = "."
	}
	// wrap: imports input (func 0) and emit (func 1). Locals: 0 count,
	// 1 i, 2 n. For i in 0..count: n = input(i, 11, 60000);
	// mem[11+n] = '}'; emit(0, n+12). Memory 0..10 holds {"wrapped":.
	var w []byte
	w = append(w, block, 0x40, loop, 0x40)
	w = append(w, localGet, 1, localGet, 0, i32GeS, brIf, 1)
	w = append(w, localGet, 1)
	w = s32(append(w, i32Const), 11)
	w = s32(append(w, i32Const), 60000)
	w = append(w, call, 0, localSet, 2)
	w = append(w, localGet, 2)
	w = s32(append(w, i32Const), 11)
	w = append(w, i32Add)
	w = s32(append(w, i32Const), '}')
	w = append(w, i32Store8, 0, 0)
	w = s32(append(w, i32Const), 0)
	w = append(w, localGet, 2)
	w = s32(append(w, i32Const), 12)
	w = append(w, i32Add, call, 1, drop)
	w = append(w, localGet, 1)
	w = s32(append(w, i32Const), 1)
	w = append(w, i32Add, localSet, 1, br, 0, end, end)
	w = s32(append(w, i32Const), 0)
	w = append(w, end)
	abiImports := []imp{{"vrsky", "input", 2}, {"vrsky", "emit", 3}}
	ret0 := []byte{i32Const, 0, end}
	files := map[string][]byte{
		"wrap.wasm":      module(abiImports, w, true, `{"wrapped":`),
		"trap.wasm":      module(nil, []byte{unreach, end}, true, ""),
		"forbidden.wasm": module([]imp{{"env", "system", 0}}, ret0, true, ""),
		"kv.wasm":        module([]imp{{"vrsky", "kv_get", 4}}, ret0, true, ""),
		"noprocess.wasm": module(nil, ret0, false, ""),
		"broken.wasm":    append([]byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00}, 0x01, 0x7f, 0xff, 0xff, 0x00),
	}
	for f, b := range files {
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			log.Fatal(err)
		}
	}
}

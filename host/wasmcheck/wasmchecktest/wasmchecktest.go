// Package wasmchecktest assembles the hostile modules that the structure
// check (host/wasmcheck) and the compile sandbox must refuse, byte by byte,
// so that tests make them instead of committing binaries. Every module has
// the shape of an ABI v1 guest (memory, vrsky_abi_v1, vrsky_process), so
// that only its one crafted function can be what is refused.
package wasmchecktest

// Value types.
const (
	I32 = 0x7f
	I64 = 0x7e
)

// LEB appends v to b as unsigned LEB128.
func LEB(b []byte, v uint64) []byte {
	for {
		c := byte(v & 0x7f)
		if v >>= 7; v == 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

// U32 appends v to b as unsigned LEB128.
func U32(b []byte, v uint32) []byte { return LEB(b, uint64(v)) }

// I32Const appends the instruction i32.const v (0x41, then v as signed
// LEB128) to b.
func I32Const(b []byte, v int32) []byte {
	b = append(b, 0x41)
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func section(m []byte, id byte, body []byte) []byte {
	m = append(m, id)
	m = LEB(m, uint64(len(body)))
	return append(m, body...)
}

func name(b []byte, s string) []byte { return append(LEB(b, uint64(len(s))), s...) }

// Locals is one group of a function's declared locals.
type Locals struct {
	Count uint64
	Type  byte
}

// Guest returns an ABI v1 guest whose vrsky_process, of type (i32) -> i32,
// declares locals and runs code (which must leave an i32 and end with
// 0x0b, the function's end).
func Guest(locals []Locals, code []byte) []byte {
	m := []byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00}
	// types: 0 () -> (), 1 (i32) -> i32
	m = section(m, 1, []byte{2, 0x60, 0, 0, 0x60, 1, I32, 1, I32})
	// functions: marker (type 0), process (type 1)
	m = section(m, 3, []byte{2, 0, 1})
	// memory: one, min 1 page
	m = section(m, 5, []byte{1, 0, 1})
	var ex []byte
	ex = LEB(ex, 3)
	ex = append(name(ex, "memory"), 0x02, 0)
	ex = append(name(ex, "vrsky_abi_v1"), 0x00, 0)
	ex = append(name(ex, "vrsky_process"), 0x00, 1)
	m = section(m, 7, ex)
	marker := []byte{0, 0x0b} // no locals, end
	var body []byte
	body = LEB(body, uint64(len(locals)))
	for _, l := range locals {
		body = append(LEB(body, l.Count), l.Type)
	}
	body = append(body, code...)
	var cs []byte
	cs = LEB(cs, 2)
	cs = append(LEB(cs, uint64(len(marker))), marker...)
	cs = append(LEB(cs, uint64(len(body))), body...)
	return section(m, 10, cs)
}

// Ret is the code of a function that returns 0.
var Ret = []byte{0x41, 0, 0x0b}

// ManyLocals is a guest whose process declares count locals of type t:
// count 0xffffffff made the compiler ask the OS for 32 GiB.
func ManyLocals(count uint64, t byte) []byte {
	return Guest([]Locals{{count, t}}, Ret)
}

// NestedBlocks is a guest whose process nests n empty blocks.
func NestedBlocks(n int) []byte {
	code := make([]byte, 0, 3*n+3)
	for range n {
		code = append(code, 0x02, 0x40)
	}
	for range n {
		code = append(code, 0x0b)
	}
	return Guest(nil, append(code, Ret...))
}

// BrTable is a guest whose process holds one br_table of n targets.
func BrTable(n int) []byte {
	code := []byte{0x02, 0x40, 0x41, 0, 0x0e}
	code = LEB(code, uint64(n))
	for range n + 1 { // the targets, then the default
		code = append(code, 0)
	}
	code = append(code, 0x0b)
	return Guest(nil, append(code, Ret...))
}

package host_test

import "github.com/vrsky/vrsky/host/wasmcheck/wasmchecktest"

// rawModule assembles a minimal ABI-shaped module by hand (no toolchain):
// the given function imports (all of type () -> ()), a marker, a process
// function that returns 0, and one page of exported memory.
func rawModule(imports [][2]string) []byte {
	var b []byte
	b = append(b, 0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00)
	section := func(id byte, content []byte) {
		b = append(b, id)
		b = wasmchecktest.U32(b, uint32(len(content)))
		b = append(b, content...)
	}
	name := func(c []byte, s string) []byte { return append(wasmchecktest.U32(c, uint32(len(s))), s...) }
	// types: 0 = () -> (), 1 = (i32) -> i32
	section(1, []byte{2, 0x60, 0, 0, 0x60, 1, 0x7f, 1, 0x7f})
	if len(imports) > 0 {
		c := wasmchecktest.U32(nil, uint32(len(imports)))
		for _, im := range imports {
			c = name(c, im[0])
			c = name(c, im[1])
			c = append(c, 0x00, 0x00)
		}
		section(2, c)
	}
	section(3, []byte{2, 0, 1})
	section(5, []byte{1, 0x00, 1})
	n := uint32(len(imports))
	e := wasmchecktest.U32(nil, 3)
	e = append(name(e, "vrsky_abi_v1"), 0)
	e = wasmchecktest.U32(e, n)
	e = append(name(e, "vrsky_process"), 0)
	e = wasmchecktest.U32(e, n+1)
	e = append(name(e, "memory"), 2, 0)
	section(7, e)
	section(10, []byte{2, 2, 0, 0x0b, 4, 0, 0x41, 0, 0x0b})
	return b
}

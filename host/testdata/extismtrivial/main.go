// Command extismtrivial is the benchmark's trivial filter as an Extism
// plugin: drop messages whose first byte is 'x', pass the others on
// (copied through the Extism kernel, as Extism plugins must).
package main

//go:wasmimport extism:host/env input_length
func inputLength() uint64

//go:wasmimport extism:host/env input_load_u8
func inputLoadU8(off uint64) uint32

//go:wasmimport extism:host/env input_load_u64
func inputLoadU64(off uint64) uint64

//go:wasmimport extism:host/env alloc
func alloc(n uint64) uint64

//go:wasmimport extism:host/env store_u8
func storeU8(off uint64, v uint32)

//go:wasmimport extism:host/env store_u64
func storeU64(off uint64, v uint64)

//go:wasmimport extism:host/env output_set
func outputSet(off, n uint64)

//go:wasmexport vrsky_process
func process() int32 {
	n := inputLength()
	if n == 0 || inputLoadU8(0) == 'x' {
		return 0 // no output: dropped
	}
	off := alloc(n)
	i := uint64(0)
	for ; i+8 <= n; i += 8 {
		storeU64(off+i, inputLoadU64(i))
	}
	for ; i < n; i++ {
		storeU8(off+i, inputLoadU8(i))
	}
	outputSet(off, n)
	return 0
}

func main() {}

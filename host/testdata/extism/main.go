// Command extism is a test plugin written against the Extism kernel with
// raw imports (the Extism Go PDK is not available here). Export
// vrsky_process upper-cases its input; input "emit" emits two messages via
// VRSky's vrsky_emit; "fail" sets an Extism error; "publish:<subject>"
// publishes through vrsky_nats_publish; "panic" traps (wasm unreachable).
package main

import (
	"bytes"
	"strings"
)

//go:wasmimport extism:host/env input_length
func inputLength() uint64

//go:wasmimport extism:host/env input_load_u8
func inputLoadU8(off uint64) uint32

//go:wasmimport extism:host/env alloc
func alloc(n uint64) uint64

//go:wasmimport extism:host/env store_u8
func storeU8(off uint64, v uint32)

//go:wasmimport extism:host/env output_set
func outputSet(off, n uint64)

//go:wasmimport extism:host/env error_set
func errorSet(off uint64)

//go:wasmimport extism:host/user vrsky_emit
func vrskyEmit(off uint64) int32

//go:wasmimport extism:host/user vrsky_nats_publish
func vrskyPublish(subj, data uint64) int32

func input() []byte {
	n := inputLength()
	b := make([]byte, n)
	for i := uint64(0); i < n; i++ {
		b[i] = byte(inputLoadU8(i))
	}
	return b
}

func block(b []byte) uint64 {
	off := alloc(uint64(len(b)))
	for i, c := range b {
		storeU8(off+uint64(i), uint32(c))
	}
	return off
}

//go:wasmexport vrsky_process
func process() int32 {
	in := input()
	s := string(in)
	switch {
	case s == "emit":
		vrskyEmit(block([]byte("one")))
		vrskyEmit(block([]byte("two")))
	case s == "fail":
		errorSet(block([]byte("plugin failed")))
		return 1
	case strings.HasPrefix(s, "publish:"):
		if rc := vrskyPublish(block([]byte(s[8:])), block([]byte("hi"))); rc != 0 {
			errorSet(block([]byte("publish denied")))
			return 1
		}
	case s == "panic":
		panic("guest panic") // the instance ends: the host must not take it for a reported error
	case s == "":
		// no output: dropped
	default:
		out := bytes.ToUpper(in)
		outputSet(block(out), uint64(len(out)))
	}
	return 0
}

func main() {}

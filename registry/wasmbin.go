package registry

import (
	"bytes"
	"errors"
	"fmt"
)

// wasmMagic starts every Wasm binary: "\0asm", then version 1.
var wasmMagic = []byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00}

// isWasm reports whether b starts like a Wasm binary (version 1).
func isWasm(b []byte) bool { return bytes.HasPrefix(b, wasmMagic) }

// funcImport is one imported function.
type funcImport struct{ Module, Name string }

// imports lists the function imports of a Wasm binary, reading only its
// import section. Compilation (the host) is what proves the binary valid;
// this only has to be safe on any input.
func imports(b []byte) ([]funcImport, error) {
	if !isWasm(b) {
		return nil, errors.New("not a Wasm binary")
	}
	r := &reader{b: b, off: len(wasmMagic)}
	for r.off < len(r.b) {
		id := r.byte()
		size := r.u32()
		if r.err != nil {
			return nil, r.err
		}
		if uint64(size) > uint64(len(r.b)-r.off) {
			return nil, fmt.Errorf("section %d overruns the binary", id)
		}
		if id != 2 {
			r.off += int(size)
			continue
		}
		s := &reader{b: r.b[:r.off+int(size)], off: r.off}
		n := s.u32()
		var out []funcImport
		for i := uint32(0); i < n && s.err == nil; i++ {
			mod, name := s.name(), s.name()
			kind := s.byte()
			switch kind {
			case 0x00: // func: type index
				s.u32()
				out = append(out, funcImport{mod, name})
			case 0x01: // table: reftype, limits
				s.byte()
				s.limits()
			case 0x02: // memory: limits
				s.limits()
			case 0x03: // global: valtype, mut
				s.byte()
				s.byte()
			default:
				return nil, fmt.Errorf("import %d: unknown kind %#x", i, kind)
			}
		}
		if s.err != nil {
			return nil, fmt.Errorf("import section: %w", s.err)
		}
		return out, nil
	}
	return nil, nil
}

type reader struct {
	b   []byte
	off int
	err error
}

var errShort = errors.New("unexpected end of the binary")

func (r *reader) byte() byte {
	if r.err != nil {
		return 0
	}
	if r.off >= len(r.b) {
		r.err = errShort
		return 0
	}
	c := r.b[r.off]
	r.off++
	return c
}

func (r *reader) u32() uint32 {
	var v uint32
	for shift := 0; shift < 35; shift += 7 {
		c := r.byte()
		if r.err != nil {
			return 0
		}
		v |= uint32(c&0x7f) << shift
		if c&0x80 == 0 {
			return v
		}
	}
	r.err = errors.New("LEB128 number too long")
	return 0
}

func (r *reader) name() string {
	n := r.u32()
	if r.err != nil {
		return ""
	}
	if uint64(n) > uint64(len(r.b)-r.off) {
		r.err = errShort
		return ""
	}
	s := string(r.b[r.off : r.off+int(n)])
	r.off += int(n)
	return s
}

func (r *reader) limits() {
	flag := r.byte()
	r.u32()
	if flag&1 != 0 {
		r.u32()
	}
}

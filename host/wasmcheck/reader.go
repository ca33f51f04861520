package wasmcheck

import (
	"errors"
	"fmt"
)

// reader decodes a byte range. The first error sticks: later reads return
// zero values, so callers check r.err once after a run of reads.
type reader struct {
	b   []byte
	off int
	err error
}

var errShort = errors.New("unexpected end")

func (r *reader) fail() error {
	if r.err == nil {
		return nil
	}
	var fe *FormatError
	if errors.As(r.err, &fe) {
		return fe
	}
	return &FormatError{Offset: r.off, Reason: r.err.Error()}
}

func (r *reader) failf(format string, args ...any) error {
	return &FormatError{Offset: r.off, Reason: fmt.Sprintf(format, args...)}
}

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

// u32 reads an unsigned LEB128 number of at most 32 bits.
func (r *reader) u32() uint32 {
	var v uint32
	for shift := 0; shift < 35; shift += 7 {
		c := r.byte()
		if r.err != nil {
			return 0
		}
		if shift == 28 && c&0x70 != 0 {
			r.err = errors.New("LEB128 number over 32 bits")
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

// skipLEB skips a signed or unsigned LEB128 number of at most maxBytes.
func (r *reader) skipLEB(maxBytes int) {
	for i := 0; i < maxBytes; i++ {
		if c := r.byte(); r.err != nil || c&0x80 == 0 {
			return
		}
	}
	r.err = errors.New("LEB128 number too long")
}

func (r *reader) skipBytes(n uint32) {
	if r.err != nil {
		return
	}
	if uint64(n) > uint64(len(r.b)-r.off) {
		r.err = errShort
		return
	}
	r.off += int(n)
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

func (r *reader) skipName() { r.skipBytes(r.u32()) }

// limits skips memory limits (the table's are checked by checker.limits).
func (r *reader) limits() {
	flag := r.byte()
	r.u32()
	if flag&1 != 0 {
		r.u32()
	}
}

// blockType skips a block type: 0x40 (empty), a value type, or a type
// index as a signed 33-bit LEB128 number.
func (r *reader) blockType() {
	if r.err != nil {
		return
	}
	if r.off >= len(r.b) {
		r.err = errShort
		return
	}
	switch c := r.b[r.off]; {
	case c == 0x40, c >= 0x6f && c <= 0x7f:
		r.off++
	default:
		r.skipLEB(5)
	}
}

func (r *reader) memarg() {
	r.u32() // alignment
	r.u32() // offset
}

// immediates skips the immediates of op, every opcode of WebAssembly 2.0
// but the block, end and br_table ones, which checker.code handles. An
// opcode outside 2.0 is a format error: the compiler (with the features
// the host enables) would refuse it too.
func (r *reader) immediates(op byte) error {
	switch {
	case op == 0x00, op == 0x01, op == 0x05, op == 0x0F, // unreachable, nop, else, return
		op == 0x1A, op == 0x1B, // drop, select
		op >= 0x45 && op <= 0xC4, // numeric, conversions, sign extension
		op == 0xD1:               // ref.is_null
	case op == 0x0C, op == 0x0D, op == 0x10, // br, br_if, call
		op >= 0x20 && op <= 0x26, // local.*, global.*, table.get/set
		op == 0x3F, op == 0x40,   // memory.size, memory.grow (a memory index)
		op == 0xD2: // ref.func
		r.u32()
	case op == 0x11: // call_indirect: type, table
		r.u32()
		r.u32()
	case op == 0x1C: // select t*
		r.skipBytes(r.u32())
	case op >= 0x28 && op <= 0x3E: // loads and stores
		r.memarg()
	case op == 0x41: // i32.const
		r.skipLEB(5)
	case op == 0x42: // i64.const
		r.skipLEB(10)
	case op == 0x43: // f32.const
		r.skipBytes(4)
	case op == 0x44: // f64.const
		r.skipBytes(8)
	case op == 0xD0: // ref.null reftype
		r.byte()
	case op == 0xFC:
		return r.miscImmediates()
	case op == 0xFD:
		return r.simdImmediates()
	default:
		return r.failf("unknown opcode %#x", op)
	}
	return nil
}

// miscImmediates skips a 0xFC instruction: saturating truncation, bulk
// memory and table instructions.
func (r *reader) miscImmediates() error {
	switch sub := r.u32(); {
	case r.err != nil:
	case sub <= 7: // trunc_sat
	case sub == 8, sub == 10, sub == 12, sub == 14: // memory.init, memory.copy, table.init, table.copy
		r.u32()
		r.u32()
	case sub == 9, sub == 11, sub == 13, sub >= 15 && sub <= 17: // data.drop, memory.fill, elem.drop, table.grow/size/fill
		r.u32()
	default:
		return r.failf("unknown opcode 0xfc %d", sub)
	}
	return nil
}

// simdImmediates skips a 0xFD (128-bit SIMD) instruction.
func (r *reader) simdImmediates() error {
	switch sub := r.u32(); {
	case r.err != nil:
	case sub <= 11, sub == 92, sub == 93: // loads, stores, load_zero
		r.memarg()
	case sub == 12, sub == 13: // v128.const, i8x16.shuffle
		r.skipBytes(16)
	case sub >= 21 && sub <= 34: // extract_lane, replace_lane
		r.byte()
	case sub >= 84 && sub <= 91: // load_lane, store_lane
		r.memarg()
		r.byte()
	case sub <= 0xFF:
	default:
		return r.failf("unknown opcode 0xfd %d", sub)
	}
	return nil
}

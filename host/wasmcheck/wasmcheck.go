// Package wasmcheck reads a WebAssembly binary's structure without
// compiling it, and refuses one that exceeds the module limits of ABI v1
// (abi/limits.go, abi/ABI.md §1.1): too many locals, a function body too
// large, blocks nested too deeply, a br_table with too many targets, and
// the like. It runs before wazero sees a module, so that a hundred crafted
// bytes cannot make the compiler ask the OS for gigabytes.
//
// Check walks every section and every instruction once, in linear time,
// and allocates nothing in proportion to a count the binary declares: a
// vector that claims four billion entries costs as much as the bytes that
// are really there. It does not prove a module valid (the compiler does);
// it only has to be safe and exact on any input.
package wasmcheck

import (
	"errors"
	"fmt"

	"github.com/vrsky/vrsky/abi"
)

// Limits are the bounds Check enforces. Zero fields are not allowed: use
// DefaultLimits and lower what you need.
type Limits struct {
	ModuleBytes    int    // the binary's size
	Types          uint64 // type section entries
	Imports        uint64 // imports of every kind
	Functions      uint64 // imported plus defined functions
	Exports        uint64 // exports
	Globals        uint64 // imported plus defined globals
	Tables         uint64 // imported plus defined tables
	TableSize      uint64 // a table's initial and maximum size
	Memories       uint64 // imported plus defined memories
	DataSegments   uint64 // data segments
	ElemSegments   uint64 // element segments
	ElemEntries    uint64 // entries of all element segments together
	Params         uint64 // parameters of a function type
	Results        uint64 // results of a function type
	Locals         uint64 // parameters plus declared locals of a function
	BodyBytes      uint64 // one function body, in bytes
	NestingDepth   uint64 // block/loop/if nesting, the function's block included
	BrTableTargets uint64 // targets of one br_table
}

// DefaultLimits returns ABI v1's limits.
func DefaultLimits() Limits {
	return Limits{
		ModuleBytes: abi.MaxModuleBytes, Types: abi.MaxTypes, Imports: abi.MaxImports,
		Functions: abi.MaxFunctions, Exports: abi.MaxExports, Globals: abi.MaxGlobals,
		Tables: abi.MaxTables, TableSize: abi.MaxTableSize, Memories: abi.MaxMemories,
		DataSegments: abi.MaxDataSegments, ElemSegments: abi.MaxElemSegments,
		ElemEntries: abi.MaxElemEntries, Params: abi.MaxParams, Results: abi.MaxResults,
		Locals: abi.MaxLocals, BodyBytes: abi.MaxBodyBytes, NestingDepth: abi.MaxNestingDepth,
		BrTableTargets: abi.MaxBrTableTargets,
	}
}

// The names of the limits, as LimitError.Limit carries them.
const (
	LimitModuleBytes    = "module size"
	LimitTypes          = "types"
	LimitImports        = "imports"
	LimitFunctions      = "functions"
	LimitExports        = "exports"
	LimitGlobals        = "globals"
	LimitTables         = "tables"
	LimitTableSize      = "table size"
	LimitMemories       = "memories"
	LimitDataSegments   = "data segments"
	LimitElemSegments   = "element segments"
	LimitElemEntries    = "element entries"
	LimitParams         = "parameters per function type"
	LimitResults        = "results per function type"
	LimitLocals         = "locals per function"
	LimitBodyBytes      = "function body size"
	LimitNestingDepth   = "nesting depth"
	LimitBrTableTargets = "br_table targets"
)

// LimitError is a module over one of the Limits.
type LimitError struct {
	// Limit names it (one of the Limit* constants).
	Limit string
	// Func is the function's index in the function index space (imports
	// first), or -1 when the limit is not about one function.
	Func int64
	// Value is what the module has (at least; counting stops at the limit
	// when going on would cost time), Max the limit.
	Value, Max uint64
}

func (e *LimitError) Error() string {
	if e.Func >= 0 {
		return fmt.Sprintf("function %d: %d %s, over the limit of %d", e.Func, e.Value, e.Limit, e.Max)
	}
	return fmt.Sprintf("%d %s, over the limit of %d", e.Value, e.Limit, e.Max)
}

// FormatError is a binary that does not decode.
type FormatError struct {
	// Offset is where decoding failed, in bytes from the start.
	Offset int
	// Reason says what was wrong.
	Reason string
}

func (e *FormatError) Error() string { return fmt.Sprintf("at byte %d: %s", e.Offset, e.Reason) }

// Import is one import of a module.
type Import struct {
	Module, Name string
	// Kind is 0 function, 1 table, 2 memory, 3 global.
	Kind byte
}

// Info is what Check learnt of a module on its way.
type Info struct {
	// Imports lists the module's imports, in order.
	Imports []Import
	// Functions counts imported plus defined functions.
	Functions uint64
	// Largest holds the largest per-function figures of the module, for
	// seeing how close to the limits real modules come.
	Largest struct {
		Locals, BodyBytes, NestingDepth, BrTableTargets uint64
	}
}

// wasmMagic starts every Wasm binary: "\0asm", then version 1.
var wasmMagic = []byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00}

// ErrNotWasm is a binary that does not start with the Wasm magic and
// version 1.
var ErrNotWasm = errors.New("not a WebAssembly binary: it does not start with \\0asm and version 1")

// Section ids.
const (
	secCustom   = 0
	secType     = 1
	secImport   = 2
	secFunction = 3
	secTable    = 4
	secMemory   = 5
	secGlobal   = 6
	secExport   = 7
	secStart    = 8
	secElement  = 9
	secCode     = 10
	secData     = 11
	secDataCnt  = 12
)

// Check decodes b's structure and returns what it learnt, a *LimitError
// when b is over one of l, a *FormatError when b does not decode, or
// ErrNotWasm.
func Check(b []byte, l Limits) (*Info, error) {
	if len(b) < len(wasmMagic) || string(b[:len(wasmMagic)]) != string(wasmMagic) {
		return nil, ErrNotWasm
	}
	if len(b) > l.ModuleBytes {
		return nil, &LimitError{Limit: LimitModuleBytes, Func: -1, Value: uint64(len(b)), Max: uint64(l.ModuleBytes)}
	}
	c := &checker{l: l, info: &Info{}}
	r := &reader{b: b, off: len(wasmMagic)}
	for r.off < len(b) && r.err == nil {
		id := r.byte()
		size := r.u32()
		if r.err != nil {
			break
		}
		if uint64(size) > uint64(len(b)-r.off) {
			return nil, &FormatError{Offset: r.off, Reason: fmt.Sprintf("section %d of %d bytes overruns the binary", id, size)}
		}
		s := &reader{b: b[:r.off+int(size)], off: r.off}
		if err := c.section(id, s); err != nil {
			return nil, err
		}
		if s.err != nil {
			return nil, s.fail()
		}
		r.off += int(size)
	}
	if r.err != nil {
		return nil, r.fail()
	}
	return c.info, nil
}

// checker carries the counts that span sections.
type checker struct {
	l        Limits
	info     *Info
	types    []uint64 // params per type, for locals; only as many as the binary holds
	funcType []uint32 // type index per function (imported, then defined)
	importFn uint64
	globals  uint64
	tables   uint64
	memories uint64
}

func (c *checker) over(limit string, fn int64, v, max uint64) error {
	return &LimitError{Limit: limit, Func: fn, Value: v, Max: max}
}

// count reads a vector's length and refuses it over max. Every entry of
// every vector Check reads takes at least one byte, so a length larger
// than the bytes left is a format error found as soon as they run out.
func (c *checker) count(r *reader, limit string, already, max uint64) (uint64, error) {
	n := uint64(r.u32())
	if r.err != nil {
		return 0, r.fail()
	}
	if already+n > max {
		return 0, c.over(limit, -1, already+n, max)
	}
	return n, nil
}

func (c *checker) section(id byte, r *reader) error {
	switch id {
	case secType:
		return c.typeSection(r)
	case secImport:
		return c.importSection(r)
	case secFunction:
		n, err := c.count(r, LimitFunctions, c.importFn, c.l.Functions)
		if err != nil {
			return err
		}
		for i := uint64(0); i < n && r.err == nil; i++ {
			c.funcType = append(c.funcType, r.u32())
		}
		c.info.Functions = c.importFn + n
	case secTable:
		n, err := c.count(r, LimitTables, c.tables, c.l.Tables)
		if err != nil {
			return err
		}
		c.tables += n
		for i := uint64(0); i < n && r.err == nil; i++ {
			r.byte() // reftype
			if err := c.limits(r, LimitTableSize, c.l.TableSize); err != nil {
				return err
			}
		}
	case secMemory:
		n, err := c.count(r, LimitMemories, c.memories, c.l.Memories)
		if err != nil {
			return err
		}
		c.memories += n
		for i := uint64(0); i < n && r.err == nil; i++ {
			r.limits()
		}
	case secGlobal:
		n, err := c.count(r, LimitGlobals, c.globals, c.l.Globals)
		if err != nil {
			return err
		}
		c.globals += n
		for i := uint64(0); i < n && r.err == nil; i++ {
			r.byte() // valtype
			r.byte() // mut
			if err := c.constExpr(r); err != nil {
				return err
			}
		}
	case secExport:
		n, err := c.count(r, LimitExports, 0, c.l.Exports)
		if err != nil {
			return err
		}
		for i := uint64(0); i < n && r.err == nil; i++ {
			r.skipName()
			r.byte()
			r.u32()
		}
	case secStart:
		r.u32()
	case secElement:
		return c.elemSection(r)
	case secCode:
		return c.codeSection(r)
	case secData:
		n, err := c.count(r, LimitDataSegments, 0, c.l.DataSegments)
		if err != nil {
			return err
		}
		for i := uint64(0); i < n && r.err == nil; i++ {
			switch flag := r.u32(); flag {
			case 0:
				if err := c.constExpr(r); err != nil {
					return err
				}
			case 1:
			case 2:
				r.u32()
				if err := c.constExpr(r); err != nil {
					return err
				}
			default:
				return r.failf("data segment %d: unknown flags %d", i, flag)
			}
			r.skipBytes(r.u32())
		}
	case secDataCnt:
		r.u32()
	case secCustom:
		return c.customSection(r)
	default:
		return r.failf("unknown section id %d", id)
	}
	return nil
}

// customSection checks a custom section's name and, for the "name"
// section, the counts the compiler's decoder allocates for before it reads
// the entries (function names, local names): each is bounded by a limit,
// and each entry must be there.
func (c *checker) customSection(r *reader) error {
	if r.name() != "name" || r.err != nil {
		return nil // opaque bytes: nothing to bound but the module size
	}
	for r.off < len(r.b) && r.err == nil {
		id := r.byte()
		size := r.u32()
		switch id {
		case 0: // module name
			r.skipName()
		case 1: // function names
			if err := c.nameMap(r, LimitFunctions, c.l.Functions); err != nil {
				return err
			}
		case 2: // local names
			n := uint64(r.u32())
			if n > c.l.Functions {
				return c.over(LimitFunctions, -1, n, c.l.Functions)
			}
			for i := uint64(0); i < n && r.err == nil; i++ {
				r.u32() // function index
				if err := c.nameMap(r, LimitLocals, c.l.Locals); err != nil {
					return err
				}
			}
		default:
			r.skipBytes(size)
		}
	}
	return nil
}

// nameMap reads a vector of (index, name) with at most max entries.
func (c *checker) nameMap(r *reader, limit string, max uint64) error {
	n := uint64(r.u32())
	if n > max {
		return c.over(limit, -1, n, max)
	}
	for i := uint64(0); i < n && r.err == nil; i++ {
		r.u32()
		r.skipName()
	}
	return nil
}

func (c *checker) typeSection(r *reader) error {
	n, err := c.count(r, LimitTypes, 0, c.l.Types)
	if err != nil {
		return err
	}
	for i := uint64(0); i < n && r.err == nil; i++ {
		if form := r.byte(); r.err == nil && form != 0x60 {
			return r.failf("type %d: not a function type (%#x)", i, form)
		}
		params := uint64(r.u32())
		if params > c.l.Params {
			return c.over(LimitParams, -1, params, c.l.Params)
		}
		r.skipBytes(uint32(params))
		results := uint64(r.u32())
		if results > c.l.Results {
			return c.over(LimitResults, -1, results, c.l.Results)
		}
		r.skipBytes(uint32(results))
		c.types = append(c.types, params)
	}
	return nil
}

func (c *checker) importSection(r *reader) error {
	n, err := c.count(r, LimitImports, 0, c.l.Imports)
	if err != nil {
		return err
	}
	for i := uint64(0); i < n && r.err == nil; i++ {
		im := Import{Module: r.name(), Name: r.name(), Kind: r.byte()}
		if r.err != nil {
			break
		}
		switch im.Kind {
		case 0x00:
			if c.importFn+1 > c.l.Functions {
				return c.over(LimitFunctions, -1, c.importFn+1, c.l.Functions)
			}
			c.funcType = append(c.funcType, r.u32())
			c.importFn++
		case 0x01:
			if c.tables+1 > c.l.Tables {
				return c.over(LimitTables, -1, c.tables+1, c.l.Tables)
			}
			c.tables++
			r.byte()
			if err := c.limits(r, LimitTableSize, c.l.TableSize); err != nil {
				return err
			}
		case 0x02:
			if c.memories+1 > c.l.Memories {
				return c.over(LimitMemories, -1, c.memories+1, c.l.Memories)
			}
			c.memories++
			r.limits()
		case 0x03:
			if c.globals+1 > c.l.Globals {
				return c.over(LimitGlobals, -1, c.globals+1, c.l.Globals)
			}
			c.globals++
			r.byte()
			r.byte()
		default:
			return r.failf("import %d: unknown kind %#x", i, im.Kind)
		}
		c.info.Imports = append(c.info.Imports, im)
	}
	c.info.Functions = c.importFn
	return nil
}

// limits reads table limits and refuses a size over max.
func (c *checker) limits(r *reader, limit string, max uint64) error {
	flag := r.byte()
	if v := uint64(r.u32()); v > max {
		return c.over(limit, -1, v, max)
	}
	if flag&1 != 0 {
		if v := uint64(r.u32()); v > max {
			return c.over(limit, -1, v, max)
		}
	}
	return nil
}

func (c *checker) elemSection(r *reader) error {
	n, err := c.count(r, LimitElemSegments, 0, c.l.ElemSegments)
	if err != nil {
		return err
	}
	var entries uint64
	for i := uint64(0); i < n && r.err == nil; i++ {
		flag := r.u32()
		if flag > 7 {
			return r.failf("element segment %d: unknown flags %d", i, flag)
		}
		if flag&2 != 0 && flag&1 == 0 { // an explicit table index
			r.u32()
		}
		if flag&1 == 0 { // active: an offset
			if err := c.constExpr(r); err != nil {
				return err
			}
		}
		if flag&3 != 0 { // elemkind or reftype
			r.byte()
		}
		m := uint64(r.u32())
		if entries += m; entries > c.l.ElemEntries {
			return c.over(LimitElemEntries, -1, entries, c.l.ElemEntries)
		}
		for j := uint64(0); j < m && r.err == nil; j++ {
			if flag&4 != 0 {
				if err := c.constExpr(r); err != nil {
					return err
				}
			} else {
				r.u32()
			}
		}
	}
	return nil
}

func (c *checker) codeSection(r *reader) error {
	n := uint64(r.u32())
	if r.err != nil {
		return r.fail()
	}
	if c.importFn+n > c.l.Functions {
		return c.over(LimitFunctions, -1, c.importFn+n, c.l.Functions)
	}
	for i := uint64(0); i < n && r.err == nil; i++ {
		fn := int64(c.importFn + i)
		size := uint64(r.u32())
		if r.err != nil {
			break
		}
		if size > c.l.BodyBytes {
			return c.over(LimitBodyBytes, fn, size, c.l.BodyBytes)
		}
		c.info.Largest.BodyBytes = max(c.info.Largest.BodyBytes, size)
		if size > uint64(len(r.b)-r.off) {
			return r.failf("function %d: body of %d bytes overruns the code section", fn, size)
		}
		body := &reader{b: r.b[:r.off+int(size)], off: r.off}
		if err := c.body(body, fn); err != nil {
			return err
		}
		if body.err != nil {
			return body.fail()
		}
		r.off += int(size)
	}
	return nil
}

// body checks one function: its locals, then its instructions.
func (c *checker) body(r *reader, fn int64) error {
	var locals uint64
	if t := int(fn); t < len(c.funcType) && int(c.funcType[t]) < len(c.types) {
		locals = c.types[c.funcType[t]]
	}
	groups := r.u32()
	for g := uint32(0); g < groups && r.err == nil; g++ {
		locals += uint64(r.u32())
		if locals > c.l.Locals {
			return c.over(LimitLocals, fn, locals, c.l.Locals)
		}
		r.byte() // valtype
	}
	c.info.Largest.Locals = max(c.info.Largest.Locals, locals)
	return c.code(r, fn)
}

// constExpr skips a constant expression (a global's initialiser, a
// segment's offset), which ends at its first unmatched end.
func (c *checker) constExpr(r *reader) error { return c.code(r, -1) }

// code walks instructions until the end that closes the function's (or
// the expression's) implicit block, counting nesting and br_table targets.
func (c *checker) code(r *reader, fn int64) error {
	depth := uint64(1)
	for r.err == nil {
		op := r.byte()
		if r.err != nil {
			break
		}
		switch {
		case op == 0x02 || op == 0x03 || op == 0x04: // block, loop, if
			r.blockType()
			if depth++; depth > c.l.NestingDepth {
				return c.over(LimitNestingDepth, fn, depth, c.l.NestingDepth)
			}
			c.info.Largest.NestingDepth = max(c.info.Largest.NestingDepth, depth)
		case op == 0x0B: // end
			if depth--; depth == 0 {
				return nil
			}
		case op == 0x0E: // br_table
			n := uint64(r.u32())
			if n > c.l.BrTableTargets {
				return c.over(LimitBrTableTargets, fn, n, c.l.BrTableTargets)
			}
			c.info.Largest.BrTableTargets = max(c.info.Largest.BrTableTargets, n)
			for i := uint64(0); i <= n && r.err == nil; i++ { // the targets, then the default
				r.u32()
			}
		default:
			if err := r.immediates(op); err != nil {
				return err
			}
		}
	}
	return r.fail()
}

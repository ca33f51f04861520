package abi

// Structural limits on a module, checked by the host before the module
// reaches the compiler (ABI.md §1.1, "Module limits"). A module over any of
// them is refused whole, with the limit and the function index named.
//
// They start from the implementation limits that the WebAssembly JS API
// makes every browser enforce (webassembly.github.io/spec/js-api, "Limits")
// and are lower where VRSky needs less: a guest is one converter, filter or
// connector, not an application. The largest Go guest that ships with VRSky
// (7–10 MB) stays well inside each of them; RATIONALE.md says how far.
const (
	// MaxModuleBytes bounds the binary (browsers: 1 GiB).
	MaxModuleBytes = 32 << 20
	// MaxTypes bounds the type section's entries (browsers: 1,000,000).
	MaxTypes = 100_000
	// MaxImports bounds the imports of every kind (browsers: 100,000).
	MaxImports = 10_000
	// MaxFunctions bounds imported plus defined functions (browsers:
	// 1,000,000).
	MaxFunctions = 200_000
	// MaxExports bounds the exports (browsers: 100,000).
	MaxExports = 10_000
	// MaxGlobals bounds imported plus defined globals (browsers: 1,000,000).
	MaxGlobals = 100_000
	// MaxTables bounds imported plus defined tables (browsers: 100,000).
	MaxTables = 100
	// MaxTableSize bounds a table's initial and maximum size, in entries
	// (browsers: 10,000,000).
	MaxTableSize = 1_000_000
	// MaxMemories bounds imported plus defined memories: one, the guest's.
	MaxMemories = 1
	// MaxDataSegments bounds the data segments (browsers: 100,000).
	MaxDataSegments = 100_000
	// MaxElemSegments bounds the element segments (browsers: 10,000,000).
	MaxElemSegments = 100_000
	// MaxElemEntries bounds the entries of all element segments together
	// (browsers: 10,000,000 per segment).
	MaxElemEntries = 1_000_000
	// MaxParams and MaxResults bound a function type (browsers: 1,000
	// each).
	MaxParams  = 1_000
	MaxResults = 1_000
	// MaxLocals bounds a function's parameters plus declared locals
	// (browsers: 50,000).
	MaxLocals = 50_000
	// MaxBodyBytes bounds one function body (browsers: 7,654,321).
	MaxBodyBytes = 7_654_321
	// MaxNestingDepth bounds how deeply block, loop and if nest in one
	// function, the function's own block included. Browsers set no such
	// limit; compilers keep a control stack as deep as this.
	MaxNestingDepth = 10_000
	// MaxBrTableTargets bounds the targets of one br_table (browsers and
	// V8: 65,520).
	MaxBrTableTargets = 65_520
)

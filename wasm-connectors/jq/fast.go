package main

// A fast path for the jq queries steps use most: paths, object
// construction, arithmetic, comparisons, and/or, //, pipes. Such a query
// yields exactly one value, so it can be evaluated straight on the fastjson
// parse (no conversion to map[string]any, no gojq interpreter) and written
// out by appending bytes. The compiler accepts only that subset; anything
// else, or any runtime case it does not handle exactly as gojq does (a type
// mismatch, a division by zero, …), falls back to gojq for that message, so
// results and errors are gojq's.

import (
	"math"
	"slices"
	"strconv"

	"github.com/itchyny/gojq"
	"github.com/valyala/fastjson"

	"github.com/vrsky/vrsky/abi/guest/jsonval"
)

type kind uint8

const (
	kNull  kind = iota
	kJSON       // a value of the input: j
	kInt        // i
	kFloat      // f
	kStr        // s
	kBytes      // sb: a string of the input, not yet copied
	kBool       // b
	kObj        // a constructed object: obj evaluated against in
)

// val is a value during fast evaluation. It is passed by value: no
// allocation.
type val struct {
	k   kind
	b   bool
	i   int
	f   float64
	s   string
	sb  []byte
	j   *fastjson.Value
	obj *objNode
	in  *val
}

// node evaluates to one value; ok=false means "let gojq do it".
type node interface {
	eval(in val) (val, bool)
}

// compileFast returns the fast evaluator of q, or nil if q is outside the
// subset.
func compileFast(q *gojq.Query) node {
	if q == nil || q.Meta != nil || len(q.Imports) > 0 || len(q.FuncDefs) > 0 || len(q.Patterns) > 0 {
		return nil
	}
	if q.Op == 0 {
		return compileTerm(q.Term)
	}
	l, r := compileFast(q.Left), compileFast(q.Right)
	if l == nil || r == nil {
		return nil
	}
	switch q.Op {
	case gojq.OpPipe:
		return pipeNode{l, r}
	case gojq.OpAdd, gojq.OpSub, gojq.OpMul, gojq.OpDiv:
		return arithNode{q.Op, l, r}
	case gojq.OpEq, gojq.OpNe, gojq.OpLt, gojq.OpGt, gojq.OpLe, gojq.OpGe:
		return cmpNode{q.Op, l, r}
	case gojq.OpAnd, gojq.OpOr:
		return logicNode{q.Op == gojq.OpAnd, l, r}
	case gojq.OpAlt:
		return altNode{l, r}
	}
	return nil
}

func compileTerm(t *gojq.Term) node {
	if t == nil {
		return nil
	}
	var n node
	switch t.Type {
	case gojq.TermTypeIdentity:
		n = identNode{}
	case gojq.TermTypeNull:
		n = constNode{val{k: kNull}}
	case gojq.TermTypeTrue:
		n = constNode{val{k: kBool, b: true}}
	case gojq.TermTypeFalse:
		n = constNode{val{k: kBool}}
	case gojq.TermTypeNumber:
		v, ok := numberLiteral(t.Number)
		if !ok {
			return nil
		}
		n = constNode{v}
	case gojq.TermTypeString:
		if t.Str == nil || len(t.Str.Queries) > 0 {
			return nil
		}
		n = constNode{val{k: kStr, s: t.Str.Str}}
	case gojq.TermTypeIndex:
		ix := compileIndex(t.Index)
		if ix == nil {
			return nil
		}
		n = ix
	case gojq.TermTypeQuery:
		if n = compileFast(t.Query); n == nil {
			return nil
		}
	case gojq.TermTypeObject:
		if n = compileObject(t.Object); n == nil {
			return nil
		}
	case gojq.TermTypeUnary:
		if t.Unary == nil || t.Unary.Op != gojq.OpSub {
			return nil
		}
		inner := compileTerm(t.Unary.Term)
		if inner == nil {
			return nil
		}
		n = arithNode{gojq.OpSub, constNode{val{k: kInt}}, inner}
	default:
		return nil
	}
	for _, s := range t.SuffixList {
		if s.Iter || s.Optional || s.Index == nil {
			return nil
		}
		ix := compileIndex(s.Index)
		if ix == nil {
			return nil
		}
		n = pipeNode{n, ix}
	}
	return n
}

func numberLiteral(s string) (val, bool) {
	if i, err := strconv.Atoi(s); err == nil {
		return val{k: kInt, i: i}, true
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return val{}, false
	}
	return val{k: kFloat, f: f}, true
}

func compileIndex(ix *gojq.Index) node {
	if ix == nil || ix.IsSlice || ix.End != nil {
		return nil
	}
	switch {
	case ix.Name != "":
		return keyNode{ix.Name}
	case ix.Str != nil:
		if len(ix.Str.Queries) > 0 {
			return nil
		}
		return keyNode{ix.Str.Str}
	case ix.Start != nil:
		if ix.Start.Op != 0 || ix.Start.Term == nil || ix.Start.Term.Type != gojq.TermTypeNumber || len(ix.Start.Term.SuffixList) > 0 {
			return nil
		}
		i, err := strconv.Atoi(ix.Start.Term.Number)
		if err != nil {
			return nil
		}
		return elemNode{i}
	}
	return nil
}

type objField struct {
	key string
	val node
}

// objNode is an object construction; fields are sorted by key, as the
// output is (jsonval sorts keys).
type objNode struct{ fields []objField }

func compileObject(o *gojq.Object) node {
	if o == nil {
		return nil
	}
	seen := map[string]bool{}
	var fields []objField
	for _, kv := range o.KeyVals {
		key := kv.Key
		switch {
		case kv.KeyQuery != nil:
			return nil
		case kv.KeyString != nil:
			if len(kv.KeyString.Queries) > 0 {
				return nil
			}
			key = kv.KeyString.Str
		case key == "" || key[0] == '$':
			return nil // variables, $__loc__
		}
		var v node = keyNode{key} // {id} means {id: .id}
		if kv.Val != nil {
			if v = compileFast(kv.Val); v == nil {
				return nil
			}
		}
		if seen[key] {
			return nil // duplicate keys: leave the subtleties to gojq
		}
		seen[key] = true
		fields = append(fields, objField{key, v})
	}
	slices.SortFunc(fields, func(a, b objField) int {
		switch {
		case a.key < b.key:
			return -1
		case a.key > b.key:
			return 1
		}
		return 0
	})
	return &objNode{fields}
}

// eval defers the fields to appendVal: a field that cannot be evaluated
// there makes the whole message fall back to gojq, before any output.
func (o *objNode) eval(in val) (val, bool) {
	if in.k == kJSON { // the common case, without an allocation
		return val{k: kObj, obj: o, j: in.j}, true
	}
	cp := in
	return val{k: kObj, obj: o, in: &cp}, true
}

// input returns the value an object construction was evaluated against.
func (v val) input() val {
	if v.in != nil {
		return *v.in
	}
	return val{k: kJSON, j: v.j}
}

type identNode struct{}

func (identNode) eval(in val) (val, bool) { return in, true }

type constNode struct{ v val }

func (c constNode) eval(val) (val, bool) { return c.v, true }

type pipeNode struct{ l, r node }

func (p pipeNode) eval(in val) (val, bool) {
	v, ok := p.l.eval(in)
	if !ok {
		return v, false
	}
	return p.r.eval(v)
}

type keyNode struct{ key string }

func (k keyNode) eval(in val) (val, bool) {
	switch {
	case in.k == kNull:
		return val{k: kNull}, true
	case in.k != kJSON || in.j.Type() != fastjson.TypeObject:
		return val{}, false
	}
	return fromJSON(in.j.Get(k.key)), true // duplicate keys: the first wins, as in jsonval
}

type elemNode struct{ i int }

func (e elemNode) eval(in val) (val, bool) {
	switch {
	case in.k == kNull:
		return val{k: kNull}, true
	case in.k != kJSON || in.j.Type() != fastjson.TypeArray:
		return val{}, false
	}
	a, _ := in.j.Array()
	i := e.i
	if i < 0 {
		i += len(a)
	}
	if i < 0 || i >= len(a) {
		return val{k: kNull}, true
	}
	return fromJSON(a[i]), true
}

// fromJSON turns scalars into their kinds (so arithmetic and comparison see
// numbers) and keeps objects and arrays as references.
func fromJSON(v *fastjson.Value) val {
	if v == nil {
		return val{k: kNull}
	}
	switch v.Type() {
	case fastjson.TypeNull:
		return val{k: kNull}
	case fastjson.TypeTrue:
		return val{k: kBool, b: true}
	case fastjson.TypeFalse:
		return val{k: kBool}
	case fastjson.TypeNumber:
		if i, f, isInt := jsonval.Number(v); !isInt {
			return val{k: kFloat, f: f}
		} else {
			return val{k: kInt, i: i}
		}
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		return val{k: kBytes, sb: b}
	}
	return val{k: kJSON, j: v}
}

// str normalises kBytes to kStr (copying), for operations on strings.
func (v val) str() val {
	if v.k == kBytes {
		return val{k: kStr, s: string(v.sb)}
	}
	return v
}

func (v val) num() (float64, bool) {
	switch v.k {
	case kInt:
		return float64(v.i), true
	case kFloat:
		return v.f, true
	}
	return 0, false
}

type arithNode struct {
	op   gojq.Operator
	l, r node
}

func (a arithNode) eval(in val) (val, bool) {
	l, ok := a.l.eval(in)
	if !ok {
		return l, false
	}
	r, ok := a.r.eval(in)
	if !ok {
		return r, false
	}
	l, r = l.str(), r.str()
	if a.op == gojq.OpAdd {
		switch {
		case l.k == kNull:
			return r, true
		case r.k == kNull:
			return l, true
		case l.k == kStr && r.k == kStr:
			return val{k: kStr, s: l.s + r.s}, true
		}
	}
	if l.k == kInt && r.k == kInt {
		x, y := l.i, r.i
		switch a.op {
		case gojq.OpAdd:
			if s := x + y; (s > x) == (y > 0) {
				return val{k: kInt, i: s}, true
			}
		case gojq.OpSub:
			if s := x - y; (s < x) == (y > 0) {
				return val{k: kInt, i: s}, true
			}
		case gojq.OpMul:
			if x == 0 || y == 0 {
				return val{k: kInt}, true
			}
			if p := x * y; p/y == x && p/x == y && !(x == -1 && y == math.MinInt) && !(y == -1 && x == math.MinInt) {
				return val{k: kInt, i: p}, true
			}
		case gojq.OpDiv:
			if y == 0 || x == math.MinInt && y == -1 {
				return val{}, false
			}
			if x%y == 0 {
				return val{k: kInt, i: x / y}, true
			}
			return val{k: kFloat, f: float64(x) / float64(y)}, true
		}
		return val{}, false // overflow: gojq switches to big integers
	}
	x, ok1 := l.num()
	y, ok2 := r.num()
	if !ok1 || !ok2 {
		return val{}, false
	}
	var f float64
	switch a.op {
	case gojq.OpAdd:
		f = x + y
	case gojq.OpSub:
		f = x - y
	case gojq.OpMul:
		f = x * y
	case gojq.OpDiv:
		if y == 0 {
			return val{}, false
		}
		f = x / y
	}
	return val{k: kFloat, f: f}, true
}

type cmpNode struct {
	op   gojq.Operator
	l, r node
}

func (c cmpNode) eval(in val) (val, bool) {
	l, ok := c.l.eval(in)
	if !ok {
		return l, false
	}
	r, ok := c.r.eval(in)
	if !ok {
		return r, false
	}
	l, r = l.str(), r.str()
	var d int // -1, 0, 1
	x, okx := l.num()
	y, oky := r.num()
	switch {
	case okx && oky:
		d = cmpOrdered(x, y)
	case l.k == kStr && r.k == kStr:
		d = cmpOrdered(l.s, r.s)
	case l.k == kBool && r.k == kBool && (c.op == gojq.OpEq || c.op == gojq.OpNe):
		if l.b != r.b {
			d = 1
		}
	case l.k == kNull && r.k == kNull:
	default:
		if c.op == gojq.OpEq || c.op == gojq.OpNe {
			if l.k == kJSON || r.k == kJSON || l.k == kObj || r.k == kObj {
				return val{}, false
			}
			d = 1 // scalars of different types are never equal
			break
		}
		return val{}, false // cross-type ordering: gojq's rules
	}
	var res bool
	switch c.op {
	case gojq.OpEq:
		res = d == 0
	case gojq.OpNe:
		res = d != 0
	case gojq.OpLt:
		res = d < 0
	case gojq.OpGt:
		res = d > 0
	case gojq.OpLe:
		res = d <= 0
	case gojq.OpGe:
		res = d >= 0
	}
	return val{k: kBool, b: res}, true
}

func cmpOrdered[T float64 | string](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (v val) truthy() bool {
	switch v.k {
	case kNull:
		return false
	case kBool:
		return v.b
	}
	return true
}

type logicNode struct {
	and  bool
	l, r node
}

func (n logicNode) eval(in val) (val, bool) {
	l, ok := n.l.eval(in)
	if !ok {
		return l, false
	}
	if l.truthy() != n.and { // false and _ / true or _
		return val{k: kBool, b: !n.and}, true
	}
	r, ok := n.r.eval(in)
	if !ok {
		return r, false
	}
	return val{k: kBool, b: r.truthy()}, true
}

type altNode struct{ l, r node }

func (n altNode) eval(in val) (val, bool) {
	l, ok := n.l.eval(in)
	if !ok {
		return l, false
	}
	if l.truthy() {
		return l, true
	}
	return n.r.eval(in)
}

// appendVal writes v as JSON, exactly as jsonval.Append writes the value
// gojq would have produced.
func appendVal(dst []byte, v val) ([]byte, bool) {
	switch v.k {
	case kNull:
		return append(dst, "null"...), true
	case kBool:
		return strconv.AppendBool(dst, v.b), true
	case kInt:
		return strconv.AppendInt(dst, int64(v.i), 10), true
	case kFloat:
		return jsonval.AppendFloat(dst, v.f), true
	case kStr:
		return jsonval.AppendString(dst, v.s), true
	case kBytes:
		return jsonval.AppendString(dst, v.sb), true
	case kJSON:
		return appendJSON(dst, v.j), true
	case kObj:
		dst = append(dst, '{')
		for i, f := range v.obj.fields {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = jsonval.AppendString(dst, f.key)
			dst = append(dst, ':')
			fv, ok := f.val.eval(v.input())
			if !ok {
				return dst, false
			}
			if dst, ok = appendVal(dst, fv); !ok {
				return dst, false
			}
		}
		return append(dst, '}'), true
	}
	return dst, false
}

// appendJSON re-encodes an input value the way jsonval does after
// decoding it: keys sorted (the last of duplicates wins), numbers and
// strings normalised.
func appendJSON(dst []byte, v *fastjson.Value) []byte {
	switch v.Type() {
	case fastjson.TypeObject:
		o, _ := v.Object()
		type kv struct {
			k string
			v *fastjson.Value
		}
		var kvs []kv
		o.Visit(func(k []byte, e *fastjson.Value) {
			for i := range kvs {
				if kvs[i].k == string(k) {
					return // duplicate keys: the first wins, as in jsonval
				}
			}
			kvs = append(kvs, kv{string(k), e})
		})
		slices.SortFunc(kvs, func(a, b kv) int { return cmpOrdered(a.k, b.k) })
		dst = append(dst, '{')
		for i, e := range kvs {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = jsonval.AppendString(dst, e.k)
			dst = append(dst, ':')
			dst = appendJSON(dst, e.v)
		}
		return append(dst, '}')
	case fastjson.TypeArray:
		a, _ := v.Array()
		dst = append(dst, '[')
		for i, e := range a {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSON(dst, e)
		}
		return append(dst, ']')
	}
	dst, _ = appendVal(dst, fromJSON(v))
	return dst
}

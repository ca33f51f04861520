package main

// A fast path for the filter expressions used most: field access,
// literals, comparisons, arithmetic, and/or/not, in over a literal list,
// contains/startsWith/endsWith. Such an expression is evaluated straight
// on the fastjson parse, without building map[string]any and without the
// expr VM. Anything outside the subset, or any runtime case it does not
// handle exactly as expr does (a type mismatch, an overflow, a member of
// nil), falls back to expr for that message, so results and errors are
// expr's.

import (
	"bytes"
	"math"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"
	"github.com/valyala/fastjson"

	"github.com/vrsky/vrsky/abi/guest/jsonval"
)

type kind uint8

const (
	kNil kind = iota
	kBool
	kInt
	kFloat
	kStr  // s: bytes of the input or of a literal
	kJSON // an object or array of the input
)

type val struct {
	k kind
	b bool
	i int
	f float64
	s []byte
	j *fastjson.Value
}

type node interface {
	eval(root *fastjson.Value) (val, bool)
}

// compileFast returns the fast evaluator of src, or nil.
func compileFast(src string) node {
	tree, err := parser.Parse(src)
	if err != nil {
		return nil
	}
	return compileNode(tree.Node)
}

func compileNode(n ast.Node) node {
	switch n := n.(type) {
	case *ast.NilNode:
		return constNode{val{k: kNil}}
	case *ast.BoolNode:
		return constNode{val{k: kBool, b: n.Value}}
	case *ast.IntegerNode:
		return constNode{val{k: kInt, i: n.Value}}
	case *ast.FloatNode:
		return constNode{val{k: kFloat, f: n.Value}}
	case *ast.StringNode:
		return constNode{val{k: kStr, s: []byte(n.Value)}}
	case *ast.IdentifierNode:
		return identNode{n.Value}
	case *ast.MemberNode:
		if n.Optional || n.Method {
			return nil
		}
		obj := compileNode(n.Node)
		if obj == nil {
			return nil
		}
		switch p := n.Property.(type) {
		case *ast.StringNode:
			return memberNode{obj, p.Value}
		case *ast.IntegerNode:
			return indexNode{obj, p.Value}
		}
		return nil
	case *ast.UnaryNode:
		inner := compileNode(n.Node)
		if inner == nil {
			return nil
		}
		switch n.Operator {
		case "!", "not":
			return notNode{inner}
		case "-":
			return negNode{inner}
		}
		return nil
	case *ast.BinaryNode:
		l := compileNode(n.Left)
		if l == nil {
			return nil
		}
		if n.Operator == "in" {
			arr, ok := n.Right.(*ast.ArrayNode)
			if !ok {
				return nil
			}
			var items []val
			for _, e := range arr.Nodes {
				c, ok := compileNode(e).(constNode)
				if !ok {
					return nil
				}
				items = append(items, c.v)
			}
			return inNode{l, items}
		}
		r := compileNode(n.Right)
		if r == nil {
			return nil
		}
		switch n.Operator {
		case "&&", "and":
			return logicNode{true, l, r}
		case "||", "or":
			return logicNode{false, l, r}
		case "==", "!=", "<", ">", "<=", ">=":
			return cmpNode{n.Operator, l, r}
		case "+", "-", "*", "/":
			return arithNode{n.Operator, l, r}
		case "contains", "startsWith", "endsWith":
			return strNode{n.Operator, l, r}
		}
	}
	return nil
}

type constNode struct{ v val }

func (c constNode) eval(*fastjson.Value) (val, bool) { return c.v, true }

// identNode is a top-level field; undefined is nil (AllowUndefinedVariables).
type identNode struct{ name string }

func (n identNode) eval(root *fastjson.Value) (val, bool) {
	return fromJSON(root.Get(n.name)), true
}

type memberNode struct {
	obj node
	key string
}

func (n memberNode) eval(root *fastjson.Value) (val, bool) {
	o, ok := n.obj.eval(root)
	if !ok || o.k != kJSON || o.j.Type() != fastjson.TypeObject {
		return val{}, false // a member of nil or of a scalar is an error in expr
	}
	return fromJSON(o.j.Get(n.key)), true
}

type indexNode struct {
	obj node
	i   int
}

func (n indexNode) eval(root *fastjson.Value) (val, bool) {
	o, ok := n.obj.eval(root)
	if !ok || o.k != kJSON || o.j.Type() != fastjson.TypeArray {
		return val{}, false
	}
	a, _ := o.j.Array()
	i := n.i
	if i < 0 {
		i += len(a)
	}
	if i < 0 || i >= len(a) {
		return val{}, false // out of range is an error in expr
	}
	return fromJSON(a[i]), true
}

func fromJSON(v *fastjson.Value) val {
	if v == nil {
		return val{k: kNil}
	}
	switch v.Type() {
	case fastjson.TypeNull:
		return val{k: kNil}
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
		return val{k: kStr, s: b}
	}
	return val{k: kJSON, j: v}
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

type notNode struct{ n node }

func (n notNode) eval(root *fastjson.Value) (val, bool) {
	v, ok := n.n.eval(root)
	if !ok || v.k != kBool {
		return val{}, false
	}
	return val{k: kBool, b: !v.b}, true
}

type negNode struct{ n node }

func (n negNode) eval(root *fastjson.Value) (val, bool) {
	v, ok := n.n.eval(root)
	switch {
	case !ok:
	case v.k == kInt && v.i != math.MinInt:
		return val{k: kInt, i: -v.i}, true
	case v.k == kFloat:
		return val{k: kFloat, f: -v.f}, true
	}
	return val{}, false
}

type logicNode struct {
	and  bool
	l, r node
}

func (n logicNode) eval(root *fastjson.Value) (val, bool) {
	l, ok := n.l.eval(root)
	if !ok || l.k != kBool {
		return val{}, false
	}
	if l.b != n.and { // false && _, true || _
		return l, true
	}
	r, ok := n.r.eval(root)
	if !ok || r.k != kBool {
		return val{}, false
	}
	return r, true
}

// equal is expr's runtime.Equal for scalars; ok=false for objects/arrays.
func equal(l, r val) (eq, ok bool) {
	x, okx := l.num()
	y, oky := r.num()
	switch {
	case okx && oky:
		return x == y, true
	case l.k == kJSON || r.k == kJSON:
		return false, false
	case l.k != r.k:
		return false, true
	case l.k == kStr:
		return bytes.Equal(l.s, r.s), true
	case l.k == kBool:
		return l.b == r.b, true
	}
	return true, true // nil == nil
}

type cmpNode struct {
	op   string
	l, r node
}

func (n cmpNode) eval(root *fastjson.Value) (val, bool) {
	l, ok := n.l.eval(root)
	if !ok {
		return val{}, false
	}
	r, ok := n.r.eval(root)
	if !ok {
		return val{}, false
	}
	if n.op == "==" || n.op == "!=" {
		eq, ok := equal(l, r)
		if !ok {
			return val{}, false
		}
		return val{k: kBool, b: eq == (n.op == "==")}, true
	}
	var d int
	x, okx := l.num()
	y, oky := r.num()
	switch {
	case okx && oky:
		switch {
		case x < y:
			d = -1
		case x > y:
			d = 1
		}
	case l.k == kStr && r.k == kStr:
		d = bytes.Compare(l.s, r.s)
	default:
		return val{}, false
	}
	var b bool
	switch n.op {
	case "<":
		b = d < 0
	case ">":
		b = d > 0
	case "<=":
		b = d <= 0
	case ">=":
		b = d >= 0
	}
	return val{k: kBool, b: b}, true
}

type arithNode struct {
	op   string
	l, r node
}

func (n arithNode) eval(root *fastjson.Value) (val, bool) {
	l, ok := n.l.eval(root)
	if !ok {
		return val{}, false
	}
	r, ok := n.r.eval(root)
	if !ok {
		return val{}, false
	}
	if l.k == kInt && r.k == kInt && n.op != "/" {
		x, y := l.i, r.i
		switch n.op {
		case "+":
			if s := x + y; (s > x) == (y > 0) {
				return val{k: kInt, i: s}, true
			}
		case "-":
			if s := x - y; (s < x) == (y > 0) {
				return val{k: kInt, i: s}, true
			}
		case "*":
			if x == 0 || y == 0 {
				return val{k: kInt}, true
			}
			if p := x * y; p/y == x && p/x == y && x != math.MinInt && y != math.MinInt {
				return val{k: kInt, i: p}, true
			}
		}
		return val{}, false // overflow: leave it to expr
	}
	x, okx := l.num()
	y, oky := r.num()
	if !okx || !oky {
		return val{}, false // string concatenation and the rest: expr
	}
	switch n.op {
	case "+":
		return val{k: kFloat, f: x + y}, true
	case "-":
		return val{k: kFloat, f: x - y}, true
	case "*":
		return val{k: kFloat, f: x * y}, true
	}
	return val{k: kFloat, f: x / y}, true // expr divides as floats (±Inf, NaN included)
}

type strNode struct {
	op   string
	l, r node
}

func (n strNode) eval(root *fastjson.Value) (val, bool) {
	l, ok := n.l.eval(root)
	if !ok || l.k != kStr {
		return val{}, false
	}
	r, ok := n.r.eval(root)
	if !ok || r.k != kStr {
		return val{}, false
	}
	var b bool
	switch n.op {
	case "contains":
		b = bytes.Contains(l.s, r.s)
	case "startsWith":
		b = bytes.HasPrefix(l.s, r.s)
	case "endsWith":
		b = bytes.HasSuffix(l.s, r.s)
	}
	return val{k: kBool, b: b}, true
}

type inNode struct {
	l     node
	items []val
}

func (n inNode) eval(root *fastjson.Value) (val, bool) {
	l, ok := n.l.eval(root)
	if !ok {
		return val{}, false
	}
	for _, it := range n.items {
		eq, ok := equal(l, it)
		if !ok {
			return val{}, false
		}
		if eq {
			return val{k: kBool, b: true}, true
		}
	}
	return val{k: kBool}, true
}

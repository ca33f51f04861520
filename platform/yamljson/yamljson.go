// Package yamljson reads a YAML 1.2 document (JSON is one) as JSON, for
// documents users write by hand: integration specs and their step
// configs.
//
// Plain scalars are typed by the YAML 1.2 core schema, the one JSON has:
// only true and false (in three spellings each) are booleans, and y, n,
// yes, no, on and off stay strings, as do 2024-01-02 (no timestamps),
// 1_000 and 0b101 (no YAML 1.1 numbers). Integers are decimal, 0o
// octal or 0x hexadecimal, of any size; 0777 is the decimal 777. Mapping
// keys are always the text written. sigs.k8s.io/yaml, used before, reads
// YAML 1.1 (through yaml.v2) and turned `sep: n` into false.
//
// The document is parsed by go.yaml.in/yaml/v3 into its node tree, which
// this package types and converts itself: yaml.v3's own decoding has YAML
// 1.1 leftovers (timestamps, 1_000, 0777 as octal) and checks duplicate
// keys in time quadratic in a mapping's size. Anchors, aliases and merge
// keys (<<) are read, and aliases may expand the document to at most
// about twice its size.
package yamljson

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// maxDepth bounds the nesting of collections, aliases included (the parser
// itself stops at 10,000 too).
const maxDepth = 10_000

// Error is a document that parses but has no JSON form: a non-scalar key,
// a value JSON cannot hold (.inf, .nan), a tag that does not fit its value,
// a duplicate key, or aliases that expand too far.
type Error struct {
	// Line is the 1-based line of the offending node (0 if unknown).
	Line int
	// Path is where it is, "sinks[0].config" ("" for the root).
	Path   string
	Reason string
}

func (e *Error) Error() string {
	where := ""
	if e.Line > 0 {
		where = fmt.Sprintf("line %d: ", e.Line)
	}
	if e.Path != "" {
		where += e.Path + ": "
	}
	return "yaml: " + where + e.Reason
}

// ToJSON converts doc, the first document of a YAML stream, to JSON. An
// empty document is null. Errors from the parser are yaml.v3's; the others
// are *Error.
func ToJSON(doc []byte) ([]byte, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(doc, &root); err != nil {
		return nil, err
	}
	if root.Kind == 0 {
		return []byte("null"), nil
	}
	c := &converter{active: map[*yaml.Node]bool{}}
	c.left = 2*countNodes(&root) + 10_000
	v, err := c.value(&root, "", 0)
	if err != nil {
		return nil, err
	}
	out, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("yamljson: %w", err)
	}
	return out, nil
}

// countNodes counts the nodes of the tree as written (aliases not followed).
func countNodes(n *yaml.Node) int {
	total := 1
	for _, c := range n.Content {
		total += countNodes(c)
	}
	return total
}

type converter struct {
	// left is how many more values may be produced: the document's own
	// plus what its aliases add, bounded (the "billion laughs").
	left int
	// active holds the alias targets being expanded, to refuse an alias
	// inside its own anchor.
	active map[*yaml.Node]bool
}

func (c *converter) fail(n *yaml.Node, path, format string, args ...any) error {
	return &Error{Line: n.Line, Path: path, Reason: fmt.Sprintf(format, args...)}
}

// value converts n to a JSON value: map[string]any, []any, string, bool,
// nil, json.Number or float64.
func (c *converter) value(n *yaml.Node, path string, depth int) (any, error) {
	if c.left--; c.left < 0 {
		return nil, c.fail(n, path, "aliases expand the document too far")
	}
	if depth > maxDepth {
		return nil, c.fail(n, path, "nested deeper than %d", maxDepth)
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return c.value(n.Content[0], path, depth+1)
	case yaml.AliasNode:
		if c.active[n.Alias] {
			return nil, c.fail(n, path, "alias *%s refers to a node that holds it", n.Value)
		}
		c.active[n.Alias] = true
		defer delete(c.active, n.Alias)
		return c.value(n.Alias, path, depth+1)
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for i, e := range n.Content {
			v, err := c.value(e, fmt.Sprintf("%s[%d]", path, i), depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case yaml.MappingNode:
		return c.mapping(n, path, depth)
	case yaml.ScalarNode:
		v, err := scalar(n)
		if err != nil {
			return nil, c.fail(n, path, "%v", err)
		}
		return v, nil
	}
	return nil, c.fail(n, path, "unknown node kind %d", n.Kind)
}

// mapping converts a mapping. Keys written in it win over merged ones (<<),
// and an earlier merged mapping over a later one, as YAML's merge key says.
func (c *converter) mapping(n *yaml.Node, path string, depth int) (map[string]any, error) {
	out := make(map[string]any, len(n.Content)/2)
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], n.Content[i+1]
		if kn.Kind == yaml.ScalarNode && kn.Tag == "!!merge" {
			merges = append(merges, vn)
			continue
		}
		key, err := c.key(kn, path)
		if err != nil {
			return nil, err
		}
		sub := join(path, key)
		if _, dup := out[key]; dup {
			return nil, c.fail(kn, sub, "mapping key %q is already defined", key)
		}
		if out[key], err = c.value(vn, sub, depth+1); err != nil {
			return nil, err
		}
	}
	for _, m := range merges {
		sources := []*yaml.Node{m}
		if target := deref(m); target.Kind == yaml.SequenceNode {
			sources = target.Content
		}
		for _, src := range sources {
			if deref(src).Kind != yaml.MappingNode {
				return nil, c.fail(src, join(path, "<<"), "a merge key (<<) takes a mapping or a list of mappings")
			}
			v, err := c.value(src, join(path, "<<"), depth+1)
			if err != nil {
				return nil, err
			}
			for k, x := range v.(map[string]any) {
				if _, set := out[k]; !set {
					out[k] = x
				}
			}
		}
	}
	return out, nil
}

func deref(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// key is the text of a mapping key: JSON keys are strings, so `1: a` and
// `true: b` are "1" and "true", and `on:` is "on".
func (c *converter) key(n *yaml.Node, path string) (string, error) {
	if c.left--; c.left < 0 {
		return "", c.fail(n, path, "aliases expand the document too far")
	}
	if k := deref(n); k.Kind == yaml.ScalarNode {
		return k.Value, nil
	}
	return "", c.fail(n, path, "a mapping key must be a scalar, not a list or a mapping")
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// The YAML 1.2 core schema (https://yaml.org/spec/1.2.2/#1032-tag-resolution).
var (
	coreNull  = regexp.MustCompile(`^(|~|null|Null|NULL)$`)
	coreTrue  = regexp.MustCompile(`^(true|True|TRUE)$`)
	coreFalse = regexp.MustCompile(`^(false|False|FALSE)$`)
	coreDec   = regexp.MustCompile(`^[-+]?[0-9]+$`)
	coreOct   = regexp.MustCompile(`^0o[0-7]+$`)
	coreHex   = regexp.MustCompile(`^0x[0-9a-fA-F]+$`)
	coreFloat = regexp.MustCompile(`^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`)
	coreInf   = regexp.MustCompile(`^[-+]?\.(inf|Inf|INF)$`)
	coreNaN   = regexp.MustCompile(`^\.(nan|NaN|NAN)$`)
)

var errNoJSON = errors.New("has no JSON form")

// scalar types a scalar: quoted and block scalars are strings, plain ones
// follow the core schema, and an explicit tag (!!int 12) must fit.
func scalar(n *yaml.Node) (any, error) {
	tagged := n.Style&yaml.TaggedStyle != 0
	if !tagged && n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		return n.Value, nil
	}
	if !tagged {
		return core(n.Value)
	}
	switch n.Tag {
	case "!!str", "!!timestamp":
		return n.Value, nil
	case "!!binary":
		b, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(n.Value), ""))
		if err != nil {
			return nil, fmt.Errorf("!!binary: not base64: %w", err)
		}
		if !utf8.Valid(b) {
			return nil, fmt.Errorf("!!binary: the bytes are not UTF-8 text, which JSON strings must be")
		}
		return string(b), nil
	case "!!null", "!!bool", "!!int", "!!float":
		v, err := core(n.Value)
		if err != nil {
			return nil, err
		}
		ok := false
		switch v.(type) {
		case nil:
			ok = n.Tag == "!!null"
		case bool:
			ok = n.Tag == "!!bool"
		case json.Number:
			ok = n.Tag == "!!int" || n.Tag == "!!float"
		case float64:
			ok = n.Tag == "!!float"
		}
		if !ok {
			return nil, fmt.Errorf("%q is not a %s", n.Value, n.Tag)
		}
		return v, nil
	}
	return n.Value, nil // an application's tag (!secret x): the text
}

// core types a plain scalar by the core schema.
func core(s string) (any, error) {
	switch {
	case coreNull.MatchString(s):
		return nil, nil
	case coreTrue.MatchString(s):
		return true, nil
	case coreFalse.MatchString(s):
		return false, nil
	case coreDec.MatchString(s):
		return integer(s, 10)
	case coreOct.MatchString(s):
		return integer(s[2:], 8)
	case coreHex.MatchString(s):
		return integer(s[2:], 16)
	case coreFloat.MatchString(s):
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s, errNoJSON)
		}
		return f, nil
	case coreInf.MatchString(s), coreNaN.MatchString(s):
		return nil, fmt.Errorf("%s %w (quote it for a string)", s, errNoJSON)
	}
	return s, nil
}

// integer is s, digits in base, as a JSON number of any size.
func integer(s string, base int) (json.Number, error) {
	var i big.Int
	if _, ok := i.SetString(s, base); !ok {
		return "", fmt.Errorf("%q is not an integer", s)
	}
	return json.Number(i.String()), nil
}

// Package examples holds VRSky's integration templates: the four demos
// (`vrsky demo NAME`) and other common patterns, one folder each, embedded
// in the binary so that the API (GET /api/v1/templates), the CLI (`vrsky
// integration new --template`) and the demos share one source.
//
// A folder holds two files. template.yaml describes the template: its name,
// title, description, whether it is a demo, and its parameters as a JSON
// Schema (an object whose properties are the parameters, with defaults).
// integration.yaml is an integration spec in which ${param} stands for a
// parameter's value. Render validates the parameters against the schema,
// fills in defaults, substitutes them and returns the spec as YAML, its
// comments and field order kept.
//
// Substitution works on the spec's YAML values, never on its text: a value
// that is a placeholder alone ("${batch_size}") takes the parameter's type
// (a number stays a number), and a placeholder inside a longer string
// ("total >= ${big_order}") is replaced by the parameter's text. So a
// parameter's value can never change the spec's structure.
package examples

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	yaml3 "go.yaml.in/yaml/v3"
	"sigs.k8s.io/yaml"

	"github.com/vrsky/vrsky/platform/schema"
)

//go:embed */template.yaml */integration.yaml
var files embed.FS

// Template is one integration template.
type Template struct {
	// Name identifies the template (its folder's name).
	Name string `json:"name"`
	// Title is a short human title; Description says what the integration does.
	Title       string `json:"title"`
	Description string `json:"description"`
	// Demo is true for the four demos `vrsky demo` runs.
	Demo bool `json:"demo"`
	// Parameters is the JSON Schema of the parameters Render takes.
	Parameters json.RawMessage `json:"parameters"`
	// Spec is the integration spec, YAML with ${param} placeholders.
	Spec string `json:"spec"`

	schema *schema.Schema
	props  map[string]property
	node   yaml3.Node // Spec, parsed
}

// property is what Render needs of a parameter's schema.
type property struct {
	Type    any `json:"type"`
	Default any `json:"default"`
}

// ParamError is a parameter that failed validation: Field names it as
// "parameters.NAME" (or "parameters" for the object itself).
type ParamError struct {
	Field  string
	Reason string
}

func (e *ParamError) Error() string { return e.Field + ": " + e.Reason }

// placeholder matches ${name}.
var placeholder = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

var all = mustLoad()

func mustLoad() []*Template {
	ts, err := load(files)
	if err != nil {
		panic(err)
	}
	return ts
}

// load reads every folder of fsys; a placeholder that names no parameter,
// or a parameter the spec does not use, is an error.
func load(fsys fs.FS) ([]*Template, error) {
	metas, err := fs.Glob(fsys, "*/template.yaml")
	if err != nil {
		return nil, err
	}
	var out []*Template
	for _, m := range metas {
		dir := path.Dir(m)
		t, err := loadOne(fsys, dir)
		if err != nil {
			return nil, fmt.Errorf("examples: template %s: %w", dir, err)
		}
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Demo != out[j].Demo {
			return out[i].Demo
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

func loadOne(fsys fs.FS, dir string) (*Template, error) {
	meta, err := fs.ReadFile(fsys, dir+"/template.yaml")
	if err != nil {
		return nil, err
	}
	var head struct {
		Name, Title, Description string
		Demo                     bool
		Parameters               json.RawMessage
	}
	if err := yaml.UnmarshalStrict(meta, &head); err != nil {
		return nil, fmt.Errorf("template.yaml: %w", err)
	}
	if head.Name != dir {
		return nil, fmt.Errorf("template.yaml: name %q is not the folder's name", head.Name)
	}
	spec, err := fs.ReadFile(fsys, dir+"/integration.yaml")
	if err != nil {
		return nil, err
	}
	t := &Template{Name: head.Name, Title: head.Title, Description: head.Description, Demo: head.Demo,
		Parameters: head.Parameters, Spec: string(spec)}
	if t.schema, err = schema.Compile("template-"+t.Name, head.Parameters); err != nil {
		return nil, err
	}
	var ps struct {
		Properties map[string]property `json:"properties"`
	}
	if err := json.Unmarshal(head.Parameters, &ps); err != nil {
		return nil, fmt.Errorf("parameters: %w", err)
	}
	t.props = ps.Properties
	if err := yaml3.Unmarshal(spec, &t.node); err != nil {
		return nil, fmt.Errorf("integration.yaml: %w", err)
	}
	used := map[string]bool{}
	for _, m := range placeholder.FindAllStringSubmatch(string(spec), -1) {
		used[m[1]] = true
		if _, ok := t.props[m[1]]; !ok {
			return nil, fmt.Errorf("integration.yaml: ${%s} is not a parameter", m[1])
		}
	}
	for name := range t.props {
		if !used[name] {
			return nil, fmt.Errorf("parameter %s is not used in integration.yaml", name)
		}
	}
	return t, nil
}

// List returns every template: the demos first, then by name.
func List() []*Template { return slices.Clone(all) }

// Get returns the template called name.
func Get(name string) (*Template, bool) {
	for _, t := range all {
		if t.Name == name {
			return t, true
		}
	}
	return nil, false
}

// Names returns the templates' names, in List's order.
func Names() []string {
	out := make([]string, len(all))
	for i, t := range all {
		out[i] = t.Name
	}
	return out
}

// ParameterNames returns the template's parameter names, sorted.
func (t *Template) ParameterNames() []string {
	out := make([]string, 0, len(t.props))
	for n := range t.props {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Render validates params against the parameters' schema (a failure is a
// *ParamError naming the parameter), fills in the defaults and returns the
// spec as YAML with every placeholder replaced.
func (t *Template) Render(params map[string]any) ([]byte, error) {
	vals, err := t.values(params)
	if err != nil {
		return nil, err
	}
	doc := cloneNode(&t.node)
	if err := substitute(doc, vals); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	enc := yaml3.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("examples: render %s: %w", t.Name, err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("examples: render %s: %w", t.Name, err)
	}
	return b.Bytes(), nil
}

// values is params with the defaults filled in, validated.
func (t *Template) values(params map[string]any) (map[string]any, error) {
	// Through JSON, so that the schema sees what a JSON client sent
	// (json.Number, []any, map[string]any), whatever Go types params holds.
	raw, err := json.Marshal(params)
	if err != nil {
		return nil, &ParamError{Field: "parameters", Reason: err.Error()}
	}
	vals := map[string]any{}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&vals); err != nil {
		return nil, &ParamError{Field: "parameters", Reason: err.Error()}
	}
	if vals == nil {
		vals = map[string]any{}
	}
	for name, p := range t.props {
		if _, ok := vals[name]; !ok && p.Default != nil {
			vals[name] = jsonValue(p.Default)
		}
	}
	if fe := t.schema.Validate(vals, "parameters"); fe != nil {
		return nil, &ParamError{Field: cmpOr(fe.Field, "parameters"), Reason: fe.Reason}
	}
	return vals, nil
}

// jsonValue turns a default decoded without UseNumber into the form the
// schema validator and substitute expect.
func jsonValue(v any) any {
	b, _ := json.Marshal(v)
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var out any
	_ = dec.Decode(&out)
	return out
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// substitute replaces the placeholders in n's scalar values.
func substitute(n *yaml3.Node, vals map[string]any) error {
	subComments(n, vals)
	switch n.Kind {
	case yaml3.DocumentNode, yaml3.SequenceNode:
		for _, c := range n.Content {
			if err := substitute(c, vals); err != nil {
				return err
			}
		}
	case yaml3.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 { // values only, never keys (their comments, though)
			subComments(n.Content[i], vals)
			if err := substitute(n.Content[i+1], vals); err != nil {
				return err
			}
		}
	case yaml3.ScalarNode:
		if !strings.Contains(n.Value, "${") {
			return nil
		}
		if m := placeholder.FindStringSubmatch(n.Value); m != nil && m[0] == n.Value {
			return setNode(n, vals[m[1]])
		}
		n.Value = placeholder.ReplaceAllStringFunc(n.Value, func(s string) string {
			return text(vals[s[2:len(s)-1]])
		})
	}
	return nil
}

// subComments replaces the placeholders in n's comments.
func subComments(n *yaml3.Node, vals map[string]any) {
	for _, c := range []*string{&n.HeadComment, &n.LineComment, &n.FootComment} {
		*c = placeholder.ReplaceAllStringFunc(*c, func(s string) string { return text(vals[s[2:len(s)-1]]) })
	}
}

// setNode makes n the value v (a string, json.Number, bool, nil, or a
// JSON array or object), keeping n's comments.
func setNode(n *yaml3.Node, v any) error {
	switch v := v.(type) {
	case string:
		n.Value, n.Tag = v, "!!str"
		if n.Style == 0 {
			n.Style = yaml3.DoubleQuotedStyle
		}
	case json.Number:
		n.Value, n.Style = v.String(), 0
		n.Tag = "!!float"
		if _, err := v.Int64(); err == nil {
			n.Tag = "!!int"
		}
	case bool:
		n.Value, n.Tag, n.Style = strconv.FormatBool(v), "!!bool", 0
	case nil:
		n.Value, n.Tag, n.Style = "null", "!!null", 0
	default:
		var repl yaml3.Node
		if err := repl.Encode(v); err != nil {
			return fmt.Errorf("examples: %w", err)
		}
		repl.Style = yaml3.FlowStyle
		repl.HeadComment, repl.LineComment, repl.FootComment = n.HeadComment, n.LineComment, n.FootComment
		*n = repl
	}
	return nil
}

// text is v as it reads inside a longer string.
func text(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case nil:
		return ""
	case json.Number:
		return v.String()
	case bool:
		return strconv.FormatBool(v)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func cloneNode(n *yaml3.Node) *yaml3.Node {
	c := *n
	if n.Content != nil {
		c.Content = make([]*yaml3.Node, len(n.Content))
		for i, k := range n.Content {
			c.Content[i] = cloneNode(k)
		}
	}
	return &c
}

// ErrUnknown is returned by Lookup for a name that is no template.
var ErrUnknown = errors.New("no such template")

// Lookup is Get with an error that lists the templates.
func Lookup(name string) (*Template, error) {
	if t, ok := Get(name); ok {
		return t, nil
	}
	return nil, fmt.Errorf("%w %q (the templates: %s)", ErrUnknown, name, strings.Join(Names(), ", "))
}

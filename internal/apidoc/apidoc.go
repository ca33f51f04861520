// Package apidoc renders VRSky's OpenAPI document (api/openapi.json) as the
// Markdown API reference in docs/api.md.
//
// The reference is generated, never edited by hand: the test beside this
// file fails when docs/api.md differs from what Render makes of the current
// document, and `make docs` (go test ./internal/apidoc -update) rewrites it.
// Render reads only the parts of OpenAPI 3.1 the document uses: tags, paths
// with path-level and operation-level parameters, request bodies, responses,
// and component schemas, parameters and responses referenced with $ref.
package apidoc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
)

type document struct {
	Info struct {
		Title       string `json:"title"`
		Version     string `json:"version"`
		Description string `json:"description"`
	} `json:"info"`
	Tags []struct {
		Name        string `json:"name"`
		Description string `json:"description"`
	} `json:"tags"`
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		Schemas    map[string]*schema    `json:"schemas"`
		Parameters map[string]*parameter `json:"parameters"`
		Responses  map[string]*response  `json:"responses"`
	} `json:"components"`
}

type operation struct {
	OperationID string       `json:"operationId"`
	Tags        []string     `json:"tags"`
	Summary     string       `json:"summary"`
	Description string       `json:"description"`
	Parameters  []*parameter `json:"parameters"`
	Security    *[]any       `json:"security"`
	RequestBody *struct {
		Required    bool                 `json:"required"`
		Description string               `json:"description"`
		Content     map[string]mediaType `json:"content"`
	} `json:"requestBody"`
	Responses map[string]*response `json:"responses"`
}

type parameter struct {
	Ref         string  `json:"$ref"`
	Name        string  `json:"name"`
	In          string  `json:"in"`
	Required    bool    `json:"required"`
	Description string  `json:"description"`
	Schema      *schema `json:"schema"`
}

type response struct {
	Ref         string               `json:"$ref"`
	Description string               `json:"description"`
	Content     map[string]mediaType `json:"content"`
}

type mediaType struct {
	Schema *schema `json:"schema"`
}

type schema struct {
	Ref                  string             `json:"$ref"`
	Type                 any                `json:"type"` // a string, or a list in OpenAPI 3.1
	Format               string             `json:"format"`
	Description          string             `json:"description"`
	Enum                 []any              `json:"enum"`
	Default              any                `json:"default"`
	Required             []string           `json:"required"`
	Properties           map[string]*schema `json:"properties"`
	Items                *schema            `json:"items"`
	AdditionalProperties any                `json:"additionalProperties"`
	OneOf                []*schema          `json:"oneOf"`
	AnyOf                []*schema          `json:"anyOf"`
	Minimum              *float64           `json:"minimum"`
	Maximum              *float64           `json:"maximum"`
	Pattern              string             `json:"pattern"`
	Deprecated           bool               `json:"deprecated"`
}

var methodOrder = []string{"get", "post", "put", "patch", "delete"}

// Render turns an OpenAPI document into the Markdown reference.
func Render(openapi []byte) ([]byte, error) {
	var doc document
	if err := json.Unmarshal(openapi, &doc); err != nil {
		return nil, fmt.Errorf("apidoc: decode the OpenAPI document: %w", err)
	}
	r := &renderer{doc: &doc}
	if err := r.render(); err != nil {
		return nil, err
	}
	return r.buf.Bytes(), nil
}

type renderer struct {
	doc *document
	buf bytes.Buffer
}

func (r *renderer) p(format string, args ...any) { fmt.Fprintf(&r.buf, format, args...) }

type endpoint struct {
	path, method string
	op           *operation
}

func (r *renderer) render() error {
	d := r.doc
	r.p("# %s %s\n\n", d.Info.Title, d.Info.Version)
	r.p("<!-- Generated from api/openapi.json by internal/apidoc (`make docs`); do not edit. -->\n\n")
	r.p("%s\n\n", d.Info.Description)
	r.p("The machine-readable document is served at `GET /api/v1/openapi.json` and kept in the\n")
	r.p("repository as [`api/openapi.json`](../api/openapi.json).\n\n")

	byTag := map[string][]endpoint{}
	paths := make([]string, 0, len(d.Paths))
	for p := range d.Paths {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, path := range paths {
		item := d.Paths[path]
		var shared []*parameter
		if raw, ok := item["parameters"]; ok {
			if err := json.Unmarshal(raw, &shared); err != nil {
				return fmt.Errorf("apidoc: %s: parameters: %w", path, err)
			}
		}
		for _, m := range methodOrder {
			raw, ok := item[m]
			if !ok {
				continue
			}
			op := &operation{}
			if err := json.Unmarshal(raw, op); err != nil {
				return fmt.Errorf("apidoc: %s %s: %w", strings.ToUpper(m), path, err)
			}
			op.Parameters = append(slices.Clone(shared), op.Parameters...)
			tag := "other"
			if len(op.Tags) > 0 {
				tag = op.Tags[0]
			}
			byTag[tag] = append(byTag[tag], endpoint{path: path, method: m, op: op})
		}
	}
	tags := make([]string, 0, len(d.Tags))
	for _, t := range d.Tags {
		tags = append(tags, t.Name)
	}
	for t := range byTag {
		if !slices.Contains(tags, t) {
			tags = append(tags, t)
		}
	}

	r.p("## Endpoints\n\n")
	r.p("| method | path | summary |\n| --- | --- | --- |\n")
	for _, t := range tags {
		for _, e := range byTag[t] {
			r.p("| %s | [`%s`](#%s) | %s |\n", strings.ToUpper(e.method), e.path, anchor(e), cell(firstSentence(e.op.Summary)))
		}
	}
	r.p("\n")

	for _, t := range tags {
		eps := byTag[t]
		if len(eps) == 0 {
			continue
		}
		r.p("## %s\n\n", titleCase(t))
		for _, tg := range d.Tags {
			if tg.Name == t && tg.Description != "" {
				r.p("%s\n\n", tg.Description)
			}
		}
		for _, e := range eps {
			if err := r.endpoint(e); err != nil {
				return err
			}
		}
	}

	r.p("## Schemas\n\n")
	names := make([]string, 0, len(d.Components.Schemas))
	for n := range d.Components.Schemas {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		r.schemaSection(n, d.Components.Schemas[n])
	}
	return nil
}

// anchor is the id of an endpoint's heading: "### GET /api/v1/tenants"
// becomes "get-apiv1tenants" by GitHub's rules, which are awkward to
// predict; an explicit <a id> keeps links stable.
func anchor(e endpoint) string {
	if e.op.OperationID != "" {
		return strings.ToLower(e.op.OperationID)
	}
	return e.method + strings.NewReplacer("/", "-", "{", "", "}", "").Replace(e.path)
}

func (r *renderer) endpoint(e endpoint) error {
	op := e.op
	r.p("<a id=\"%s\"></a>\n\n### %s `%s`\n\n", anchor(e), strings.ToUpper(e.method), e.path)
	if op.Summary != "" {
		r.p("%s\n\n", op.Summary)
	}
	if op.Description != "" {
		r.p("%s\n\n", op.Description)
	}
	if op.Security != nil && len(*op.Security) == 0 {
		r.p("No API key.\n\n")
	}
	if len(op.Parameters) > 0 {
		r.p("| parameter | in | type | required | description |\n| --- | --- | --- | --- | --- |\n")
		for _, p := range op.Parameters {
			p, err := r.param(p)
			if err != nil {
				return fmt.Errorf("apidoc: %s %s: %w", strings.ToUpper(e.method), e.path, err)
			}
			r.p("| `%s` | %s | %s | %s | %s |\n", p.Name, p.In, r.typeOf(p.Schema), yes(p.Required), cell(p.Description))
		}
		r.p("\n")
	}
	if b := op.RequestBody; b != nil {
		r.p("**Request body**")
		if b.Required {
			r.p(" (required)")
		}
		r.p(": %s\n\n", mediaList(b.Content, r))
		if b.Description != "" {
			r.p("%s\n\n", b.Description)
		}
	}
	codes := make([]string, 0, len(op.Responses))
	for c := range op.Responses {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	r.p("| status | meaning | body |\n| --- | --- | --- |\n")
	for _, c := range codes {
		resp := op.Responses[c]
		if resp.Ref != "" {
			name := strings.TrimPrefix(resp.Ref, "#/components/responses/")
			shared, ok := r.doc.Components.Responses[name]
			if !ok {
				return fmt.Errorf("apidoc: %s %s: response %s: unknown %s", strings.ToUpper(e.method), e.path, c, resp.Ref)
			}
			resp = shared
		}
		r.p("| %s | %s | %s |\n", c, cell(resp.Description), mediaList(resp.Content, r))
	}
	r.p("\n")
	return nil
}

func (r *renderer) param(p *parameter) (*parameter, error) {
	if p.Ref == "" {
		return p, nil
	}
	name := strings.TrimPrefix(p.Ref, "#/components/parameters/")
	shared, ok := r.doc.Components.Parameters[name]
	if !ok {
		return nil, fmt.Errorf("unknown parameter %s", p.Ref)
	}
	return shared, nil
}

func mediaList(content map[string]mediaType, r *renderer) string {
	if len(content) == 0 {
		return "—"
	}
	types := make([]string, 0, len(content))
	for t := range content {
		types = append(types, t)
	}
	sort.Strings(types)
	// Media types with the same schema share one mention.
	var parts []string
	seen := map[string][]string{}
	var order []string
	for _, t := range types {
		s := r.typeOf(content[t].Schema)
		if _, ok := seen[s]; !ok {
			order = append(order, s)
		}
		seen[s] = append(seen[s], "`"+t+"`")
	}
	for _, s := range order {
		if s == "" || s == "any" {
			parts = append(parts, strings.Join(seen[s], ", "))
			continue
		}
		parts = append(parts, strings.Join(seen[s], ", ")+" "+s)
	}
	return strings.Join(parts, "; ")
}

// typeOf names a schema in one line: a link to a component schema, or
// "array of X", "string (date-time)", "one of `a`, `b`".
func (r *renderer) typeOf(s *schema) string {
	if s == nil {
		return "any"
	}
	if s.Ref != "" {
		// A reference may reach into a schema (…/Error/properties/error):
		// the link goes to the schema, the text says which part.
		n := strings.TrimPrefix(s.Ref, "#/components/schemas/")
		if base, part, ok := strings.Cut(n, "/"); ok {
			return fmt.Sprintf("[%s](#schema-%s) (`%s`)", base, strings.ToLower(base), strings.ReplaceAll(strings.TrimPrefix(part, "properties/"), "/properties/", "."))
		}
		return fmt.Sprintf("[%s](#schema-%s)", n, strings.ToLower(n))
	}
	if len(s.Enum) > 0 {
		vals := make([]string, len(s.Enum))
		for i, v := range s.Enum {
			vals[i] = fmt.Sprintf("`%v`", v)
		}
		return "one of " + strings.Join(vals, ", ")
	}
	var types []string
	switch t := s.Type.(type) {
	case string:
		types = []string{t}
	case []any:
		for _, v := range t {
			types = append(types, fmt.Sprint(v))
		}
	}
	if len(s.OneOf) > 0 || len(s.AnyOf) > 0 {
		var alts []string
		for _, a := range append(slices.Clone(s.OneOf), s.AnyOf...) {
			alts = append(alts, r.typeOf(a))
		}
		return strings.Join(alts, " or ")
	}
	if len(s.Properties) > 0 {
		// An inline object names its fields: {`tenants`: array of Tenant}.
		names := make([]string, 0, len(s.Properties))
		for n := range s.Properties {
			names = append(names, n)
		}
		sort.Strings(names)
		fields := make([]string, len(names))
		for i, n := range names {
			fields[i] = "`" + n + "`: " + r.typeOf(s.Properties[n])
		}
		return "{" + strings.Join(fields, ", ") + "}"
	}
	if len(types) == 0 {
		return "any"
	}
	for i, t := range types {
		switch {
		case t == "array":
			types[i] = "array of " + r.typeOf(s.Items)
		case s.Format != "":
			types[i] = t + " (" + s.Format + ")"
		}
	}
	return strings.Join(types, " or ")
}

func (r *renderer) schemaSection(name string, s *schema) {
	r.p("<a id=\"schema-%s\"></a>\n\n### %s\n\n", strings.ToLower(name), name)
	if s.Description != "" {
		r.p("%s\n\n", s.Description)
	}
	if len(s.Properties) == 0 {
		r.p("Type: %s%s.\n\n", r.typeOf(s), constraints(s))
		return
	}
	r.p("| field | type | required | description |\n| --- | --- | --- | --- |\n")
	r.properties("", s)
	r.p("\n")
}

// properties writes one row per property, and the properties of inline
// objects under dotted names (error.code), so nested bodies read flat.
func (r *renderer) properties(prefix string, s *schema) {
	names := make([]string, 0, len(s.Properties))
	for n := range s.Properties {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		p := s.Properties[n]
		desc := p.Description
		if p.Deprecated {
			desc = strings.TrimSpace("Deprecated. " + desc)
		}
		if p.Default != nil {
			desc = strings.TrimSpace(desc + fmt.Sprintf(" Default `%v`.", p.Default))
		}
		r.p("| `%s` | %s%s | %s | %s |\n", prefix+n, r.typeOf(p), constraints(p), yes(slices.Contains(s.Required, n)), cell(desc))
		if p.Ref == "" && len(p.Properties) > 0 {
			r.properties(prefix+n+".", p)
		}
		if p.Items != nil && p.Items.Ref == "" && len(p.Items.Properties) > 0 {
			r.properties(prefix+n+"[].", p.Items)
		}
	}
}

func constraints(s *schema) string {
	var c []string
	if s.Minimum != nil {
		c = append(c, fmt.Sprintf("≥ %v", *s.Minimum))
	}
	if s.Maximum != nil {
		c = append(c, fmt.Sprintf("≤ %v", *s.Maximum))
	}
	if s.Pattern != "" {
		c = append(c, "matching `"+s.Pattern+"`")
	}
	if len(c) == 0 {
		return ""
	}
	return ", " + strings.Join(c, ", ")
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return ""
}

// cell makes text safe inside a Markdown table cell.
func cell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.Join(strings.Fields(s), " ")
}

func firstSentence(s string) string {
	if i := strings.Index(s, ". "); i >= 0 {
		return s[:i+1]
	}
	return s
}

func titleCase(s string) string {
	s = strings.ReplaceAll(s, "-", " ")
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

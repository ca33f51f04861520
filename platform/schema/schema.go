// Package schema compiles JSON Schemas and turns validation failures into
// field-level errors that name the offending field the way users write it
// ("sinks[0].config.url"), so every API error can point at what to fix.
package schema

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// Schema is a compiled JSON Schema. It is safe for concurrent use.
type Schema struct {
	s *jsonschema.Schema
}

// FieldError is one reason a document failed validation.
type FieldError struct {
	// Field is the path of the offending value, e.g. "sinks[0].config.url";
	// empty for the document root.
	Field string
	// Reason says what is wrong, in plain words.
	Reason string
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Reason
	}
	return e.Field + ": " + e.Reason
}

// Compile parses and compiles a JSON Schema document (draft 2020-12 unless
// the document says otherwise). It rejects schemas that are themselves invalid.
func Compile(name string, doc []byte) (*Schema, error) {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return nil, fmt.Errorf("schema %s: not JSON: %w", name, err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	url := "mem:///" + name + ".json"
	if err := c.AddResource(url, v); err != nil {
		return nil, fmt.Errorf("schema %s: %w", name, err)
	}
	s, err := c.Compile(url)
	if err != nil {
		return nil, fmt.Errorf("schema %s: %w", name, err)
	}
	return &Schema{s: s}, nil
}

// MustCompile is Compile for schemas embedded in the binary.
func MustCompile(name string, doc []byte) *Schema {
	s, err := Compile(name, doc)
	if err != nil {
		panic(err)
	}
	return s
}

// Validate checks doc, a value decoded from JSON (map[string]any, []any,
// string, float64/json.Number, bool, nil). It returns nil or the first
// field error, with prefix (e.g. "sinks[1].config") prepended to its path.
func (s *Schema) Validate(doc any, prefix string) *FieldError {
	err := s.s.Validate(doc)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return &FieldError{Field: prefix, Reason: err.Error()}
	}
	leaf := deepest(ve)
	fe := describe(leaf)
	fe.Field = Join(prefix, fe.Field)
	return fe
}

// deepest follows the first cause down to the most specific error, which
// names the innermost field.
func deepest(ve *jsonschema.ValidationError) *jsonschema.ValidationError {
	for len(ve.Causes) > 0 {
		// Prefer the cause that reaches deepest into the instance.
		best := ve.Causes[0]
		for _, c := range ve.Causes[1:] {
			if len(c.InstanceLocation) > len(best.InstanceLocation) {
				best = c
			}
		}
		ve = best
	}
	return ve
}

var printer = message.NewPrinter(language.English)

func describe(ve *jsonschema.ValidationError) *FieldError {
	loc := slices.Clone(ve.InstanceLocation)
	switch k := ve.ErrorKind.(type) {
	case *kind.Required:
		return &FieldError{Field: Path(append(loc, k.Missing[0])), Reason: "is required"}
	case *kind.AdditionalProperties:
		return &FieldError{Field: Path(append(loc, k.Properties[0])), Reason: "unknown field"}
	default:
		return &FieldError{Field: Path(loc), Reason: ve.ErrorKind.LocalizedString(printer)}
	}
}

// Path renders a JSON-pointer-like token list as "a.b[0].c".
func Path(tokens []string) string {
	var b strings.Builder
	for _, t := range tokens {
		if _, err := strconv.Atoi(t); err == nil {
			b.WriteString("[" + t + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(t)
	}
	return b.String()
}

// Join appends a relative field path to a prefix.
func Join(prefix, field string) string {
	switch {
	case prefix == "":
		return field
	case field == "":
		return prefix
	case strings.HasPrefix(field, "["):
		return prefix + field
	default:
		return prefix + "." + field
	}
}

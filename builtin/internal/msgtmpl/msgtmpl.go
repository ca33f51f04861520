// Package msgtmpl renders the small templates that built-in sinks accept
// in their config (a URL, a header value, a Slack text): literal text with
// {{field}} references into the message.
//
// Syntax:
//
//	{{order.id}}            a field of the JSON payload; dots walk into
//	                        objects, a number indexes an array ({{items.0.sku}})
//	{{header:Vrsky-Tenant}} a message header (Vrsky-Msg-Id is always there)
//
// Spaces inside the braces are ignored. A string renders as is, a number
// as written in the payload, true/false as such, null as "", an object or
// array as compact JSON. A reference that is missing when a message is
// rendered is an error naming it (a MissingError), and so is a payload
// that is not JSON: the sinks report both as permanent, since retrying the
// same message cannot make the field appear.
//
// Why not text/template? Its functions are bound when the template is
// parsed, so a per-message header lookup would need a Clone per message;
// its missing-key errors name Go types; and the references a sink needs
// are paths, not programs. The payload is parsed with fastjson (no
// reflection), once per message, only when a template refers to it.
package msgtmpl

import (
	"fmt"
	"strings"

	"github.com/valyala/fastjson"

	"github.com/vrsky/vrsky/runtime/connector"
)

// Template is a parsed template; it is immutable and safe for concurrent
// use.
type Template struct {
	raw   string
	parts []part
}

type part struct {
	lit        string   // literal text, when ref == ""
	ref        string   // the reference as written, trimmed
	header     string   // header name for {{header:Name}}
	path       []string // field path otherwise
	afterQuery bool     // a '?' appears in the literal text before it
}

// Parse parses s. It fails on an unclosed "{{" or an empty reference.
func Parse(s string) (*Template, error) {
	t := &Template{raw: s}
	rest, query := s, false
	for {
		i := strings.Index(rest, "{{")
		if i < 0 {
			if rest != "" {
				t.parts = append(t.parts, part{lit: rest})
			}
			return t, nil
		}
		if i > 0 {
			t.parts = append(t.parts, part{lit: rest[:i]})
			query = query || strings.Contains(rest[:i], "?")
		}
		j := strings.Index(rest[i+2:], "}}")
		if j < 0 {
			return nil, fmt.Errorf("unclosed {{ at offset %d", len(s)-len(rest)+i)
		}
		ref := strings.TrimSpace(rest[i+2 : i+2+j])
		p := part{ref: ref, afterQuery: query}
		if name, ok := strings.CutPrefix(ref, "header:"); ok {
			p.header = strings.TrimSpace(name)
			if p.header == "" {
				return nil, fmt.Errorf("{{%s}}: header name is empty", ref)
			}
		} else {
			p.path = strings.Split(ref, ".")
			for _, seg := range p.path {
				if seg == "" || strings.ContainsAny(seg, " {}") {
					return nil, fmt.Errorf("{{%s}}: not a field path like order.id", ref)
				}
			}
		}
		t.parts = append(t.parts, p)
		rest = rest[i+2+j+2:]
	}
}

// MustParse is Parse that panics, for templates fixed in code.
func MustParse(s string) *Template {
	t, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return t
}

// String returns the template as written.
func (t *Template) String() string { return t.raw }

// Static reports whether t has no references: it renders as written.
func (t *Template) Static() bool {
	for _, p := range t.parts {
		if p.ref != "" {
			return false
		}
	}
	return true
}

// NeedsPayload reports whether t refers to a payload field.
func (t *Template) NeedsPayload() bool {
	for _, p := range t.parts {
		if p.ref != "" && p.header == "" {
			return true
		}
	}
	return false
}

// MissingError is a reference that a message does not have.
type MissingError struct {
	// Ref is the reference as written, e.g. "order.id" or "header:X-Shop".
	Ref string
}

func (e *MissingError) Error() string {
	if h, ok := strings.CutPrefix(e.Ref, "header:"); ok {
		return fmt.Sprintf("header %s is missing from the message", h)
	}
	return fmt.Sprintf("field %s is missing from the payload", e.Ref)
}

// Vars is what templates render against: one message, its payload
// parsed at most once however many templates refer to it. Call Release
// when done with it; values it returned are invalid afterwards.
type Vars struct {
	Msg *connector.Message
	// Payload is the message's payload bytes (Msg.Data, or the claim-checked
	// payload once read).
	Payload []byte

	parser *fastjson.Parser
	root   *fastjson.Value
	err    error
}

var parsers fastjson.ParserPool

func (v *Vars) payload() (*fastjson.Value, error) {
	if v.parser == nil && v.err == nil {
		v.parser = parsers.Get()
		v.root, v.err = v.parser.ParseBytes(v.Payload)
		if v.err != nil {
			v.err = fmt.Errorf("payload is not JSON: %w", v.err)
		}
	}
	return v.root, v.err
}

// Release returns the parser to its pool.
func (v *Vars) Release() {
	if v.parser != nil {
		parsers.Put(v.parser)
		v.parser, v.root = nil, nil
	}
}

// Escaper transforms a rendered value before it is inserted; afterQuery
// says a '?' came before it in the template's literal text.
type Escaper func(value string, afterQuery bool) string

// Render renders t for v, passing every inserted value through esc (nil
// inserts values as they are).
func (t *Template) Render(v *Vars, esc Escaper) (string, error) {
	if len(t.parts) == 1 && t.parts[0].ref == "" {
		return t.parts[0].lit, nil
	}
	var b strings.Builder
	for _, p := range t.parts {
		if p.ref == "" {
			b.WriteString(p.lit)
			continue
		}
		s, err := v.lookup(p)
		if err != nil {
			return "", err
		}
		if esc != nil {
			s = esc(s, p.afterQuery)
		}
		b.WriteString(s)
	}
	return b.String(), nil
}

func (v *Vars) lookup(p part) (string, error) {
	if p.header != "" {
		if s := v.Msg.Header.Get(p.header); s != "" {
			return s, nil
		}
		if strings.EqualFold(p.header, connector.HeaderMsgID) && v.Msg.ID != "" {
			return v.Msg.ID, nil
		}
		return "", &MissingError{Ref: p.ref}
	}
	root, err := v.payload()
	if err != nil {
		return "", err
	}
	val := root.Get(p.path...)
	if val == nil {
		return "", &MissingError{Ref: p.ref}
	}
	return format(val), nil
}

// FieldJSON returns the JSON text of the value at a dotted path of v's
// payload, and whether it is an array.
func (v *Vars) FieldJSON(path string) (raw []byte, isArray bool, err error) {
	root, err := v.payload()
	if err != nil {
		return nil, false, err
	}
	val := root.Get(strings.Split(path, ".")...)
	if val == nil {
		return nil, false, &MissingError{Ref: path}
	}
	return val.MarshalTo(nil), val.Type() == fastjson.TypeArray, nil
}

func format(v *fastjson.Value) string {
	switch v.Type() {
	case fastjson.TypeNull:
		return ""
	case fastjson.TypeString:
		return string(v.GetStringBytes())
	case fastjson.TypeTrue:
		return "true"
	case fastjson.TypeFalse:
		return "false"
	default: // a number as written; an object or array as compact JSON
		return v.String()
	}
}

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
// are paths, not programs. A reference this small is also cheap enough to
// render on the hot path.
package msgtmpl

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/vrsky/vrsky/runtime"
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
// decoded at most once however many templates refer to it.
type Vars struct {
	Msg *runtime.Message
	// Payload is the message's payload bytes (Msg.Data, or the claim-checked
	// payload once read).
	Payload []byte

	decoded bool
	value   any
	err     error
}

func (v *Vars) payload() (any, error) {
	if !v.decoded {
		v.decoded = true
		dec := json.NewDecoder(bytes.NewReader(v.Payload))
		dec.UseNumber()
		if err := dec.Decode(&v.value); err != nil {
			v.err = fmt.Errorf("payload is not JSON: %w", err)
		} else if dec.More() {
			v.err = fmt.Errorf("payload is not one JSON value")
		}
	}
	return v.value, v.err
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
		if strings.EqualFold(p.header, runtime.HeaderMsgID) && v.Msg.ID != "" {
			return v.Msg.ID, nil
		}
		return "", &MissingError{Ref: p.ref}
	}
	cur, err := v.payload()
	if err != nil {
		return "", err
	}
	cur, ok := Lookup(cur, p.path)
	if !ok {
		return "", &MissingError{Ref: p.ref}
	}
	return format(cur), nil
}

// Lookup walks path into a decoded JSON value: object keys, array
// indexes. ok is false when a step does not exist.
func Lookup(cur any, path []string) (any, bool) {
	for _, seg := range path {
		switch c := cur.(type) {
		case map[string]any:
			next, ok := c[seg]
			if !ok {
				return nil, false
			}
			cur = next
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(c) {
				return nil, false
			}
			cur = c[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

// Field returns the value at a dotted path of v's payload, decoded.
func (v *Vars) Field(path string) (any, error) {
	cur, err := v.payload()
	if err != nil {
		return nil, err
	}
	val, ok := Lookup(cur, strings.Split(path, "."))
	if !ok {
		return nil, &MissingError{Ref: path}
	}
	return val, nil
}

func format(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case json.Number:
		return x.String()
	case bool:
		return strconv.FormatBool(x)
	default:
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(x)
		return strings.TrimSuffix(b.String(), "\n")
	}
}

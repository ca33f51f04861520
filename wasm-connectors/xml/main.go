// Command xml is VRSky's XML converter, both ways:
//
//   - xml_to_json: the document becomes {"<root>": value}. An element with
//     neither attributes nor child elements is its text; otherwise an
//     object with attributes as "@name", children by name (an array when
//     repeated) and non-blank text as "#text".
//   - json_to_xml: the reverse. A one-key object names the root element;
//     otherwise the value is wrapped in "root" (config).
//
// Config: {"mode": "xml_to_json", "attr_prefix": "@", "text_key": "#text", "root": "root"}
package main

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/valyala/fastjson"

	"github.com/vrsky/vrsky/abi/guest"
	"github.com/vrsky/vrsky/abi/guest/jsonval"
)

var (
	toJSON     = true
	attrPrefix = "@"
	textKey    = "#text"
	rootName   = "root"
	parser     fastjson.Parser
	out        []byte
	buf        bytes.Buffer
)

func init() {
	guest.Setup(setup)
	guest.Process(process)
}

func setup(raw []byte) error {
	v, err := fastjson.ParseBytes(raw)
	if err != nil {
		return fmt.Errorf("config is not JSON: %w", err)
	}
	switch mode := string(v.GetStringBytes("mode")); mode {
	case "xml_to_json", "":
	case "json_to_xml":
		toJSON = false
	default:
		return fmt.Errorf("mode %q: want xml_to_json or json_to_xml", mode)
	}
	if v.Exists("attr_prefix") {
		attrPrefix = string(v.GetStringBytes("attr_prefix"))
	}
	if s := v.GetStringBytes("text_key"); len(s) > 0 {
		textKey = string(s)
	}
	if s := v.GetStringBytes("root"); len(s) > 0 {
		rootName = string(s)
		if !validName(rootName) {
			return fmt.Errorf("root %q is not an XML name", rootName)
		}
	}
	return nil
}

func process(m *guest.Message) error {
	if toJSON {
		return xmlToJSON(m)
	}
	return jsonToXML(m)
}

type node struct {
	name     string
	attrs    []xml.Attr
	children []*node
	text     strings.Builder
}

func xmlToJSON(m *guest.Message) error {
	d := xml.NewDecoder(bytes.NewReader(m.Data()))
	var stack []*node
	var root *node
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("xml: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			n := &node{name: t.Name.Local, attrs: t.Attr}
			if len(stack) > 0 {
				p := stack[len(stack)-1]
				p.children = append(p.children, n)
			} else if root != nil {
				return errors.New("xml: more than one root element")
			} else {
				root = n
			}
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].text.Write(t)
			}
		}
	}
	if root == nil {
		return errors.New("xml: no root element")
	}
	out = append(out[:0], '{')
	out = jsonval.AppendString(out, root.name)
	out = append(out, ':')
	out = appendNode(out, root)
	out = append(out, '}')
	if err := m.SetHeader("Content-Type", "application/json"); err != nil {
		return err
	}
	return m.Emit(out)
}

func appendNode(b []byte, n *node) []byte {
	text := strings.TrimSpace(n.text.String())
	if len(n.attrs) == 0 && len(n.children) == 0 {
		return jsonval.AppendString(b, text)
	}
	b = append(b, '{')
	first := true
	sep := func() {
		if !first {
			b = append(b, ',')
		}
		first = false
	}
	for _, a := range n.attrs {
		sep()
		b = jsonval.AppendString(b, attrPrefix+a.Name.Local)
		b = append(b, ':')
		b = jsonval.AppendString(b, a.Value)
	}
	done := map[string]bool{}
	for _, c := range n.children {
		if done[c.name] {
			continue
		}
		done[c.name] = true
		var same []*node
		for _, s := range n.children {
			if s.name == c.name {
				same = append(same, s)
			}
		}
		sep()
		b = jsonval.AppendString(b, c.name)
		b = append(b, ':')
		if len(same) == 1 {
			b = appendNode(b, c)
			continue
		}
		b = append(b, '[')
		for i, s := range same {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendNode(b, s)
		}
		b = append(b, ']')
	}
	if text != "" {
		sep()
		b = jsonval.AppendString(b, textKey)
		b = append(b, ':')
		b = jsonval.AppendString(b, text)
	}
	return append(b, '}')
}

func jsonToXML(m *guest.Message) error {
	v, err := parser.ParseBytes(m.Data())
	if err != nil {
		return fmt.Errorf("input is not JSON: %w", err)
	}
	buf.Reset()
	name, val := rootName, v
	if o, err := v.Object(); err == nil && o.Len() == 1 {
		o.Visit(func(k []byte, e *fastjson.Value) { name, val = string(k), e })
	}
	if val.Type() == fastjson.TypeArray {
		name, val = rootName, v // an array cannot be the root: wrap it
	}
	if err := writeElement(&buf, name, val); err != nil {
		return err
	}
	if err := m.SetHeader("Content-Type", "application/xml"); err != nil {
		return err
	}
	return m.Emit(buf.Bytes())
}

func writeElement(w *bytes.Buffer, name string, v *fastjson.Value) error {
	if !validName(name) {
		return fmt.Errorf("key %q is not an XML name", name)
	}
	switch v.Type() {
	case fastjson.TypeArray:
		for _, e := range v.GetArray() {
			if err := writeElement(w, name, e); err != nil {
				return err
			}
		}
		return nil
	case fastjson.TypeNull:
		w.WriteString("<" + name + "/>")
		return nil
	case fastjson.TypeObject:
		o, _ := v.Object()
		w.WriteString("<" + name)
		var werr error
		o.Visit(func(k []byte, e *fastjson.Value) {
			key := string(k)
			if attrPrefix == "" || !strings.HasPrefix(key, attrPrefix) || werr != nil {
				return
			}
			an := key[len(attrPrefix):]
			if !validName(an) {
				werr = fmt.Errorf("attribute %q is not an XML name", an)
				return
			}
			w.WriteString(" " + an + `="`)
			xml.EscapeText(w, []byte(scalar(e)))
			w.WriteString(`"`)
		})
		if werr != nil {
			return werr
		}
		w.WriteString(">")
		o.Visit(func(k []byte, e *fastjson.Value) {
			key := string(k)
			switch {
			case werr != nil, attrPrefix != "" && strings.HasPrefix(key, attrPrefix):
			case key == textKey:
				xml.EscapeText(w, []byte(scalar(e)))
			default:
				werr = writeElement(w, key, e)
			}
		})
		if werr != nil {
			return werr
		}
		w.WriteString("</" + name + ">")
		return nil
	}
	w.WriteString("<" + name + ">")
	xml.EscapeText(w, []byte(scalar(v)))
	w.WriteString("</" + name + ">")
	return nil
}

func scalar(v *fastjson.Value) string {
	switch v.Type() {
	case fastjson.TypeString:
		return string(v.GetStringBytes())
	case fastjson.TypeNull:
		return ""
	}
	return v.String()
}

// validName accepts XML names without namespaces' subtleties: a letter or
// underscore, then letters, digits, '-', '_', '.' or ':'.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r > 0x7f:
		case i > 0 && (r >= '0' && r <= '9' || r == '-' || r == '.' || r == ':'):
		default:
			return false
		}
	}
	return !strings.HasPrefix(strings.ToLower(s), "xml")
}

func main() {}

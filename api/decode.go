package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
)

// decodeJSON decodes a JSON object body into v strictly: an unknown field,
// a value of the wrong type or text that is not UTF-8 is a 400 naming the
// field. An empty body leaves v as it is when allowEmpty is set.
func decodeJSON(c *fiber.Ctx, v any, allowEmpty bool) error {
	body := c.BodyRaw()
	if len(bytes.TrimSpace(body)) == 0 {
		if allowEmpty {
			return nil
		}
		return badRequest("body", "the body is empty; send a JSON object")
	}
	if ct := c.Get(fiber.HeaderContentType); ct != "" && !isJSON(ct) {
		return newError(fiber.StatusUnsupportedMediaType, CodeUnsupportedMedia, "Content-Type",
			"send the body as application/json, not %s", ct)
	}
	var doc any
	if err := json.Unmarshal(body, &doc); err != nil {
		return badRequest("body", "not valid JSON: %v", err)
	}
	if field, bad := mangledText(body); bad {
		return badRequest(field, "must be valid UTF-8 text: it holds bytes that are not UTF-8, or an unpaired \\u surrogate escape")
	}
	if _, ok := doc.(map[string]any); !ok {
		return badRequest("body", "the body must be a JSON object")
	}
	if f, found := unknownField(doc, reflect.TypeOf(v), ""); found {
		return badRequest(f, "unknown field %q", f)
	}
	if err := json.Unmarshal(body, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return badRequest(te.Field, "must be a JSON %s", jsonKind(te.Type))
		}
		return badRequest("body", "not valid JSON: %v", err)
	}
	return nil
}

// mangledText finds the first string of a JSON document (which must be
// valid) that encoding/json would not decode as written: one with bytes
// that are not UTF-8, or a \u escape of half a surrogate pair. Both become
// U+FFFD, so a name would be stored other than sent. It returns the
// string's field ("name", "quotas.x", "items[2]"; for a bad object key,
// the object's, "body" at the top).
func mangledText(body []byte) (string, bool) {
	if utf8.Valid(body) && !bytes.Contains(body, []byte(`\u`)) {
		return "", false // the common case: nothing to look into
	}
	type level struct {
		array bool
		index int
		key   string // the current key of an object
		atKey bool   // an object's next string is a key
	}
	var stack []level
	path := func(levels []level) string {
		var b strings.Builder
		for _, l := range levels {
			switch {
			case l.array:
				fmt.Fprintf(&b, "[%d]", l.index)
			default:
				if b.Len() > 0 {
					b.WriteByte('.')
				}
				b.WriteString(l.key)
			}
		}
		if b.Len() == 0 {
			return "body"
		}
		return b.String()
	}
	// value marks the end of a value in the enclosing object or array.
	value := func() {
		if n := len(stack); n > 0 {
			if stack[n-1].array {
				stack[n-1].index++
			} else {
				stack[n-1].atKey = true
			}
		}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	for {
		from := dec.InputOffset()
		tok, err := dec.Token()
		if err != nil {
			return "", false // io.EOF, or invalid JSON, which the caller reports
		}
		switch tok := tok.(type) {
		case json.Delim:
			switch tok {
			case '{':
				stack = append(stack, level{atKey: true})
			case '[':
				stack = append(stack, level{array: true})
			default:
				stack = stack[:len(stack)-1]
				value()
			}
		case string:
			// Between two tokens lie only the ASCII of separators and
			// spaces: a bad byte there belongs to this string.
			raw := body[from:dec.InputOffset()]
			bad := !utf8.Valid(raw) || unpairedSurrogate(raw)
			if n := len(stack); n > 0 && !stack[n-1].array && stack[n-1].atKey {
				if bad { // a key: name the object that holds it
					return path(stack[:n-1]), true
				}
				stack[n-1].key, stack[n-1].atKey = tok, false
				continue
			}
			if bad {
				return path(stack), true
			}
			value()
		default:
			value()
		}
	}
}

// unpairedSurrogate reports whether raw, the source text of a JSON string,
// holds a \u escape of a high surrogate not followed by one of a low
// surrogate, or of a low surrogate alone.
func unpairedSurrogate(raw []byte) bool {
	escape := func(i int) (rune, bool) { // the \uXXXX at raw[i:]
		if i+6 > len(raw) || raw[i] != '\\' || raw[i+1] != 'u' {
			return 0, false
		}
		r, err := strconv.ParseUint(string(raw[i+2:i+6]), 16, 32)
		return rune(r), err == nil
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		r, ok := escape(i)
		if !ok {
			i++ // \", \\, \n, …: skip the escaped byte
			continue
		}
		i += 5
		switch {
		case utf16.IsSurrogate(r) && r >= 0xdc00:
			return true
		case utf16.IsSurrogate(r):
			lo, ok := escape(i + 1)
			if !ok || !utf16.IsSurrogate(lo) || lo < 0xdc00 {
				return true
			}
			i += 6
		}
	}
	return false
}

func isJSON(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	return mt == fiber.MIMEApplicationJSON || strings.HasSuffix(mt, "+json")
}

// unknownField returns the dotted path of the first field of doc (decoded
// JSON) that type t does not declare, if there is one. Names must match
// the json tags exactly (encoding/json would also take other cases).
func unknownField(doc any, t reflect.Type, prefix string) (string, bool) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	obj, ok := doc.(map[string]any)
	if !ok || t.Kind() != reflect.Struct {
		return "", false
	}
	fields := map[string]reflect.Type{}
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		fields[name] = f.Type
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		ft, ok := fields[k]
		if !ok {
			return prefix + k, true
		}
		if f, found := unknownField(obj[k], ft, prefix+k+"."); found {
			return f, true
		}
	}
	return "", false
}

func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice, reflect.Array:
		return "array"
	default:
		return "object"
	}
}

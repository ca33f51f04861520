package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// decodeJSON decodes a JSON object body into v strictly: an unknown field
// or a value of the wrong type is a 400 naming the field. An empty body
// leaves v as it is when allowEmpty is set.
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

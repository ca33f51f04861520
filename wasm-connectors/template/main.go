// Command template renders each JSON message through a Go text/template,
// for Slack messages, e-mails and reshaped JSON. The message's JSON is
// "."; helpers: json (encode a value), upper, lower, trim, replace,
// default, header (an input header).
//
// Config: {"template": "{\"text\": {{json (printf \"Order %v: %v\" .id .total)}}}", "output": "json"}
package main

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"text/template"

	"github.com/valyala/fastjson"

	"github.com/vrsky/vrsky/abi/guest"
	"github.com/vrsky/vrsky/abi/guest/jsonval"
)

var (
	tmpl    *template.Template
	asJSON  bool
	dec     jsonval.Decoder
	buf     bytes.Buffer
	current *guest.Message
)

var funcs = template.FuncMap{
	"json": func(v any) (string, error) {
		b, err := jsonval.Append(nil, v)
		return string(b), err
	},
	"upper":   strings.ToUpper,
	"lower":   strings.ToLower,
	"trim":    strings.TrimSpace,
	"replace": func(old, new, s string) string { return strings.ReplaceAll(s, old, new) },
	"default": func(def, v any) any {
		if v == nil || v == "" {
			return def
		}
		return v
	},
	"header": func(name string) string {
		v, _ := current.Header(name)
		return v
	},
}

func init() {
	guest.Setup(setup)
	guest.Process(process)
}

// setup parses the template once per instance.
func setup(raw []byte) error {
	v, err := fastjson.ParseBytes(raw)
	if err != nil {
		return fmt.Errorf("config is not JSON: %w", err)
	}
	src := string(v.GetStringBytes("template"))
	if src == "" {
		return errors.New(`"template" is required`)
	}
	switch o := string(v.GetStringBytes("output")); o {
	case "", "text":
	case "json":
		asJSON = true
	default:
		return fmt.Errorf("output %q: want text or json", o)
	}
	tmpl, err = template.New("step").Option("missingkey=zero").Funcs(funcs).Parse(src)
	if err != nil {
		return fmt.Errorf("template: %w", err)
	}
	return nil
}

func process(m *guest.Message) error {
	data, err := dec.Decode(m.Data())
	if err != nil {
		return fmt.Errorf("input is not JSON: %w", err)
	}
	current = m
	buf.Reset()
	if err := tmpl.Execute(&buf, data); err != nil {
		return fmt.Errorf("template: %w", err)
	}
	ct := "text/plain; charset=utf-8"
	if asJSON {
		if err := fastjson.ValidateBytes(buf.Bytes()); err != nil {
			return fmt.Errorf("template output is not JSON: %w", err)
		}
		ct = "application/json"
	}
	if err := m.SetHeader("Content-Type", ct); err != nil {
		return err
	}
	return m.Emit(buf.Bytes())
}

func main() {}

package main

import (
	"testing"

	"github.com/vrsky/vrsky/internal/testenv/wasmsteptest"
)

func TestTemplate(t *testing.T) {
	const order = `{"id":7,"total":1250.5,"customer":{"name":"Ann \"A\""},"items":["a","b"]}`
	wasmsteptest.Run(t, "template", []wasmsteptest.Case{
		{Name: "text", Config: `{"template":"Order {{.id}} for {{.customer.name | upper}}: {{range $i, $x := .items}}{{if $i}}, {{end}}{{$x}}{{end}}"}`,
			In: order, Out: []string{`Order 7 for ANN "A": a, b`}, OutHeaders: map[string]string{"Content-Type": "text/plain; charset=utf-8"}},
		{Name: "json slack", Config: `{"template":"{\"text\": {{json (printf \"Order %v: %v from %s\" .id .total .customer.name)}}}","output":"json"}`,
			In: order, Out: []string{`{"text": "Order 7: 1250.5 from Ann \"A\""}`}, OutHeaders: map[string]string{"Content-Type": "application/json"}},
		{Name: "header and default", Config: `{"template":"{{header \"X-Src\"}} {{default \"none\" .missing}}"}`,
			In: order, Headers: map[string]string{"X-Src": "web"}, Out: []string{"web none"}},
		{Name: "invalid json output", Config: `{"template":"{{.customer.name}}","output":"json"}`, In: order, Status: wasmsteptest.Permanent, ErrHas: "not JSON"},
		{Name: "exec error", Config: `{"template":"{{index .items 5}}"}`, In: order, Status: wasmsteptest.Permanent, ErrHas: "template:"},
		{Name: "input not JSON", Config: `{"template":"x"}`, In: `nope`, Status: wasmsteptest.Permanent, ErrHas: "not JSON"},
		{Name: "parse error", Config: `{"template":"{{.a"}`, In: order, Status: wasmsteptest.Permanent, ErrHas: "config: template"},
	})
}

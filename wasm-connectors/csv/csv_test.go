package main

import (
	"testing"

	"github.com/vrsky/vrsky/internal/testenv/wasmsteptest"
)

func TestCSV(t *testing.T) {
	wasmsteptest.Run(t, "csv", []wasmsteptest.Case{
		{Name: "records", Config: `{}`, In: "id,name\n1,Ann\n2,\"Bo, Jr\"\n",
			Out: []string{`{"id":"1","name":"Ann"}`, `{"id":"2","name":"Bo, Jr"}`}},
		{Name: "array and delimiter", Config: `{"delimiter":";","split":false}`, In: "a;b\n1;2\n",
			Out: []string{`[{"a":"1","b":"2"}]`}},
		{Name: "no header", Config: `{"header":false,"columns":["x"]}`, In: "1,2\n",
			Out: []string{`{"x":"1","col2":"2"}`}},
		{Name: "header only drops", Config: `{}`, In: "a,b\n", Status: wasmsteptest.Drop},
		{Name: "ragged rows", Config: `{}`, In: "a,b\n1\n", Status: wasmsteptest.Permanent, ErrHas: "csv:"},
		{Name: "bad quote", Config: `{}`, In: "a\n\"x\n", Status: wasmsteptest.Permanent, ErrHas: "csv:"},
		{Name: "to csv", Config: `{"mode":"json_to_csv"}`, In: `[{"id":1,"name":"Ann","tags":["a"]},{"id":2,"name":"Bo, Jr","tags":null}]`,
			Out: []string{"id,name,tags\n1,Ann,\"[\"\"a\"\"]\"\n2,\"Bo, Jr\",\n"}, OutHeaders: map[string]string{"Content-Type": "text/csv"}},
		{Name: "to csv columns", Config: `{"mode":"json_to_csv","columns":["b"],"header":false,"delimiter":"\t"}`, In: `{"a":1,"b":"x y"}`,
			Out: []string{"x y\n"}},
		{Name: "to csv not JSON", Config: `{"mode":"json_to_csv"}`, In: `id,name`, Status: wasmsteptest.Permanent, ErrHas: "not JSON"},
		{Name: "to csv scalar", Config: `{"mode":"json_to_csv"}`, In: `42`, Status: wasmsteptest.Permanent, ErrHas: "object"},
		{Name: "bad mode", Config: `{"mode":"sideways"}`, SchemaInvalid: true, In: `x`, Status: wasmsteptest.Permanent, ErrHas: "config: mode"},
	})
}

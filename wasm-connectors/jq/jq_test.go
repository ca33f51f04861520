package main

import (
	"testing"

	"github.com/vrsky/vrsky/internal/testenv/wasmsteptest"
)

func TestJQ(t *testing.T) {
	wasmsteptest.Run(t, "jq", []wasmsteptest.Case{
		{Name: "reshape", Config: `{"query":"{id: .order_id, total: (.amount * .qty), customer: .customer.name}"}`,
			In: `{"order_id":7,"amount":2.5,"qty":4,"customer":{"name":"Ann"}}`, Out: []string{`{"customer":"Ann","id":7,"total":10}`}},
		{Name: "split", Config: `{"query":".items[]"}`, In: `{"items":[1,"a",{"b":null}]}`, Out: []string{`1`, `"a"`, `{"b":null}`}},
		{Name: "select drops", Config: `{"query":"select(.n > 5)"}`, In: `{"n":1}`, Status: wasmsteptest.Drop},
		{Name: "raw output", Config: `{"query":".s","raw_output":true}`, In: `{"s":"hi\n"}`, Out: []string{"hi\n"}},
		{Name: "not JSON", Config: `{"query":"."}`, In: `{oops`, Status: wasmsteptest.Permanent, ErrHas: "not JSON"},
		{Name: "runtime error", Config: `{"query":".a + 1"}`, In: `{"a":"x"}`, Status: wasmsteptest.Permanent, ErrHas: "jq:"},
		{Name: "bad query", Config: `{"query":"{{"}`, In: `{}`, Status: wasmsteptest.Permanent, ErrHas: "config: query"},
		{Name: "missing query", SchemaInvalid: true, Config: `{}`, In: `{}`, Status: wasmsteptest.Permanent, ErrHas: `"query" is required`},
	})
}

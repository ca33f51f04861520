package main

import (
	"testing"

	"github.com/vrsky/vrsky/internal/testenv/wasmsteptest"
)

func TestFilter(t *testing.T) {
	const in = `{"total":12.5,"status":"paid","customer":{"tier":"gold"}}`
	wasmsteptest.Run(t, "filter", []wasmsteptest.Case{
		{Name: "pass", Config: `{"expr":"total >= 10 && status == \"paid\""}`, In: in, Out: []string{in}},
		{Name: "drop", Config: `{"expr":"total > 100"}`, In: in, Status: wasmsteptest.Drop},
		{Name: "nested field", Config: `{"expr":"customer.tier in [\"gold\", \"platinum\"]"}`, In: in, Out: []string{in}},
		{Name: "missing field is nil", Config: `{"expr":"missing == nil"}`, In: in, Out: []string{in}},
		{Name: "not an object", Config: `{"expr":"true"}`, In: `[1]`, Status: wasmsteptest.Permanent, ErrHas: "not a JSON object"},
		{Name: "not JSON", Config: `{"expr":"true"}`, In: `nope`, Status: wasmsteptest.Permanent, ErrHas: "not JSON"},
		{Name: "bad expr", Config: `{"expr":"total >"}`, In: in, Status: wasmsteptest.Permanent, ErrHas: "config: expr"},
		{Name: "non-boolean result", Config: `{"expr":"total"}`, In: in, Status: wasmsteptest.Permanent, ErrHas: "expr:"},
	})
}

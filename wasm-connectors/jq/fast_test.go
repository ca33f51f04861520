package main

import (
	"errors"
	"testing"

	"github.com/itchyny/gojq"
	"github.com/valyala/fastjson"

	"github.com/vrsky/vrsky/abi/guest/jsonval"
)

// gojqOutputs is the reference: gojq over jsonval values.
func gojqOutputs(t *testing.T, q *gojq.Query, input string) ([]string, error) {
	c, err := gojq.Compile(q)
	if err != nil {
		t.Fatal(err)
	}
	var d jsonval.Decoder
	v, err := d.Decode([]byte(input))
	if err != nil {
		t.Fatal(err)
	}
	var outs []string
	it := c.Run(v)
	for {
		r, ok := it.Next()
		if !ok {
			return outs, nil
		}
		if err, ok := r.(error); ok {
			return outs, err
		}
		b, err := jsonval.Append(nil, r)
		if err != nil {
			return outs, err
		}
		outs = append(outs, string(b))
	}
}

// TestFastPathMatchesGojq runs every query through both paths: where the
// fast path answers, it must answer exactly what gojq does.
func TestFastPathMatchesGojq(t *testing.T) {
	inputs := []string{
		`{"order_id":7,"amount":2.5,"qty":4,"customer":{"name":"Ann","tier":"gold"},"items":[1,2,{"a":"x"}],"n":null,"t":true,"big":9223372036854775807,"s":"é\n","dup":1,"dup":2}`,
		`{"amount":"12","qty":3,"customer":null}`,
		`[1,2,3]`, `"str"`, `42`, `null`, `{"a":{"b":{"c":[{"z":1,"a":2}]}}}`,
	}
	queries := map[string]bool{ // query -> expected to be fast
		`.`:              true,
		`.customer.name`: true,
		`.customer`:      true,
		`.items[2].a`:    true,
		`.items[-1]`:     false,
		`.items[1]`:      true,
		`{id: .order_id, total: (.amount * .qty), customer: .customer.name}`: true,
		`{order_id, qty}`:           true,
		`{"x y": .qty, z: {w: .t}}`: true,
		`.amount + .qty`:            true,
		`.amount - .qty * 2`:        true,
		`.qty / 2`:                  true,
		`.qty / 3`:                  true,
		`.qty / 0`:                  true,
		`.big + 1`:                  true,
		`.big * 2`:                  true,
		`-.qty`:                     true,
		`.n + 1`:                    true,
		`.s + "!"`:                  true,
		`.qty > 3 and .t`:           true,
		`.qty < 3 or .n`:            true,
		`.missing // "def"`:         true,
		`.customer.name == "Ann"`:   true,
		`.qty == 4.0`:               true,
		`.qty != "4"`:               true,
		`.customer == .customer`:    true,
		`.dup`:                      true,
		`. | .qty`:                  true,
		`.a.b.c[0]`:                 true,
		`"lit"`:                     true,
		`1.5`:                       true,
		`null`:                      true,
		`.items[]`:                  false,
		`select(.qty > 1)`:          false,
		`.qty, .amount`:             false,
		`"\(.qty)"`:                 false,
		`[.qty]`:                    false,
		`.qty as $x | $x`:           false,
		`.qty % 3`:                  false,
	}
	for src, wantFast := range queries {
		q, err := gojq.Parse(src)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		n := compileFast(q)
		if (n != nil) != wantFast {
			t.Errorf("%s: fast=%v, want %v", src, n != nil, wantFast)
		}
		if n == nil {
			continue
		}
		for _, in := range inputs {
			want, werr := gojqOutputs(t, q, in)
			v := fastjson.MustParse(in)
			r, ok := n.eval(fromJSON(v))
			var got []byte
			if ok {
				got, ok = appendVal(nil, r)
			}
			if !ok {
				continue // falls back to gojq: fine by construction
			}
			if werr != nil {
				var halt *gojq.HaltError
				if !errors.As(werr, &halt) {
					t.Errorf("%s on %s: fast gave %s, gojq errs %v", src, in, got, werr)
				}
				continue
			}
			if len(want) != 1 || want[0] != string(got) {
				t.Errorf("%s on %s: fast %s, gojq %q", src, in, got, want)
			}
		}
	}
}

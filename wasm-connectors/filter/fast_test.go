package main

import (
	"testing"

	"github.com/expr-lang/expr"
	"github.com/valyala/fastjson"

	"github.com/vrsky/vrsky/abi/guest/jsonval"
)

// TestFastPathMatchesExpr: where the fast path answers, it answers what
// the expr VM does.
func TestFastPathMatchesExpr(t *testing.T) {
	inputs := []string{
		`{"total":12.5,"qty":3,"status":"paid","customer":{"tier":"gold","name":"Ann"},"items":[1,"x"],"n":null,"t":true,"big":9223372036854775807}`,
		`{"total":"12","qty":0,"status":5,"customer":null}`,
		`{}`,
	}
	exprs := map[string]bool{ // expression -> expected to be fast
		`total >= 10`:                           true,
		`total * qty > 30 && status == "paid"`:  true,
		`customer.tier == "gold" || t`:          true,
		`customer.tier in ["gold", "platinum"]`: true,
		`qty in [1, 2, 3.0]`:                    true,
		`not (status == "paid")`:                true,
		`!t`:                                    true,
		`-qty < 0`:                              true,
		`qty / 2 == 1.5`:                        true,
		`qty + 1 == 4`:                          true,
		`big + 1 > 0`:                           true,
		`n == nil`:                              true,
		`missing == nil`:                        true,
		`missing.x == nil`:                      true,
		`status startsWith "pa"`:                true,
		`customer.name contains "n"`:            true,
		`customer.name endsWith "x"`:            true,
		`items[0] == 1`:                         true,
		`items[5] == 1`:                         true,
		`total > "10"`:                          true,
		`status == 5`:                           true,
		`t and qty`:                             true,
		`customer == nil`:                       true,
		`len(items) > 1`:                        false,
		`status matches "^p"`:                   false,
		`total > 10 ? true : false`:             false,
		`customer?.tier == "gold"`:              false,
	}
	answered := 0
	for src, wantFast := range exprs {
		n := compileFast(src)
		if (n != nil) != wantFast {
			t.Errorf("%s: fast=%v, want %v", src, n != nil, wantFast)
		}
		if n == nil {
			continue
		}
		prog, err := expr.Compile(src, expr.AsBool(), expr.AllowUndefinedVariables())
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		for _, in := range inputs {
			v := fastjson.MustParse(in)
			r, ok := n.eval(v)
			if !ok || r.k != kBool {
				continue // falls back to expr
			}
			answered++
			want, err := expr.Run(prog, jsonval.Value(v))
			if err != nil {
				t.Errorf("%s on %s: fast %v, expr error %v", src, in, r.b, err)
				continue
			}
			if want != r.b {
				t.Errorf("%s on %s: fast %v, expr %v", src, in, r.b, want)
			}
		}
	}
	if answered < 25 {
		t.Fatalf("the fast path answered only %d cases", answered)
	}
}

// Command filter is VRSky's filter: an expr-lang boolean expression over
// each message's JSON object; true passes the message on unchanged, false
// drops it.
//
// Config: {"expr": "total >= 10 && customer != \"test\""}
package main

import (
	"errors"
	"fmt"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
	"github.com/valyala/fastjson"

	"github.com/vrsky/vrsky/abi/guest"
	"github.com/vrsky/vrsky/abi/guest/jsonval"
)

var (
	fast    node // nil when the expression is outside the fast subset
	jsonp   fastjson.Parser
	program *vm.Program
	machine vm.VM
)

func init() {
	guest.Setup(setup)
	guest.Process(process)
}

// setup compiles the expression once per instance.
func setup(config []byte) error {
	v, err := fastjson.ParseBytes(config)
	if err != nil {
		return fmt.Errorf("config is not JSON: %w", err)
	}
	src := string(v.GetStringBytes("expr"))
	if src == "" {
		return errors.New(`"expr" is required`)
	}
	program, err = expr.Compile(src, expr.AsBool(), expr.AllowUndefinedVariables())
	if err != nil {
		return fmt.Errorf("expr: %w", err)
	}
	fast = compileFast(src)
	return nil
}

func process(m *guest.Message) error {
	v, err := jsonp.ParseBytes(m.Data())
	if err != nil {
		return fmt.Errorf("input is not JSON: %w", err)
	}
	if v.Type() != fastjson.TypeObject {
		return errors.New("input is not a JSON object")
	}
	if fast != nil {
		if r, ok := fast.eval(v); ok && r.k == kBool {
			if !r.b {
				m.Drop()
			}
			return nil
		}
	}
	env, ok := jsonval.Value(v).(map[string]any)
	if !ok {
		return errors.New("input is not a JSON object")
	}
	res, err := machine.Run(program, env)
	if err != nil {
		return fmt.Errorf("expr: %w", err)
	}
	if pass, _ := res.(bool); !pass {
		m.Drop()
	}
	return nil
}

func main() {}

// Command jq is VRSky's jq converter: each message's JSON goes through a
// jq query (gojq) and every result is emitted (0..n messages out).
//
// Config: {"query": ".items[] | {id, total: (.price * .qty)}", "raw_output": false}
package main

import (
	"errors"
	"fmt"

	"github.com/itchyny/gojq"
	"github.com/valyala/fastjson"

	"github.com/vrsky/vrsky/abi/guest"
	"github.com/vrsky/vrsky/abi/guest/jsonval"
)

var (
	fast      node // nil when the query is outside the fast subset
	parser    fastjson.Parser
	code      *gojq.Code
	rawOutput bool
	dec       jsonval.Decoder
	out       []byte
)

func init() {
	guest.Setup(setup)
	guest.Process(process)
}

// setup compiles the query once per instance.
func setup(config []byte) error {
	v, err := fastjson.ParseBytes(config)
	if err != nil {
		return fmt.Errorf("config is not JSON: %w", err)
	}
	q := string(v.GetStringBytes("query"))
	if q == "" {
		return errors.New(`"query" is required`)
	}
	rawOutput = v.GetBool("raw_output")
	parsed, err := gojq.Parse(q)
	if err != nil {
		return fmt.Errorf("query: %w", err)
	}
	code, err = gojq.Compile(parsed)
	if err != nil {
		return fmt.Errorf("query: %w", err)
	}
	fast = compileFast(parsed)
	return nil
}

// runFast evaluates the fast path; ok=false means gojq must run.
func runFast(v *fastjson.Value) ([]byte, bool) {
	r, ok := fast.eval(fromJSON(v))
	if !ok {
		return nil, false
	}
	if rawOutput && (r.k == kStr || r.k == kBytes) {
		return append(append(out[:0], r.s...), r.sb...), true
	}
	return appendVal(out[:0], r)
}

func process(m *guest.Message) error {
	var in any
	if fast != nil {
		v, err := parser.ParseBytes(m.Data())
		if err != nil {
			return fmt.Errorf("input is not JSON: %w", err)
		}
		var ok bool
		if out, ok = runFast(v); ok {
			return m.Emit(out)
		}
		in = jsonval.Value(v)
	} else {
		var err error
		if in, err = dec.Decode(m.Data()); err != nil {
			return fmt.Errorf("input is not JSON: %w", err)
		}
	}
	iter := code.Run(in)
	n := 0
	defer func() {
		if n == 0 { // no result: the message is filtered out
			m.Drop()
		}
	}()
	for {
		v, ok := iter.Next()
		if !ok {
			break
		}
		if err, ok := v.(error); ok {
			var halt *gojq.HaltError
			if errors.As(err, &halt) && halt.Value() == nil {
				break
			}
			return fmt.Errorf("jq: %w", err)
		}
		if s, ok := v.(string); ok && rawOutput {
			out = append(out[:0], s...)
		} else {
			var err error
			if out, err = jsonval.Append(out[:0], v); err != nil {
				return fmt.Errorf("jq: %w", err)
			}
		}
		if err := m.Emit(out); err != nil {
			return err
		}
		n++
	}
	return nil
}

func main() {}

package yamljson_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vrsky/vrsky/platform/yamljson"
)

// TestCoreSchema: plain scalars are typed by YAML 1.2's core schema. The
// YAML 1.1 booleans (y, n, yes, no, on, off, in every spelling) stay the
// strings written; true and false are booleans.
func TestCoreSchema(t *testing.T) {
	cases := []struct {
		yaml, want string
	}{
		// YAML 1.1 booleans: strings.
		{"y", `"y"`}, {"Y", `"Y"`}, {"n", `"n"`}, {"N", `"N"`},
		{"yes", `"yes"`}, {"Yes", `"Yes"`}, {"YES", `"YES"`},
		{"no", `"no"`}, {"No", `"No"`}, {"NO", `"NO"`},
		{"on", `"on"`}, {"On", `"On"`}, {"ON", `"ON"`},
		{"off", `"off"`}, {"Off", `"Off"`}, {"OFF", `"OFF"`},
		// Booleans.
		{"true", `true`}, {"True", `true`}, {"TRUE", `true`},
		{"false", `false`}, {"False", `false`}, {"FALSE", `false`},
		{"tRUE", `"tRUE"`},
		// Null.
		{"~", `null`}, {"null", `null`}, {"Null", `null`}, {"NULL", `null`}, {"", `null`},
		// Integers: decimal, 0o octal, 0x hex, any size.
		{"12", `12`}, {"-12", `-12`}, {"+12", `12`}, {"0777", `777`}, {"0o17", `15`}, {"0x1F", `31`},
		{"123456789012345678901234567890", `123456789012345678901234567890`},
		// YAML 1.1 numbers: strings.
		{"1_000", `"1_000"`}, {"0b101", `"0b101"`}, {"-0x1F", `"-0x1F"`}, {"0O17", `"0O17"`}, {"1:30", `"1:30"`},
		// Floats.
		{"1.5", `1.5`}, {"-.5", `-0.5`}, {"1e3", `1000`}, {"1.", `1`}, {"6.02E23", `6.02e+23`},
		// No timestamps: the text.
		{"2024-01-02", `"2024-01-02"`}, {"2024-01-02T10:00:00Z", `"2024-01-02T10:00:00Z"`},
		// Strings (json.Marshal escapes < and >).
		{"hello", `"hello"`}, {"'n'", `"n"`}, {`"yes"`, `"yes"`}, {"'12'", `"12"`}, {"<<", `"\u003c\u003c"`},
	}
	for _, c := range cases {
		t.Run(c.yaml, func(t *testing.T) {
			got, err := yamljson.ToJSON([]byte("v: " + c.yaml))
			if err != nil {
				t.Fatalf("ToJSON: %v", err)
			}
			if want := `{"v":` + c.want + `}`; string(got) != want {
				t.Errorf("v: %s = %s, want %s", c.yaml, got, want)
			}
		})
	}
}

// TestStepConfig: a step config of YAML 1.1 booleans keeps its strings, the
// real booleans stay booleans, and keys are the text written.
func TestStepConfig(t *testing.T) {
	doc := `
name: orders
steps:
  - connector: split
    config: {sep: n, quote: y, header: yes, strict: no, trim: on, pad: off, keep: true, drop: false}
    on: push
    y: 1
    1: one
    true: t
`
	got, err := yamljson.ToJSON([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Steps []map[string]any `json:"steps"`
	}
	if err := json.Unmarshal(got, &v); err != nil {
		t.Fatal(err)
	}
	step := v.Steps[0]
	cfg := step["config"].(map[string]any)
	for k, want := range map[string]any{"sep": "n", "quote": "y", "header": "yes", "strict": "no", "trim": "on", "pad": "off", "keep": true, "drop": false} {
		if cfg[k] != want {
			t.Errorf("config.%s = %#v, want %#v", k, cfg[k], want)
		}
	}
	for k, want := range map[string]any{"on": "push", "y": float64(1), "1": "one", "true": "t"} {
		if step[k] != want {
			t.Errorf("steps[0].%s = %#v, want %#v (keys: %v)", k, step[k], want, step)
		}
	}
}

// TestDocuments: structure, anchors, merge keys, tags and JSON input.
func TestDocuments(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"empty", "", `null`},
		{"comment only", "# nothing\n", `null`},
		{"JSON", `{"a": [1, 2.5, "x", true, null, {"b": "\u00e9"}]}`, `{"a":[1,2.5,"x",true,null,{"b":"é"}]}`},
		{"first document only", "a: 1\n---\nb: 2\n", `{"a":1}`},
		{"block scalars", "a: |\n  y\n  n\nb: >\n  on\n  off\n", `{"a":"y\nn\n","b":"on off\n"}`},
		{"anchor and alias", "a: &x {k: n}\nb: *x\n", `{"a":{"k":"n"},"b":{"k":"n"}}`},
		{"merge", "base: &b {x: 1, y: 2}\nc:\n  <<: *b\n  y: 3\n", `{"base":{"x":1,"y":2},"c":{"x":1,"y":3}}`},
		{"merge written after a key", "base: &b {x: 1}\nc:\n  x: 2\n  <<: *b\n", `{"base":{"x":1},"c":{"x":2}}`},
		{"merge of a list: the first wins", "a: &a {x: 1}\nb: &b {x: 2, y: 2}\nc: {<<: [*a, *b]}\n", `{"a":{"x":1},"b":{"x":2,"y":2},"c":{"x":1,"y":2}}`},
		{"quoted << is a key", "'<<': 1\n", `{"\u003c\u003c":1}`},
		{"tags", "a: !!str 12\nb: !!int '12'\nc: !!float 1\nd: !!bool 'true'\ne: !!null ''\nf: !!binary aGk=\ng: !secret s\nh: !!timestamp 2024-01-02\n",
			`{"a":"12","b":12,"c":1,"d":true,"e":null,"f":"hi","g":"s","h":"2024-01-02"}`},
		{"alias as a key", "k: &k name\n*k : v\n", `{"k":"name","name":"v"}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := yamljson.ToJSON([]byte(c.yaml))
			if err != nil {
				t.Fatalf("ToJSON: %v", err)
			}
			if string(got) != c.want {
				t.Errorf("got  %s\nwant %s", got, c.want)
			}
		})
	}
}

// TestRefused: what has no JSON form is an error naming the line and the
// path; a document that aliases expand beyond twice its size is refused at
// once.
func TestRefused(t *testing.T) {
	var laughs strings.Builder
	laughs.WriteString("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n")
	for i := 1; i < 10; i++ {
		fmt.Fprintf(&laughs, "a%d: &a%d [*a%d, *a%[3]d, *a%[3]d, *a%[3]d, *a%[3]d, *a%[3]d, *a%[3]d, *a%[3]d, *a%[3]d, *a%[3]d]\n", i, i, i-1)
	}
	cases := []struct {
		name, yaml, has string
		typed           bool // a *yamljson.Error, not the parser's
	}{
		{"duplicate key", "a: 1\nb: 2\na: 3\n", `line 3: a: mapping key "a" is already defined`, true},
		{"duplicate key by text", "x: {1: a, '1': b}\n", `mapping key "1" is already defined`, true},
		{"infinity", "x:\n  y: [1, .inf]\n", "line 2: x.y[1]: .inf has no JSON form", true},
		{"not a number", "x: .nan\n", ".nan has no JSON form", true},
		{"float too big", "x: 1e999\n", "1e999: has no JSON form", true},
		{"list as a key", "? [a, b]\n: c\n", "a mapping key must be a scalar", true},
		{"tag that does not fit", "x: !!int abc\n", `"abc" is not a !!int`, true},
		{"binary not text", "x: !!binary //79\n", "not UTF-8", true},
		{"merge of a scalar", "x: {<<: 1}\n", "a merge key (<<) takes a mapping", true},
		{"alias in its own anchor", "a: &a [*a]\n", "refers to a node that holds it", true},
		{"billion laughs", laughs.String(), "aliases expand the document too far", true},
		{"not YAML", "a: [\n", "yaml:", false},
		{"tab indentation", "a:\n\tb: 1\n", "yaml:", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			got, err := yamljson.ToJSON([]byte(c.yaml))
			if err == nil {
				t.Fatalf("ToJSON = %s, want an error containing %q", got, c.has)
			}
			if !strings.Contains(err.Error(), c.has) {
				t.Errorf("error %q, want it to contain %q", err, c.has)
			}
			var ye *yamljson.Error
			if errors.As(err, &ye) != c.typed {
				t.Errorf("error %T: want a *yamljson.Error: %v", err, c.typed)
			}
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("took %v", took)
			}
		})
	}
}

// TestLargeMapping: a mapping of 100,000 keys converts, in linear time.
// yaml.v3's own decoder compares every pair of keys for duplicates: it
// took 4.5 s for 30,000 keys, so most of a minute for these. Not a timed
// test (the machines are shared): 10 times the keys must take well under
// the 100 times a quadratic conversion would, each size's best of 3
// runs, measured in the same run.
func TestLargeMapping(t *testing.T) {
	doc := func(n int) []byte {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "k%d: %d\n", i, i)
		}
		return []byte(b.String())
	}
	best := func(n int) time.Duration {
		in := doc(n)
		var least time.Duration
		for range 3 {
			start := time.Now()
			got, err := yamljson.ToJSON(in)
			took := time.Since(start)
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]int
			if err := json.Unmarshal(got, &m); err != nil || len(m) != n || m[fmt.Sprintf("k%d", n-1)] != n-1 {
				t.Fatalf("got %d keys, %v", len(m), err)
			}
			if least == 0 || took < least {
				least = took
			}
		}
		return least
	}
	small, large := best(10_000), best(100_000)
	if ratio := float64(large) / float64(small); ratio > 40 {
		t.Errorf("10,000 keys in %v, 100,000 in %v: %.0f times as long, want about 10 (linear), not 100 (quadratic)", small, large, ratio)
	}
}

package runtime_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/vrsky/vrsky/runtime"
)

// errNotRun: the connectors of yamlCatalog are parsed against, never run.
var errNotRun = errors.New("not run by this test")

// yamlCatalog has a source, a step whose `sep` must be a string, and a sink.
func yamlCatalog(t *testing.T) *runtime.Catalog {
	t.Helper()
	cat, err := runtime.NewCatalog(
		runtime.Connector{Name: "src", Version: "1.0.0", Kind: runtime.KindSource,
			NewSource: func(json.RawMessage, runtime.Env) (runtime.Source, error) { return nil, errNotRun }},
		runtime.Connector{Name: "split", Version: "1.0.0", Kind: runtime.KindStep,
			ConfigSchema: json.RawMessage(`{"type": "object", "properties": {"sep": {"type": "string"}}}`),
			NewStep:      func(json.RawMessage, runtime.Env) (runtime.Step, error) { return nil, errNotRun }},
		runtime.Connector{Name: "out", Version: "1.0.0", Kind: runtime.KindSink,
			NewSink: func(json.RawMessage, runtime.Env) (runtime.Sink, error) { return nil, errNotRun }},
	)
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

// TestSpecYAML12: a spec is read as YAML 1.2. The YAML 1.1 booleans in a
// step's config (y, n, yes, no, on, off, in every spelling) stay the
// strings written, and pass a schema that wants a string; true and false
// stay booleans.
func TestSpecYAML12(t *testing.T) {
	cat := yamlCatalog(t)
	cases := []struct {
		yaml string
		want any
	}{
		{"n", "n"}, {"N", "N"}, {"y", "y"}, {"Y", "Y"},
		{"yes", "yes"}, {"Yes", "Yes"}, {"YES", "YES"}, {"no", "no"}, {"No", "No"}, {"NO", "NO"},
		{"on", "on"}, {"On", "On"}, {"ON", "ON"}, {"off", "off"}, {"Off", "Off"}, {"OFF", "OFF"},
		{"true", true}, {"True", true}, {"false", false}, {"FALSE", false},
		{"'n'", "n"}, {"2024-01-02", "2024-01-02"}, {"12", float64(12)},
	}
	for _, c := range cases {
		t.Run(c.yaml, func(t *testing.T) {
			doc := "name: split-it\nsource: {connector: src}\nsteps:\n  - connector: split\n    config: {v: " + c.yaml + ", sep: n}\n" +
				"sinks: [{name: out, connector: out}]\n"
			spec, err := runtime.ParseSpec([]byte(doc), cat)
			if err != nil {
				t.Fatalf("ParseSpec: %v", err)
			}
			var cfg map[string]any
			if err := json.Unmarshal(spec.Steps[0].Config, &cfg); err != nil {
				t.Fatal(err)
			}
			if cfg["v"] != c.want || cfg["sep"] != "n" {
				t.Errorf("config = %s; want v %#v and sep \"n\"", spec.Steps[0].Config, c.want)
			}
		})
	}
}

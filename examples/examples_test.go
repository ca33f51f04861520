package examples

import (
	"errors"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// required are values for every template's required parameters.
var required = map[string]any{
	"name": "x", "url": "http://127.0.0.1:9/x", "dsn_env": "PG", "table": "t",
	"secret_env": "SECRET", "slack_url_env": "SLACK",
}

func TestEveryTemplateRenders(t *testing.T) {
	if len(List()) < 7 {
		t.Fatalf("%d templates, want the 4 demos and 3 patterns", len(List()))
	}
	demos := 0
	for _, tpl := range List() {
		t.Run(tpl.Name, func(t *testing.T) {
			if tpl.Demo {
				demos++
			}
			params := map[string]any{}
			for _, n := range tpl.ParameterNames() {
				if v, ok := required[n]; ok {
					params[n] = v
				}
			}
			out, err := tpl.Render(params)
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			asJSON, _ := yaml.YAMLToJSON(out)
			if strings.Contains(string(asJSON), "${") {
				t.Fatalf("a placeholder is left:\n%s", out)
			}
			var spec map[string]any
			if err := yaml.Unmarshal(out, &spec); err != nil {
				t.Fatalf("rendered spec is not YAML: %v\n%s", err, out)
			}
			if spec["name"] == nil || spec["source"] == nil || spec["sinks"] == nil {
				t.Fatalf("rendered spec lacks name, source or sinks:\n%s", out)
			}
		})
	}
	if demos != 4 {
		t.Errorf("%d demos, want 4", demos)
	}
}

func TestRenderTypesAndDefaults(t *testing.T) {
	tpl, err := Lookup("orders")
	if err != nil {
		t.Fatal(err)
	}
	out, err := tpl.Render(map[string]any{"dsn_env": "PG", "slack_url_env": "SLACK", "big_order": 250.5, "max_attempts": 5})
	if err != nil {
		t.Fatal(err)
	}
	var spec struct {
		Name  string
		Retry struct {
			MaxAttempts    any    `json:"max_attempts"`
			InitialBackoff string `json:"initial_backoff"`
		}
		Sinks []struct {
			When   string
			Config map[string]any
		}
	}
	if err := yaml.Unmarshal(out, &spec); err != nil {
		t.Fatal(err)
	}
	if spec.Name != "orders" || spec.Retry.InitialBackoff != "1s" {
		t.Errorf("defaults not filled in: name %q, initial_backoff %q", spec.Name, spec.Retry.InitialBackoff)
	}
	if spec.Retry.MaxAttempts != float64(5) {
		t.Errorf("max_attempts = %#v, want the number 5", spec.Retry.MaxAttempts)
	}
	if spec.Sinks[1].When != "total >= 250.5" {
		t.Errorf("when = %q", spec.Sinks[1].When)
	}
	if spec.Sinks[0].Config["dsn_env"] != "PG" {
		t.Errorf("dsn_env = %v", spec.Sinks[0].Config["dsn_env"])
	}
	if !strings.Contains(string(out), "# every order") {
		t.Errorf("comments were lost:\n%s", out)
	}
}

func TestRenderRefusesBadParameters(t *testing.T) {
	tpl, _ := Get("orders")
	for _, tc := range []struct {
		name   string
		params map[string]any
		field  string
	}{
		{"missing", map[string]any{"dsn_env": "PG"}, "parameters.slack_url_env"},
		{"unknown", map[string]any{"dsn_env": "PG", "slack_url_env": "S", "colour": "red"}, "parameters.colour"},
		{"wrong type", map[string]any{"dsn_env": "PG", "slack_url_env": "S", "big_order": "lots"}, "parameters.big_order"},
		{"pattern", map[string]any{"dsn_env": "not a variable", "slack_url_env": "S"}, "parameters.dsn_env"},
		{"minimum", map[string]any{"dsn_env": "PG", "slack_url_env": "S", "max_attempts": 0}, "parameters.max_attempts"},
		// A value cannot change the spec's structure: it stays one string.
		{"injection", map[string]any{"dsn_env": "PG", "slack_url_env": "S", "name": "x\nsteps: []"}, "parameters.name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tpl.Render(tc.params)
			var pe *ParamError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want a *ParamError", err)
			}
			if pe.Field != tc.field {
				t.Errorf("field = %q, want %q (%v)", pe.Field, tc.field, err)
			}
		})
	}
}

// A string parameter with YAML syntax in it stays a string.
func TestRenderKeepsStructure(t *testing.T) {
	tpl, _ := Get("webhook-http")
	out, err := tpl.Render(map[string]any{"name": "x", "url": "http://h/{{id}}\nsinks: [] # not a key"})
	if err != nil {
		t.Fatal(err)
	}
	var spec struct {
		Sinks []struct{ Config map[string]any }
	}
	if err := yaml.Unmarshal(out, &spec); err != nil {
		t.Fatal(err)
	}
	if len(spec.Sinks) != 1 || spec.Sinks[0].Config["url"] != "http://h/{{id}}\nsinks: [] # not a key" {
		t.Fatalf("the value changed the spec:\n%s", out)
	}
}

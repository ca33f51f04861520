package examples

import (
	"encoding/json"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/vrsky/vrsky/internal/testenv/wasmsteptest"
)

// stepConfig renders tpl and returns its first step's connector and config.
func stepConfig(t *testing.T, name string, params map[string]any) (string, string) {
	t.Helper()
	tpl, err := Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	out, err := tpl.Render(params)
	if err != nil {
		t.Fatal(err)
	}
	var spec struct {
		Steps []struct {
			Connector string
			Config    json.RawMessage
		}
	}
	if err := yaml.Unmarshal(out, &spec); err != nil {
		t.Fatal(err)
	}
	return spec.Steps[0].Connector, string(spec.Steps[0].Config)
}

// The demos' jq steps, run through the real Wasm host on sample input.
func TestDemoSteps(t *testing.T) {
	for _, tc := range []struct {
		template string
		params   map[string]any
		in, out  string
	}{
		{"github-slack", map[string]any{"secret_env": "S", "slack_url_env": "U"},
			`{"ref":"refs/heads/main","repository":{"full_name":"acme/widgets"},"sender":{"login":"octocat"},"commits":[{},{}],"head_commit":{"message":"Fix it"}}`,
			`{"repo":"acme/widgets","text":"octocat pushed 2 commit(s) to acme/widgets main: Fix it"}`},
		{"github-slack", map[string]any{"secret_env": "S", "slack_url_env": "U"},
			`{"action":"opened","number":5,"pull_request":{"title":"Add X"},"repository":{"full_name":"acme/widgets"},"sender":{"login":"ada"}}`,
			`{"repo":"acme/widgets","text":"ada opened pull request #5 in acme/widgets: Add X"}`},
		{"cdc-http", map[string]any{"dsn_env": "D", "url": "http://h/"},
			`{"op":"update","schema":"public","table":"orders","before":{"id":1},"after":{"id":1,"customer":"Ada","total":"12.50","status":"paid"}}`,
			`{"customer":"Ada","event":"order.updated","id":1,"status":"paid","total":12.5}`},
		{"cdc-http", map[string]any{"dsn_env": "D", "url": "http://h/"},
			`{"op":"delete","schema":"public","table":"orders","before":{"id":3}}`,
			`{"customer":null,"event":"order.deleted","id":3,"status":null,"total":null}`},
		{"orders", map[string]any{"dsn_env": "D", "slack_url_env": "U"},
			`{"order_id":7,"customer":{"name":"Ada"},"items":[{"sku":"A","price":600,"qty":2},{"sku":"B","price":5,"qty":1}]}`,
			`{"customer":"Ada","id":7,"items":2,"total":1205}`},
	} {
		conn, cfg := stepConfig(t, tc.template, tc.params)
		wasmsteptest.Run(t, conn, []wasmsteptest.Case{{Name: tc.template, Config: cfg, In: tc.in, Out: []string{tc.out}}})
	}
}

package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vrsky/vrsky/examples"
)

// TestIntegrationNew renders templates through the real server with the
// CLI: to stdout, to a file, applied; a bad parameter names itself.
func TestIntegrationNew(t *testing.T) {
	in := startServe(t, t.TempDir(), freeAddr(t))
	var tenant struct {
		APIKey string `json:"api_key"`
	}
	in.call("POST", "/api/v1/tenants", adminKey, "application/json", `{"name":"acme"}`, http.StatusCreated, &tenant)
	c := newCLIEnv(t, "VRSKY_URL="+in.url, "VRSKY_API_KEY="+tenant.APIKey)

	// Every template renders to a spec the server's full catalogue takes.
	for _, tpl := range examples.List() {
		var set []string
		for _, p := range tpl.ParameterNames() {
			switch p {
			case "name":
				set = append(set, "--set", "name=t-"+tpl.Name)
			case "url":
				set = append(set, "--set", "url=http://127.0.0.1:9/x")
			case "dsn_env", "secret_env", "slack_url_env":
				set = append(set, "--set", p+"=VRSKY_SECRET_ACME__X")
			case "table":
				set = append(set, "--set", "table=t")
			}
		}
		r := c.run(nil, "", append([]string{"integration", "new", "--template", tpl.Name}, set...)...)
		if r.code != 0 || !strings.Contains(r.stdout, "name: \"t-") && !strings.Contains(r.stdout, "name: \""+tpl.Name) {
			t.Errorf("new --template %s: code %d\n%s%s", tpl.Name, r.code, r.stdout, r.stderr)
		}
	}

	out := filepath.Join(t.TempDir(), "relay.yaml")
	r := c.run(nil, "", "integration", "new", "--template", "webhook-http", "--set", "name=relay", "--set", "url=http://127.0.0.1:9/x", "-f", out)
	if r.code != 0 {
		t.Fatalf("new -f: %d %s", r.code, r.stderr)
	}
	if b, _ := os.ReadFile(out); !strings.Contains(string(b), `url: "http://127.0.0.1:9/x"`) {
		t.Errorf("written spec:\n%s", b)
	}
	r = c.run(nil, "", "integration", "new", "--template", "webhook-http", "--set", "name=relay", "--set", "url=http://127.0.0.1:9/x", "--apply")
	if r.code != 0 || !strings.Contains(r.stdout, "integration/relay created") || !strings.Contains(r.stdout, "integration/relay started") {
		t.Errorf("new --apply: %d %s %s", r.code, r.stdout, r.stderr)
	}
	in.call("GET", "/api/v1/integrations/relay", tenant.APIKey, "", "", http.StatusOK, nil)

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--template", "webhook-http", "--set", "name=x"}, "parameters.url"},
		{[]string{"--template", "webhook-http", "--set", "name=x", "--set", "url=ftp://x"}, "parameters.url"},
		{[]string{"--template", "orders", "--set", "dsn_env=A", "--set", "slack_url_env=B", "--set", "big_order=lots"}, "big_order"},
		{[]string{"--template", "webhook-http", "--set", "colour=red"}, "no parameter colour"},
		{[]string{"--template", "nope"}, "webhook-http"},
	} {
		r := c.run(nil, "", append([]string{"integration", "new"}, tc.args...)...)
		if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("new %v: code %d, stderr %q, want %q in it", tc.args, r.code, r.stderr, tc.want)
		}
	}
	r = c.run(nil, "", "integration", "templates")
	if r.code != 0 || !strings.Contains(r.stdout, "github-slack") || !strings.Contains(r.stdout, "file-postgres") {
		t.Errorf("templates: %d %s %s", r.code, r.stdout, r.stderr)
	}
}

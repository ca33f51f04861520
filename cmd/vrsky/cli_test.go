package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

// The client commands, run as a user runs them: the vrsky binary in a
// subprocess (exit codes and stderr included) against a real `vrsky serve`
// with its embedded NATS, never a mock of the API.

// The version and commit TestMain builds the binary with.
const (
	testVersion = "v9.8.7-test"
	testCommit  = "0123456789ab"
)

// cliEnv runs the binary with an environment of its own: no VRSKY_*
// variable of the test process, a HOME and XDG config dir of its own.
type cliEnv struct {
	t    *testing.T
	home string
	base []string
	vars map[string]string // {name} in a step's args, env and wanted text
}

func newCLIEnv(t *testing.T, env ...string) *cliEnv {
	home := t.TempDir()
	var base []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "VRSKY_") || k == "HOME" || k == "XDG_CONFIG_HOME" {
			continue
		}
		base = append(base, kv)
	}
	base = append(base, "HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, "xdg"))
	return &cliEnv{t: t, home: home, base: append(base, env...), vars: map[string]string{}}
}

// configFile is where the CLI keeps its contexts in this environment.
func (c *cliEnv) configFile() string { return filepath.Join(c.home, "xdg", "vrsky", "config.yaml") }

// expand replaces each {name} in s by its variable.
func (c *cliEnv) expand(s string) string {
	for k, v := range c.vars {
		s = strings.ReplaceAll(s, "{"+k+"}", v)
	}
	return s
}

type cliResult struct {
	stdout, stderr string
	code           int
}

// run runs `vrsky ARGS` with env added and stdin.
func (c *cliEnv) run(env []string, stdin string, args ...string) cliResult {
	c.t.Helper()
	cmd := exec.Command(vrskyBin, args...)
	cmd.Env = append(slices.Clone(c.base), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := cliResult{stdout: stdout.String(), stderr: stderr.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatalf("run vrsky %q: %v", args, err)
	}
	return r
}

// cliStep is one command and what it must do.
type cliStep struct {
	name   string
	args   []string
	env    []string
	stdin  string
	code   int      // the exit code wanted
	out    []string // in stdout
	notOut []string // not in stdout
	errOut []string // in stderr
	// fields are paths in stdout's document (JSON or YAML, which a JSON
	// document is too: "items.0.stage") and their values ("*": any but
	// empty; "!x": anything but x); with -o json, stdout must be valid
	// JSON as well.
	fields map[string]string
	// save keeps fields of stdout's document as variables.
	save map[string]string
	// until retries the step for up to a minute until it passes.
	until bool
	// before runs first.
	before func(t *testing.T, c *cliEnv)
}

// lookup walks path (dot-separated keys and indices) in doc.
func lookup(doc any, path string) (any, bool) {
	for _, p := range strings.Split(path, ".") {
		switch v := doc.(type) {
		case map[string]any:
			var ok bool
			if doc, ok = v[p]; !ok {
				return nil, false
			}
		case []any:
			i, err := strconv.Atoi(p)
			if err != nil || i < 0 || i >= len(v) {
				return nil, false
			}
			doc = v[i]
		default:
			return nil, false
		}
	}
	return doc, true
}

// check runs s once and returns what is wrong, if anything.
func (c *cliEnv) check(s cliStep) (cliResult, []string) {
	args := make([]string, len(s.args))
	for i, a := range s.args {
		args[i] = c.expand(a)
	}
	env := make([]string, len(s.env))
	for i, e := range s.env {
		env[i] = c.expand(e)
	}
	r := c.run(env, s.stdin, args...)
	var bad []string
	if r.code != s.code {
		bad = append(bad, fmt.Sprintf("exit code %d, want %d", r.code, s.code))
	}
	for _, w := range s.out {
		if w = c.expand(w); !strings.Contains(r.stdout, w) {
			bad = append(bad, fmt.Sprintf("stdout lacks %q", w))
		}
	}
	for _, w := range s.notOut {
		if w = c.expand(w); strings.Contains(r.stdout, w) {
			bad = append(bad, fmt.Sprintf("stdout has %q", w))
		}
	}
	for _, w := range s.errOut {
		if w = c.expand(w); !strings.Contains(r.stderr, w) {
			bad = append(bad, fmt.Sprintf("stderr lacks %q", w))
		}
	}
	if len(s.fields) > 0 || len(s.save) > 0 {
		if i := slices.Index(args, "-o"); i >= 0 && i+1 < len(args) && args[i+1] == "json" && !json.Valid([]byte(r.stdout)) {
			bad = append(bad, "stdout is not JSON")
		}
		var doc any
		j, err := yaml.YAMLToJSON([]byte(r.stdout))
		if err == nil {
			err = json.Unmarshal(j, &doc)
		}
		if err != nil {
			bad = append(bad, fmt.Sprintf("stdout is not a JSON or YAML document: %v", err))
		}
		for path, want := range s.fields {
			want = c.expand(want)
			v, ok := lookup(doc, path)
			switch {
			case !ok:
				bad = append(bad, fmt.Sprintf("no %s in stdout's document", path))
			case want == "*" && fmt.Sprint(v) == "":
				bad = append(bad, fmt.Sprintf("%s is empty", path))
			case strings.HasPrefix(want, "!"):
				if fmt.Sprint(v) == want[1:] {
					bad = append(bad, fmt.Sprintf("%s = %v, want anything else", path, v))
				}
			case want != "*" && fmt.Sprint(v) != want:
				bad = append(bad, fmt.Sprintf("%s = %v, want %s", path, v, want))
			}
		}
		for name, path := range s.save {
			if v, ok := lookup(doc, path); ok && fmt.Sprint(v) != "" {
				c.vars[name] = fmt.Sprint(v)
			} else {
				bad = append(bad, fmt.Sprintf("no %s in stdout's document to keep as {%s}", path, name))
			}
		}
	}
	return r, bad
}

// steps runs each step as a subtest, in order; a failed step ends the run
// (the ones after it depend on it).
func (c *cliEnv) steps(steps []cliStep) {
	for _, s := range steps {
		ok := c.t.Run(s.name, func(t *testing.T) {
			if s.before != nil {
				s.before(t, c)
			}
			deadline := time.Now().Add(time.Minute)
			for {
				r, bad := c.check(s)
				if len(bad) == 0 {
					return
				}
				if !s.until || time.Now().After(deadline) {
					t.Fatalf("vrsky %s:\n  %s\nstdout:\n%s\nstderr:\n%s", strings.Join(s.args, " "), strings.Join(bad, "\n  "), r.stdout, r.stderr)
				}
				time.Sleep(200 * time.Millisecond)
			}
		})
		if !ok {
			c.t.FailNow()
		}
	}
}

// TestCLIOffline: the commands that need no server, and the failures a
// newcomer meets first: unknown commands fail (naming them), a server that
// is not there gets a hint, an invalid spec names its field.
func TestCLIOffline(t *testing.T) {
	dir := t.TempDir()
	write := func(name, doc string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("shop.yaml", `name: shop
source: {connector: http-webhook, config: {path: shop}}
steps:
  - connector: jq
    config: {query: '{id: .order_id}'}
sinks:
  - {name: api, connector: http, config: {url: "http://127.0.0.1:9000/orders"}}
`)
	noURL := write("nourl.yaml", "name: x\nsource: {connector: http-webhook, config: {path: x}}\nsinks: [{name: a, connector: http, config: {}}]\n")
	typo := write("typo.yaml", "name: x\nsource: {connector: http-webhook, config: {path: x}}\nsinks: [{name: a, connector: http, config: {url: 'http://h/'}}]\nretries: {max_attempts: 2}\n")
	badStep := write("badstep.yaml", "name: x\nsource: {connector: http-webhook, config: {path: x}}\nsteps: [{connector: jq, config: {}}]\nsinks: [{name: a, connector: http, config: {url: 'http://h/'}}]\n")
	unknown := write("unknown.yaml", "name: x\nsource: {connector: http-webhook, config: {path: x}}\nsteps: [{connector: my-upload}]\nsinks: [{name: a, connector: http, config: {url: 'http://h/'}}]\n")
	asJSON := write("shop.json", `{"name":"j","source":{"connector":"http-webhook","config":{"path":"j"}},"sinks":[{"name":"a","connector":"http","config":{"url":"http://h/"}}]}`)

	c := newCLIEnv(t)
	c.steps([]cliStep{
		{name: "version", args: []string{"version"}, out: []string{"Version:", testVersion, "Commit:", testCommit, "Go:", "go1."}},
		{name: "version -o json", args: []string{"version", "-o", "json"}, fields: map[string]string{"version": testVersion, "commit": testCommit, "go_version": "*", "platform": "*"}},
		{name: "version -o yaml", args: []string{"version", "-o", "yaml"}, out: []string{"version: " + testVersion}, fields: map[string]string{"commit": testCommit}},
		{name: "--version", args: []string{"--version"}, out: []string{"vrsky " + testVersion + " (commit " + testCommit + ", go1."}},
		{name: "-o of no format", args: []string{"version", "-o", "xml"}, code: 1, errOut: []string{"want table, json, yaml"}},

		{name: "unknown command", args: []string{"bogus"}, code: 1, errOut: []string{`unknown command "bogus" for "vrsky"`}},
		{name: "unknown sub-command", args: []string{"integration", "bogus"}, code: 1, errOut: []string{`unknown command "bogus" for "vrsky integration"`}},
		{name: "a typo is suggested", args: []string{"integration", "lst"}, code: 1, errOut: []string{`unknown command "lst"`, "did you mean ", " list?"}},
		{name: "unknown dlq command", args: []string{"dlq", "purge", "orders"}, code: 1, errOut: []string{`unknown command "purge" for "vrsky dlq"`}},
		{name: "unknown context command", args: []string{"context", "switch"}, code: 1, errOut: []string{`unknown command "switch" for "vrsky context"`}},
		{name: "unknown migrate command", args: []string{"migrate", "bogus"}, code: 1, errOut: []string{`unknown command "bogus" for "vrsky migrate"`}},
		{name: "unknown completion shell", args: []string{"completion", "bsh"}, code: 1, errOut: []string{`unknown command "bsh" for "vrsky completion"`, "did you mean bash"}},
		{name: "unknown help topic", args: []string{"help", "integration", "bogus"}, code: 1, errOut: []string{`unknown help topic "integration bogus"`}},
		{name: "help on a command", args: []string{"help", "integration", "apply"}, out: []string{"created, updated or unchanged", "--dry-run"}},
		{name: "a group alone prints its help", args: []string{"tenant"}, out: []string{"Available Commands", "delete"}},
		{name: "unknown flag", args: []string{"integration", "list", "--bogus"}, code: 1, errOut: []string{"unknown flag: --bogus"}},

		{name: "no server at the URL", args: []string{"integration", "list", "--url", "http://127.0.0.1:1"}, code: 1,
			errOut: []string{"connection refused", "hint: no VRSky server is reachable at http://127.0.0.1:1 (--url)", "make run", "VRSKY_URL"}},
		{name: "no server at VRSKY_URL", args: []string{"tenant", "list"}, env: []string{"VRSKY_URL=http://127.0.0.1:1"}, code: 1,
			errOut: []string{"reachable at http://127.0.0.1:1 (VRSKY_URL)"}},

		{name: "validate", args: []string{"integration", "validate", "-f", good}, out: []string{good + ": valid: integration shop (source http-webhook, 1 step, 1 sink)"}},
		{name: "validate JSON", args: []string{"integration", "validate", "-f", asJSON}, out: []string{"valid: integration j"}},
		{name: "validate from stdin", args: []string{"integration", "validate", "-f", "-"}, stdin: "name: s\nsource: {connector: schedule, config: {cron: '0 9 * * *'}}\nsinks: [{name: a, connector: http, config: {url: 'http://h/'}}]\n",
			out: []string{"valid: integration s"}},
		{name: "validate -o json: the spec as stored", args: []string{"integration", "validate", "-f", good, "-o", "json"},
			fields: map[string]string{"name": "shop", "steps.0.name": "step-1", "retry.max_attempts": "3", "retry.max_backoff": "30s"}},
		{name: "validate -o yaml", args: []string{"integration", "validate", "-f", good, "-o", "yaml"}, out: []string{"initial_backoff: 1s"}},
		{name: "validate: a missing field", args: []string{"integration", "validate", "-f", noURL}, code: 1, errOut: []string{"invalid spec: sinks[0].config.url"}},
		{name: "validate: an unknown field", args: []string{"integration", "validate", "-f", typo}, code: 1, errOut: []string{"invalid spec", "retries"}},
		{name: "validate: a shipped step's config", args: []string{"integration", "validate", "-f", badStep}, code: 1, errOut: []string{"steps[0].config.query"}},
		{name: "validate: an unknown connector", args: []string{"integration", "validate", "-f", unknown}, code: 1,
			errOut: []string{"steps[0].connector", `unknown connector "my-upload"`, "hint:", "apply --dry-run"}},
		{name: "validate: no file", args: []string{"integration", "validate", "-f", filepath.Join(dir, "none.yaml")}, code: 1, errOut: []string{"none.yaml"}},
	})
}

// TestCLIAgainstServer: every client command against a real vrsky serve,
// a newcomer's first hour in order: a tenant, a context, an integration
// applied (dry run, created, unchanged, updated), messages traced, dead
// letters listed, shown, replayed and deleted, keys issued and revoked, the
// catalogue, name completion, the tenant updated and deleted. Each read
// command is checked as a table, as JSON and as YAML.
func TestCLIAgainstServer(t *testing.T) {
	in := startServe(t, t.TempDir(), freeAddr(t))
	// The sink refuses everything with a 400, a permanent failure: each
	// message is dead-lettered at once.
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		http.Error(w, "no", http.StatusBadRequest)
	}))
	t.Cleanup(sink.Close)
	dir := t.TempDir()
	spec := func(name, timeout string) string {
		p := filepath.Join(dir, name)
		doc := fmt.Sprintf("name: orders\nsource: {connector: http-webhook, config: {path: orders}}\nsinks:\n  - name: api\n    connector: http\n    config: {url: %q, timeout: %s}\n", sink.URL, timeout)
		if err := os.WriteFile(p, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	v1, v2 := spec("orders.yaml", "5s"), spec("orders-v2.yaml", "6s")
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("name: orders\nsource: {connector: http-webhook, config: {path: orders}}\nsinks: [{name: api, connector: http, config: {}}]\n"), 0o644)
	post := func(_ *testing.T, c *cliEnv) {
		var got struct {
			ID string `json:"id"`
		}
		in.call("POST", "/hooks/acme/orders", "", "application/json", `{"order_id":7}`, http.StatusAccepted, &got)
		c.vars["msg"] = got.ID
	}

	c := newCLIEnv(t, "VRSKY_URL="+in.url)
	c.vars["url"], c.vars["admin"] = in.url, adminKey
	admin := func(args ...string) []string { return append(args, "--api-key", "{admin}") }
	c.steps([]cliStep{
		// Tenants, with the admin key.
		{name: "tenant create", args: admin("tenant", "create", "acme", "--display-name", "Acme"),
			out: []string{"tenant/acme created", "API key (shown once, keep it): vrsk_", "vrsky context add acme --url {url}"}},
		{name: "tenant create -o json", args: admin("tenant", "create", "beta", "-o", "json"), fields: map[string]string{"name": "beta", "api_key": "*"}, save: map[string]string{"betakey": "api_key"}},
		{name: "tenant create: taken", args: admin("tenant", "create", "acme"), code: 1, errOut: []string{"409", "already_exists"}},
		{name: "tenant list", args: admin("tenant", "list"), out: []string{"NAME", "DISPLAY-NAME", "acme", "Acme", "beta"}},
		{name: "tenant list -o json", args: admin("tenant", "list", "-o", "json"), fields: map[string]string{"tenants.0.name": "acme", "tenants.1.name": "beta"}},
		{name: "tenant list -o yaml", args: admin("tenant", "list", "-o", "yaml"), out: []string{"tenants:", "- created_at:"}, fields: map[string]string{"tenants.0.display_name": "Acme"}},
		{name: "tenant get", args: admin("tenant", "get", "acme"), out: []string{"acme", "Acme"}},
		{name: "tenant update", args: admin("tenant", "update", "acme", "--display-name", "Acme Inc", "--max-integrations", "5"), out: []string{"Acme Inc", "5"}},
		{name: "tenant update -o json", args: admin("tenant", "update", "acme", "--max-messages-per-second", "100", "-o", "json"),
			fields: map[string]string{"display_name": "Acme Inc", "quotas.max_integrations": "5", "quotas.max_messages_per_second": "100"}},
		{name: "tenant update: nothing", args: admin("tenant", "update", "acme"), code: 1, errOut: []string{"nothing to update"}},
		{name: "tenant get -o yaml", args: admin("tenant", "get", "acme", "-o", "yaml"), fields: map[string]string{"quotas.max_integrations": "5"}},

		// The failures a newcomer meets, each with its hint.
		{name: "a wrong key", args: []string{"tenant", "list", "--api-key", "vrsk_0000000000000000_" + strings.Repeat("0", 64)}, code: 1,
			errOut: []string{"401", "hint: the API key (from --api-key) was refused", "VRSKY_API_KEY", "vrsky context use"}},
		{name: "a wrong key from the environment", args: []string{"integration", "list"}, env: []string{"VRSKY_API_KEY=nonsense"}, code: 1,
			errOut: []string{"401", "(from VRSKY_API_KEY)"}},
		{name: "no key", args: []string{"integration", "list"}, code: 1, errOut: []string{"401", "no API key was sent", "--api-key", "VRSKY_API_KEY", "vrsky context add"}},
		{name: "a tenant key on an admin route", args: []string{"tenant", "list", "--api-key", "{betakey}"}, code: 1, errOut: []string{"403", "needs the admin key"}},

		// A context for tenant acme: a key of its own, issued with the admin key.
		{name: "key create", args: admin("key", "create", "--tenant", "acme", "--name", "laptop", "-o", "json"),
			fields: map[string]string{"tenant": "acme", "name": "laptop"}, save: map[string]string{"key": "api_key", "keyid": "id"}},
		{name: "context add", args: []string{"context", "add", "acme", "--url", "{url}", "--api-key", "{key}", "--tenant", "acme"}, out: []string{"context acme saved", "in use"}},
		{name: "context add admin", args: []string{"context", "add", "admin", "--url", "{url}", "--api-key", "{admin}"}, out: []string{"context admin saved"}, notOut: []string{"in use"}},
		{name: "context add: exists", args: []string{"context", "add", "admin", "--api-key", "x"}, code: 1, errOut: []string{"exists", "--overwrite"}},
		{name: "context list", args: []string{"context", "list"}, out: []string{"CURRENT", "*        acme", "admin", "{url}"}, notOut: []string{"{key}", "{admin}"}},
		{name: "context list -o json", args: []string{"context", "list", "-o", "json"},
			fields: map[string]string{"current_context": "acme", "contexts.0.name": "acme", "contexts.0.current": "true", "contexts.0.tenant": "acme"}, notOut: []string{"{key}"}},
		{name: "context current", args: []string{"context", "current"}, out: []string{"acme"}},
		{name: "context current -o yaml", args: []string{"context", "current", "-o", "yaml"}, fields: map[string]string{"name": "acme", "url": "{url}"}},
		{name: "context use: unknown", args: []string{"context", "use", "prod"}, code: 1, errOut: []string{`no context "prod"`}},
		{name: "--context: unknown", args: []string{"integration", "list", "--context", "prod"}, code: 1, errOut: []string{`context "prod" (--context) is not in`}},
		{name: "the context's key", args: []string{"integration", "list"}, out: []string{"No integrations yet"}},
		{name: "VRSKY_CONTEXT picks another", args: []string{"integration", "list"}, env: []string{"VRSKY_CONTEXT=admin"}, code: 1, errOut: []string{"the admin key must name the tenant"}},
		{name: "--context picks another", args: []string{"tenant", "list", "--context", "admin"}, out: []string{"acme"}},
		{name: "the environment beats the context", args: []string{"integration", "list"}, env: []string{"VRSKY_API_KEY=nonsense"}, code: 1, errOut: []string{"(from VRSKY_API_KEY)"}},
		{name: "a flag beats the environment", args: []string{"integration", "list", "--api-key", "{key}"}, env: []string{"VRSKY_API_KEY=nonsense"}, out: []string{"No integrations yet"}},

		// Integrations, through the context.
		{name: "apply --dry-run", args: []string{"integration", "apply", "-f", v1, "--dry-run"}, out: []string{"integration/orders created (dry run)", "integration/orders started (dry run)"}},
		{name: "a dry run stored nothing", args: []string{"integration", "list", "-o", "json"}, fields: map[string]string{"integrations": "[]"}},
		{name: "apply --dry-run: invalid", args: []string{"integration", "apply", "-f", bad, "--dry-run"}, code: 1, errOut: []string{"400", "sinks[0].config.url"}},
		{name: "apply", args: []string{"integration", "apply", "-f", v1}, out: []string{"integration/orders created", "integration/orders started"}},
		{name: "get -o json", args: []string{"integration", "get", "orders", "-o", "json"}, fields: map[string]string{"desired": "running", "tenant": "acme"}, save: map[string]string{"rev": "revision"}},
		{name: "apply again: unchanged", args: []string{"integration", "apply", "-f", v1}, out: []string{"integration/orders unchanged"}, notOut: []string{"started"}},
		{name: "unchanged: the revision stayed", args: []string{"integration", "apply", "-f", v1, "-o", "json"}, fields: map[string]string{"revision": "{rev}", "status.state": "running"}},
		{name: "apply a change --dry-run", args: []string{"integration", "apply", "-f", v2, "--dry-run"}, out: []string{"integration/orders updated (dry run)"}},
		{name: "the dry run changed nothing", args: []string{"integration", "get", "orders", "-o", "yaml"}, fields: map[string]string{"revision": "{rev}", "spec.sinks.0.config.timeout": "5s"}},
		{name: "apply a change", args: []string{"integration", "apply", "-f", v2}, out: []string{"integration/orders updated"}, notOut: []string{"started"}},
		{name: "the change is stored", args: []string{"integration", "get", "orders", "-o", "json"}, fields: map[string]string{"spec.sinks.0.config.timeout": "6s"}},
		{name: "apply -o yaml", args: []string{"integration", "apply", "-f", v2, "--no-start", "-o", "yaml"}, out: []string{"desired: running"}},
		{name: "apply: invalid", args: []string{"integration", "apply", "-f", bad}, code: 1, errOut: []string{"bad.yaml", "400 Bad Request (invalid_spec): sinks[0].config.url"}},
		{name: "list", args: []string{"integration", "list"}, out: []string{"NAME", "DESIRED", "STATE", "orders", "running", "http-webhook"}},
		{name: "list -o yaml", args: []string{"integration", "list", "-o", "yaml"}, fields: map[string]string{"integrations.0.name": "orders", "integrations.0.spec.source.connector": "http-webhook"}},
		{name: "get", args: []string{"integration", "get", "orders"}, out: []string{"orders", "running", "SINK", "api"}},
		{name: "get: missing", args: []string{"integration", "get", "nothing"}, code: 1, errOut: []string{"404"}},
		{name: "stop", args: []string{"integration", "stop", "orders"}, out: []string{"integration/orders stopped"}},
		{name: "stopped", args: []string{"integration", "get", "orders", "-o", "json"}, fields: map[string]string{"desired": "stopped"}},
		{name: "apply starts it again", args: []string{"integration", "apply", "-f", v2}, out: []string{"integration/orders unchanged", "integration/orders started"}},
		{name: "start -o json", args: []string{"integration", "start", "orders", "-o", "json"}, fields: map[string]string{"desired": "running"}},

		// A message: traced, then dead-lettered.
		{name: "message get", before: post, until: true, args: []string{"message", "get", "{msg}"},
			out: []string{"message {msg} in integration orders: dead_lettered", "STAGE", "sink:api", "400"}},
		{name: "message get -i -o json", args: []string{"message", "get", "{msg}", "-i", "orders", "-o", "json"}, fields: map[string]string{"id": "{msg}", "state": "dead_lettered", "stages.0.stage": "accepted"}},
		{name: "message get -o yaml", args: []string{"message", "get", "{msg}", "-o", "yaml"}, fields: map[string]string{"integration": "orders"}},
		{name: "message get: unknown", args: []string{"message", "get", "no-such-message"}, code: 1, errOut: []string{`no record of message "no-such-message"`}},
		{name: "dlq list", args: []string{"dlq", "list", "orders"}, out: []string{"ID", "STAGE", "sink:api", "{msg}", "400"}},
		{name: "dlq list -o json", args: []string{"dlq", "list", "orders", "-o", "json"}, fields: map[string]string{"items.0.message_id": "{msg}", "items.0.stage": "sink:api"}, save: map[string]string{"dl": "items.0.id"}},
		{name: "dlq list --stage -o yaml", args: []string{"dlq", "list", "orders", "--stage", "sink:api", "-o", "yaml"}, fields: map[string]string{"items.0.id": "{dl}"}},
		{name: "dlq list: a bad stage", args: []string{"dlq", "list", "orders", "--stage", "nowhere"}, code: 1, errOut: []string{"400", "stage"}},
		{name: "dlq show", args: []string{"dlq", "show", "orders", "{dl}"}, out: []string{"Stage:", "sink:api", "Attempts:", "Payload:", `{"order_id":7}`}},
		{name: "dlq show -o json", args: []string{"dlq", "show", "orders", "{dl}", "-o", "json"}, fields: map[string]string{"payload_text": `{"order_id":7}`, "attempts": "1"}},
		{name: "dlq show -o yaml", args: []string{"dlq", "show", "orders", "{dl}", "-o", "yaml"}, fields: map[string]string{"message_id": "{msg}"}},
		{name: "dlq replay: nothing named", args: []string{"dlq", "replay", "orders"}, code: 1, errOut: []string{"or pass --all"}},
		{name: "dlq replay", args: []string{"dlq", "replay", "orders", "{dl}"}, out: []string{"replayed 1 dead letter of integration orders"}},
		{name: "dlq replay: once only", args: []string{"dlq", "replay", "orders", "{dl}"}, code: 1, errOut: []string{"404"}},
		{name: "the trace shows the replay", until: true, args: []string{"message", "get", "{msg}"}, out: []string{"replayed"}},
		// The replayed message fails again, and is dead-lettered again.
		{name: "dead-lettered again", until: true, args: []string{"dlq", "list", "orders", "-o", "json"},
			fields: map[string]string{"items.0.message_id": "{msg}", "items.0.id": "!{dl}"}, save: map[string]string{"dl2": "items.0.id"}},
		{name: "dlq delete", args: []string{"dlq", "delete", "orders", "{dl2}"}, out: []string{"dead letter {dl2} of integration orders deleted"}},
		{name: "dlq list: empty", args: []string{"dlq", "list", "orders"}, out: []string{"No dead letters in integration orders."}},
		{name: "dlq replay --all -o json", before: post, args: []string{"dlq", "replay", "orders", "--all", "-o", "json"}, fields: map[string]string{"replayed": "*"}},

		// Keys, with the tenant's own key (from the context).
		{name: "key list", args: []string{"key", "list"}, out: []string{"ID", "initial", "{keyid}", "laptop"}},
		{name: "key list -o yaml", args: []string{"key", "list", "-o", "yaml"}, fields: map[string]string{"keys.0.tenant": "acme", "keys.1.tenant": "acme"}, out: []string{"id: {keyid}", "name: initial"}},
		{name: "key create", args: []string{"key", "create", "--name", "ci"}, out: []string{"created for tenant acme", "API key (shown once, keep it): vrsk_"}},
		{name: "key revoke", args: []string{"key", "revoke", "{keyid}", "--api-key", "{betakey}", "--tenant", "beta"}, code: 1, errOut: []string{"404"}},
		{name: "key: no tenant", args: []string{"key", "list", "--context", "admin"}, code: 1, errOut: []string{"act on one tenant", "--tenant"}},
		{name: "key revoke the context's own", args: []string{"key", "revoke", "{keyid}", "--context", "admin", "--tenant", "acme"}, out: []string{"key/{keyid} revoked"}},
		{name: "a revoked key", args: []string{"integration", "list"}, code: 1, errOut: []string{"401", `(from context "acme")`, "vrsky context use"}},

		// The catalogue, back on the admin context.
		{name: "context use admin", args: []string{"context", "use", "admin"}, out: []string{"now using context admin"}},
		{name: "connector list", args: []string{"connector", "list"}, out: []string{"NAME", "http-webhook", "builtin", "jq"}},
		{name: "connector list -o json", args: []string{"connector", "list", "--kind", "sink", "-o", "json"}, fields: map[string]string{"connectors.0.kind": "sink"}},
		{name: "connector list --json, deprecated", args: []string{"connector", "list", "--json"}, fields: map[string]string{"connectors.0.name": "*"}, errOut: []string{"--json has been deprecated, use -o json"}},
		{name: "connector show", args: []string{"connector", "show", "http"}, out: []string{"NAME", "http", "sink", "CONFIG", "url", "true"}},
		{name: "connector show --kind", args: []string{"connector", "show", "file", "--kind", "sink", "-o", "json"}, fields: map[string]string{"name": "file", "kind": "sink"}},
		{name: "connector show --kind source -o yaml", args: []string{"connector", "show", "file", "--kind", "source", "-o", "yaml"}, fields: map[string]string{"kind": "source", "config_schema.required.0": "dir"}},
		{name: "connector show: a bad kind", args: []string{"connector", "show", "file", "--kind", "pipe"}, code: 1, errOut: []string{"400", "kind"}},

		// Completion asks the API with the command line's settings.
		{name: "complete integrations", args: []string{"__complete", "integration", "get", "--context", "acme", "--api-key", "{betakey}", ""}, notOut: []string{"orders"}},
		{name: "complete integrations of the tenant", args: []string{"__complete", "dlq", "list", "--tenant", "acme", ""}, out: []string{"orders\trunning"}},
		{name: "complete dead letters", before: post, until: true, args: []string{"__complete", "dlq", "show", "--tenant", "acme", "orders", ""}, out: []string{"\tsink:api"}},
		{name: "complete tenants", args: []string{"__complete", "tenant", "delete", ""}, out: []string{"acme\tAcme Inc", "beta"}},
		{name: "complete connectors", args: []string{"__complete", "connector", "show", ""}, out: []string{"http\tsink", "jq\tstep"}},
		{name: "complete modules to pull", args: []string{"__complete", "connector", "pull", ""}, out: []string{"jq@"}, notOut: []string{"http-webhook"}},
		{name: "complete contexts", args: []string{"__complete", "context", "use", ""}, out: []string{"acme", "admin"}},
		{name: "complete -o", args: []string{"__complete", "integration", "list", "-o", ""}, out: []string{"table", "json", "yaml"}},
		{name: "complete with a wrong key: nothing, quietly", args: []string{"__complete", "integration", "get", "--api-key", "nonsense", ""}, out: []string{":4"}, notOut: []string{"orders"}},
		{name: "complete with no server: nothing, quietly", args: []string{"__complete", "tenant", "get", "--url", "http://127.0.0.1:1", ""}, out: []string{":4"}, notOut: []string{"acme"}},

		// The tenant goes, after a confirmation.
		{name: "tenant delete: declined", args: []string{"tenant", "delete", "acme"}, stdin: "n\n", code: 1,
			errOut: []string{`Delete tenant "acme"`, "1 integration", "[y/N]", "not deleted: not confirmed (--yes deletes without asking)"}},
		{name: "tenant delete: no answer", args: []string{"tenant", "delete", "acme"}, code: 1, errOut: []string{"not confirmed"}},
		{name: "still there", args: []string{"integration", "list", "--tenant", "acme"}, out: []string{"orders"}},
		{name: "tenant delete: confirmed", args: []string{"tenant", "delete", "acme"}, stdin: "y\n", out: []string{"tenant/acme deleted"}},
		{name: "tenant delete --yes", args: []string{"tenant", "delete", "beta", "--yes"}, out: []string{"tenant/beta deleted"}},
		{name: "tenant delete: gone", args: []string{"tenant", "delete", "beta", "--yes"}, code: 1, errOut: []string{"404"}},
		{name: "tenants gone", args: []string{"tenant", "list", "-o", "json"}, fields: map[string]string{"tenants": "[]"}},

		{name: "context delete", args: []string{"context", "delete", "admin"}, out: []string{"context admin deleted", "it was the current one"}},
		{name: "context current: none", args: []string{"context", "current"}, code: 1, errOut: []string{"no current context"}},
	})

	// The config file holds keys: mode 0600.
	st, err := os.Stat(c.configFile())
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %04o, want 0600", c.configFile(), st.Mode().Perm())
	}
}

// TestCLIConfigFile: the config file's place (XDG_CONFIG_HOME, else
// ~/.config, or VRSKY_CONFIG), a warning when others can read it, and a
// broken one named.
func TestCLIConfigFile(t *testing.T) {
	c := newCLIEnv(t)
	other := filepath.Join(c.home, "elsewhere.yaml")
	c.steps([]cliStep{
		{name: "add under XDG_CONFIG_HOME", args: []string{"context", "add", "a", "--api-key", "k"}, out: []string{"saved in " + c.configFile()}},
		{name: "add under ~/.config", args: []string{"context", "add", "b"}, env: []string{"XDG_CONFIG_HOME="}, out: []string{"saved in " + filepath.Join(c.home, ".config", "vrsky", "config.yaml")}},
		{name: "add in VRSKY_CONFIG", args: []string{"context", "add", "c"}, env: []string{"VRSKY_CONFIG=" + other}, out: []string{"saved in " + other}},
		{name: "readable by others", before: func(*testing.T, *cliEnv) { os.Chmod(c.configFile(), 0o644) }, args: []string{"context", "list"},
			out: []string{"a"}, errOut: []string{"warning:", "readable by others", "chmod 600"}},
		{name: "saved again", args: []string{"context", "use", "a"}, out: []string{"now using context a"}},
		{name: "broken", before: func(t *testing.T, c *cliEnv) {
			if st, err := os.Stat(c.configFile()); err != nil || st.Mode().Perm() != 0o600 {
				t.Errorf("saved again: %v, mode %v; want 0600", err, st.Mode().Perm())
			}
			os.WriteFile(c.configFile(), []byte("contexts: [{nam: x}]\n"), 0o600)
		}, args: []string{"context", "list"}, code: 1, errOut: []string{c.configFile(), "nam"}},
	})
	if st, err := os.Stat(other); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("%s: %v, mode %v", other, err, st.Mode().Perm())
	}
}

// TestClientSettingsPrecedence: each setting comes from its flag, else its
// environment variable, else the saved context, else the default.
func TestClientSettingsPrecedence(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "config.yaml")
	cfg := &cliConfig{CurrentContext: "cur", Contexts: []savedContext{
		{Name: "cur", URL: "http://cur:1", APIKey: "cur-key", Tenant: "cur-tenant"},
		{Name: "other", URL: "http://other:1", APIKey: "other-key"},
	}}
	if err := cfg.save(cfgFile); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name             string
		flags            []string
		env              map[string]string
		url, key, tenant string
		urlFrom, keyFrom string
		wantErr          string
	}{
		{name: "the current context", url: "http://cur:1", key: "cur-key", tenant: "cur-tenant", urlFrom: `context "cur"`, keyFrom: `context "cur"`},
		{name: "the environment over the context", env: map[string]string{"VRSKY_URL": "http://env:1/", "VRSKY_API_KEY": "env-key"},
			url: "http://env:1", key: "env-key", tenant: "cur-tenant", urlFrom: "VRSKY_URL", keyFrom: "VRSKY_API_KEY"},
		{name: "flags over the environment", flags: []string{"--url", "http://flag:1", "--api-key", "flag-key", "--tenant", "t"},
			env: map[string]string{"VRSKY_URL": "http://env:1", "VRSKY_API_KEY": "env-key", "VRSKY_TENANT": "env-t"},
			url: "http://flag:1", key: "flag-key", tenant: "t", urlFrom: "--url", keyFrom: "--api-key"},
		{name: "VRSKY_CONTEXT", env: map[string]string{"VRSKY_CONTEXT": "other"}, url: "http://other:1", key: "other-key", urlFrom: `context "other"`, keyFrom: `context "other"`},
		{name: "--context over VRSKY_CONTEXT", flags: []string{"--context", "cur"}, env: map[string]string{"VRSKY_CONTEXT": "other"}, url: "http://cur:1", key: "cur-key", tenant: "cur-tenant", urlFrom: `context "cur"`, keyFrom: `context "cur"`},
		{name: "an unknown context", flags: []string{"--context", "nope"}, wantErr: `context "nope" (--context) is not in`},
		{name: "no config file: the defaults", env: map[string]string{configEnv: filepath.Join(dir, "none.yaml")}, url: defaultURL, urlFrom: "the default", keyFrom: "the default"},
		{name: "an empty variable is unset", env: map[string]string{"VRSKY_URL": " "}, url: "http://cur:1", key: "cur-key", tenant: "cur-tenant", urlFrom: `context "cur"`, keyFrom: `context "cur"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{configEnv: cfgFile}
			for k, v := range tc.env {
				env[k] = v
			}
			defer func(old func(string) string) { getenv = old }(getenv)
			getenv = func(k string) string { return env[k] }
			cmd := &cobra.Command{Use: "x"}
			opts := addClientFlags(cmd)
			if err := cmd.PersistentFlags().Parse(tc.flags); err != nil {
				t.Fatal(err)
			}
			s, err := opts.resolve(io.Discard)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := settings{url: tc.url, apiKey: tc.key, tenant: tc.tenant, urlFrom: tc.urlFrom, keyFrom: tc.keyFrom}
			if s != got {
				t.Errorf("resolved %+v, want %+v", s, got)
			}
		})
	}
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/vrsky/vrsky/host/hosttest"
	"github.com/vrsky/vrsky/internal/testenv/promtest"
)

// TestObservability is the acceptance test of the metrics, dashboards and
// alert rules (docs/metrics.md, docs/alerts.md): a real vrsky serve under
// traffic that succeeds, fails, dead-letters and times out a Wasm step,
// scraped every second by Debian's real Prometheus. Through Prometheus's
// HTTP API, every query of every dashboard panel in deploy/grafana returns
// series; promtool checks the rule file and runs its unit tests; the
// expressions of the "sink failing" and "DLQ growing" alerts hold for the
// failing integration and not for the healthy one.
func TestObservability(t *testing.T) {
	in := serveCmd(t, t.TempDir(), freeAddr(t))
	in.cmd.Args = append(in.cmd.Args, "--claim-threshold", "1024")
	if err := in.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	in.waitReady()

	var tenant struct {
		APIKey string `json:"api_key"`
	}
	in.call("POST", "/api/v1/tenants", adminKey, "application/json",
		`{"name":"acme","quotas":{"max_integrations":10,"max_storage_bytes":1000000000,"max_messages_per_second":1000}}`, http.StatusCreated, &tenant)
	key := tenant.APIKey
	// A tenant on a dedicated NATS instance, for the tenant-instance panels.
	in.call("POST", "/api/v1/tenants", adminKey, "application/json", `{"name":"big"}`, http.StatusCreated, nil)
	in.call("PATCH", "/api/v1/tenants/big", adminKey, "application/json", `{"placement":"dedicated"}`, http.StatusAccepted, nil)

	// An uploaded (untrusted) Wasm step: "upper:x" succeeds, "drop" is
	// filtered, "loop" spins until its call's deadline.
	probe := hosttest.Build(t, "host/testdata/probe")
	if status, e := in.upload(key, "name: probe\nversion: 1.0.0\nkind: step\nabi: 1\ndescription: The host's test probe.\ncapabilities: {nats: true, objects: true, kv: true, http_hosts: [example.com]}\nconfig_schema: {type: object}\n", probe); status != http.StatusCreated {
		t.Fatalf("upload probe: %d %+v", status, e)
	}
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(good.Close)
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	t.Cleanup(bad.Close)
	integration := func(name, steps, sinkURL string, attempts int) {
		spec := fmt.Sprintf(`name: %s
source: {connector: http-webhook, config: {path: %s}}
%s
sinks:
  - name: api
    connector: http
    config: {url: %q}
retry: {max_attempts: %d, initial_backoff: 100ms, max_backoff: 200ms}
`, name, name, steps, sinkURL, attempts)
		in.call("POST", "/api/v1/integrations", key, "application/yaml", spec, http.StatusCreated, nil)
		in.call("POST", "/api/v1/integrations/"+name+"/start", key, "", "", http.StatusOK, nil)
	}
	probeStep := "steps: [{connector: probe}]"
	integration("healthy", probeStep, good.URL, 3)
	integration("failing", "", bad.URL, 2)
	integration("slow", probeStep, good.URL, 1)

	// Prometheus loads the shipped rules with their for: durations cut to
	// zero (promtool's unit tests below check the durations), so an alert
	// fires as soon as its condition holds.
	prom := promtest.Start(t, []string{strings.TrimPrefix(in.url, "http://")}, immediateRules(t, "../../deploy/prometheus/vrsky.rules.yml"))
	post := func(integration, body string) {
		in.call("POST", "/hooks/acme/"+integration, "", "text/plain", body, http.StatusAccepted, nil)
	}
	for i := range 5 {
		post("healthy", fmt.Sprintf("upper:m%d", i))
		post("failing", fmt.Sprintf(`{"n":%d}`, i))
	}
	post("healthy", "drop")
	post("failing", `{"big":"`+strings.Repeat("x", 4096)+`"}`) // claim-checked
	post("slow", "loop")                                       // times out after the default 5s deadline
	in.call("GET", "/api/v1/integrations/nope", key, "", "", http.StatusNotFound, nil)

	ctx := context.Background()
	// Traffic keeps flowing while we wait, so rates stay non-zero.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(500 * time.Millisecond):
			}
			for _, b := range []struct{ integration, body string }{{"healthy", fmt.Sprintf("upper:t%d", i)}, {"failing", fmt.Sprintf(`{"t":%d}`, i)}} {
				resp, err := http.Post(in.url+"/hooks/acme/"+b.integration, "text/plain", strings.NewReader(b.body))
				if err == nil {
					resp.Body.Close()
				}
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })

	queries := dashboardQueries(t)
	if len(queries) < 40 {
		t.Fatalf("found %d panel queries in deploy/grafana, want the four dashboards' (at least 40)", len(queries))
	}
	pending := map[string]string{} // query → its panel
	for q, panel := range queries {
		pending[q] = panel
	}
	deadline := time.Now().Add(3 * time.Minute)
	for len(pending) > 0 {
		for q := range pending {
			res, err := prom.Query(ctx, q)
			if err != nil {
				t.Fatalf("panel %s: %v", pending[q], err)
			}
			if len(res) > 0 {
				delete(pending, q)
			}
		}
		if len(pending) == 0 {
			break
		}
		if time.Now().After(deadline) {
			var missing []string
			for q, panel := range pending {
				missing = append(missing, panel+": "+q)
			}
			sort.Strings(missing)
			t.Fatalf("%d panel queries return no series after 3 minutes:\n%s", len(missing), strings.Join(missing, "\n"))
		}
		time.Sleep(time.Second)
	}

	// The rule file: promtool's check and its unit tests.
	rulesDir, err := filepath.Abs("../../deploy/prometheus")
	if err != nil {
		t.Fatal(err)
	}
	if out := promtest.Promtool(t, rulesDir, "check", "rules", "vrsky.rules.yml"); !strings.Contains(out, "SUCCESS") {
		t.Errorf("promtool check rules: %s", out)
	}
	tests, _ := filepath.Glob(filepath.Join(rulesDir, "*_test.yml"))
	if len(tests) == 0 {
		t.Fatal("no promtool unit tests in deploy/prometheus")
	}
	for _, f := range tests {
		promtool := promtest.Promtool(t, rulesDir, "test", "rules", filepath.Base(f))
		if !strings.Contains(promtool, "SUCCESS") {
			t.Errorf("promtool test rules %s: %s", f, promtool)
		}
	}
	checkRuleTests(t, rulesDir, tests)

	// The alerts fire, in this Prometheus, for the failing integration and
	// never for the healthy one.
	for _, alert := range []string{"VRSkySinkFailing", "VRSkyDLQGrowing"} {
		q := `ALERTS{alertname="` + alert + `",alertstate="firing"}`
		waitFor(t, 2*time.Minute, alert+" to fire for the failing integration", func() bool {
			res, err := prom.Query(ctx, q)
			if err != nil {
				t.Fatalf("%s: %v", alert, err)
			}
			failing := false
			for _, s := range res {
				if s.Metric["integration"] == "healthy" {
					t.Fatalf("%s fires for the healthy integration: %v", alert, s.Metric)
				}
				failing = failing || s.Metric["integration"] == "failing" && s.Metric["stage"] == "sink:api"
			}
			return failing
		})
	}
	// The timed-out step is counted as such, and dead-lettered.
	for q, what := range map[string]string{
		`sum(vrsky_wasm_calls_total{module="probe@1.0.0",outcome="timeout"})`:                         "a Wasm timeout",
		`max(vrsky_dlq_depth{tenant="acme",integration="slow",stage="step:step-1"})`:                  "the timed-out message in the DLQ",
		`sum(vrsky_claimcheck_objects_total{tenant="acme",integration="failing"})`:                    "a claim-checked payload",
		`sum(vrsky_http_requests_total{route="/api/v1/integrations/:name",status="404"})`:             "the 404 by its route template",
		`max(vrsky_tenant_quota_usage{tenant="acme",quota="integrations"})`:                           "acme's three integrations against its quota",
		`sum(vrsky_messages_filtered_total{tenant="acme",integration="healthy",stage="step:step-1"})`: "the dropped message",
		`max(vrsky_nats_jetstream_meta_leader_present{server="tenant",tenant="big"})`:                 "the dedicated instance's JetStream leader",
		`count(vrsky_build_info{version="` + testVersion + `",commit="` + testCommit + `"})`:          "the build info",
	} {
		want := 1.0
		if strings.Contains(q, `quota="integrations"`) {
			want = 3
		}
		waitFor(t, time.Minute, what, func() bool {
			res, err := prom.Query(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			return len(res) == 1 && res[0].Value >= want
		})
	}
	// No raw path reaches a label.
	res, err := prom.Query(ctx, `count by (route) (vrsky_http_requests_total)`)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range res {
		if strings.Contains(s.Metric["route"], "acme") || strings.Contains(s.Metric["route"], "nope") {
			t.Errorf("route label %q is a raw path", s.Metric["route"])
		}
	}
}

// dashboardQueries are the queries of every panel of every dashboard in
// deploy/grafana/dashboards, by query, with Grafana's variables replaced
// as "All" and a short rate interval.
func dashboardQueries(t *testing.T) map[string]string {
	t.Helper()
	files, err := filepath.Glob("../../deploy/grafana/dashboards/*.json")
	if err != nil || len(files) != 4 {
		t.Fatalf("dashboards: %v %v, want four", files, err)
	}
	vars := strings.NewReplacer("$__rate_interval", "1m", "$tenant", ".*", "$integration", ".*", "$server", ".*")
	out := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			Title  string `json:"title"`
			Panels []struct {
				Title   string `json:"title"`
				Targets []struct {
					Expr string `json:"expr"`
				} `json:"targets"`
			} `json:"panels"`
		}
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, p := range d.Panels {
			if len(p.Targets) == 0 {
				t.Errorf("%s: panel %q has no query", f, p.Title)
			}
			for _, tg := range p.Targets {
				q := vars.Replace(tg.Expr)
				if strings.Contains(q, "$") {
					t.Errorf("%s: panel %q: unknown variable in %s", f, p.Title, tg.Expr)
				}
				checkOwnSeries(t, d.Title+" / "+p.Title, q)
				out[q] = d.Title + " / " + p.Title
			}
		}
	}
	return out
}

// ownSeries are the metric name prefixes a panel may use: VRSky's own, the
// Go and process collectors vrsky serve registers, and Prometheus's up.
var (
	seriesName = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*\s*[{\[]`)
	ownSeries  = regexp.MustCompile(`^(vrsky_|go_|process_|up$)`)
	promFuncs  = map[string]bool{"rate": true, "sum": true, "max": true, "min": true, "count": true, "histogram_quantile": true, "by": true}
)

// checkOwnSeries fails when q names a series neither VRSky nor nats-server
// (through VRSky) exports.
func checkOwnSeries(t *testing.T, panel, q string) {
	t.Helper()
	for _, m := range seriesName.FindAllString(q, -1) {
		name := strings.TrimRight(m, "{[ ")
		if promFuncs[name] {
			continue
		}
		if !ownSeries.MatchString(name) {
			t.Errorf("panel %s uses series %s, which VRSky does not export", panel, name)
		}
	}
}

// alertRules reads the rule file's alerts: expression by name.
func alertRules(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, g := range doc.Groups {
		for _, r := range g.Rules {
			out[r.Alert] = r.Expr
		}
	}
	for _, want := range []string{"VRSkySinkFailing", "VRSkyDLQGrowing", "VRSkyConsumerLag", "VRSkyWasmTimeouts",
		"VRSkyTenantNearQuota", "VRSkyNATSDown", "VRSkyNoJetStreamLeader", "VRSkyServeDown"} {
		if out[want] == "" {
			t.Errorf("the rule file has no alert %s", want)
		}
	}
	return out
}

// immediateRules writes a copy of the rule file at path whose alerts have
// no for: duration, and returns the copy's path.
func immediateRules(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^(\s+)for: \S+$`)
	if len(re.FindAll(b, -1)) == 0 {
		t.Fatalf("%s: no for: durations found", path)
	}
	dst := filepath.Join(t.TempDir(), "vrsky.rules.yml")
	if err := os.WriteFile(dst, re.ReplaceAll(b, []byte("${1}for: 0s")), 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

// checkRuleTests fails when an alert of the rule file has no promtool
// unit test that expects it to fire.
func checkRuleTests(t *testing.T, dir string, tests []string) {
	t.Helper()
	tested := map[string]bool{}
	for _, f := range tests {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Tests []struct {
				Alerts []struct {
					Name string `yaml:"alertname"`
					Exp  []any  `yaml:"exp_alerts"`
				} `yaml:"alert_rule_test"`
			} `yaml:"tests"`
		}
		if err := yaml.Unmarshal(b, &doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, tc := range doc.Tests {
			for _, a := range tc.Alerts {
				if len(a.Exp) > 0 {
					tested[a.Name] = true
				}
			}
		}
	}
	for name := range alertRules(t, filepath.Join(dir, "vrsky.rules.yml")) {
		if !tested[name] {
			t.Errorf("alert %s has no promtool unit test that fires it", name)
		}
	}
}

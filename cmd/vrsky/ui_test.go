package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// The web UI's acceptance tests: Debian's chromium, headless, drives the
// UI that the real `vrsky serve` binary serves at /ui/, the way a user
// clicks through it. Every test fails on a browser console error (the API's
// expected 4xx answers aside) and saves a screenshot when it fails.

// browser is one chromium tab on a vrsky serve.
type browser struct {
	t   *testing.T
	ctx context.Context
	url string

	mu      sync.Mutex
	console []string // errors the page wrote
}

func newBrowser(t *testing.T, in *instance) *browser {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium not found: run scripts/test-deps.sh (make test-deps) to install it")
		}
		t.Skip("chromium not found: run scripts/test-deps.sh (make test-deps) to install it")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox,
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(1280, 1000))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	b := &browser{t: t, ctx: ctx, url: in.url}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type != chromedp.ConsoleError && m.Type != chromedp.ConsoleException {
				continue
			}
			// The API's refusals the tests provoke on purpose (a bad
			// config, a refused module) are logged by the browser as
			// failed loads; the UI shows them. Anything else is a bug.
			if strings.HasPrefix(m.Text, "Failed to load resource: the server responded with a status of 4") {
				continue
			}
			b.mu.Lock()
			b.console = append(b.console, fmt.Sprintf("%s: %s (%s:%d)", m.Type, m.Text, m.URL, m.Line))
			b.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		b.mu.Lock()
		errs := b.console
		b.mu.Unlock()
		for _, e := range errs {
			t.Errorf("browser console: %s", e)
		}
		if t.Failed() {
			b.failureScreenshot()
		}
		cancel()
		cancelAlloc()
	})
	b.do(chromedp.Navigate(in.url + "/ui/"))
	return b
}

// failureScreenshot saves the page as failure.png in a folder of its own
// under the system's temp dir, named after the test, that outlives the test
// (t.TempDir is removed when the test ends), and logs where it is.
func (b *browser) failureScreenshot() {
	dir, err := os.MkdirTemp("", "vrsky-"+strings.ReplaceAll(b.t.Name(), "/", "_")+"-")
	if err != nil {
		b.t.Logf("screenshot: %v", err)
		return
	}
	b.screenshot(filepath.Join(dir, "failure.png"))
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	if text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`)); err == nil {
		b.t.Logf("the page's text:\n%s", text)
	}
}

// screenshot saves the page as a PNG at path.
func (b *browser) screenshot(path string) {
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Logf("screenshot: %v", err)
		return
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Logf("screenshot: %v", err)
		return
	}
	b.t.Logf("screenshot of the page: %s", path)
}

// do runs actions, each within a minute, and fails the test on error.
func (b *browser) do(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	for i, a := range actions {
		ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
		err := chromedp.Do(ctx, a)
		cancel()
		if err != nil {
			b.t.Fatalf("browser action %d: %v", i, err)
		}
	}
}

// waitJS waits until the JavaScript expression is truthy.
func (b *browser) waitJS(what, expr string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 90*time.Second)
	defer cancel()
	for {
		_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(0)))
		if err == nil {
			return
		}
		// A navigation (a reload, a new hash route's load) destroys the
		// page's JavaScript context under a running poll: poll again in
		// the new one.
		if ctx.Err() == nil && (strings.Contains(err.Error(), "Cannot find context") || strings.Contains(err.Error(), "context was destroyed")) {
			continue
		}
		b.t.Fatalf("waiting for %s (%s): %v", what, expr, err)
	}
}

// text returns the text of the first element sel matches, once visible.
func (b *browser) text(sel string) string {
	b.t.Helper()
	b.do(chromedp.WaitVisible(chromedp.CSS(sel)))
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

// click waits for sel to be visible and clicks it.
func (b *browser) click(sel string) {
	b.t.Helper()
	b.do(chromedp.WaitVisible(chromedp.CSS(sel)), chromedp.Click(chromedp.CSS(sel)))
}

// typeInto types text into the input sel, as a user does.
func (b *browser) typeInto(sel, text string) {
	b.t.Helper()
	b.do(chromedp.WaitVisible(chromedp.CSS(sel)), chromedp.SendKeys(chromedp.CSS(sel), text))
}

// retype replaces the text of the input sel as a user does: select it all,
// Backspace, type. (chromedp.Clear sets the value behind React's back, and
// React puts the old one back.)
func (b *browser) retype(sel, text string) {
	b.t.Helper()
	b.do(chromedp.WaitVisible(chromedp.CSS(sel)), chromedp.Focus(chromedp.CSS(sel)),
		chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.querySelector(%q).select()`, sel)),
		chromedp.KeyEvent(kb.Backspace))
	b.waitJS(sel+" empty", fmt.Sprintf(`document.querySelector(%q).value === ""`, sel))
	b.typeInto(sel, text)
}

// choose picks the option value of the select sel, as a user does (a
// change event React sees).
func (b *browser) choose(sel, value string) {
	b.t.Helper()
	b.do(chromedp.WaitVisible(chromedp.CSS(sel)))
	js := fmt.Sprintf(`(() => { const el = document.querySelector(%q);
		if (![...el.options].some(o => o.value === %q)) return false;
		Object.getOwnPropertyDescriptor(HTMLSelectElement.prototype, "value").set.call(el, %q);
		el.dispatchEvent(new Event("change", {bubbles: true})); return true; })()`, sel, value, value)
	b.waitJS("option "+value+" of "+sel, js)
}

// clickText clicks the button whose text is label.
func (b *browser) clickText(label string) {
	b.t.Helper()
	sel := chromedp.Search(fmt.Sprintf(`//button[normalize-space()=%q]`, label))
	b.do(chromedp.WaitVisible(sel), chromedp.Click(sel))
}

// signIn signs in with key (and the tenant's name for a tenant key).
func (b *browser) signIn(key, tenant string) {
	b.t.Helper()
	b.do(chromedp.Navigate(b.url + "/ui/"))
	b.waitJS("the page", `document.readyState === "complete"`)
	b.do(chromedp.Evaluate[chromedp.Void](`sessionStorage.clear()`), chromedp.Reload())
	b.typeInto("#signin-key", key)
	if tenant != "" {
		b.typeInto("#signin-tenant", tenant)
	}
	b.clickText("Sign in")
	b.waitJS("signed in", `!!document.querySelector("nav[aria-label=Main]")`)
}

func TestUIServesBundle(t *testing.T) {
	in := startServe(t, t.TempDir(), freeAddr(t))
	for _, tc := range []struct {
		path, wantType, wantCache string
		status                    int
	}{
		{path: "/ui/", wantType: "text/html", wantCache: "no-cache", status: 200},
		{path: "/ui/integrations/orders", wantType: "text/html", wantCache: "no-cache", status: 200}, // SPA fallback
		{path: "/ui/assets/missing.js", status: 404},
	} {
		resp, err := httpGet(in.url + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		if resp.status != tc.status || !strings.HasPrefix(resp.contentType, tc.wantType) || resp.cache != tc.wantCache {
			t.Errorf("GET %s: %d %q %q, want %d %q %q", tc.path, resp.status, resp.contentType, resp.cache, tc.status, tc.wantType, tc.wantCache)
		}
	}
	// The page's script is a hashed asset, cached for good.
	index, _ := httpGet(in.url + "/ui/")
	i := strings.Index(index.body, "/ui/assets/")
	if i < 0 {
		t.Fatalf("index.html names no asset:\n%s", index.body)
	}
	asset := index.body[i : i+strings.IndexByte(index.body[i:], '"')]
	resp, err := httpGet(in.url + asset)
	if err != nil || resp.status != 200 || !strings.Contains(resp.cache, "immutable") {
		t.Errorf("GET %s: %+v %v", asset, resp, err)
	}
}

// TestUIWalkthrough is the acceptance: admin creates a tenant and
// copies its key; the tenant builds webhook → jq → http with the wizard,
// meets a validation error on its field, starts it, watches the counters,
// replays a dead letter once the sink is back, traces a message, edits
// the integration in the wizard, and
// searches and uploads in the marketplace.
func TestUIWalkthrough(t *testing.T) {
	in := startServe(t, t.TempDir(), freeAddr(t))
	sink := newGatedSink(t, true)
	b := newBrowser(t, in)

	// Admin: create tenant acme; its first key is shown once, with a copy button.
	b.signIn(adminKey, "")
	b.clickText("New tenant")
	b.typeInto("#tenant-name", "acme")
	b.typeInto("#tenant-display", "Acme Inc")
	b.clickText("Create tenant")
	key := strings.TrimSpace(b.text(`[data-testid=new-key]`))
	if !strings.HasPrefix(key, "vrsk_") {
		t.Fatalf("new tenant's key %q", key)
	}
	b.click(`button[aria-label="Copy key"]`)
	b.waitJS("copied", `[...document.querySelectorAll("button")].some(x => x.textContent === "Copied")`)
	b.clickText("Done")
	if got := b.text(`[data-testid=tenant-title]`); !strings.Contains(got, "acme") {
		t.Fatalf("tenant page shows %q", got)
	}

	// A wrong key is refused with the API's message.
	b.do(chromedp.Evaluate[chromedp.Void](`sessionStorage.clear()`), chromedp.Reload())
	b.typeInto("#signin-key", "vrsk_0000000000000000_"+strings.Repeat("0", 64))
	b.clickText("Sign in")
	if msg := b.text(`[data-testid=error]`); msg == "" {
		t.Fatal("a wrong key shows no error")
	}

	// The tenant: the wizard only.
	b.signIn(key, "acme")
	b.do(chromedp.Navigate(in.url + "/ui/#/integrations/new"))
	b.typeInto("#f-name", "orders")
	b.choose("#f-source-connector", "http-webhook")
	b.typeInto("#f-source-config-path", "orders")
	b.clickText("Add step")
	b.choose("#f-steps-0-connector", "jq")
	b.typeInto("#f-steps-0-config-query", "{order: .id, total: .amount}")
	b.typeInto("#f-sinks-0-name", "api")
	b.choose("#f-sinks-0-connector", "http")
	b.typeInto("#f-sinks-0-config-url", "not a url")
	b.typeInto("#f-retry-max_attempts", "2")
	b.typeInto("#f-retry-initial_backoff", "50ms")
	b.typeInto("#f-retry-max_backoff", "100ms")
	yaml, err := chromedp.Run(b.ctx, chromedp.Value(chromedp.CSS(`[data-testid=yaml]`)))
	if err != nil || !strings.Contains(yaml, "connector: jq") || !strings.Contains(yaml, "max_attempts: 2") {
		t.Fatalf("the YAML view is not in step with the form (%v):\n%s", err, yaml)
	}
	b.clickText("Create integration")
	if f := b.text(`[data-testid=error-field]`); f != "sinks[0].config.url" {
		t.Fatalf("validation error names field %q, want sinks[0].config.url", f)
	}
	b.waitJS("the url input highlighted", `document.querySelector("#f-sinks-0-config-url").getAttribute("aria-invalid") === "true"`)
	b.retype("#f-sinks-0-config-url", sink.srv.URL+"/in")
	b.waitJS("the url in the form", fmt.Sprintf(`document.querySelector("[data-testid=yaml]").value.includes(%q)`, sink.srv.URL+"/in"))
	b.clickText("Create integration")
	b.waitJS("the monitoring view", `location.hash === "#/integrations/orders"`)
	b.clickText("Start")
	b.waitJS("running", `document.querySelector("[data-testid=state]")?.textContent === "running"`)

	// Counters move as messages arrive.
	first := in.post(`{"id": "o-1", "amount": 5}`)
	b.waitJS("one delivered", `document.querySelector("[data-testid=stat-delivered]")?.textContent === "1"`)
	if got := b.text(`[data-testid=stat-in]`); got != "1" {
		t.Fatalf("messages in %q, want 1", got)
	}
	waitFor(t, 30*time.Second, "the sink to get the first message", func() bool { return sink.count() == 1 })

	// The sink fails: the message is dead-lettered; open it, bring the
	// sink back, replay it, see it delivered.
	sink.setOpen(false)
	second := in.post(`{"id": "o-2", "amount": 7}`)
	b.waitJS("one dead letter", `document.querySelector("[data-testid=stat-dlq]")?.textContent === "1"`)
	b.click(`button[aria-label^="Open dead letter"]`)
	if p := b.text(`[data-testid=dlq-payload]`); !strings.Contains(p, `"total":7`) && !strings.Contains(p, `"total": 7`) {
		t.Fatalf("dead letter payload %q", p)
	}
	if id := b.text(`[data-testid=dlq-message-id]`); id == "" {
		t.Fatal("dead letter shows no message id")
	}
	sink.setOpen(true)
	b.clickText("Replay")
	b.waitJS("two delivered", `document.querySelector("[data-testid=stat-delivered]")?.textContent === "2"`)
	b.waitJS("the DLQ empty", `document.querySelector("[data-testid=stat-dlq]")?.textContent === "0"`)
	waitFor(t, 30*time.Second, "the sink to get the replayed message", func() bool { return sink.count() == 2 })
	if dst := os.Getenv("VRSKY_UI_SCREENSHOT"); dst != "" {
		b.screenshot(dst) // docs/img/ui-monitoring.png
	}

	// Find a message by id.
	b.typeInto("#trace-id", second)
	b.clickText("Trace")
	b.waitJS("the trace delivered", `document.querySelector("[data-testid=trace-state]")?.textContent === "delivered"`)
	b.retype("#trace-id", first)
	b.clickText("Trace")
	b.waitJS("the first trace", fmt.Sprintf(`document.querySelector("[data-testid=trace]")?.textContent.includes(%q)`, first))

	// The integrations list shows the counters too.
	b.do(chromedp.Navigate(in.url + "/ui/#/integrations"))
	b.waitJS("the list's counters", `document.querySelector("[data-integration=orders] [data-testid=delivered]")?.textContent === "2"`)

	// Edit it: the wizard opens on the stored spec; a changed step is stored.
	b.do(chromedp.Navigate(in.url + "/ui/#/integrations/orders"))
	b.clickText("Edit")
	b.waitJS("the stored query in the form", `document.querySelector("#f-steps-0-config-query")?.value === "{order: .id, total: .amount}"`)
	b.retype("#f-steps-0-config-query", "{order: .id}")
	b.clickText("Save changes")
	b.waitJS("back on the monitoring view", `location.hash === "#/integrations/orders" && !!document.querySelector("[data-testid=stat-in]")`)
	var stored struct {
		Spec struct {
			Steps []struct {
				Config map[string]any `json:"config"`
			} `json:"steps"`
		} `json:"spec"`
	}
	in.call("GET", "/api/v1/integrations/orders", key, "", "", http.StatusOK, &stored)
	if len(stored.Spec.Steps) != 1 || stored.Spec.Steps[0].Config["query"] != "{order: .id}" {
		t.Fatalf("edited spec stored as %+v", stored.Spec)
	}

	// Marketplace: search, then upload; a broken module is refused with the
	// registry's reason.
	b.do(chromedp.Navigate(in.url + "/ui/#/marketplace"))
	b.typeInto(`input[type=search]`, "jq")
	b.waitJS("jq found, http-webhook filtered out", `!!document.querySelector("[data-connector=jq]") && !document.querySelector("[data-connector=http-webhook]")`)
	dir := t.TempDir()
	manifest := filepath.Join(dir, "vrsky-connector.yaml")
	if err := os.WriteFile(manifest, []byte(`name: ui-wrap
version: 1.0.0
kind: step
category: converter
description: Wraps each payload.
tags: [json, test]
abi: 1
capabilities: {}
visibility: private
config_schema: {type: object, additionalProperties: false}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	upload := func(module string) {
		abs, err := filepath.Abs(module)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(abs); err != nil {
			t.Fatalf("%v (make fixtures writes the registry's test modules)", err)
		}
		b.clickText("Upload a connector")
		b.do(chromedp.WaitVisible(chromedp.CSS("#upload-manifest")),
			chromedp.SetUploadFiles(chromedp.CSS("#upload-manifest"), []string{manifest}),
			chromedp.SetUploadFiles(chromedp.CSS("#upload-module"), []string{abs}))
		b.click(`[role=dialog] button[type=submit]`)
	}
	upload("../../registry/testdata/broken.wasm")
	if msg := b.text(`[role=dialog] [data-testid=error]`); msg == "" {
		t.Fatal("a broken module shows no refusal")
	}
	b.clickText("Cancel")
	upload("../../registry/testdata/wrap.wasm")
	b.waitJS("the uploaded connector's detail", `document.querySelector("[data-testid=connector-detail]")?.textContent.includes("1.0.0")`)
	if d := b.text(`[data-testid=connector-detail]`); !strings.Contains(d, "Digest") {
		t.Fatalf("detail without digest: %s", d)
	}

	// Phone width: the pages fit without a horizontal scroll.
	b.do(chromedp.EmulateViewport(390, 844), chromedp.Navigate(in.url+"/ui/#/integrations/orders"))
	b.waitJS("the monitoring view on a phone", `!!document.querySelector("[data-testid=stat-in]")`)
	b.waitJS("no horizontal scroll", `document.documentElement.scrollWidth <= window.innerWidth + 1`)
}

type getResult struct {
	status             int
	contentType, cache string
	body               string
}

func httpGet(url string) (getResult, error) {
	resp, err := http.Get(url)
	if err != nil {
		return getResult{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return getResult{status: resp.StatusCode, contentType: resp.Header.Get("Content-Type"),
		cache: resp.Header.Get("Cache-Control"), body: string(b)}, err
}

// key sends the key (kb.Enter, kb.Escape, kb.Tab...) to the focused element.
func (b *browser) key(k string, opts ...chromedp.KeyOption) {
	b.t.Helper()
	b.do(chromedp.KeyEvent(k, opts...))
}

// tabTo presses Tab until the element sel has the focus, as a keyboard
// user reaches a control; it fails when sel is not reachable that way.
func (b *browser) tabTo(sel string) {
	b.t.Helper()
	b.do(chromedp.WaitVisible(chromedp.CSS(sel)))
	for range 60 {
		ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
		on, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(`document.activeElement === document.querySelector(%q)`, sel)))
		cancel()
		if err != nil {
			b.t.Fatalf("focus of %s: %v", sel, err)
		}
		if on {
			return
		}
		b.key(kb.Tab)
	}
	b.t.Fatalf("%s is not reachable with Tab", sel)
}

// focusedIn reports whether the focus is inside the element sel.
func (b *browser) focusedIn(sel string) bool {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	in, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(`!!document.querySelector(%q)?.contains(document.activeElement)`, sel)))
	if err != nil {
		b.t.Fatalf("focus: %v", err)
	}
	return in
}

// TestUITenantsByKeyboard: an admin manages a tenant from the keyboard
// alone (sign in, create, quotas, a second key), the dialogs keep the
// focus and close on Escape; revoking a key and deleting the tenant ask
// first, and Cancel leaves them be.
func TestUITenantsByKeyboard(t *testing.T) {
	in := startServe(t, t.TempDir(), freeAddr(t))
	b := newBrowser(t, in)
	b.waitJS("the sign-in form", `!!document.querySelector("#signin-key")`)

	// Sign in: Tab to the key, type it, Enter.
	b.tabTo("#signin-key")
	b.do(chromedp.SendKeys(chromedp.CSS("#signin-key"), adminKey))
	b.key(kb.Enter)
	b.waitJS("signed in", `!!document.querySelector("nav[aria-label=Main]")`)

	// The New tenant dialog: focus goes in, Tab and Shift+Tab stay in it,
	// Escape closes it and gives the focus back.
	b.tabTo(`[data-testid=new-tenant]`)
	b.key(kb.Enter)
	b.waitJS("the dialog's first field focused", `document.activeElement?.id === "tenant-name"`)
	for i := range 8 {
		if i < 5 {
			b.key(kb.Tab)
		} else {
			b.key(kb.Tab, chromedp.KeyModifiers(kb.ModifierShift))
		}
		if !b.focusedIn("[role=dialog]") {
			t.Fatalf("Tab %d left the dialog", i+1)
		}
	}
	b.key(kb.Escape)
	b.waitJS("the dialog closed", `!document.querySelector("[role=dialog]")`)
	b.waitJS("the focus back on New tenant", `document.activeElement?.dataset.testid === "new-tenant"`)

	// Create beta: type, Enter submits; the key dialog closes on Escape.
	b.key(kb.Enter)
	b.waitJS("the dialog", `document.activeElement?.id === "tenant-name"`)
	b.do(chromedp.SendKeys(chromedp.CSS("#tenant-name"), "beta"))
	b.key(kb.Enter)
	key := strings.TrimSpace(b.text(`[data-testid=new-key]`))
	b.key(kb.Escape)
	b.waitJS("the key dialog closed", `!document.querySelector("[role=dialog]")`)
	in.call("GET", "/api/v1/integrations", key, "", "", http.StatusOK, nil)
	if got := b.text(`[data-testid=usage-integrations]`); got != "0" {
		t.Fatalf("integrations used %q, want 0", got)
	}

	// Quotas: Tab to the field, type, Enter saves; usage shows the limit.
	b.tabTo("#quota-max_integrations")
	b.do(chromedp.SendKeys(chromedp.CSS("#quota-max_integrations"), "3"))
	b.key(kb.Enter)
	b.waitJS("usage against the quota", `document.querySelector("[data-testid=usage-integrations]")?.textContent === "0 / 3"`)
	var tenant struct {
		Quotas struct {
			MaxIntegrations int `json:"max_integrations"`
		} `json:"quotas"`
	}
	in.call("GET", "/api/v1/tenants/beta", adminKey, "", "", http.StatusOK, &tenant)
	if tenant.Quotas.MaxIntegrations != 3 {
		t.Fatalf("stored quota %+v, want max_integrations 3", tenant.Quotas)
	}

	// A second key, issued from the keyboard; it authenticates.
	b.tabTo("#key-name")
	b.do(chromedp.SendKeys(chromedp.CSS("#key-name"), "ci"))
	b.key(kb.Enter)
	second := strings.TrimSpace(b.text(`[data-testid=new-key]`))
	if !strings.HasPrefix(second, "vrsk_") || second == key {
		t.Fatalf("second key %q", second)
	}
	b.key(kb.Escape)
	b.waitJS("two keys", `document.querySelectorAll("[data-key]").length === 2`)
	in.call("GET", "/api/v1/integrations", second, "", "", http.StatusOK, nil)

	// Revoke it: Escape on the confirmation keeps it; Revoke revokes it.
	id, _, _ := strings.Cut(strings.TrimPrefix(second, "vrsk_"), "_")
	revoke := fmt.Sprintf(`button[aria-label="Revoke key %s"]`, id)
	b.click(revoke)
	b.waitJS("the confirmation", `!!document.querySelector("[role=dialog]")`)
	b.key(kb.Escape)
	b.waitJS("the confirmation closed", `!document.querySelector("[role=dialog]")`)
	in.call("GET", "/api/v1/integrations", second, "", "", http.StatusOK, nil)
	b.click(revoke)
	sel := chromedp.Search(`//*[@role="dialog"]//button[normalize-space()="Revoke"]`)
	b.do(chromedp.WaitVisible(sel), chromedp.Click(sel))
	b.waitJS("one key left", `document.querySelectorAll("[data-key]").length === 1`)
	in.call("GET", "/api/v1/integrations", second, "", "", http.StatusUnauthorized, nil)
	in.call("GET", "/api/v1/integrations", key, "", "", http.StatusOK, nil)

	// Delete the tenant: Cancel keeps it, Delete tenant deletes it.
	b.clickText("Delete")
	b.clickText("Cancel")
	b.waitJS("the confirmation closed", `!document.querySelector("[role=dialog]")`)
	in.call("GET", "/api/v1/tenants/beta", adminKey, "", "", http.StatusOK, nil)
	b.clickText("Delete")
	b.clickText("Delete tenant")
	b.waitJS("beta gone from the list", `!document.querySelector("[data-testid=tenant-list] a[href$='/beta']")`)
	in.call("GET", "/api/v1/tenants/beta", adminKey, "", "", http.StatusNotFound, nil)
	in.call("GET", "/api/v1/integrations", key, "", "", http.StatusUnauthorized, nil)
}

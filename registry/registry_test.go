package registry_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vrsky/vrsky/host/wasmcheck/wasmchecktest"
	"github.com/vrsky/vrsky/platform/store"
	"github.com/vrsky/vrsky/registry"
	"github.com/vrsky/vrsky/runtime"
)

// TestRefusesLargeHostileModules: the crafted modules that are too big
// for TestRefusals' size limit (1 MB and more of nesting or br_table
// targets, which kept an upload compiling past 120 s) are refused by the
// limit they break, at once.
func TestRefusesLargeHostileModules(t *testing.T) {
	e := newEnv(t, natsBackend)
	cases := []struct {
		name string
		wasm []byte
		has  string
	}{
		{"1,000,000 nested blocks", wasmchecktest.NestedBlocks(1_000_000), "function 1: 10001 nesting depth, over the limit of 10000"},
		{"br_table of 1,000,000 targets", wasmchecktest.BrTable(1_000_000), "function 1: 1000000 br_table targets, over the limit of 65520"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			_, err := e.reg.Publish(e.ctx, "acme", registry.Upload{Manifest: manifest("xx", "1.0.0"), Module: c.wasm})
			r := refusal(t, err, registry.RuleLimits)
			if r.Field != "module" || !strings.Contains(r.Reason, c.has) {
				t.Errorf("got field %q reason %q; want module, %q", r.Field, r.Reason, c.has)
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("refused after %v", took)
			}
		})
	}
}

// TestRefusals: each bad upload is refused by the rule it breaks, with
// the field to fix, and nothing is stored.
func TestRefusals(t *testing.T) {
	priv, pub := keyPair(t)
	otherPriv, _ := keyPair(t)
	e := newEnv(t, natsBackend, func(c *registry.Config) {
		c.MaxModuleSize = 1000
		c.SignedTenants = []string{"globex"}
		c.TrustedKeys = []ed25519.PublicKey{pub}
	})
	wrap := fixture(t, "wrap.wasm")
	e.publish("acme", registry.Upload{Manifest: manifest("taken", "1.0.0"), Module: wrap})
	e.publish("acme", registry.Upload{Manifest: manifest("existing", "1.0.0"), Module: wrap})
	signedManifest := manifest("signed", "1.0.0")
	cases := []struct {
		name   string
		tenant string
		up     registry.Upload
		rule   string
		field  string
		has    string
	}{
		{"manifest unknown field", "acme", registry.Upload{Manifest: manifest("xx", "1.0.0", "colour: red"), Module: wrap},
			registry.RuleManifest, "manifest.colour", "unknown field"},
		{"manifest bad version", "acme", registry.Upload{Manifest: manifest("xx", "1.0.0.0"), Module: wrap},
			registry.RuleManifest, "manifest.version", "semantic version"},
		{"manifest version not a string", "acme", registry.Upload{Manifest: manifest("xx", "1.0"), Module: wrap},
			registry.RuleManifest, "manifest.version", "must be a string"},
		{"manifest bad name", "acme", registry.Upload{Manifest: manifest("X_Y", "1.0.0"), Module: wrap},
			registry.RuleManifest, "manifest.name", "lower-case"},
		{"sink kind", "acme", registry.Upload{Manifest: manifest("xx", "1.0.0", "kind: sink"), Module: wrap},
			registry.RuleKind, "manifest.kind", "steps only"},
		{"too big", "acme", registry.Upload{Manifest: manifest("xx", "1.0.0"), Module: append(slices.Clone(wrap), make([]byte, 1000)...)},
			registry.RuleSize, "module", "over the limit of 1000"},
		{"not wasm", "acme", registry.Upload{Manifest: manifest("xx", "1.0.0"), Module: []byte("#!/bin/sh\necho hi\n")},
			registry.RuleWasm, "module", "not a WebAssembly binary"},
		{"2^32-1 locals", "acme", registry.Upload{Manifest: manifest("xx", "1.0.0"), Module: wasmchecktest.ManyLocals(0xffffffff, wasmchecktest.I32)},
			registry.RuleLimits, "module", "function 1: 4294967296 locals per function, over the limit of 50000"},
		{"50,000,000 i64 locals", "acme", registry.Upload{Manifest: manifest("xx", "1.0.0"), Module: wasmchecktest.ManyLocals(50_000_000, wasmchecktest.I64)},
			registry.RuleLimits, "module", "function 1: 50000001 locals per function"},
		{"invalid code", "acme", registry.Upload{Manifest: manifest("xx", "1.0.0"), Module: wasmchecktest.Guest(nil, []byte{0x10, 0x7f, 0x41, 0, 0x0b})},
			registry.RuleCompile, "module", "does not compile"},
		{"does not compile", "acme", registry.Upload{Manifest: manifest("xx", "1.0.0"), Module: fixture(t, "broken.wasm")},
			registry.RuleCompile, "module", "does not compile"},
		{"forbidden import", "acme", registry.Upload{Manifest: manifest("xx", "1.0.0"), Module: fixture(t, "forbidden.wasm")},
			registry.RuleImports, "module", "import env.system refused"},
		{"import not covered", "acme", registry.Upload{Manifest: manifest("xx", "1.0.0"), Module: fixture(t, "kv.wasm")},
			registry.RuleCapabilities, "manifest.capabilities", "vrsky.kv_get needs capabilities.kv"},
		{"missing export", "acme", registry.Upload{Manifest: manifest("xx", "1.0.0"), Module: fixture(t, "noprocess.wasm")},
			registry.RuleExports, "module", `"vrsky_process" missing`},
		{"invalid schema", "acme", registry.Upload{Manifest: manifest("xx", "1.0.0", "config_schema: {type: 12}"), Module: wrap},
			registry.RuleSchema, "manifest.config_schema", "not a valid JSON Schema"},
		{"built-in name", "acme", registry.Upload{Manifest: manifest("jq", "9.0.0"), Module: wrap},
			registry.RuleName, "manifest.name", "built-in"},
		{"another publisher's name", "globex", registry.Upload{Manifest: manifest("taken", "2.0.0"), Module: wrap},
			registry.RuleName, "manifest.name", "another publisher"},
		{"version exists", "acme", registry.Upload{Manifest: manifest("existing", "1.0.0"), Module: wrap},
			registry.RuleVersion, "manifest.version", "immutable"},
		{"smoke run traps", "acme", registry.Upload{Manifest: manifest("xx", "1.0.0", `example: {input: '{"a":1}'}`), Module: fixture(t, "trap.wasm")},
			registry.RuleSmoke, "manifest.example", "unreachable"},
		{"smoke run output differs", "acme", registry.Upload{Manifest: manifest("xx", "1.0.0", `example: {input: '{"a":1}', output: ['{"a":1}']}`), Module: wrap},
			registry.RuleSmoke, "manifest.example.output", `{\"wrapped\":{\"a\":1}}`},
		{"smoke config fails the schema", "acme", registry.Upload{Manifest: manifest("xx", "1.0.0", `example: {input: '1', config: {nope: 1}}`), Module: wrap},
			registry.RuleSmoke, "manifest.example.config.nope", "config schema"},
		{"signature required, none", "globex", registry.Upload{Manifest: manifest("xx", "1.0.0"), Module: wrap},
			registry.RuleSignature, "signature", "must be signed"},
		{"signature by an untrusted key", "globex", registry.Upload{Manifest: signedManifest, Module: wrap, Signature: []byte(registry.Sign(otherPriv, wrap, signedManifest))},
			registry.RuleSignature, "signature", "no trusted key"},
		{"signature over another manifest", "globex", registry.Upload{Manifest: manifest("signed", "1.0.1"), Module: wrap, Signature: []byte(registry.Sign(priv, wrap, signedManifest))},
			registry.RuleSignature, "signature", "no trusted key"},
		{"signature garbled", "acme", registry.Upload{Manifest: signedManifest, Module: wrap, Signature: []byte("not base64!")},
			registry.RuleSignature, "signature", "not a base64"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := e.reg.Publish(e.ctx, c.tenant, c.up)
			r := refusal(t, err, c.rule)
			if r.Field != c.field || !strings.Contains(r.Reason, c.has) {
				t.Errorf("got field %q reason %q; want field %q, reason containing %q",
					r.Field, r.Reason, c.field, c.has)
			}
		})
	}
	// Nothing refused was stored: acme has its two, globex none.
	for tenant, want := range map[string]int{"acme": 2, "globex": 0} {
		page, err := e.reg.List(e.ctx, registry.Viewer{Tenant: tenant}, registry.Query{Text: "", Limit: 500})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, c := range page.Connectors {
			if c.Origin == registry.OriginUploaded && c.Uploader == tenant {
				n++
			}
		}
		if n != want {
			t.Errorf("%s sees %d uploaded connectors, want %d", tenant, n, want)
		}
	}
	// A good signature by a trusted key passes, and is recorded.
	cv := e.publish("globex", registry.Upload{Manifest: signedManifest, Module: wrap, Signature: []byte(registry.Sign(priv, wrap, signedManifest))})
	_, ver, err := e.reg.GetVersion(e.ctx, registry.Viewer{Tenant: "globex"}, cv.Name, cv.Version)
	if err != nil {
		t.Fatal(err)
	}
	if ver.SignedBy != registry.Fingerprint(pub) {
		t.Errorf("signed_by = %q, want %q", ver.SignedBy, registry.Fingerprint(pub))
	}
}

// TestPlatformRequiresSignatures: with RequireSignatures every tenant's
// and the platform's uploads need one.
func TestPlatformRequiresSignatures(t *testing.T) {
	priv, pub := keyPair(t)
	e := newEnv(t, natsBackend, func(c *registry.Config) {
		c.RequireSignatures = true
		c.TrustedKeys = []ed25519.PublicKey{pub}
	})
	wrap := fixture(t, "wrap.wasm")
	for _, tenant := range []string{"", "acme"} {
		m := manifest("sig-"+map[string]string{"": "platform", "acme": "acme"}[tenant], "1.0.0")
		_, err := e.reg.Publish(e.ctx, tenant, registry.Upload{Manifest: m, Module: wrap})
		refusal(t, err, registry.RuleSignature)
		e.publish(tenant, registry.Upload{Manifest: m, Module: wrap, Signature: []byte(registry.Sign(priv, wrap, m))})
	}
}

// TestPublishListResolve runs on the embedded default and on PostgreSQL +
// S3: a good module uploads, is listed with its details, resolves for the
// runtime (bare names pinned), and runs.
func TestPublishListResolve(t *testing.T) {
	for _, b := range []backend{natsBackend, prodBackend} {
		t.Run(b.name, func(t *testing.T) {
			e := newEnv(t, b)
			wrap := fixture(t, "wrap.wasm")
			cv := e.publish("acme", registry.Upload{Manifest: manifest("wrap", "1.0.0", `example: {input: '{"a":1}', output: ['{"wrapped":{"a":1}}']}`), Module: wrap})
			if cv.Digest != digest(wrap) || cv.Size != int64(len(wrap)) || cv.ModuleKey != "modules/sha256/"+digest(wrap) {
				t.Errorf("stored %+v", cv)
			}
			e.publish("acme", registry.Upload{Manifest: manifest("wrap", "1.10.0"), Module: wrap})
			e.publish("acme", registry.Upload{Manifest: manifest("wrap", "1.2.0"), Module: wrap})

			page, err := e.reg.List(e.ctx, registry.Viewer{Tenant: "globex"}, registry.Query{Kind: "step", Tag: "test"})
			if err != nil {
				t.Fatal(err)
			}
			if page.Total != 1 || len(page.Connectors) != 1 {
				t.Fatalf("list by tag: %+v", page)
			}
			got := page.Connectors[0]
			if got.Name != "wrap" || got.Latest != "1.10.0" || got.Uploader != "acme" || got.Origin != registry.OriginUploaded ||
				got.Digest != digest(wrap) || got.Capabilities == nil || got.Visibility != "public" {
				t.Errorf("entry %+v", got)
			}
			var vers []string
			for _, v := range got.Versions {
				vers = append(vers, v.Version)
			}
			if !slices.Equal(vers, []string{"1.10.0", "1.2.0", "1.0.0"}) {
				t.Errorf("versions %v, want newest first by semver", vers)
			}

			// Module download returns the bytes.
			mod, err := e.reg.Module(e.ctx, registry.Viewer{Tenant: "globex"}, "wrap", "1.2.0")
			if err != nil || !bytes.Equal(mod, wrap) {
				t.Fatalf("Module: %v (%d bytes)", err, len(mod))
			}

			// A bare name is pinned to the latest version; the step runs.
			spec := specWith("wrap", `{}`)
			s, err := runtime.ParseSpecFor([]byte(spec), e.cat, "globex")
			if err != nil {
				t.Fatalf("ParseSpecFor: %v", err)
			}
			if s.Steps[0].Connector != "wrap@1.10.0" {
				t.Errorf("pinned %q, want wrap@1.10.0", s.Steps[0].Connector)
			}
			out := runStep(t, e.cat, "wrap@1.2.0", "globex", `{"id":7}`)
			if out != `{"wrapped":{"id":7}}` {
				t.Errorf("step output %s", out)
			}
			// Config is checked against the module's schema.
			_, err = runtime.ParseSpecFor([]byte(specWith("wrap@1.0.0", `{"nope":1}`)), e.cat, "globex")
			var se *runtime.SpecError
			if !errors.As(err, &se) || !strings.HasPrefix(se.Field, "steps[0].config") {
				t.Errorf("bad config: %v", err)
			}
			// An unknown version is an unknown connector.
			_, err = runtime.ParseSpecFor([]byte(specWith("wrap@3.0.0", `{}`)), e.cat, "globex")
			if !errors.As(err, &se) || se.Field != "steps[0].connector" {
				t.Errorf("unknown version: %v", err)
			}
		})
	}
}

// TestPrivateModules: a private module is invisible to other tenants in
// the list, details, download and specs; its owner uses it.
func TestPrivateModules(t *testing.T) {
	e := newEnv(t, natsBackend)
	wrap := fixture(t, "wrap.wasm")
	e.publish("acme", registry.Upload{Manifest: manifest("secret-wrap", "1.0.0", "visibility: private"), Module: wrap})

	names := func(v registry.Viewer) []string {
		page, err := e.reg.List(e.ctx, v, registry.Query{Text: "wrap"})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, c := range page.Connectors {
			out = append(out, c.Name)
		}
		return out
	}
	if got := names(registry.Viewer{Tenant: "acme"}); !slices.Equal(got, []string{"secret-wrap"}) {
		t.Errorf("acme lists %v", got)
	}
	if got := names(registry.Viewer{Tenant: "globex"}); len(got) != 0 {
		t.Errorf("globex lists %v", got)
	}
	if _, err := e.reg.Get(e.ctx, registry.Viewer{Tenant: "globex"}, "secret-wrap"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("globex Get: %v", err)
	}
	if _, err := e.reg.Module(e.ctx, registry.Viewer{Tenant: "globex"}, "secret-wrap", "1.0.0"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("globex Module: %v", err)
	}
	if err := e.reg.Deprecate(e.ctx, registry.Viewer{Tenant: "globex"}, "secret-wrap", "1.0.0", true); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("globex Deprecate: %v", err)
	}
	_, err := runtime.ParseSpecFor([]byte(specWith("secret-wrap", `{}`)), e.cat, "globex")
	var se *runtime.SpecError
	if !errors.As(err, &se) || se.Field != "steps[0].connector" || !strings.Contains(se.Reason, "unknown connector") {
		t.Errorf("globex spec: %v", err)
	}
	s, err := runtime.ParseSpecFor([]byte(specWith("secret-wrap", `{}`)), e.cat, "acme")
	if err != nil || s.Steps[0].Connector != "secret-wrap@1.0.0" {
		t.Fatalf("acme spec: %v", err)
	}
	// The runtime refuses to build it for another tenant too.
	x, _ := e.cat.Lookup("secret-wrap@1.0.0")
	if _, err := x.NewStep(nil, runtime.Env{Tenant: "globex"}); err == nil {
		t.Error("NewStep for globex succeeded")
	}
	if err := x.Check(e.ctx, nil, runtime.Env{Tenant: "globex"}); err == nil {
		t.Error("Check for globex passed")
	}
	if out := runStep(t, e.cat, "secret-wrap@1.0.0", "acme", `"x"`); out != `{"wrapped":"x"}` {
		t.Errorf("acme step output %s", out)
	}
	// The admin sees it.
	if _, err := e.reg.Get(e.ctx, registry.Viewer{Admin: true}, "secret-wrap"); err != nil {
		t.Errorf("admin Get: %v", err)
	}
}

// TestDeprecateAndDelete: a deprecated version is skipped by bare names;
// a version in use cannot be deleted; deleted versions stop resolving.
func TestDeprecateAndDelete(t *testing.T) {
	e := newEnv(t, natsBackend)
	wrap := fixture(t, "wrap.wasm")
	for _, v := range []string{"1.0.0", "2.0.0-rc.1", "2.0.0"} {
		e.publish("acme", registry.Upload{Manifest: manifest("wrap", v), Module: wrap})
	}
	acme := registry.Viewer{Tenant: "acme"}
	if err := e.reg.Deprecate(e.ctx, registry.Viewer{Tenant: "globex"}, "wrap", "2.0.0", true); !errors.Is(err, registry.ErrForbidden) {
		t.Errorf("globex deprecates acme's public module: %v", err)
	}
	if err := e.reg.Deprecate(e.ctx, acme, "wrap", "2.0.0", true); err != nil {
		t.Fatal(err)
	}
	s, err := runtime.ParseSpecFor([]byte(specWith("wrap", `{}`)), e.cat, "acme")
	if err != nil || s.Steps[0].Connector != "wrap@2.0.0-rc.1" {
		t.Fatalf("bare name after deprecation: %v %v", err, s)
	}
	// The deprecated version still resolves when pinned.
	if _, err := runtime.ParseSpecFor([]byte(specWith("wrap@2.0.0", `{}`)), e.cat, "acme"); err != nil {
		t.Errorf("pinned deprecated version: %v", err)
	}
	ent, err := e.reg.Get(e.ctx, acme, "wrap")
	if err != nil || ent.Latest != "2.0.0-rc.1" || !ent.Versions[0].Deprecated {
		t.Errorf("entry after deprecation: %v %+v", err, ent)
	}

	// An integration pinned to 1.0.0 holds it.
	st := e.store.(store.Store)
	if _, err := st.CreateIntegration(e.ctx, store.Integration{Tenant: "globex", Name: "orders",
		Spec: s2j(t, e, specWith("wrap@1.0.0", `{}`)), Desired: store.StateStopped}); err != nil {
		t.Fatal(err)
	}
	err = e.reg.Delete(e.ctx, acme, "wrap", "1.0.0")
	if !errors.Is(err, registry.ErrInUse) || !strings.Contains(err.Error(), "globex/orders") {
		t.Fatalf("delete in use: %v", err)
	}
	ent, _ = e.reg.Get(e.ctx, acme, "wrap")
	if ent.Usage != 1 || ent.Versions[2].Version != "1.0.0" || ent.Versions[2].Usage != 1 || ent.Versions[0].Usage != 0 {
		t.Errorf("usage: total %d, versions %+v", ent.Usage, ent.Versions)
	}
	if err := e.reg.Delete(e.ctx, acme, "wrap", "2.0.0"); err != nil {
		t.Fatalf("delete unused: %v", err)
	}
	if _, ok := e.cat.Lookup("wrap@2.0.0"); ok {
		t.Error("deleted version still resolves")
	}
	if err := e.reg.Delete(e.ctx, acme, "jq", "1.0.0"); !errors.Is(err, registry.ErrBuiltin) {
		t.Errorf("delete shipped jq: %v", err)
	}
}

// TestCatalogueListsEveryBuiltin: every built-in and shipped Wasm module
// is in the catalogue, with its config schema in the details.
func TestCatalogueListsEveryBuiltin(t *testing.T) {
	e := newEnv(t, natsBackend)
	page, err := e.reg.List(e.ctx, registry.Viewer{Tenant: "acme"}, registry.Query{Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]registry.Entry{}
	for _, c := range page.Connectors {
		listed[c.Name] = c
	}
	static := e.cat.List()
	if len(static) < 7 {
		t.Fatalf("only %d static connectors", len(static))
	}
	for _, x := range static {
		c, ok := listed[x.Name]
		if !ok {
			t.Errorf("%s is not listed", x.Name)
			continue
		}
		d, err := e.reg.Get(e.ctx, registry.Viewer{Tenant: "acme"}, x.Name)
		if err != nil || len(d.ConfigSchema) == 0 || d.Latest != x.Version || len(d.Versions) != 1 {
			t.Errorf("%s details: %v %+v", x.Name, err, d)
		}
		want := registry.OriginBuiltin
		if !x.Builtin {
			want = registry.OriginShipped
			if c.Capabilities == nil || c.Category == "" {
				t.Errorf("shipped %s lacks capabilities or category: %+v", x.Name, c)
			}
		}
		if c.Origin != want {
			t.Errorf("%s origin %s, want %s", x.Name, c.Origin, want)
		}
	}
	// Paging and text search.
	p1, _ := e.reg.List(e.ctx, registry.Viewer{Tenant: "acme"}, registry.Query{Limit: 2, Page: 2})
	if p1.Total != len(static) || len(p1.Connectors) != 2 || p1.Connectors[0].Name != page.Connectors[2].Name {
		t.Errorf("page 2 of 2: %+v", p1)
	}
	q, _ := e.reg.List(e.ctx, registry.Viewer{Tenant: "acme"}, registry.Query{Text: "WEBHOOK"})
	if q.Total != 1 || q.Connectors[0].Name != "http-webhook" {
		t.Errorf("text search: %+v", q)
	}
}

func specWith(step, config string) string {
	return `{"name":"orders","source":{"connector":"http-webhook","config":{"path":"orders"}},
"steps":[{"connector":"` + step + `","config":` + config + `}],
"sinks":[{"name":"out","connector":"http","config":{"url":"http://127.0.0.1:1/x"}}]}`
}

func s2j(t *testing.T, e *env, spec string) []byte {
	t.Helper()
	s, err := runtime.ParseSpec([]byte(spec), e.cat)
	if err != nil {
		t.Fatal(err)
	}
	return s.JSON()
}

// runStep builds the step ref for tenant and processes one message.
func runStep(t *testing.T, cat *runtime.Catalog, ref, tenant, in string) string {
	t.Helper()
	x, ok := cat.Lookup(ref)
	if !ok {
		t.Fatalf("%s does not resolve", ref)
	}
	st, err := x.NewStep([]byte(`{}`), runtime.Env{Tenant: tenant, Integration: "orders"})
	if err != nil {
		t.Fatalf("NewStep: %v", err)
	}
	defer st.Close()
	res, err := st.Process(context.Background(), []*runtime.Message{{ID: "1", Data: []byte(in)}})
	if err != nil || len(res) != 1 || res[0].Err != nil || len(res[0].Out) != 1 {
		t.Fatalf("Process: %v %+v", err, res)
	}
	return string(res[0].Out[0].Data)
}

var _ = http.StatusOK

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

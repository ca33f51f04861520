package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	fileconn "github.com/vrsky/vrsky/builtin/file"
	"github.com/vrsky/vrsky/host"
	"github.com/vrsky/vrsky/host/hosttest"
	"github.com/vrsky/vrsky/platform/blob"
	"github.com/vrsky/vrsky/registry"
	"github.com/vrsky/vrsky/runtime"
)

// newRegistryEnv is newTestEnv with a real registry (NATS KV metadata,
// NATS Object Store modules, the real host) behind the catalogue.
func newRegistryEnv(t *testing.T, tune ...func(*registry.Config)) *testEnv {
	t.Helper()
	var reg *registry.Registry
	e := newTestEnvWith(t, func(ec *runtime.Config) {
		bs, err := blob.NewNATS(context.Background(), ec.Conn.JS, "vrsky-objects", ec.Conn.Replicas)
		if err != nil {
			t.Fatalf("blob: %v", err)
		}
		cfg := registry.Config{Store: ec.Store.(registry.Store), Blobs: bs, Host: hosttest.Runtime(t, host.Config{}),
			Catalog: ec.Catalog, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
		for _, f := range tune {
			f(&cfg)
		}
		if reg, err = registry.New(cfg); err != nil {
			t.Fatalf("registry: %v", err)
		}
		t.Cleanup(func() { reg.Close(context.Background()) })
	}, func(c *Config) { c.Registry = reg })
	return e
}

// wrapWasm is registry/testdata/wrap.wasm: P becomes {"wrapped":P}.
func wrapWasm(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("../registry/testdata/wrap.wasm")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func wrapManifest(name, version, extra string) string {
	return "name: " + name + "\nversion: " + version + "\nkind: step\nabi: 1\ntags: [json]\n" +
		"description: Wraps each payload.\ncapabilities: {}\nconfig_schema: {type: object}\n" + extra
}

// multipartBody builds an upload; parts with a nil value are left out.
func multipartBody(t *testing.T, parts map[string][]byte) (string, []byte) {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for _, name := range []string{"manifest", "module", "signature"} {
		b, ok := parts[name]
		if !ok {
			continue
		}
		f, err := w.CreateFormFile(name, name)
		if err != nil {
			t.Fatal(err)
		}
		f.Write(b)
	}
	w.Close()
	return w.FormDataContentType(), buf.Bytes()
}

// TestConnectorUploadErrors: refusals answer the API's error format with
// the rule in the message and the field to fix.
func TestConnectorUploadErrors(t *testing.T) {
	e := newRegistryEnv(t, func(c *registry.Config) { c.MaxModuleSize = 4096 })
	key := e.createTenant("acme")
	wrap := wrapWasm(t)
	e.must(http.StatusCreated, e.uploadReq(key, wrapManifest("wrap", "1.0.0", ""), wrap))
	cases := []struct {
		name   string
		r      req
		status int
		code   Code
		field  string
		msg    string
	}{
		{"not multipart", req{method: "POST", path: "/api/v1/connectors", key: key, body: "x", contentType: "text/plain"}, 415, CodeUnsupportedMedia, "Content-Type", "multipart"},
		{"no module", e.uploadParts(key, map[string][]byte{"manifest": []byte(wrapManifest("a1", "1.0.0", ""))}), 400, CodeBadRequest, "module", "missing"},
		{"bad manifest", e.uploadReq(key, wrapManifest("a1", "1.0.0", "colour: red\n"), wrap), 400, CodeBadRequest, "manifest.colour", "rule manifest"},
		{"not wasm", e.uploadReq(key, wrapManifest("a1", "1.0.0", ""), []byte("MZ\x90\x00")), 400, CodeBadRequest, "module", "rule wasm"},
		{"too big", e.uploadReq(key, wrapManifest("a1", "1.0.0", ""), make([]byte, 5000)), 413, CodeBodyTooLarge, "module", "rule size"},
		{"version exists", e.uploadReq(key, wrapManifest("wrap", "1.0.0", ""), wrap), 409, CodeAlreadyExists, "manifest.version", "rule version"},
		{"smoke run", e.uploadReq(key, wrapManifest("a1", "1.0.0", "example: {input: '1', status: drop}\n"), wrap), 400, CodeBadRequest, "manifest.example", "rule smoke"},
		{"no key", req{method: "POST", path: "/api/v1/connectors"}, 401, CodeUnauthorized, "Authorization", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.with(t).must(c.status, c.r)
			if Code(r.errField("code")) != c.code || r.errField("field") != c.field || !strings.Contains(r.errField("message"), c.msg) {
				t.Errorf("answer %s", r.raw)
			}
		})
	}
}

func (e *testEnv) uploadReq(key, manifest string, module []byte) req {
	return e.uploadParts(key, map[string][]byte{"manifest": []byte(manifest), "module": module})
}

func (e *testEnv) uploadParts(key string, parts map[string][]byte) req {
	ct, body := multipartBody(e.t, parts)
	return req{method: "POST", path: "/api/v1/connectors", key: key, body: body, contentType: ct}
}

// TestConnectorEndToEnd: a module uploaded over REST lists, and runs as a
// step: a webhook's payload reaches an HTTP sink transformed. The spec
// records the pinned version; the version cannot be deleted while used.
func TestConnectorEndToEnd(t *testing.T) {
	e := newRegistryEnv(t)
	acme := e.createTenant("acme")
	globex := e.createTenant("globex")
	wrap := wrapWasm(t)
	up := e.must(http.StatusCreated, e.uploadReq(acme, wrapManifest("wrap", "1.0.0", "visibility: public\nexample: {input: '{\"a\":1}', output: ['{\"wrapped\":{\"a\":1}}']}\n"), wrap))
	conforms(t, "ConnectorUploaded", up.raw)
	e.must(http.StatusCreated, e.uploadReq(acme, wrapManifest("wrap", "1.1.0", "visibility: public\n"), wrap))

	list := e.must(http.StatusOK, req{method: "GET", path: "/api/v1/connectors?kind=step&tag=json", key: globex})
	conforms(t, "ConnectorPage", list.raw)
	if !strings.Contains(string(list.raw), `"name":"wrap"`) || !strings.Contains(string(list.raw), `"total":1`) {
		t.Fatalf("list: %s", list.raw)
	}
	one := e.must(http.StatusOK, req{method: "GET", path: "/api/v1/connectors/wrap", key: globex})
	conforms(t, "Connector", one.raw)
	if one.str("version") != "1.1.0" || one.str("uploader") != "acme" {
		t.Errorf("details: %s", one.raw)
	}
	ver := e.must(http.StatusOK, req{method: "GET", path: "/api/v1/connectors/wrap/1.0.0", key: globex})
	conforms(t, "Connector", ver.raw)
	mod := e.must(http.StatusOK, req{method: "GET", path: "/api/v1/connectors/wrap/1.0.0/module", key: globex})
	if !bytes.Equal(mod.raw, wrap) || mod.header.Get("Content-Type") != "application/wasm" {
		t.Errorf("module download: %d bytes, %s", len(mod.raw), mod.header.Get("Content-Type"))
	}

	var mu sync.Mutex
	var got []string
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, string(b))
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(sink.Close)
	spec := strings.Replace(webhookSpec("orders", "orders", sink.URL), "sinks:", "steps:\n  - connector: wrap\nsinks:", 1)
	in := e.createIntegration(globex, spec)
	if c := in.body["spec"].(map[string]any)["steps"].([]any)[0].(map[string]any)["connector"]; c != "wrap@1.1.0" {
		t.Errorf("stored step connector %v, want wrap@1.1.0", c)
	}
	e.must(http.StatusOK, req{method: "POST", path: "/api/v1/integrations/orders/start", key: globex})
	e.must(http.StatusAccepted, req{method: "POST", path: "/hooks/globex/orders", body: `{"id":7}`, contentType: "application/json"})
	eventually(t, 30*time.Second, "the sink to receive the wrapped payload", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) > 0
	})
	mu.Lock()
	if got[0] != `{"wrapped":{"id":7}}` {
		t.Errorf("sink received %s", got[0])
	}
	mu.Unlock()

	r := e.must(http.StatusConflict, req{method: "DELETE", path: "/api/v1/connectors/wrap/1.1.0", key: acme})
	if !strings.Contains(r.errField("message"), "globex/orders") {
		t.Errorf("delete in use: %s", r.raw)
	}
	e.must(http.StatusForbidden, req{method: "DELETE", path: "/api/v1/connectors/wrap/1.0.0", key: globex})
	dep := e.must(http.StatusOK, req{method: "POST", path: "/api/v1/connectors/wrap/1.0.0/deprecate", key: acme})
	if dep.body["deprecated"] != true {
		t.Errorf("deprecate: %s", dep.raw)
	}
	e.must(http.StatusNoContent, req{method: "DELETE", path: "/api/v1/connectors/wrap/1.0.0", key: acme})
	e.must(http.StatusNotFound, req{method: "GET", path: "/api/v1/connectors/wrap/1.0.0", key: acme})
	e.must(http.StatusConflict, req{method: "DELETE", path: "/api/v1/connectors/http/1.0.0", key: testAdminKey})
}

// TestConnectorPrivate: a private module is invisible to other tenants:
// list, details, download, and use in a spec.
func TestConnectorPrivate(t *testing.T) {
	e := newRegistryEnv(t)
	acme := e.createTenant("acme")
	globex := e.createTenant("globex")
	e.must(http.StatusCreated, e.uploadReq(acme, wrapManifest("acme-wrap", "1.0.0", "visibility: private\n"), wrapWasm(t)))

	if l := e.must(http.StatusOK, req{method: "GET", path: "/api/v1/connectors?q=acme-wrap", key: globex}); !strings.Contains(string(l.raw), `"total":0`) {
		t.Errorf("globex lists it: %s", l.raw)
	}
	if l := e.must(http.StatusOK, req{method: "GET", path: "/api/v1/connectors?q=acme-wrap", key: acme}); !strings.Contains(string(l.raw), `"total":1`) {
		t.Errorf("acme does not list it: %s", l.raw)
	}
	e.must(http.StatusNotFound, req{method: "GET", path: "/api/v1/connectors/acme-wrap", key: globex})
	e.must(http.StatusNotFound, req{method: "GET", path: "/api/v1/connectors/acme-wrap/1.0.0/module", key: globex})
	spec := strings.Replace(webhookSpec("orders", "orders", "http://127.0.0.1:1/"), "sinks:", "steps:\n  - connector: acme-wrap\nsinks:", 1)
	r := e.must(http.StatusBadRequest, req{method: "POST", path: "/api/v1/integrations", key: globex, body: spec, contentType: "application/yaml"})
	if !strings.HasPrefix(r.errField("field"), "steps[0]") || !strings.Contains(r.errField("message"), `unknown connector "acme-wrap"`) {
		t.Errorf("globex spec: %s", r.raw)
	}
	e.createIntegration(acme, spec)
}

// TestConnectorCatalogue: the list has every built-in; paging and
// filters are checked.
func TestConnectorCatalogue(t *testing.T) {
	e := newRegistryEnv(t)
	key := e.createTenant("acme")
	for _, c := range []struct {
		path   string
		status int
		has    string
	}{
		{"/api/v1/connectors", 200, `"name":"http-webhook"`},
		{"/api/v1/connectors?kind=sink", 200, `"total":1`},
		{"/api/v1/connectors?limit=1&page=2", 200, `"name":"http-webhook"`},
		{"/api/v1/connectors?kind=pipe", 400, `"field":"kind"`},
		{"/api/v1/connectors?page=0", 400, `"field":"page"`},
		{"/api/v1/connectors/http", 200, `"origin":"builtin"`},
		{"/api/v1/connectors/http@1.0.0", 200, `"kind":"sink"`},
		{"/api/v1/connectors/http/1.0.0/module", 404, `native Go`},
		{"/api/v1/connectors/nothing", 404, `"code":"not_found"`},
	} {
		r := e.must(c.status, req{method: "GET", path: c.path, key: key})
		if !strings.Contains(string(r.raw), c.has) {
			t.Errorf("GET %s: %s", c.path, r.raw)
		}
	}
}

// TestConnectorSharedName: the built-in file source and sink share a name;
// ?kind= picks one, and both are in the catalogue.
func TestConnectorSharedName(t *testing.T) {
	e := newRegistryEnv(t)
	fileSource, fileSink := fileconn.Confined(t.TempDir())
	for _, c := range []runtime.Connector{fileSource, fileSink} {
		if err := e.eng.Catalog().Register(c); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct{ query, kind string }{{"", "source"}, {"?kind=source", "source"}, {"?kind=sink", "sink"}} {
		r := e.must(http.StatusOK, req{method: "GET", path: "/api/v1/connectors/file" + tc.query, key: testAdminKey})
		var got struct {
			Name string `json:"name"`
			Kind string `json:"kind"`
		}
		if err := json.Unmarshal(r.raw, &got); err != nil || got.Name != "file" || got.Kind != tc.kind {
			t.Fatalf("GET /connectors/file%s = %s, want the %s", tc.query, r.raw, tc.kind)
		}
	}
	e.must(http.StatusBadRequest, req{method: "GET", path: "/api/v1/connectors/file?kind=filter", key: testAdminKey})
	e.must(http.StatusNotFound, req{method: "GET", path: "/api/v1/connectors/file?kind=step", key: testAdminKey})
}

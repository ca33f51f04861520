package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// openapiPaths maps fiber's route syntax to OpenAPI's: ":name" → "{name}",
// and the greedy hook parameter "+" → "{path}".
func openapiPath(route string) string {
	parts := strings.Split(route, "/")
	for i, p := range parts {
		switch {
		case strings.HasPrefix(p, ":"):
			parts[i] = "{" + strings.TrimSuffix(p[1:], "?") + "}"
		case p == "+" || p == "*":
			parts[i] = "{path}"
		}
	}
	return strings.Join(parts, "/")
}

type openapiDocument struct {
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		Schemas map[string]struct {
			Properties map[string]struct {
				Properties map[string]struct {
					Enum []string `json:"enum"`
				} `json:"properties"`
			} `json:"properties"`
		} `json:"schemas"`
	} `json:"components"`
}

// TestOpenAPICoversRoutes: every registered route is in the document, and
// every operation in the document is a registered route.
func TestOpenAPICoversRoutes(t *testing.T) {
	e := newTestEnv(t)
	var doc openapiDocument
	if err := json.Unmarshal(openapiDoc, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	methods := []string{"get", "put", "post", "delete", "patch", "head", "options"}
	inDoc := map[string]bool{}
	for path, item := range doc.Paths {
		for m := range item {
			if slices.Contains(methods, m) {
				inDoc[strings.ToUpper(m)+" "+path] = true
			}
		}
	}
	registered := map[string]bool{}
	for _, r := range e.srv.App().GetRoutes(true) {
		if r.Method == http.MethodHead || r.Method == http.MethodConnect || r.Method == http.MethodTrace || r.Method == http.MethodOptions {
			continue // fiber adds HEAD to every GET
		}
		registered[r.Method+" "+openapiPath(r.Path)] = true
	}
	if len(registered) < 20 {
		t.Fatalf("only %d routes registered: %v", len(registered), registered)
	}
	for op := range registered {
		if !inDoc[op] {
			t.Errorf("route %s is not in openapi.json", op)
		}
	}
	for op := range inDoc {
		if !registered[op] {
			t.Errorf("openapi.json documents %s, which is not a route", op)
		}
	}

	// The error code enum is the catalogue.
	enum := doc.Components.Schemas["Error"].Properties["error"].Properties["code"].Enum
	var codes []string
	for _, c := range Codes {
		codes = append(codes, string(c.Code))
	}
	slices.Sort(enum)
	slices.Sort(codes)
	if !slices.Equal(enum, codes) {
		t.Errorf("Error.code enum %v, catalogue %v", enum, codes)
	}

	// The document is served as is.
	r := e.must(http.StatusOK, req{method: "GET", path: "/api/v1/openapi.json"})
	if !bytes.Equal(r.raw, openapiDoc) {
		t.Error("GET /api/v1/openapi.json does not serve the embedded document")
	}
}

// TestOpenAPIDocumentCompiles: every schema in the document compiles, so
// every $ref resolves.
func TestOpenAPIDocumentCompiles(t *testing.T) {
	var doc openapiDocument
	if err := json.Unmarshal(openapiDoc, &doc); err != nil {
		t.Fatal(err)
	}
	for name := range doc.Components.Schemas {
		schemaFor(t, name)
	}
}

// schemaFor compiles components.schemas.<name> of openapi.json.
func schemaFor(t *testing.T, name string) *jsonschema.Schema {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(openapiDoc))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	const url = "mem:///openapi.json"
	if err := c.AddResource(url, v); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(url + "#/components/schemas/" + name)
	if err != nil {
		t.Fatalf("schema %s: %v", name, err)
	}
	return s
}

// conforms fails the test unless raw (a JSON answer) matches the schema.
func conforms(t *testing.T, name string, raw []byte) {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("%s: not JSON: %v\n%s", name, err, raw)
	}
	if err := schemaFor(t, name).Validate(v); err != nil {
		t.Errorf("answer does not match schema %s: %v\n%s", name, err, raw)
	}
}

// TestAnswersMatchTheDocument checks real answers against the document's schemas.
func TestAnswersMatchTheDocument(t *testing.T) {
	e := newTestEnv(t)
	created := e.must(http.StatusCreated, req{method: "POST", path: "/api/v1/tenants", key: testAdminKey, body: map[string]any{"name": "acme", "quotas": map[string]any{"max_integrations": 3}}})
	conforms(t, "TenantCreated", created.raw)
	key := created.str("api_key")
	conforms(t, "Tenant", e.must(http.StatusOK, req{method: "GET", path: "/api/v1/tenants/acme", key: key}).raw)
	conforms(t, "KeyCreated", e.must(http.StatusCreated, req{method: "POST", path: "/api/v1/tenants/acme/keys", key: key}).raw)
	in := e.createIntegration(key, webhookSpec("orders", "orders", "http://127.0.0.1:1/"))
	conforms(t, "Integration", in.raw)
	conforms(t, "Integration", e.must(http.StatusOK, req{method: "POST", path: "/api/v1/integrations/orders/start", key: key}).raw)
	hook := e.must(http.StatusAccepted, req{method: "POST", path: "/hooks/acme/orders", body: `{"a":1}`, contentType: "application/json"})
	conforms(t, "HookAccepted", hook.raw)
	conforms(t, "Integration", e.must(http.StatusOK, req{method: "GET", path: "/api/v1/integrations/orders", key: key}).raw)
	conforms(t, "Error", e.must(http.StatusNotFound, req{method: "GET", path: "/api/v1/integrations/nothing", key: key}).raw)
	conforms(t, "Error", e.must(http.StatusBadRequest, req{method: "POST", path: "/api/v1/integrations", key: key, contentType: "application/yaml", body: "name: x\n"}).raw)
	conforms(t, "Connector", e.must(http.StatusOK, req{method: "GET", path: "/api/v1/connectors/http", key: key}).raw)
	conforms(t, "Ready", e.must(http.StatusOK, req{method: "GET", path: "/readyz"}).raw)
	conforms(t, "Health", e.must(http.StatusOK, req{method: "GET", path: "/healthz"}).raw)
}

package apidoc

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite docs/api.md from api/openapi.json")

const (
	specPath = "../../api/openapi.json"
	refPath  = "../../docs/api.md"
)

// TestAPIReference fails when docs/api.md is not what the current
// api/openapi.json renders to; `make docs` regenerates it.
func TestAPIReference(t *testing.T) {
	spec, err := os.ReadFile(specPath)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Render(spec)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(refPath, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(refPath)
	if err != nil {
		t.Fatalf("%v: run `make docs` to generate the API reference", err)
	}
	if !bytes.Equal(got, want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		for i := 0; i < len(gl) || i < len(wl); i++ {
			var g, w string
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Fatalf("docs/api.md is stale (first difference at line %d):\n  docs/api.md: %q\n  generated:   %q\nrun `make docs` and commit docs/api.md", i+1, w, g)
			}
		}
	}
}

// TestRenderCoversDocument: every operation and every component schema of
// the real document has its heading, and every operation's responses are
// listed.
func TestRenderCoversDocument(t *testing.T) {
	spec, err := os.ReadFile(specPath)
	if err != nil {
		t.Fatal(err)
	}
	out, err := Render(spec)
	if err != nil {
		t.Fatal(err)
	}
	var doc document
	if err := json.Unmarshal(spec, &doc); err != nil {
		t.Fatal(err)
	}
	text := string(out)
	ops := 0
	for path, item := range doc.Paths {
		for _, m := range methodOrder {
			if _, ok := item[m]; ok {
				ops++
				h := "### " + strings.ToUpper(m) + " `" + path + "`"
				if !strings.Contains(text, h) {
					t.Errorf("no heading %q", h)
				}
			}
		}
	}
	if ops < 20 {
		t.Fatalf("only %d operations in %s", ops, specPath)
	}
	for n := range doc.Components.Schemas {
		if !strings.Contains(text, "\n### "+n+"\n") {
			t.Errorf("schema %s has no section", n)
		}
	}
}

func TestRender(t *testing.T) {
	tests := []struct {
		name    string
		spec    string
		want    []string // substrings of the output
		wantErr string
	}{
		{
			name: "operation with shared parameter, body and responses",
			spec: `{"info":{"title":"T","version":"1"},"tags":[{"name":"things","description":"Things."}],
			  "paths":{"/things/{id}":{"parameters":[{"$ref":"#/components/parameters/Id"}],
			    "put":{"operationId":"putThing","tags":["things"],"summary":"Put a thing. More words.",
			      "requestBody":{"required":true,"content":{"application/json":{"schema":{"$ref":"#/components/schemas/Thing"}}}},
			      "responses":{"200":{"description":"OK.","content":{"application/json":{"schema":{"$ref":"#/components/schemas/Thing"}}}},
			                   "400":{"$ref":"#/components/responses/Bad"}}}}},
			  "components":{"parameters":{"Id":{"name":"id","in":"path","required":true,"schema":{"type":"string"},"description":"The | id."}},
			    "responses":{"Bad":{"description":"Bad input."}},
			    "schemas":{"Thing":{"type":"object","required":["n"],"properties":{
			      "n":{"type":"integer","minimum":0,"description":"A count."},
			      "kind":{"type":"string","enum":["a","b"],"default":"a"},
			      "tags":{"type":"array","items":{"type":"string"}},
			      "meta":{"type":"object","properties":{"at":{"type":"string","format":"date-time"}}}}}}}}`,
			want: []string{
				"| PUT | [`/things/{id}`](#putthing) | Put a thing. |",
				"## Things\n\nThings.\n",
				"### PUT `/things/{id}`",
				"| `id` | path | string | yes | The \\| id. |",
				"**Request body** (required): `application/json` [Thing](#schema-thing)",
				"| 400 | Bad input. | — |",
				"| `n` | integer, ≥ 0 | yes | A count. |",
				"| `kind` | one of `a`, `b` |  | Default `a`. |",
				"| `tags` | array of string |  |  |",
				"| `meta.at` | string (date-time) |  |  |",
			},
		},
		{
			name:    "unknown response reference",
			spec:    `{"paths":{"/x":{"get":{"responses":{"404":{"$ref":"#/components/responses/Nope"}}}}}}`,
			wantErr: "unknown #/components/responses/Nope",
		},
		{
			name:    "unknown parameter reference",
			spec:    `{"paths":{"/x":{"get":{"parameters":[{"$ref":"#/components/parameters/Nope"}],"responses":{}}}}}`,
			wantErr: "unknown parameter #/components/parameters/Nope",
		},
		{
			name:    "not JSON",
			spec:    `openapi: 3.1.0`,
			wantErr: "decode the OpenAPI document",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := Render([]byte(tt.spec))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

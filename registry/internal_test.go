package registry

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestCompareSemver(t *testing.T) {
	// Each is lower than the next (semver.org §11).
	order := []string{"not-semver", "0.9.0", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta",
		"1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.2.0", "1.10.0", "2.0.0"}
	for i := range order {
		for j := range order {
			got := compareSemver(order[i], order[j])
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got != want {
				t.Errorf("compare(%s, %s) = %d, want %d", order[i], order[j], got, want)
			}
		}
	}
	for _, bad := range []string{"1", "1.0", "01.0.0", "1.0.0+build", "1.0.0-", "1.0.0-a..b", "v1.0.0", "1.0.x"} {
		if _, err := parseSemver(bad); err == nil {
			t.Errorf("parseSemver(%q) accepted it", bad)
		}
	}
}

func TestParseManifest(t *testing.T) {
	good := "name: ok-name\nversion: 1.0.0\nkind: step\ndescription: d\nabi: 1\nconfig_schema: {type: object}\n"
	m, err := ParseManifest([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if m.Visibility != "private" || m.Example != nil {
		t.Errorf("defaults: %+v", m)
	}
	cases := []struct{ name, doc, field, has string }{
		{"empty", "", "", "empty"},
		{"not yaml", ":\n- [", "", "not valid YAML"},
		{"a list", "- 1\n", "", "must be an object"},
		{"unknown field", good + "colour: red\n", "colour", "unknown field"},
		{"unknown capability", good + "capabilities: {files: true}\n", "capabilities.files", "unknown field"},
		{"unknown example field", good + "example: {input: x, expect: y}\n", "example.expect", "unknown field"},
		{"no name", strings.Replace(good, "name: ok-name\n", "", 1), "name", "required"},
		{"no version", strings.Replace(good, "version: 1.0.0\n", "", 1), "version", "required"},
		{"no kind", strings.Replace(good, "kind: step\n", "", 1), "kind", "required"},
		{"bad kind", strings.Replace(good, "kind: step", "kind: pipe", 1), "kind", "source, step or sink"},
		{"no description", strings.Replace(good, "description: d\n", "", 1), "description", "required"},
		{"abi 2", strings.Replace(good, "abi: 1", "abi: 2", 1), "abi", "ABI 2"},
		{"no schema", strings.Replace(good, "config_schema: {type: object}\n", "", 1), "config_schema", "required"},
		{"bad tag", good + "tags: [Has Space]\n", "tags[0]", "lower-case"},
		{"bad host", good + "capabilities: {http_hosts: ['http://x.example']}\n", "capabilities.http_hosts[0]", "host name"},
		{"bad visibility", good + "visibility: everyone\n", "visibility", "public or private"},
		{"bad example status", good + "example: {input: x, status: maybe}\n", "example.status", "ok, drop or permanent"},
		{"output with drop", good + "example: {input: x, status: drop, output: ['z']}\n", "example.output", "status ok only"},
		{"tags not a list", good + "tags: json\n", "tags", "must be a []string"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseManifest([]byte(c.doc))
			fe, ok := err.(*FieldError)
			if !ok || fe.Field != c.field || !strings.Contains(fe.Reason, c.has) {
				t.Errorf("got %v (%#v), want field %q with %q", err, err, c.field, c.has)
			}
		})
	}
}

// TestShippedManifestsParse: the manifests that ship parse as registry
// manifests too (the catalogue reads them).
func TestShippedManifestsParse(t *testing.T) {
	paths, _ := filepath.Glob("../wasm-connectors/*/vrsky-connector.yaml")
	if len(paths) < 5 {
		t.Fatalf("found %d shipped manifests", len(paths))
	}
	for _, p := range paths {
		doc, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseManifest(doc); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}

func TestImports(t *testing.T) {
	b, err := os.ReadFile("testdata/kv.wasm")
	if err != nil {
		t.Fatal(err)
	}
	ims, err := imports(b)
	if err != nil || !slices.Equal(ims, []funcImport{{"vrsky", "kv_get"}}) {
		t.Fatalf("imports = %v, %v", ims, err)
	}
	for _, bad := range [][]byte{nil, []byte("\x00asm"), append([]byte("\x00asm\x01\x00\x00\x00"), 2, 0xff, 0xff, 0xff, 0xff, 0x0f)} {
		if _, err := imports(bad); err == nil {
			t.Errorf("imports(%q) accepted it", bad)
		}
	}
}

// FuzzImports: the import reader never panics or over-reads, whatever the
// bytes.
func FuzzImports(f *testing.F) {
	for _, n := range []string{"wrap", "trap", "forbidden", "kv", "noprocess", "broken"} {
		b, err := os.ReadFile("testdata/" + n + ".wasm")
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ims, err := imports(b)
		if err == nil {
			for _, im := range ims {
				if len(im.Module)+len(im.Name) > len(b) {
					t.Fatalf("import %v longer than the input", im)
				}
			}
		}
	})
}

// FuzzParseManifest: any document parses or fails with a *FieldError.
func FuzzParseManifest(f *testing.F) {
	f.Add([]byte("name: ok-name\nversion: 1.0.0\nkind: step\ndescription: d\nabi: 1\nconfig_schema: {type: object}\n"))
	f.Add([]byte("{\"name\": 1}"))
	f.Add([]byte("example: {input: x}"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		m, err := ParseManifest(doc)
		if err != nil {
			if _, ok := err.(*FieldError); !ok {
				t.Fatalf("error %T: %v", err, err)
			}
			return
		}
		if m.Name == "" || m.Version == "" || m.Visibility == "" {
			t.Fatalf("accepted %+v", m)
		}
	})
}

package registry_test

import (
	"testing"

	"github.com/vrsky/vrsky/registry"
)

// TestManifestYAML12: a manifest is read as YAML 1.2, like a spec: n, y,
// yes and off stay strings in the example's config and in the schema's
// enums, and true stays a boolean.
func TestManifestYAML12(t *testing.T) {
	doc := "name: sep\nversion: 1.0.0\nkind: step\nabi: 1\ndescription: d\ncapabilities: {}\n" +
		"config_schema: {type: object, properties: {sep: {enum: [y, n, yes, off]}, on: {type: boolean}}}\n" +
		"example: {input: x, config: {sep: n, on: true}}\n"
	m, err := registry.ParseManifest([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(m.Example.Config), `{"on":true,"sep":"n"}`; got != want {
		t.Errorf("example config %s, want %s", got, want)
	}
	if got, want := string(m.ConfigSchema), `{"properties":{"on":{"type":"boolean"},"sep":{"enum":["y","n","yes","off"]}},"type":"object"}`; got != want {
		t.Errorf("config schema %s, want %s", got, want)
	}
}

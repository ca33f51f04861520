package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/vrsky/vrsky/host"
	"github.com/vrsky/vrsky/platform/store"
	"github.com/vrsky/vrsky/platform/yamljson"
)

// ManifestFile is the manifest's file name in a connector's folder.
const ManifestFile = "vrsky-connector.yaml"

// Manifest is a connector's vrsky-connector.yaml.
type Manifest struct {
	// Name is the connector's name in integration specs: lower-case
	// letters, digits and '-', 2..63 characters, starting with a letter.
	Name string `json:"name"`
	// Version is a semantic version (1.2.3, 1.2.3-beta.1).
	Version string `json:"version"`
	// Kind is where it goes in a pipeline: source, step or sink. Only
	// step can be uploaded (the host runs Wasm steps only).
	Kind string `json:"kind"`
	// Category refines Kind for the catalogue: converter, filter, ….
	Category string `json:"category,omitempty"`
	// Description is one line (or a short paragraph) for the catalogue.
	Description string `json:"description"`
	// Author is who wrote it: a name, an e-mail address.
	Author string `json:"author,omitempty"`
	// License is an SPDX identifier (Apache-2.0, MIT, …).
	License string `json:"license,omitempty"`
	// Tags help find it in the catalogue.
	Tags []string `json:"tags,omitempty"`
	// Icon is a URL or a data: URI of an icon.
	Icon string `json:"icon,omitempty"`
	// ABI is the host ABI version the module speaks: 1.
	ABI int `json:"abi"`
	// Capabilities are what the module may use beyond its messages.
	Capabilities Capabilities `json:"capabilities"`
	// ConfigSchema is the JSON Schema of the step's config.
	ConfigSchema json.RawMessage `json:"config_schema"`
	// Visibility is public (every tenant sees it) or private (only the
	// uploading tenant; the default).
	Visibility string `json:"visibility,omitempty"`
	// Example, when set, is run in the sandbox at upload (the smoke run).
	Example *Example `json:"example,omitempty"`
}

// Capabilities is the manifest's capabilities section.
type Capabilities struct {
	// NATS allows publish and request on the tenant's guest subjects
	// (vrsky.<tenant>._app.> and vrsky.<tenant>.<token>; the host refuses
	// any other subject, the platform's streams among them).
	NATS bool `json:"nats,omitempty"`
	// Objects allows object store get/put by reference.
	Objects bool `json:"objects,omitempty"`
	// KV allows the integration's key-value store.
	KV bool `json:"kv,omitempty"`
	// HTTPHosts lists the hosts HTTP calls may reach.
	HTTPHosts []string `json:"http_hosts,omitempty"`
	// WASIFileStubs links unused WASI file/socket imports to failing stubs.
	WASIFileStubs bool `json:"wasi_file_stubs,omitempty"`
}

// Example is one message the smoke run feeds the module, and what it must
// make of it.
type Example struct {
	// Config is the step's config for the run (default {}).
	Config json.RawMessage `json:"config,omitempty"`
	// Input is the message's payload.
	Input string `json:"input"`
	// Headers are the message's headers.
	Headers map[string]string `json:"headers,omitempty"`
	// Status is the outcome expected: ok (default), drop or permanent.
	Status string `json:"status,omitempty"`
	// Output, when set, lists the exact payloads expected (status ok).
	Output []string `json:"output,omitempty"`
}

// FieldError is a manifest that failed a check; Field names what to fix
// ("version", "capabilities.http_hosts[0]").
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return "manifest: " + e.Reason
	}
	return fmt.Sprintf("manifest: %s: %s", e.Field, e.Reason)
}

func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

var (
	nameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{1,62}$`)
	tagRE  = regexp.MustCompile(`^[a-z0-9][a-z0-9.+-]{0,31}$`)
)

// ParseManifest reads a manifest from YAML or JSON. It rejects unknown
// fields and checks every field; the error is a *FieldError naming it.
func ParseManifest(doc []byte) (*Manifest, error) {
	if len(bytes.TrimSpace(doc)) == 0 {
		return nil, fieldErr("", "the manifest is empty")
	}
	js, err := yamljson.ToJSON(doc)
	if err != nil {
		return nil, fieldErr("", "not valid YAML or JSON: %v", err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(js, &top); err != nil {
		return nil, fieldErr("", "the manifest must be an object")
	}
	if err := knownFields("", top, Manifest{}); err != nil {
		return nil, err
	}
	for _, sub := range []struct {
		key string
		v   any
	}{{"capabilities", Capabilities{}}, {"example", Example{}}} {
		raw, ok := top[sub.key]
		if !ok || string(raw) == "null" {
			continue
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, fieldErr(sub.key, "must be an object")
		}
		if err := knownFields(sub.key+".", m, sub.v); err != nil {
			return nil, err
		}
	}
	var m Manifest
	if err := json.Unmarshal(js, &m); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, fieldErr(te.Field, "must be a %s, not %s", te.Type, te.Value)
		}
		return nil, fieldErr("", "%v", err)
	}
	if err := m.check(); err != nil {
		return nil, err
	}
	return &m, nil
}

// knownFields refuses keys of m that are not JSON fields of the struct v.
func knownFields(prefix string, m map[string]json.RawMessage, v any) error {
	known := jsonFields(v)
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !known[k] {
			return fieldErr(prefix+k, "unknown field")
		}
	}
	return nil
}

func (m *Manifest) check() error {
	switch {
	case m.Name == "":
		return fieldErr("name", "is required")
	case !nameRE.MatchString(m.Name):
		return fieldErr("name", "%q must be 2..63 lower-case letters, digits and '-', starting with a letter", m.Name)
	case m.Version == "":
		return fieldErr("version", "is required")
	}
	if _, err := parseSemver(m.Version); err != nil {
		return fieldErr("version", "%v", err)
	}
	switch m.Kind {
	case "source", "step", "sink":
	case "":
		return fieldErr("kind", "is required (source, step or sink)")
	default:
		return fieldErr("kind", "%q must be source, step or sink", m.Kind)
	}
	if strings.TrimSpace(m.Description) == "" {
		return fieldErr("description", "is required")
	}
	if m.ABI != 1 {
		return fieldErr("abi", "ABI %d is not supported: this host speaks ABI 1", m.ABI)
	}
	if len(m.ConfigSchema) == 0 || string(m.ConfigSchema) == "null" {
		return fieldErr("config_schema", "is required (a JSON Schema; {type: object} accepts any config)")
	}
	for i, t := range m.Tags {
		if !tagRE.MatchString(t) {
			return fieldErr(fmt.Sprintf("tags[%d]", i), "%q must be 1..32 lower-case letters, digits, '.', '+' or '-'", t)
		}
	}
	for i, h := range m.Capabilities.HTTPHosts {
		if h == "" || strings.ContainsAny(h, "/ ?#@") {
			return fieldErr(fmt.Sprintf("capabilities.http_hosts[%d]", i), "%q must be a host name, host:port or *.domain", h)
		}
	}
	switch m.Visibility {
	case "":
		m.Visibility = store.VisibilityPrivate
	case store.VisibilityPrivate, store.VisibilityPublic:
	default:
		return fieldErr("visibility", "%q must be public or private", m.Visibility)
	}
	if ex := m.Example; ex != nil {
		switch ex.Status {
		case "":
			ex.Status = "ok"
		case "ok", "drop", "permanent":
		default:
			return fieldErr("example.status", "%q must be ok, drop or permanent", ex.Status)
		}
		if len(ex.Output) > 0 && ex.Status != "ok" {
			return fieldErr("example.output", "outputs are expected with status ok only")
		}
		if len(ex.Config) > 0 && !json.Valid(ex.Config) {
			return fieldErr("example.config", "not valid JSON")
		}
	}
	return nil
}

// HostCapabilities converts the capabilities for host.ModuleSpec.
func (m *Manifest) HostCapabilities() host.Capabilities {
	c := m.Capabilities
	return host.Capabilities{NATS: c.NATS, Objects: c.Objects, KV: c.KV, HTTPHosts: c.HTTPHosts}
}

// ModuleSpec is the spec to load the manifest's module with (untrusted).
func (m *Manifest) ModuleSpec(wasm []byte) host.ModuleSpec {
	return host.ModuleSpec{Name: m.Name, Version: m.Version, Wasm: wasm,
		Capabilities: m.HostCapabilities(), StubWASIFiles: m.Capabilities.WASIFileStubs}
}

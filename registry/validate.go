package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/vrsky/vrsky/abi"
	"github.com/vrsky/vrsky/host"
	"github.com/vrsky/vrsky/host/wasmcheck"
	"github.com/vrsky/vrsky/platform/schema"
)

// funcImport is one imported function.
type funcImport struct{ Module, Name string }

// imports lists the function imports of a Wasm binary, as the host's
// structure check (which Publish has passed already) reads them.
func imports(b []byte) ([]funcImport, error) {
	info, err := wasmcheck.Check(b, wasmcheck.DefaultLimits())
	if err != nil {
		return nil, err
	}
	var out []funcImport
	for _, im := range info.Imports {
		if im.Kind == 0 {
			out = append(out, funcImport{im.Module, im.Name})
		}
	}
	return out, nil
}

// capabilityOf names the manifest capability an import needs ("" when it
// needs none). The host has already refused imports outside the ABI.
func capabilityOf(im funcImport) string {
	switch im.Module {
	case abi.ModuleName:
		switch {
		case strings.HasPrefix(im.Name, "nats_"):
			return "nats"
		case strings.HasPrefix(im.Name, "object_"):
			return "objects"
		case strings.HasPrefix(im.Name, "kv_"):
			return "kv"
		case im.Name == abi.FnHTTPRequest:
			return "http_hosts"
		}
	case abi.ExtismUserModule:
		switch {
		case strings.HasPrefix(im.Name, "vrsky_nats_"):
			return "nats"
		case strings.HasPrefix(im.Name, "vrsky_kv_"):
			return "kv"
		}
	case abi.ExtismEnvModule:
		if im.Name == "http_request" {
			return "http_hosts"
		}
	}
	return ""
}

// checkCapabilities refuses a module that imports host functions its
// manifest does not ask for: a module's capabilities are what it says,
// so that reviewers and the catalogue can trust the manifest.
func checkCapabilities(wasm []byte, c Capabilities) error {
	ims, err := imports(wasm)
	if err != nil {
		return refuse(RuleCompile, "module", "the module does not parse: %v", err)
	}
	granted := map[string]bool{"nats": c.NATS, "objects": c.Objects, "kv": c.KV, "http_hosts": len(c.HTTPHosts) > 0}
	var missing []string
	for _, im := range ims {
		if cap := capabilityOf(im); cap != "" && !granted[cap] {
			missing = append(missing, fmt.Sprintf("%s.%s needs capabilities.%s", im.Module, im.Name, cap))
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		missing = slices.Compact(missing)
		return refuse(RuleCapabilities, "manifest.capabilities",
			"imports not covered by the manifest's capabilities: %s", strings.Join(missing, "; "))
	}
	return nil
}

// checkSchema compiles a config schema (against its meta-schema).
func checkSchema(doc json.RawMessage) error {
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		return err
	}
	if _, ok := v.(map[string]any); !ok {
		if _, isBool := v.(bool); !isBool {
			return fmt.Errorf("a schema is an object (or a boolean), not %s", strings.TrimSpace(string(doc)))
		}
	}
	_, err := schema.Compile("config_schema", doc)
	return err
}

// smoke runs the manifest's example through the module in the sandbox:
// no capability backends (their calls answer unavailable), the untrusted
// runtime's deadline, one instance.
func (r *Registry) smoke(ctx context.Context, mod *host.Module, m *Manifest) error {
	ex := m.Example
	cfg := ex.Config
	if len(cfg) == 0 {
		cfg = json.RawMessage("{}")
	}
	s, err := schema.Compile(m.Name, m.ConfigSchema)
	if err != nil {
		return refuse(RuleSchema, "manifest.config_schema", "not a valid JSON Schema: %v", err)
	}
	var doc any
	if err := json.Unmarshal(cfg, &doc); err != nil {
		return refuse(RuleSmoke, "manifest.example.config", "not valid JSON: %v", err)
	}
	if fe := s.Validate(doc, "example.config"); fe != nil {
		return refuse(RuleSmoke, "manifest."+fe.Field, "the example's config fails the config schema: %s", fe.Reason)
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.SmokeTimeout)
	defer cancel()
	pool, err := mod.NewPool(host.PoolConfig{
		Config: cfg, Tenant: "vrsky-smoke", Integration: "smoke",
		Limits: host.Limits{Timeout: r.cfg.SmokeTimeout, InitTimeout: r.cfg.SmokeTimeout, MaxInstances: 1},
	})
	if err != nil {
		return refuse(RuleSmoke, "manifest.example", "the smoke run could not start: %v", err)
	}
	defer pool.Close()
	hdr := map[string][]string{}
	for k, v := range ex.Headers {
		hdr[http.CanonicalHeaderKey(k)] = []string{v}
	}
	res, err := pool.Process(ctx, []host.Message{{ID: "smoke-1", Headers: hdr, Data: []byte(ex.Input)}})
	if err != nil {
		return refuse(RuleSmoke, "manifest.example", "the smoke run failed: %v", err)
	}
	got := res[0]
	want := map[string]host.Status{"ok": host.StatusOK, "drop": host.StatusDrop, "permanent": host.StatusPermanent}[ex.Status]
	status := func(s host.Status) string {
		switch s {
		case host.StatusOK:
			return "ok"
		case host.StatusDrop:
			return "drop"
		case host.StatusPermanent:
			return "permanent"
		default:
			return "retryable"
		}
	}
	if got.Status != want {
		msg := ""
		if got.Error != "" {
			msg = ": " + got.Error
		}
		return refuse(RuleSmoke, "manifest.example",
			"the example ended %s, the manifest expects %s%s", status(got.Status), ex.Status, msg)
	}
	if len(ex.Output) > 0 {
		outs := make([]string, len(got.Out))
		for i, o := range got.Out {
			outs[i] = string(o.Data)
		}
		if !slices.Equal(outs, ex.Output) {
			return refuse(RuleSmoke, "manifest.example.output",
				"the example's outputs are %q, the manifest expects %q", outs, ex.Output)
		}
	}
	return nil
}

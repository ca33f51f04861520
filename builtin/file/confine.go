package file

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/vrsky/vrsky/runtime/connector"
)

// Confined returns the file source and sink confined to root: each
// tenant's `dir` (and the source's processed_dir and failed_dir) must be
// relative paths, and are read as root/<tenant>/<dir>. A multi-tenant
// server must confine them — otherwise a tenant could read, move or
// overwrite any file vrsky can reach. The tenant's folder is created when
// an integration is checked.
func Confined(root string) (source, sink connector.Connector) {
	return confine(Source, root, "dir", "processed_dir", "failed_dir"), confine(Sink, root, "dir")
}

func confine(c connector.Connector, root string, fields ...string) connector.Connector {
	rewrite := func(cfg json.RawMessage, env connector.Env) (json.RawMessage, error) {
		return confineConfig(cfg, filepath.Join(root, env.Tenant), fields)
	}
	c.Description += " Paths are relative to the tenant's file area on the server."
	newSource, newSink, check := c.NewSource, c.NewSink, c.Check
	if newSource != nil {
		c.NewSource = func(cfg json.RawMessage, env connector.Env) (connector.Source, error) {
			cfg, err := rewrite(cfg, env)
			if err != nil {
				return nil, err
			}
			src, err := newSource(cfg, env)
			if s, ok := src.(*source); ok {
				s.base = filepath.Join(root, env.Tenant)
			}
			return src, err
		}
	}
	if newSink != nil {
		c.NewSink = func(cfg json.RawMessage, env connector.Env) (connector.Sink, error) {
			cfg, err := rewrite(cfg, env)
			if err != nil {
				return nil, err
			}
			return newSink(cfg, env)
		}
	}
	c.Check = func(ctx context.Context, cfg json.RawMessage, env connector.Env) error {
		cfg, err := rewrite(cfg, env)
		if err != nil {
			return err
		}
		var dir struct {
			Dir string `json:"dir"`
		}
		if err := json.Unmarshal(cfg, &dir); err == nil && dir.Dir != "" && c.Kind == connector.KindSource {
			if err := os.MkdirAll(dir.Dir, 0o750); err != nil {
				return &connector.SpecError{Field: "dir", Reason: fmt.Sprintf("create the folder: %v", err)}
			}
		}
		if check == nil {
			return nil
		}
		return check(ctx, cfg, env)
	}
	return c
}

// confineConfig rewrites each path field of cfg to lie under base,
// refusing absolute paths and paths that climb out.
func confineConfig(cfg json.RawMessage, base string, fields []string) (json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(cfg, &m); err != nil {
		return nil, fmt.Errorf("file config: %w", err)
	}
	for _, f := range fields {
		raw, ok := m[f]
		if !ok {
			continue
		}
		var p string
		if err := json.Unmarshal(raw, &p); err != nil {
			return nil, &connector.SpecError{Field: f, Reason: "must be a string"}
		}
		if filepath.IsAbs(p) || !filepath.IsLocal(p) {
			return nil, &connector.SpecError{Field: f, Reason: fmt.Sprintf("%q must be a relative path inside the tenant's file area (no leading / and no ..)", p)}
		}
		if f == "dir" { // the others are relative to dir
			p = filepath.Join(base, p)
		}
		m[f], _ = json.Marshal(p)
	}
	return json.Marshal(m)
}

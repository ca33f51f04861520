package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"
)

// The CLI's config file holds saved contexts: a name for a server's URL,
// an API key and a tenant, so that `vrsky context use prod` replaces three
// flags. It holds keys, so it is written with mode 0600 (and a warning
// says so when it is readable by others).
//
//	current_context: local
//	contexts:
//	  - {name: local, url: "http://127.0.0.1:8080", api_key: vrsk_..., tenant: acme}

// configEnv names the config file instead of the default location.
const configEnv = "VRSKY_CONFIG"

// cliConfig is the config file's content.
type cliConfig struct {
	// CurrentContext names the context client commands use when neither
	// --context nor VRSKY_CONTEXT names one; empty uses none.
	CurrentContext string `json:"current_context,omitempty"`
	// Contexts are the saved contexts, in the order they were added.
	Contexts []savedContext `json:"contexts"`
}

// savedContext is one server and the credentials to use there.
type savedContext struct {
	// Name identifies the context (vrsky context use NAME).
	Name string `json:"name"`
	// URL is the VRSky API's base URL.
	URL string `json:"url"`
	// APIKey is the admin key or a tenant's key; empty sends none.
	APIKey string `json:"api_key,omitempty"`
	// Tenant is the tenant the admin key acts on (?tenant=); empty for
	// a tenant's own key.
	Tenant string `json:"tenant,omitempty"`
}

// configPath is $VRSKY_CONFIG, else $XDG_CONFIG_HOME/vrsky/config.yaml,
// else ~/.config/vrsky/config.yaml (the XDG base directory rule, on every
// system).
func configPath() (string, error) {
	if p := getenv(configEnv); p != "" {
		return p, nil
	}
	dir := getenv("XDG_CONFIG_HOME")
	if dir == "" || !filepath.IsAbs(dir) {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("config file: no home directory (set %s or XDG_CONFIG_HOME): %w", configEnv, err)
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "vrsky", "config.yaml"), nil
}

// loadConfig reads the config file; a missing one is an empty config.
// Warnings (a file others can read) go to warn.
func loadConfig(warn io.Writer) (*cliConfig, string, error) {
	path, err := configPath()
	if err != nil {
		return nil, "", err
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &cliConfig{}, path, nil
	}
	if err != nil {
		return nil, path, fmt.Errorf("config file: %w", err)
	}
	if st, err := os.Stat(path); err == nil && st.Mode().Perm()&0o077 != 0 {
		fmt.Fprintf(warn, "warning: %s holds API keys and is readable by others (mode %04o): chmod 600 %s\n", path, st.Mode().Perm(), path)
	}
	var c cliConfig
	if err := yaml.UnmarshalStrict(b, &c); err != nil {
		return nil, path, fmt.Errorf("config file %s: %w (fix it, or remove it and add the contexts again)", path, err)
	}
	return &c, path, nil
}

// save writes the config to path atomically, mode 0600, its directory
// 0700 when it creates it.
func (c *cliConfig) save(path string) error {
	b, err := yaml.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode config: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".config-*.yaml")
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename, there is nothing to remove
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("config file: %w", err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("config file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	return nil
}

// find returns the context called name.
func (c *cliConfig) find(name string) (*savedContext, bool) {
	i := slices.IndexFunc(c.Contexts, func(x savedContext) bool { return x.Name == name })
	if i < 0 {
		return nil, false
	}
	return &c.Contexts[i], true
}

// names lists the contexts' names.
func (c *cliConfig) names() []string {
	out := make([]string, 0, len(c.Contexts))
	for _, x := range c.Contexts {
		out = append(out, x.Name)
	}
	return out
}

// maskKey shows enough of an API key to tell keys apart and none of its
// secret: a tenant key's public id (vrsk_<id>_…), else its first
// characters.
func maskKey(k string) string {
	if k == "" {
		return ""
	}
	if rest, ok := strings.CutPrefix(k, "vrsk_"); ok {
		if id, _, ok := strings.Cut(rest, "_"); ok && len(id) == 16 {
			return "vrsk_" + id + "_…"
		}
	}
	if len(k) > 8 {
		return k[:4] + "…"
	}
	return "…"
}

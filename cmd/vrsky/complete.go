package main

import (
	"encoding/json"
	"io"
	"net/http"
	"time"

	"github.com/spf13/cobra"
)

// Shell completion of names (cobra's ValidArgsFunction): the completing
// command asks the API with the settings the command line gives (flags,
// environment, context), briefly, and offers nothing when that fails: a
// completion never prints an error into the user's shell.

// completeTimeout bounds the API requests behind one completion.
const completeTimeout = 3 * time.Second

// names asks the API for the names a completion offers: the field name of
// each item of the list at key in GET path's answer, with desc's text as
// the description.
func (o *clientOptions) names(cmd *cobra.Command, path, key string, desc func(map[string]any) string) []string {
	s, err := o.resolve(io.Discard)
	if err != nil {
		return nil
	}
	c := &client{base: s.url, key: s.apiKey, tenant: s.tenant, http: &http.Client{Timeout: completeTimeout}}
	var page map[string]json.RawMessage
	if err := c.do(http.MethodGet, path, "", nil, &page); err != nil {
		return nil
	}
	var items []map[string]any
	if json.Unmarshal(page[key], &items) != nil {
		return nil
	}
	var out []string
	for _, item := range items {
		name, _ := item["name"].(string)
		if key == "items" || key == "keys" {
			name, _ = item["id"].(string)
		}
		if name == "" {
			continue
		}
		if d := desc(item); d != "" {
			name += "\t" + d
		}
		out = append(out, name)
	}
	return out
}

func str(m map[string]any, path ...string) string {
	var v any = m
	for _, p := range path {
		mm, _ := v.(map[string]any)
		v = mm[p]
	}
	s, _ := v.(string)
	return s
}

// completeIntegrations completes the first argument with the tenant's
// integrations.
func (o *clientOptions) completeIntegrations(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return o.completeIntegrationFlag(cmd, args, toComplete)
}

// completeIntegrationFlag completes a flag's value with the tenant's
// integrations.
func (o *clientOptions) completeIntegrationFlag(cmd *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
	return o.names(cmd, "/api/v1/integrations", "integrations", func(m map[string]any) string { return str(m, "status", "state") }), cobra.ShellCompDirectiveNoFileComp
}

// completeDeadLetters completes INTEGRATION, then its dead letters' ids.
func (o *clientOptions) completeDeadLetters(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) == 0 {
		return o.completeIntegrations(cmd, args, toComplete)
	}
	if len(args) > 1 && cmd.Name() == "show" {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return o.names(cmd, dlqPath(args[0])+"?limit=100", "items", func(m map[string]any) string { return str(m, "stage") }), cobra.ShellCompDirectiveNoFileComp
}

// completeTenants completes the first argument with the tenants (admin key).
func (o *clientOptions) completeTenants(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return o.names(cmd, "/api/v1/tenants", "tenants", func(m map[string]any) string { return str(m, "display_name") }), cobra.ShellCompDirectiveNoFileComp
}

// completeKeys completes with the ids of the tenant's keys.
func (o *clientOptions) completeKeys(cmd *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
	s, err := o.resolve(io.Discard)
	if err != nil || s.tenant == "" {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return o.names(cmd, tenantPath(s.tenant)+"/keys", "keys", func(m map[string]any) string { return str(m, "name") }), cobra.ShellCompDirectiveNoFileComp
}

// completeConnectors completes the first argument with the catalogue's
// connectors; withVersion offers NAME@LATEST (pull wants a version).
func (o *clientOptions) completeConnectors(withVersion bool) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		s, err := o.resolve(io.Discard)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		c := &client{base: s.url, key: s.apiKey, tenant: s.tenant, http: &http.Client{Timeout: completeTimeout}}
		var page struct {
			Connectors []struct {
				Name    string `json:"name"`
				Version string `json:"version"`
				Kind    string `json:"kind"`
				Origin  string `json:"origin"`
			} `json:"connectors"`
		}
		if err := c.do(http.MethodGet, "/api/v1/connectors?limit=500", "", nil, &page); err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		seen := map[string]bool{}
		var out []string
		for _, x := range page.Connectors {
			name := x.Name
			if withVersion {
				if x.Version == "" || x.Origin == "builtin" {
					continue // built-ins have no module to pull
				}
				name += "@" + x.Version
			}
			if seen[name] {
				continue // a source and a sink of one name
			}
			seen[name] = true
			out = append(out, name+"\t"+x.Kind)
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// completeContexts completes with the saved contexts' names.
func completeContexts(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	cfg, _, err := loadConfig(io.Discard)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return cfg.names(), cobra.ShellCompDirectiveNoFileComp
}

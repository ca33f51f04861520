package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/vrsky/vrsky/platform/store"
)

// tenantCreated is the API's answer to a tenant create.
type tenantCreated struct {
	store.Tenant
	APIKey string `json:"api_key"`
	KeyID  string `json:"key_id"`
}

// keyView is a key as the API shows it.
type keyView struct {
	ID        string    `json:"id"`
	Tenant    string    `json:"tenant"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	APIKey    string    `json:"api_key"`
}

func tenantPath(name string) string { return "/api/v1/tenants/" + url.PathEscape(name) }

// quotaOr shows a quota, or "-" for the platform default (zero).
func quotaOr[T int | int64](n T) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprint(n)
}

func tenantHeader(t *table) {
	t.row("NAME", "DISPLAY-NAME", "MAX-INTEGRATIONS", "MAX-MSGS/S", "MAX-STORAGE-BYTES", "AGE")
}

func tenantRow(t *table, x store.Tenant) {
	q := x.Quotas
	t.row(x.Name, orDash(oneLine(x.DisplayName, 40)), quotaOr(q.MaxIntegrations), quotaOr(q.MaxMessagesPerSecond), quotaOr(q.MaxStorageBytes), age(x.CreatedAt))
}

// tenantFlags are the settable fields of a tenant, for create and update.
type tenantFlags struct {
	displayName string
	quotas      store.Quotas
}

func addTenantFlags(fl *pflag.FlagSet, f *tenantFlags) {
	fl.StringVar(&f.displayName, "display-name", "", "name for humans")
	fl.IntVar(&f.quotas.MaxIntegrations, "max-integrations", 0, "quota: integrations (0: the platform default)")
	fl.IntVar(&f.quotas.MaxMessagesPerSecond, "max-messages-per-second", 0, "quota: ingest rate (0: the platform default)")
	fl.Int64Var(&f.quotas.MaxStorageBytes, "max-storage-bytes", 0, "quota: JetStream storage of the tenant's streams (0: the platform default)")
}

// patch is the PATCH document of the flags that were set.
func (f *tenantFlags) patch(fl *pflag.FlagSet) map[string]any {
	doc, quotas := map[string]any{}, map[string]any{}
	if fl.Changed("display-name") {
		doc["display_name"] = f.displayName
	}
	for flag, v := range map[string]any{
		"max-integrations": f.quotas.MaxIntegrations, "max-messages-per-second": f.quotas.MaxMessagesPerSecond, "max-storage-bytes": f.quotas.MaxStorageBytes,
	} {
		if fl.Changed(flag) {
			quotas[strings.ReplaceAll(flag, "-", "_")] = v
		}
	}
	if len(quotas) > 0 {
		doc["quotas"] = quotas
	}
	return doc
}

func newTenantCmd() *cobra.Command {
	cmd := group(&cobra.Command{Use: "tenant", Aliases: []string{"tenants"}, Short: "Manage tenants (admin key)"})
	opts := addClientFlags(cmd)

	var cf tenantFlags
	create := &cobra.Command{Use: "create NAME", Short: "Create a tenant and print its first API key", Args: cobra.ExactArgs(1)}
	addTenantFlags(create.Flags(), &cf)
	createOut := addOutputFlag(create)
	create.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := opts.client(cmd, requestTimeout)
		if err != nil {
			return err
		}
		body, _ := json.Marshal(map[string]any{"name": args[0], "display_name": cf.displayName, "quotas": cf.quotas})
		var raw json.RawMessage
		if err := c.do(http.MethodPost, "/api/v1/tenants", "application/json", body, &raw); err != nil {
			return err
		}
		return createOut.print(cmd.OutOrStdout(), raw, func(w io.Writer) error {
			var t tenantCreated
			if err := json.Unmarshal(raw, &t); err != nil {
				return fmt.Errorf("tenant: %w", err)
			}
			fmt.Fprintf(w, "tenant/%s created\n", t.Name)
			fmt.Fprintf(w, "API key (shown once, keep it): %s\n", t.APIKey)
			fmt.Fprintf(w, "Use it: vrsky context add %s --url %s --api-key %s && vrsky context use %s\n", t.Name, c.base, t.APIKey, t.Name)
			return nil
		})
	}

	list := &cobra.Command{Use: "list", Short: "List tenants", Args: cobra.NoArgs}
	listOut := addOutputFlag(list)
	list.RunE = func(cmd *cobra.Command, _ []string) error {
		c, err := opts.client(cmd, requestTimeout)
		if err != nil {
			return err
		}
		raw, err := c.getRaw("/api/v1/tenants")
		if err != nil {
			return err
		}
		return listOut.print(cmd.OutOrStdout(), raw, func(w io.Writer) error {
			var page struct {
				Tenants []store.Tenant `json:"tenants"`
			}
			if err := json.Unmarshal(raw, &page); err != nil {
				return fmt.Errorf("tenants: %w", err)
			}
			t := newTable(w)
			tenantHeader(t)
			for _, x := range page.Tenants {
				tenantRow(t, x)
			}
			return t.flush()
		})
	}

	get := &cobra.Command{Use: "get NAME", Short: "Show a tenant and its quotas", Args: cobra.ExactArgs(1), ValidArgsFunction: opts.completeTenants}
	getOut := addOutputFlag(get)
	get.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := opts.client(cmd, requestTimeout)
		if err != nil {
			return err
		}
		raw, err := c.getRaw(tenantPath(args[0]))
		if err != nil {
			return err
		}
		return getOut.print(cmd.OutOrStdout(), raw, tenantTable(raw))
	}

	var uf tenantFlags
	update := &cobra.Command{Use: "update NAME", Short: "Change a tenant's display name or quotas (the flags given; the rest stays)", Args: cobra.ExactArgs(1),
		ValidArgsFunction: opts.completeTenants}
	addTenantFlags(update.Flags(), &uf)
	updateOut := addOutputFlag(update)
	update.RunE = func(cmd *cobra.Command, args []string) error {
		doc := uf.patch(cmd.Flags())
		if len(doc) == 0 {
			return errors.New("nothing to update: pass --display-name, --max-integrations, --max-messages-per-second or --max-storage-bytes")
		}
		c, err := opts.client(cmd, requestTimeout)
		if err != nil {
			return err
		}
		body, _ := json.Marshal(doc)
		var raw json.RawMessage
		if err := c.do(http.MethodPatch, tenantPath(args[0]), "application/json", body, &raw); err != nil {
			return err
		}
		return updateOut.print(cmd.OutOrStdout(), raw, tenantTable(raw))
	}

	var yes bool
	del := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a tenant with its keys, integrations, queued messages and dead letters (asks first, unless --yes)",
		Args:  cobra.ExactArgs(1), ValidArgsFunction: opts.completeTenants,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := opts.client(cmd, requestTimeout)
			if err != nil {
				return err
			}
			name := args[0]
			if !yes {
				if err := c.do(http.MethodGet, tenantPath(name), "", nil, nil); err != nil {
					return err // a tenant that is not there needs no confirmation
				}
				what := "its integrations"
				scoped := *c
				scoped.tenant = name
				var page struct {
					Integrations []json.RawMessage `json:"integrations"`
				}
				if scoped.do(http.MethodGet, "/api/v1/integrations", "", nil, &page) == nil {
					what = "its " + plural(len(page.Integrations), "integration")
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "Delete tenant %q with its keys, %s, their queued messages and dead letters? This cannot be undone. [y/N] ", name, what)
				line, _ := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
					return fmt.Errorf("tenant %q not deleted: not confirmed (--yes deletes without asking)", name)
				}
			}
			if err := c.do(http.MethodDelete, tenantPath(name), "", nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "tenant/%s deleted\n", name)
			return nil
		},
	}
	del.Flags().BoolVarP(&yes, "yes", "y", false, "delete without asking")

	cmd.AddCommand(create, list, get, update, del)
	return cmd
}

// tenantTable prints one tenant's answer as a table.
func tenantTable(raw []byte) func(io.Writer) error {
	return func(w io.Writer) error {
		var x store.Tenant
		if err := json.Unmarshal(raw, &x); err != nil {
			return fmt.Errorf("tenant: %w", err)
		}
		t := newTable(w)
		tenantHeader(t)
		tenantRow(t, x)
		return t.flush()
	}
}

// newKeyCmd is `vrsky key`: a tenant's API keys.
func newKeyCmd() *cobra.Command {
	cmd := group(&cobra.Command{Use: "key", Aliases: []string{"keys"}, Short: "Issue, list and revoke a tenant's API keys",
		Long: "key acts on one tenant: the one --tenant (VRSKY_TENANT, or the context's tenant) names. A tenant's own key manages its own keys; the admin key any tenant's."})
	opts := addClientFlags(cmd)
	// keysPath is the keys route of the tenant the settings name.
	keysPath := func(c *client) (string, error) {
		if c.tenant == "" {
			return "", errors.New("key commands act on one tenant: name it with --tenant (or VRSKY_TENANT, or a context's --tenant)")
		}
		return tenantPath(c.tenant) + "/keys", nil
	}

	var label string
	create := &cobra.Command{Use: "create", Short: "Issue a key and print it (shown once)", Args: cobra.NoArgs}
	create.Flags().StringVar(&label, "name", "", "label for the key (at most 128 characters)")
	createOut := addOutputFlag(create)
	create.RunE = func(cmd *cobra.Command, _ []string) error {
		c, err := opts.client(cmd, requestTimeout)
		if err != nil {
			return err
		}
		path, err := keysPath(c)
		if err != nil {
			return err
		}
		body, _ := json.Marshal(map[string]string{"name": label})
		var raw json.RawMessage
		if err := c.do(http.MethodPost, path, "application/json", body, &raw); err != nil {
			return err
		}
		return createOut.print(cmd.OutOrStdout(), raw, func(w io.Writer) error {
			var k keyView
			if err := json.Unmarshal(raw, &k); err != nil {
				return fmt.Errorf("key: %w", err)
			}
			fmt.Fprintf(w, "key/%s created for tenant %s\n", k.ID, k.Tenant)
			fmt.Fprintf(w, "API key (shown once, keep it): %s\n", k.APIKey)
			return nil
		})
	}

	list := &cobra.Command{Use: "list", Short: "List the tenant's keys (ids and labels; never the keys)", Args: cobra.NoArgs}
	listOut := addOutputFlag(list)
	list.RunE = func(cmd *cobra.Command, _ []string) error {
		c, err := opts.client(cmd, requestTimeout)
		if err != nil {
			return err
		}
		path, err := keysPath(c)
		if err != nil {
			return err
		}
		raw, err := c.getRaw(path)
		if err != nil {
			return err
		}
		return listOut.print(cmd.OutOrStdout(), raw, func(w io.Writer) error {
			var page struct {
				Keys []keyView `json:"keys"`
			}
			if err := json.Unmarshal(raw, &page); err != nil {
				return fmt.Errorf("keys: %w", err)
			}
			t := newTable(w)
			t.row("ID", "NAME", "AGE")
			for _, k := range page.Keys {
				t.row(k.ID, orDash(oneLine(k.Name, 60)), age(k.CreatedAt))
			}
			return t.flush()
		})
	}

	revoke := &cobra.Command{Use: "revoke ID...", Short: "Revoke keys: requests that send them are refused from now on", Args: cobra.MinimumNArgs(1),
		ValidArgsFunction: opts.completeKeys,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := opts.client(cmd, requestTimeout)
			if err != nil {
				return err
			}
			path, err := keysPath(c)
			if err != nil {
				return err
			}
			for _, id := range args {
				if err := c.do(http.MethodDelete, path+"/"+url.PathEscape(id), "", nil, nil); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "key/%s revoked\n", id)
			}
			return nil
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}

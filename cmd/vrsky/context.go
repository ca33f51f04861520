package main

import (
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/spf13/cobra"
)

// contextView is a saved context as context list and current print it:
// the key masked (maskKey).
type contextView struct {
	Name    string `json:"name"`
	URL     string `json:"url"`
	APIKey  string `json:"api_key,omitempty"`
	Tenant  string `json:"tenant,omitempty"`
	Current bool   `json:"current"`
}

func viewContext(c savedContext, current string) contextView {
	return contextView{Name: c.Name, URL: c.URL, APIKey: maskKey(c.APIKey), Tenant: c.Tenant, Current: c.Name == current}
}

func contextTable(w io.Writer, list []contextView) error {
	t := newTable(w)
	t.row("CURRENT", "NAME", "URL", "TENANT", "API-KEY")
	for _, c := range list {
		mark := ""
		if c.Current {
			mark = "*"
		}
		t.row(mark, c.Name, c.URL, orDash(c.Tenant), orDash(c.APIKey))
	}
	return t.flush()
}

// newContextCmd is `vrsky context`: saved servers and credentials.
func newContextCmd() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:     "context",
		Aliases: []string{"contexts", "ctx"},
		Short:   "Save servers and keys as named contexts, and pick the one client commands use",
		Long: "A context is a URL, an API key and a tenant under a name, kept in $XDG_CONFIG_HOME/vrsky/config.yaml" +
			" (~/.config/vrsky/config.yaml; VRSKY_CONFIG names another file), mode 0600. Client commands take each setting" +
			" from its flag, else its environment variable (VRSKY_URL, VRSKY_API_KEY, VRSKY_TENANT), else the context" +
			" (--context, VRSKY_CONTEXT, else the current one), else the default.",
	})

	var c savedContext
	var overwrite bool
	add := &cobra.Command{
		Use:   "add NAME --url URL --api-key KEY [--tenant TENANT]",
		Short: "Save a context (the current one, if none is)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, path, err := loadConfig(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			c.Name = args[0]
			if c.Name == "" {
				return errors.New("a context needs a name")
			}
			if old, ok := cfg.find(c.Name); ok {
				if !overwrite {
					return fmt.Errorf("context %q exists (%s): --overwrite replaces it", c.Name, old.URL)
				}
				*old = c
			} else {
				cfg.Contexts = append(cfg.Contexts, c)
			}
			made := ""
			if cfg.CurrentContext == "" {
				cfg.CurrentContext, made = c.Name, ", and in use"
			}
			if err := cfg.save(path); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "context %s saved in %s%s\n", c.Name, path, made)
			return nil
		},
	}
	add.Flags().StringVar(&c.URL, "url", defaultURL, "VRSky API URL")
	add.Flags().StringVar(&c.APIKey, "api-key", "", "API key: the admin key or a tenant's")
	add.Flags().StringVar(&c.Tenant, "tenant", "", "tenant to act on (with the admin key; a tenant key's own otherwise)")
	add.Flags().BoolVar(&overwrite, "overwrite", false, "replace a context of the same name")

	use := &cobra.Command{
		Use: "use NAME", Short: "Make NAME the current context", Args: cobra.ExactArgs(1), ValidArgsFunction: completeContexts,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, path, err := loadConfig(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if _, ok := cfg.find(args[0]); !ok {
				return fmt.Errorf("no context %q in %s: vrsky context add %s --url URL --api-key KEY saves one", args[0], path, args[0])
			}
			cfg.CurrentContext = args[0]
			if err := cfg.save(path); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "now using context %s\n", args[0])
			return nil
		},
	}

	list := &cobra.Command{Use: "list", Short: "List the saved contexts (keys masked)", Args: cobra.NoArgs}
	listOut := addOutputFlag(list)
	list.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, _, err := loadConfig(cmd.ErrOrStderr())
		if err != nil {
			return err
		}
		views := []contextView{}
		for _, x := range cfg.Contexts {
			views = append(views, viewContext(x, cfg.CurrentContext))
		}
		return listOut.printValue(cmd.OutOrStdout(), map[string]any{"current_context": cfg.CurrentContext, "contexts": views}, func(w io.Writer) error {
			if len(views) == 0 {
				_, err := fmt.Fprintln(w, "No contexts: vrsky context add NAME --url URL --api-key KEY saves one.")
				return err
			}
			return contextTable(w, views)
		})
	}

	current := &cobra.Command{Use: "current", Short: "Print the current context", Args: cobra.NoArgs}
	currentOut := addOutputFlag(current)
	current.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, path, err := loadConfig(cmd.ErrOrStderr())
		if err != nil {
			return err
		}
		if cfg.CurrentContext == "" {
			return fmt.Errorf("no current context in %s: vrsky context use NAME picks one", path)
		}
		x, ok := cfg.find(cfg.CurrentContext)
		if !ok {
			return fmt.Errorf("the current context %q is not in %s: vrsky context use NAME picks another", cfg.CurrentContext, path)
		}
		v := viewContext(*x, cfg.CurrentContext)
		return currentOut.printValue(cmd.OutOrStdout(), v, func(w io.Writer) error {
			_, err := fmt.Fprintln(w, v.Name)
			return err
		})
	}

	del := &cobra.Command{
		Use: "delete NAME", Short: "Delete a saved context", Args: cobra.ExactArgs(1), ValidArgsFunction: completeContexts,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, path, err := loadConfig(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if _, ok := cfg.find(args[0]); !ok {
				return fmt.Errorf("no context %q in %s", args[0], path)
			}
			cfg.Contexts = slices.DeleteFunc(cfg.Contexts, func(x savedContext) bool { return x.Name == args[0] })
			note := ""
			if cfg.CurrentContext == args[0] {
				cfg.CurrentContext, note = "", " (it was the current one: vrsky context use NAME picks another)"
			}
			if err := cfg.save(path); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "context %s deleted%s\n", args[0], note)
			return nil
		},
	}
	cmd.AddCommand(add, use, list, current, del)
	return cmd
}

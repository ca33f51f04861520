package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vrsky/vrsky/examples"
)

// templateView is a template as GET /api/v1/templates/{name} answers it.
type templateView struct {
	Name        string          `json:"name"`
	Title       string          `json:"title"`
	Description string          `json:"description"`
	Demo        bool            `json:"demo"`
	Parameters  json.RawMessage `json:"parameters"`
	Spec        string          `json:"spec"`
}

// newTemplatesCmd is `vrsky integration templates`: the server's templates.
func newTemplatesCmd(opts *clientOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "templates", Short: "List the integration templates (the demos and common patterns)", Args: cobra.NoArgs}
	out := addOutputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		c, err := opts.client(cmd, requestTimeout)
		if err != nil {
			return err
		}
		raw, err := c.getRaw("/api/v1/templates")
		if err != nil {
			return err
		}
		return out.print(cmd.OutOrStdout(), raw, func(w io.Writer) error {
			var page struct {
				Templates []struct {
					Name, Title string
					Demo        bool
					Parameters  []string
				} `json:"templates"`
			}
			if err := json.Unmarshal(raw, &page); err != nil {
				return fmt.Errorf("templates: %w", err)
			}
			t := newTable(w)
			t.row("NAME", "DEMO", "TITLE", "PARAMETERS")
			for _, x := range page.Templates {
				demo := ""
				if x.Demo {
					demo = "yes"
				}
				t.row(x.Name, orDash(demo), x.Title, strings.Join(x.Parameters, ","))
			}
			return t.flush()
		})
	}
	return cmd
}

// newIntegrationNewCmd is `vrsky integration new --template NAME --set
// k=v ...`: the server renders the template; the spec goes to stdout, to
// -f FILE, or straight to apply.
func newIntegrationNewCmd(opts *clientOptions) *cobra.Command {
	var name, file string
	var set []string
	var apply, noStart, dryRun bool
	cmd := &cobra.Command{
		Use:   "new --template NAME [--set KEY=VALUE ...] [-f FILE | --apply]",
		Short: "Write an integration spec from a template, or apply it",
		Long: "new fills a template's parameters in (--set KEY=VALUE, once per parameter; the rest take their defaults) and has the" +
			" server render it, which checks the parameters against the template's JSON Schema and the spec against your tenant's" +
			" connectors. The spec goes to stdout, to -f FILE, or with --apply to the server, as `integration apply` does." +
			" `vrsky integration templates` lists the templates; with no --set, the error lists a template's parameters.",
		Args: cobra.NoArgs,
	}
	out := addOutputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if apply && file != "" {
			return fmt.Errorf("give -f FILE or --apply, not both (write the file, then vrsky integration apply -f %s)", file)
		}
		c, err := opts.client(cmd, requestTimeout)
		if err != nil {
			return err
		}
		var tv templateView
		if err := c.do(http.MethodGet, "/api/v1/templates/"+url.PathEscape(name), "", nil, &tv); err != nil {
			return err
		}
		params, err := setParams(tv, set)
		if err != nil {
			return err
		}
		body, _ := json.Marshal(map[string]any{"parameters": params})
		var rendered struct {
			Name string `json:"name"`
			YAML string `json:"yaml"`
		}
		if err := c.do(http.MethodPost, "/api/v1/templates/"+url.PathEscape(name)+"/render", "application/json", body, &rendered); err != nil {
			if httpStatus(err) == http.StatusBadRequest {
				return &hintError{fmt.Errorf("template %s: %w", name, err), parameterHelp(tv)}
			}
			return err
		}
		switch {
		case apply:
			return applySpec(cmd, c, "template "+name, []byte(rendered.YAML), "application/yaml", noStart, dryRun, out)
		case file != "" && file != "-":
			if err := os.WriteFile(file, []byte(rendered.YAML), 0o644); err != nil {
				return fmt.Errorf("write the spec: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "integration/%s written to %s: vrsky integration apply -f %s creates it\n", rendered.Name, file, file)
			return nil
		}
		_, err = io.WriteString(cmd.OutOrStdout(), rendered.YAML)
		return err
	}
	cmd.Flags().StringVar(&name, "template", "", "the template (vrsky integration templates lists them)")
	cmd.Flags().StringArrayVar(&set, "set", nil, "a parameter, KEY=VALUE (numbers and booleans by the parameter's type; arrays and objects as JSON)")
	cmd.Flags().StringVarP(&file, "file", "f", "", "write the spec to FILE instead of stdout")
	cmd.Flags().BoolVar(&apply, "apply", false, "create or update the integration and start it, as integration apply does")
	cmd.Flags().BoolVar(&noStart, "no-start", false, "with --apply: store the integration without starting it")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "with --apply: have the server check everything and change nothing")
	_ = cmd.MarkFlagRequired("template")
	_ = cmd.RegisterFlagCompletionFunc("template", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return examples.Names(), cobra.ShellCompDirectiveNoFileComp
	})
	return cmd
}

// setParams reads --set KEY=VALUE into parameters of the types tv's
// schema gives them.
func setParams(tv templateView, set []string) (map[string]any, error) {
	strs := map[string]string{}
	for _, kv := range set {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--set %q: want KEY=VALUE", kv)
		}
		strs[k] = v
	}
	var sch struct {
		Properties map[string]struct {
			Type any `json:"type"`
		} `json:"properties"`
	}
	_ = json.Unmarshal(tv.Parameters, &sch)
	out := map[string]any{}
	for k, v := range strs {
		p, ok := sch.Properties[k]
		if !ok {
			return nil, &hintError{fmt.Errorf("--set %s: template %s has no parameter %s", k, tv.Name, k), parameterHelp(tv)}
		}
		typ, _ := p.Type.(string)
		switch typ {
		case "integer", "number", "boolean", "array", "object":
			var x any
			if err := json.Unmarshal([]byte(v), &x); err != nil {
				return nil, fmt.Errorf("--set %s=%s: parameter %s is of type %s", k, v, k, typ)
			}
			out[k] = x
		default:
			out[k] = v
		}
	}
	return out, nil
}

// parameterHelp lists tv's parameters: name, type, default or required,
// description.
func parameterHelp(tv templateView) string {
	var sch struct {
		Required   []string `json:"required"`
		Properties map[string]struct {
			Type        any    `json:"type"`
			Enum        []any  `json:"enum"`
			Default     any    `json:"default"`
			Description string `json:"description"`
		} `json:"properties"`
	}
	_ = json.Unmarshal(tv.Parameters, &sch)
	names := make([]string, 0, len(sch.Properties))
	for n := range sch.Properties {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	fmt.Fprintf(&b, "template %s takes --set for:", tv.Name)
	for _, n := range names {
		p := sch.Properties[n]
		typ := fmt.Sprint(p.Type)
		if p.Type == nil && p.Enum != nil {
			typ = fmt.Sprint(p.Enum)
		}
		req := "required"
		if p.Default != nil {
			req = fmt.Sprintf("default %v", p.Default)
		}
		fmt.Fprintf(&b, "\n    %s (%s, %s): %s", n, typ, req, p.Description)
	}
	return b.String()
}

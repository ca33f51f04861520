package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/vrsky/vrsky/host"
	"github.com/vrsky/vrsky/runtime"
)

// integrationView is an integration as the API answers it.
type integrationView struct {
	Tenant    string          `json:"tenant"`
	Name      string          `json:"name"`
	Desired   string          `json:"desired"`
	Spec      json.RawMessage `json:"spec"`
	Status    runtime.Status  `json:"status"`
	Revision  uint64          `json:"revision"`
	CreatedAt time.Time       `json:"created_at"`
	UpdatedAt time.Time       `json:"updated_at"`
}

// state is the status as one word: running, stopped, error or starting.
func (v integrationView) state() string {
	if v.Status.Starting && v.Status.State == "running" {
		return "starting"
	}
	return orDash(v.Status.State)
}

// totals sums the sinks' counters.
func (v integrationView) totals() (delivered, deadLettered, pending uint64) {
	pending = v.Status.Pending
	for _, s := range v.Status.Sinks {
		delivered += s.Delivered
		deadLettered += s.DeadLettered
		pending += s.Pending
	}
	return delivered, deadLettered, pending
}

// source is the spec's source connector.
func (v integrationView) source() string {
	var s struct {
		Source struct{ Connector string } `json:"source"`
	}
	_ = json.Unmarshal(v.Spec, &s)
	return orDash(s.Source.Connector)
}

func integrationHeader(t *table) {
	t.row("NAME", "DESIRED", "STATE", "SOURCE", "PENDING", "DELIVERED", "DEAD-LETTERED", "UPDATED")
}

func integrationRow(t *table, v integrationView) {
	delivered, dead, pending := v.totals()
	t.row(v.Name, v.Desired, v.state(), v.source(), pending, delivered, dead, age(v.UpdatedAt))
}

// printIntegration is `integration get`'s table: the integration's row,
// its error if any, and a row per sink.
func printIntegration(w io.Writer, v integrationView) error {
	t := newTable(w)
	integrationHeader(t)
	integrationRow(t, v)
	if err := t.flush(); err != nil {
		return err
	}
	if v.Status.Error != "" {
		fmt.Fprintf(w, "error: %s\n", oneLine(v.Status.Error, 500))
	}
	if len(v.Status.Sinks) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	t = newTable(w)
	t.row("SINK", "DELIVERED", "FAILURES", "DEAD-LETTERED", "PENDING", "IN-FLIGHT")
	for _, s := range v.Status.Sinks {
		t.row(s.Name, s.Delivered, s.Failures, s.DeadLettered, s.Pending, s.InFlight)
	}
	return t.flush()
}

func integrationPath(name string) string { return "/api/v1/integrations/" + url.PathEscape(name) }

func newIntegrationCmd() *cobra.Command {
	cmd := group(&cobra.Command{Use: "integration", Aliases: []string{"integrations", "int"}, Short: "Manage integrations through the REST API"})
	opts := addClientFlags(cmd)
	cmd.AddCommand(newApplyCmd(opts), newValidateCmd(), newIntegrationNewCmd(opts), newTemplatesCmd(opts))

	list := &cobra.Command{Use: "list", Short: "List integrations", Args: cobra.NoArgs}
	listOut := addOutputFlag(list)
	list.RunE = func(cmd *cobra.Command, _ []string) error {
		c, err := opts.client(cmd, requestTimeout)
		if err != nil {
			return err
		}
		raw, err := c.getRaw("/api/v1/integrations")
		if err != nil {
			return err
		}
		return listOut.print(cmd.OutOrStdout(), raw, func(w io.Writer) error {
			var page struct {
				Integrations []integrationView `json:"integrations"`
			}
			if err := json.Unmarshal(raw, &page); err != nil {
				return fmt.Errorf("integrations: %w", err)
			}
			if len(page.Integrations) == 0 {
				fmt.Fprintln(w, "No integrations yet: vrsky integration apply -f FILE creates one.")
				return nil
			}
			t := newTable(w)
			integrationHeader(t)
			for _, v := range page.Integrations {
				integrationRow(t, v)
			}
			return t.flush()
		})
	}

	get := &cobra.Command{Use: "get NAME", Short: "Show an integration with its state and counters", Args: cobra.ExactArgs(1),
		ValidArgsFunction: opts.completeIntegrations}
	getOut := addOutputFlag(get)
	get.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := opts.client(cmd, requestTimeout)
		if err != nil {
			return err
		}
		raw, err := c.getRaw(integrationPath(args[0]))
		if err != nil {
			return err
		}
		return getOut.print(cmd.OutOrStdout(), raw, func(w io.Writer) error {
			var v integrationView
			if err := json.Unmarshal(raw, &v); err != nil {
				return fmt.Errorf("integration: %w", err)
			}
			return printIntegration(w, v)
		})
	}

	// lifecycle is start or stop: they answer the integration.
	lifecycle := func(use, short, suffix, done string) *cobra.Command {
		c := &cobra.Command{Use: use + " NAME", Short: short, Args: cobra.ExactArgs(1), ValidArgsFunction: opts.completeIntegrations}
		out := addOutputFlag(c)
		c.RunE = func(cmd *cobra.Command, args []string) error {
			cl, err := opts.client(cmd, requestTimeout)
			if err != nil {
				return err
			}
			var raw json.RawMessage
			if err := cl.do(http.MethodPost, integrationPath(args[0])+suffix, "", nil, &raw); err != nil {
				return err
			}
			return out.print(cmd.OutOrStdout(), raw, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "integration/%s %s\n", args[0], done)
				return err
			})
		}
		return c
	}
	del := &cobra.Command{Use: "delete NAME", Short: "Delete an integration, the messages still queued in it and its dead letters", Args: cobra.ExactArgs(1),
		ValidArgsFunction: opts.completeIntegrations,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := opts.client(cmd, requestTimeout)
			if err != nil {
				return err
			}
			if err := c.do(http.MethodDelete, integrationPath(args[0]), "", nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "integration/%s deleted\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(list, get,
		lifecycle("start", "Start an integration", "/start", "started"),
		lifecycle("stop", "Stop an integration, draining in-flight work", "/stop", "stopped"),
		del,
	)
	return cmd
}

// readSpecFile reads a spec from file ("-" is stdin) and returns it with
// its Content-Type for the API.
func readSpecFile(cmd *cobra.Command, file string) ([]byte, string, error) {
	var doc []byte
	var err error
	if file == "-" {
		doc, err = io.ReadAll(cmd.InOrStdin())
	} else {
		doc, err = os.ReadFile(file)
	}
	if err != nil {
		return nil, "", fmt.Errorf("read the spec: %w", err)
	}
	ct := "application/yaml"
	if filepath.Ext(file) == ".json" {
		ct = "application/json"
	}
	return doc, ct, nil
}

// applyResult is what an apply did to the integration.
type applyResult string

const (
	applyCreated   applyResult = "created"
	applyUpdated   applyResult = "updated"
	applyUnchanged applyResult = "unchanged"
)

func newApplyCmd(opts *clientOptions) *cobra.Command {
	var file string
	var noStart, dryRun bool
	cmd := &cobra.Command{
		Use:   "apply -f FILE",
		Short: "Create or update an integration from a YAML or JSON spec, and start it",
		Long: "apply creates the integration the spec names, or replaces the spec of the one that exists, and starts it (unless --no-start)." +
			" It reports created, updated or unchanged: an unchanged spec is not written, and a running integration keeps running untouched." +
			" --dry-run has the server check everything (the spec, the connectors' configs, the name, the webhook path, the quota) and change nothing." +
			" FILE - reads the spec from stdin.",
		Args: cobra.NoArgs,
	}
	out := addOutputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		c, err := opts.client(cmd, requestTimeout)
		if err != nil {
			return err
		}
		doc, ct, err := readSpecFile(cmd, file)
		if err != nil {
			return err
		}
		return applySpec(cmd, c, file, doc, ct, noStart, dryRun, out)
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "spec file (.yaml, .yml or .json; - for stdin)")
	cmd.Flags().BoolVar(&noStart, "no-start", false, "store the integration without starting it")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "have the server check everything and change nothing")
	_ = cmd.MarkFlagRequired("file")
	_ = cmd.MarkFlagFilename("file", "yaml", "yml", "json")
	return cmd
}

// applySpec creates or updates the integration doc describes and starts
// it (unless noStart); file names the spec in errors.
func applySpec(cmd *cobra.Command, c *client, file string, doc []byte, ct string, noStart, dryRun bool, out *outputFormat) error {
	var probe struct {
		Name string `json:"name"`
	}
	if err := yaml.Unmarshal(doc, &probe); err != nil || probe.Name == "" {
		return fmt.Errorf("%s: no integration name in the spec (want a top-level name: field)", file)
	}
	path := integrationPath(probe.Name)
	var cur integrationView
	exists := true
	if err := c.do(http.MethodGet, path, "", nil, &cur); err != nil {
		if httpStatus(err) != http.StatusNotFound {
			return err
		}
		exists = false
	}
	method, target, result := http.MethodPut, path, applyUpdated
	if !exists {
		method, target, result = http.MethodPost, "/api/v1/integrations", applyCreated
	}
	if dryRun {
		target += "?dry_run=true"
	}
	var raw json.RawMessage
	if err := c.do(method, target, ct, doc, &raw); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	var got integrationView
	if err := json.Unmarshal(raw, &got); err != nil {
		return fmt.Errorf("integration: %w", err)
	}
	if exists && jsonEqual(got.Spec, cur.Spec) {
		result = applyUnchanged // the server wrote nothing
	}
	started := false
	if !noStart && got.Desired != "running" {
		started = true
		if !dryRun {
			if err := c.do(http.MethodPost, integrationPath(got.Name)+"/start", "", nil, &raw); err != nil {
				return err
			}
		}
	}
	suffix := ""
	if dryRun {
		suffix = " (dry run)"
	}
	return out.print(cmd.OutOrStdout(), raw, func(w io.Writer) error {
		fmt.Fprintf(w, "integration/%s %s%s\n", got.Name, result, suffix)
		if started {
			fmt.Fprintf(w, "integration/%s started%s\n", got.Name, suffix)
		}
		return nil
	})
}

// newValidateCmd is `vrsky integration validate -f FILE`: the spec checked
// offline against the catalogue vrsky serve builds.
func newValidateCmd() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "validate -f FILE",
		Short: "Check a spec offline, against the built-in and shipped connectors, naming the field to fix",
		Long: "validate parses the spec as vrsky serve does, with the same catalogue: the built-in connectors and the Wasm steps shipped" +
			" in this binary. It needs no server, so it knows neither the connectors tenants uploaded nor the world outside" +
			" (tables, secrets); `vrsky integration apply --dry-run` checks those on the server. -o json or yaml prints the spec as the" +
			" server would store it, defaults filled in.",
		Args: cobra.NoArgs,
	}
	out := addOutputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		doc, _, err := readSpecFile(cmd, file)
		if err != nil {
			return err
		}
		ctx := cmd.Context()
		if ctx == nil {
			ctx = context.Background()
		}
		log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
		rt, err := host.New(ctx, host.Config{Logger: log})
		if err != nil {
			return fmt.Errorf("wasm host: %w", err)
		}
		defer rt.Close(context.Background())
		// The modules compile only when a pipeline needs one, never here;
		// no pipeline runs, so their I/O goes nowhere (host.Env{}) and the
		// file connectors' root is never used (parsing touches no file).
		cat, err := newCatalog(ctx, "", rt, host.Env{}, log)
		if err != nil {
			return err
		}
		spec, err := runtime.ParseSpec(doc, cat)
		if err != nil {
			var se *runtime.SpecError
			if errors.As(err, &se) && strings.HasSuffix(se.Field, ".connector") {
				return &hintError{fmt.Errorf("%s: invalid spec: %w", file, err),
					"offline, validate knows the built-in connectors and the Wasm steps shipped in this binary only; an uploaded one is checked by `vrsky integration apply --dry-run -f " + file + "`"}
			}
			return fmt.Errorf("%s: invalid spec: %w", file, err)
		}
		return out.print(cmd.OutOrStdout(), spec.JSON(), func(w io.Writer) error {
			_, err := fmt.Fprintf(w, "%s: valid: integration %s (source %s, %s, %s)\n",
				file, spec.Name, spec.Source.Connector, plural(len(spec.Steps), "step"), plural(len(spec.Sinks), "sink"))
			return err
		})
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "spec file (.yaml, .yml or .json; - for stdin)")
	_ = cmd.MarkFlagRequired("file")
	_ = cmd.MarkFlagFilename("file", "yaml", "yml", "json")
	return cmd
}

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

// client talks to a running vrsky's REST API.
type client struct {
	base   string
	key    string
	tenant string
	http   *http.Client
}

// clientFlags adds --url, --api-key and --tenant (VRSKY_URL, VRSKY_API_KEY,
// VRSKY_TENANT) to cmd and returns a constructor for the client.
func clientFlags(cmd *cobra.Command) func() *client {
	c := &client{http: &http.Client{Timeout: 60 * time.Second}}
	cmd.PersistentFlags().StringVar(&c.base, "url", "http://127.0.0.1:8080", "VRSky API URL (VRSKY_URL)")
	cmd.PersistentFlags().StringVar(&c.key, "api-key", "", "API key (VRSKY_API_KEY)")
	cmd.PersistentFlags().StringVar(&c.tenant, "tenant", "", "tenant to act on with the admin key (VRSKY_TENANT)")
	return func() *client {
		for name, v := range map[string]*string{"url": &c.base, "api-key": &c.key, "tenant": &c.tenant} {
			env := "VRSKY_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
			if f := cmd.PersistentFlags().Lookup(name); !f.Changed && os.Getenv(env) != "" {
				*v = os.Getenv(env)
			}
		}
		c.base = strings.TrimRight(c.base, "/")
		return c
	}
}

// do sends a request and decodes a JSON answer into out (when not nil). A
// non-2xx answer becomes an error carrying the API's message and field.
func (c *client) do(method, path, contentType string, body []byte, out any) error {
	u := c.base + path
	if c.tenant != "" {
		sep := "?"
		if strings.Contains(u, "?") {
			sep = "&"
		}
		u += sep + "tenant=" + url.QueryEscape(c.tenant)
	}
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		return newClientError(resp, b)
	}
	if out != nil && len(b) > 0 {
		return json.Unmarshal(b, out)
	}
	return nil
}

// clientError is a non-2xx answer of the REST API: its HTTP status and, when
// the body is the API's error document ({"error": {"code", "message",
// "field"}}), the error's code, message and field. Callers tell answers
// apart with errors.As and the status or code, never by the text.
type clientError struct {
	// StatusCode is the HTTP status code (404); Status is the status line
	// as received ("404 Not Found").
	StatusCode int
	Status     string
	// Code, Message and Field are the API's error document; Code is
	// empty when the body was not one.
	Code, Message, Field string
	// Body is the answer's body, trimmed, when it was not an API error
	// document.
	Body string
}

// newClientError reads a non-2xx answer whose body is b.
func newClientError(resp *http.Response, b []byte) *clientError {
	e := &clientError{StatusCode: resp.StatusCode, Status: resp.Status}
	var doc struct {
		Error struct{ Code, Message, Field string } `json:"error"`
	}
	if json.Unmarshal(b, &doc) == nil && doc.Error.Message != "" {
		e.Code, e.Message, e.Field = doc.Error.Code, doc.Error.Message, doc.Error.Field
	} else {
		e.Body = string(bytes.TrimSpace(b))
	}
	return e
}

// Error is "STATUS (CODE): [FIELD: ]MESSAGE" for an API error document,
// else "STATUS: BODY", or "STATUS" when there is no body.
func (e *clientError) Error() string {
	switch {
	case e.Message != "" && e.Field != "":
		return fmt.Sprintf("%s (%s): %s: %s", e.Status, e.Code, e.Field, e.Message)
	case e.Message != "":
		return fmt.Sprintf("%s (%s): %s", e.Status, e.Code, e.Message)
	case e.Body != "":
		return e.Status + ": " + e.Body
	}
	return e.Status
}

// httpStatus is the HTTP status of the API answer err carries, or 0 when
// err is not an API answer (the request did not reach the API).
func httpStatus(err error) int {
	var e *clientError
	if errors.As(err, &e) {
		return e.StatusCode
	}
	return 0
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newIntegrationCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "integration", Aliases: []string{"integrations", "int"}, Short: "Manage integrations through the REST API"}
	newClient := clientFlags(cmd)

	var file string
	var noStart bool
	apply := &cobra.Command{
		Use:   "apply -f FILE",
		Short: "Create or update an integration from a YAML or JSON spec, and start it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c := newClient()
			doc, err := os.ReadFile(file)
			if err != nil {
				return err
			}
			ct := "application/yaml"
			if filepath.Ext(file) == ".json" {
				ct = "application/json"
			}
			var probe struct {
				Name string `json:"name"`
			}
			if err := yaml.Unmarshal(doc, &probe); err != nil || probe.Name == "" {
				return fmt.Errorf("%s: no integration name in the spec", file)
			}
			path := "/api/v1/integrations/" + url.PathEscape(probe.Name)
			var out map[string]any
			method := http.MethodPut
			if err := c.do(http.MethodGet, path, "", nil, nil); err != nil {
				if httpStatus(err) != http.StatusNotFound {
					return err
				}
				method, path = http.MethodPost, "/api/v1/integrations"
			}
			if err := c.do(method, path, ct, doc, &out); err != nil {
				return err
			}
			name, _ := out["name"].(string)
			if !noStart {
				if err := c.do(http.MethodPost, "/api/v1/integrations/"+url.PathEscape(name)+"/start", "", nil, &out); err != nil {
					return err
				}
			}
			return printJSON(cmd.OutOrStdout(), out)
		},
	}
	apply.Flags().StringVarP(&file, "file", "f", "", "spec file (.yaml, .yml or .json)")
	apply.Flags().BoolVar(&noStart, "no-start", false, "store the integration without starting it")
	_ = apply.MarkFlagRequired("file")

	simple := func(use, short, method, suffix string) *cobra.Command {
		return &cobra.Command{
			Use: use + " NAME", Short: short, Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				var out any
				if err := newClient().do(method, "/api/v1/integrations/"+url.PathEscape(args[0])+suffix, "", nil, &out); err != nil {
					return err
				}
				if out == nil {
					return nil
				}
				return printJSON(cmd.OutOrStdout(), out)
			},
		}
	}
	list := &cobra.Command{
		Use: "list", Short: "List integrations", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var out any
			if err := newClient().do(http.MethodGet, "/api/v1/integrations", "", nil, &out); err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), out)
		},
	}
	cmd.AddCommand(apply, list,
		simple("get", "Show an integration with its state and counters", http.MethodGet, ""),
		simple("start", "Start an integration", http.MethodPost, "/start"),
		simple("stop", "Stop an integration, draining in-flight work", http.MethodPost, "/stop"),
		simple("delete", "Delete an integration and the messages still queued in it", http.MethodDelete, ""),
	)
	return cmd
}

func newTenantCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "tenant", Aliases: []string{"tenants"}, Short: "Manage tenants (admin key)"}
	newClient := clientFlags(cmd)
	create := &cobra.Command{
		Use: "create NAME", Short: "Create a tenant and print its first API key", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			body, _ := json.Marshal(map[string]string{"name": args[0]})
			var out any
			if err := newClient().do(http.MethodPost, "/api/v1/tenants", "application/json", body, &out); err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), out)
		},
	}
	list := &cobra.Command{
		Use: "list", Short: "List tenants", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var out any
			if err := newClient().do(http.MethodGet, "/api/v1/tenants", "", nil, &out); err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), out)
		},
	}
	cmd.AddCommand(create, list)
	return cmd
}

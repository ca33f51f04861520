package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// defaultURL is where client commands look for VRSky when nothing says
// otherwise: `make run`'s address.
const defaultURL = "http://127.0.0.1:8080"

// client talks to a running vrsky's REST API.
type client struct {
	base   string
	key    string
	tenant string
	http   *http.Client
	// urlFrom and keyFrom say where base and key came from ("--url",
	// "VRSKY_API_KEY", `context "prod"`, "the default"), for the hints.
	urlFrom, keyFrom string
}

// clientOptions are the connection flags of a group of client commands:
// --url, --api-key, --tenant and --context.
type clientOptions struct {
	url, apiKey, tenant, context string
	flags                        *pflag.FlagSet
}

// addClientFlags adds the connection flags to cmd, for it and its
// subcommands.
func addClientFlags(cmd *cobra.Command) *clientOptions {
	o := &clientOptions{flags: cmd.PersistentFlags()}
	fl := o.flags
	fl.StringVar(&o.url, "url", defaultURL, "VRSky API URL (VRSKY_URL)")
	fl.StringVar(&o.apiKey, "api-key", "", "API key (VRSKY_API_KEY)")
	fl.StringVar(&o.tenant, "tenant", "", "tenant to act on with the admin key (VRSKY_TENANT)")
	fl.StringVar(&o.context, "context", "", "saved context to use (VRSKY_CONTEXT; default: the current one, see vrsky context)")
	_ = cmd.RegisterFlagCompletionFunc("context", completeContexts)
	return o
}

// settings are the resolved connection settings and where each came from.
type settings struct {
	url, apiKey, tenant string
	urlFrom, keyFrom    string
}

// resolve applies the precedence flag > environment (VRSKY_URL,
// VRSKY_API_KEY, VRSKY_TENANT) > the saved context (--context,
// VRSKY_CONTEXT, else the config's current one) > the default. The config
// file is read only when a setting is left to it; its warnings go to warn.
func (o *clientOptions) resolve(warn io.Writer) (settings, error) {
	type setting struct {
		flag, env string
		val       *string
		from      *string
		ctx       func(*savedContext) string
		def       string
	}
	var s settings
	var unusedFrom string
	list := []setting{
		{"url", "VRSKY_URL", &s.url, &s.urlFrom, func(c *savedContext) string { return c.URL }, defaultURL},
		{"api-key", "VRSKY_API_KEY", &s.apiKey, &s.keyFrom, func(c *savedContext) string { return c.APIKey }, ""},
		{"tenant", "VRSKY_TENANT", &s.tenant, &unusedFrom, func(c *savedContext) string { return c.Tenant }, ""},
	}
	flagVal := map[string]string{"url": o.url, "api-key": o.apiKey, "tenant": o.tenant}
	var rest []setting
	for _, x := range list {
		if f := o.flags.Lookup(x.flag); f != nil && f.Changed {
			*x.val, *x.from = flagVal[x.flag], "--"+x.flag
			continue
		}
		if v := strings.TrimSpace(getenv(x.env)); v != "" {
			*x.val, *x.from = v, x.env
			continue
		}
		rest = append(rest, x)
	}
	ctxName, ctxFrom := o.context, "--context"
	if f := o.flags.Lookup("context"); f == nil || !f.Changed {
		ctxName, ctxFrom = getenv("VRSKY_CONTEXT"), "VRSKY_CONTEXT"
	}
	var saved *savedContext
	if len(rest) > 0 || ctxName != "" {
		cfg, path, err := loadConfig(warn)
		if err != nil {
			return s, err
		}
		if ctxName == "" {
			ctxName, ctxFrom = cfg.CurrentContext, "current_context"
		}
		if ctxName != "" {
			var ok bool
			if saved, ok = cfg.find(ctxName); !ok {
				return s, fmt.Errorf("context %q (%s) is not in %s: see vrsky context list", ctxName, ctxFrom, path)
			}
		}
	}
	for _, x := range rest {
		if saved != nil {
			if v := x.ctx(saved); v != "" || x.def == "" {
				*x.val, *x.from = v, fmt.Sprintf("context %q", saved.Name)
				continue
			}
		}
		*x.val, *x.from = x.def, "the default"
	}
	s.url = strings.TrimRight(s.url, "/")
	return s, nil
}

// getenv is os.Getenv, a variable so that tests can run the resolution
// without touching the process's environment.
var getenv = os.Getenv

// client resolves the settings and returns a client whose requests time
// out after timeout.
func (o *clientOptions) client(cmd *cobra.Command, timeout time.Duration) (*client, error) {
	s, err := o.resolve(cmd.ErrOrStderr())
	if err != nil {
		return nil, err
	}
	if _, err := url.ParseRequestURI(s.url); err != nil || !strings.HasPrefix(s.url, "http") {
		return nil, fmt.Errorf("the API URL %q (from %s) is not an http:// or https:// URL", s.url, s.urlFrom)
	}
	return &client{
		base: s.url, key: s.apiKey, tenant: s.tenant, http: &http.Client{Timeout: timeout},
		urlFrom: s.urlFrom, keyFrom: s.keyFrom,
	}, nil
}

// requestTimeout bounds each request of a client command.
const requestTimeout = 60 * time.Second

// request sends a request with the tenant (when set) as ?tenant= and the
// key as a bearer token, and returns the answer's body. A non-2xx answer
// is a *clientError; failures get hints (withHint).
func (c *client) request(ctx context.Context, method, path, contentType string, body []byte) ([]byte, error) {
	u := c.base + path
	if c.tenant != "" {
		sep := "?"
		if strings.Contains(u, "?") {
			sep = "&"
		}
		u += sep + "tenant=" + url.QueryEscape(c.tenant)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, u, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its text repeats the method and URL
		}
		return nil, c.withHint(fmt.Errorf("%s %s: %w", method, u, err))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: read the answer: %w", method, u, err)
	}
	if resp.StatusCode >= 300 {
		return b, c.withHint(newClientError(resp, b))
	}
	return b, nil
}

// do sends a request and decodes a JSON answer into out (when not nil;
// a *json.RawMessage keeps it as it is). A non-2xx answer becomes an error
// carrying the API's message and field.
func (c *client) do(method, path, contentType string, body []byte, out any) error {
	b, err := c.request(context.Background(), method, path, contentType, body)
	if err != nil {
		return err
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: the answer is not the JSON expected: %w", method, path, err)
		}
	}
	return nil
}

// getRaw is GET path's JSON answer, as it is.
func (c *client) getRaw(path string) (json.RawMessage, error) {
	var raw json.RawMessage
	if err := c.do(http.MethodGet, path, "", nil, &raw); err != nil {
		return nil, err
	}
	return raw, nil
}

// hintError is an error with advice on what to do about it.
type hintError struct {
	err  error
	hint string
}

func (e *hintError) Error() string { return e.err.Error() + "\n  hint: " + e.hint }
func (e *hintError) Unwrap() error { return e.err }

// withHint adds advice to the failures a newcomer meets first: no server
// at the URL, a key that is missing or refused, a route that needs the
// admin key.
func (c *client) withHint(err error) error {
	var op *net.OpError
	switch {
	case errors.As(err, &op) && op.Op == "dial":
		return &hintError{err, fmt.Sprintf("no VRSky server is reachable at %s (%s): start one with `make run` (or `vrsky serve`), or point --url or VRSKY_URL at it", c.base, c.urlFrom)}
	case httpStatus(err) == http.StatusUnauthorized && c.key == "":
		return &hintError{err, "no API key was sent: pass --api-key or set VRSKY_API_KEY, or save one in a context (vrsky context add NAME --url URL --api-key KEY) and `vrsky context use NAME`"}
	case httpStatus(err) == http.StatusUnauthorized:
		return &hintError{err, fmt.Sprintf("the API key (from %s) was refused: pass the right one with --api-key or VRSKY_API_KEY, or switch with `vrsky context use NAME`", c.keyFrom)}
	case httpStatus(err) == http.StatusForbidden:
		return &hintError{err, "this needs the admin key: vrsky serve prints it on its first start and keeps it in DATA/admin.key"}
	}
	return err
}

// clientError is a non-2xx answer of the REST API: its HTTP status and, when
// the body is the API's error document ({"error": {"code": ..., "message": ...,
// "field": ...}}), the error's code, message and field. Callers tell answers
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

// jsonEqual reports whether a and b are the same JSON value (key order and
// spacing aside).
func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	ja, _ := json.Marshal(x) // maps marshal with sorted keys
	jb, _ := json.Marshal(y)
	return bytes.Equal(ja, jb)
}

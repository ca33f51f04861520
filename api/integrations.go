package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/vrsky/vrsky/platform/store"
	"github.com/vrsky/vrsky/runtime"
)

// webhookConnector is the built-in source whose paths must be unique
// within a tenant.
const webhookConnector = "http-webhook"

// statusTimeout bounds the JetStream look-ups behind an integration's status.
const statusTimeout = 5 * time.Second

// specMediaTypes are the Content-Types an integration spec may come as.
var specMediaTypes = map[string]bool{
	"application/json":   true,
	"application/yaml":   true,
	"application/x-yaml": true,
	"text/yaml":          true,
	"text/x-yaml":        true,
}

// integrationView is an integration as the API shows it.
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

func (s *Server) view(ctx context.Context, in store.Integration) integrationView {
	v := integrationView{
		Tenant: in.Tenant, Name: in.Name, Desired: in.Desired, Spec: json.RawMessage(in.Spec),
		Revision: in.Revision, CreatedAt: in.CreatedAt, UpdatedAt: in.UpdatedAt,
	}
	spec, err := storedSpec(in)
	if err != nil {
		v.Status = runtime.Status{State: runtime.StateError, Error: err.Error()}
		return v
	}
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	v.Status = s.eng.Status(ctx, in.Tenant, spec)
	if v.Status.Sinks == nil {
		v.Status.Sinks = []runtime.SinkStatus{}
	}
	return v
}

// storedSpec decodes a stored integration's spec. It was validated when it
// was stored, and its users here (Status, replay) only need its names, so
// it is decoded without validating it again.
func storedSpec(in store.Integration) (*runtime.Spec, error) {
	var spec runtime.Spec
	if err := json.Unmarshal(in.Spec, &spec); err != nil {
		return nil, fmt.Errorf("stored spec of integration %q unreadable: %w", in.Name, err)
	}
	spec.Name = in.Name
	return &spec, nil
}

// readSpec parses the request body as an integration spec.
// readSpec parses the request's spec and checks its connectors' configs
// against the world (CheckSpec) for tenant.
func (s *Server) readSpec(c *fiber.Ctx, tenant string) (*runtime.Spec, error) {
	if ct := c.Get(fiber.HeaderContentType); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || !specMediaTypes[mt] {
			return nil, newError(http.StatusUnsupportedMediaType, CodeUnsupportedMedia, "Content-Type",
				"send the spec as application/yaml, application/x-yaml, text/yaml or application/json, not %q", ct)
		}
	}
	spec, err := s.eng.ParseSpecFor(tenant, c.BodyRaw())
	if err != nil {
		var se *runtime.SpecError
		if errors.As(err, &se) {
			return nil, &Error{Status: http.StatusBadRequest, Code: CodeInvalidSpec, Field: se.Field, Message: se.Reason, cause: err}
		}
		return nil, fmt.Errorf("parse spec: %w", err)
	}
	if err := s.eng.CheckSpec(c.UserContext(), tenant, spec); err != nil {
		var se *runtime.SpecError
		if errors.As(err, &se) {
			return nil, &Error{Status: http.StatusBadRequest, Code: CodeInvalidSpec, Field: se.Field, Message: se.Reason, cause: err}
		}
		return nil, fmt.Errorf("check spec: %w", err)
	}
	return spec, nil
}

// hookPath returns the webhook path of spec's source, if it is the
// built-in webhook source.
func hookPath(spec *runtime.Spec) (string, bool) {
	name, _, _ := strings.Cut(spec.Source.Connector, "@")
	if name != webhookConnector {
		return "", false
	}
	var cfg struct {
		Path string `json:"path"`
	}
	if err := json.Unmarshal(spec.Source.Config, &cfg); err != nil {
		return "", false
	}
	return strings.Trim(cfg.Path, "/"), true
}

// checkHookPath refuses a webhook path that another integration of the
// tenant (not the one named self) already uses.
func checkHookPath(spec *runtime.Spec, others []store.Integration, self string) error {
	path, ok := hookPath(spec)
	if !ok {
		return nil
	}
	for _, in := range others {
		if in.Name == self {
			continue
		}
		var o runtime.Spec
		if json.Unmarshal(in.Spec, &o) != nil {
			continue
		}
		if p, ok := hookPath(&o); ok && p == path {
			return newError(http.StatusConflict, CodeConflict, "source.config.path",
				"webhook path %q is already used by integration %q", path, in.Name)
		}
	}
	return nil
}

// dryRun reads the optional ?dry_run= of a create or replace: true
// validates the request as the write would and stores nothing.
func dryRun(c *fiber.Ctx) (bool, error) {
	q := c.Query("dry_run")
	if q == "" {
		return false, nil
	}
	v, err := strconv.ParseBool(q)
	if err != nil {
		return false, badRequest("dry_run", "dry_run %q is not true or false", q)
	}
	return v, nil
}

// sameSpec reports whether two specs in canonical JSON say the same thing.
// They are compared as JSON values, not as bytes: a store may re-format
// what it keeps (PostgreSQL's jsonb reorders keys), and a config's keys
// keep the order they were written in.
func sameSpec(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

func (s *Server) createIntegration(c *fiber.Ctx) error {
	tenant, err := s.scope(c)
	if err != nil {
		return err
	}
	dry, err := dryRun(c)
	if err != nil {
		return err
	}
	spec, err := s.readSpec(c, tenant)
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	s.specMu.Lock()
	defer s.specMu.Unlock()
	t, err := s.store.GetTenant(ctx, tenant)
	if err != nil {
		return storeError(err, fmt.Sprintf("tenant %q", tenant))
	}
	list, err := s.store.ListIntegrations(ctx, tenant)
	if err != nil {
		return storeError(err, "integrations")
	}
	if max := t.Quotas.MaxIntegrations; max > 0 && len(list) >= max {
		return newError(http.StatusTooManyRequests, CodeQuotaExceeded, "quotas.max_integrations",
			"tenant %q has reached its quota max_integrations = %d", tenant, max)
	}
	for _, in := range list {
		if in.Name == spec.Name {
			return newError(http.StatusConflict, CodeAlreadyExists, "name", "integration %q already exists", spec.Name)
		}
	}
	if err := checkHookPath(spec, list, spec.Name); err != nil {
		return err
	}
	want := store.Integration{Tenant: tenant, Name: spec.Name, Spec: spec.JSON(), Desired: store.StateStopped}
	if dry {
		// What the create would store; no record, no revision yet.
		return c.JSON(s.view(ctx, want))
	}
	in, err := s.store.CreateIntegration(ctx, want)
	if err != nil {
		return storeError(err, fmt.Sprintf("integration %q", spec.Name))
	}
	s.eng.Apply(in)
	c.Location("/api/v1/integrations/" + url.PathEscape(in.Name))
	return c.Status(http.StatusCreated).JSON(s.view(ctx, in))
}

func (s *Server) listIntegrations(c *fiber.Ctx) error {
	tenant, err := s.scope(c)
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	list, err := s.store.ListIntegrations(ctx, tenant)
	if err != nil {
		return storeError(err, "integrations")
	}
	out := make([]integrationView, 0, len(list))
	for _, in := range list {
		out = append(out, s.view(ctx, in))
	}
	return c.JSON(fiber.Map{"integrations": out})
}

// integration loads the integration named in the path, in the caller's tenant.
func (s *Server) integration(c *fiber.Ctx) (store.Integration, error) {
	tenant, err := s.scope(c)
	if err != nil {
		return store.Integration{}, err
	}
	name := c.Params("name")
	in, err := s.store.GetIntegration(c.UserContext(), tenant, name)
	if err != nil {
		return store.Integration{}, storeError(err, fmt.Sprintf("integration %q", name))
	}
	return in, nil
}

func (s *Server) getIntegration(c *fiber.Ctx) error {
	in, err := s.integration(c)
	if err != nil {
		return err
	}
	return c.JSON(s.view(c.UserContext(), in))
}

// updateIntegration replaces an integration's spec. A spec that says what
// the stored one says is not written: the answer is the integration as it
// is, its revision unchanged, and a running integration is not restarted
// (an apply of an unchanged file changes nothing, as kubectl's does).
func (s *Server) updateIntegration(c *fiber.Ctx) error {
	tenant, err := s.scope(c)
	if err != nil {
		return err
	}
	dry, err := dryRun(c)
	if err != nil {
		return err
	}
	name := c.Params("name")
	spec, err := s.readSpec(c, tenant)
	if err != nil {
		return err
	}
	if spec.Name != name {
		return badRequest("name", "the spec's name %q does not match the path's %q; an integration cannot be renamed", spec.Name, name)
	}
	ctx := c.UserContext()
	s.specMu.Lock()
	defer s.specMu.Unlock()
	cur, err := s.store.GetIntegration(ctx, tenant, name)
	if err != nil {
		return storeError(err, fmt.Sprintf("integration %q", name))
	}
	list, err := s.store.ListIntegrations(ctx, tenant)
	if err != nil {
		return storeError(err, "integrations")
	}
	if err := checkHookPath(spec, list, name); err != nil {
		return err
	}
	next := spec.JSON()
	if sameSpec(cur.Spec, next) {
		return c.JSON(s.view(ctx, cur))
	}
	cur.Spec = next
	if dry {
		return c.JSON(s.view(ctx, cur))
	}
	in, err := s.store.UpdateIntegration(ctx, cur)
	if err != nil {
		return storeError(err, fmt.Sprintf("integration %q", name))
	}
	s.eng.Apply(in)
	return c.JSON(s.view(ctx, in))
}

// deleteIntegration removes the record first, so that no reconcile loop
// restarts the integration, then its streams.
func (s *Server) deleteIntegration(c *fiber.Ctx) error {
	in, err := s.integration(c)
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	if err := s.store.DeleteIntegration(ctx, in.Tenant, in.Name); err != nil {
		return storeError(err, fmt.Sprintf("integration %q", in.Name))
	}
	if err := s.eng.Remove(ctx, in.Tenant, in.Name, s.storedSpec(in)); err != nil {
		return fmt.Errorf("integration %q deleted, but removing its streams failed: %w", in.Name, err)
	}
	return c.SendStatus(http.StatusNoContent)
}

// setDesired returns the handler of start (state "running") or stop.
func (s *Server) setDesired(state string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		ctx := c.UserContext()
		for attempt := 0; ; attempt++ {
			in, err := s.integration(c)
			if err != nil {
				return err
			}
			if in.Desired != state {
				in.Desired = state
				in, err = s.store.UpdateIntegration(ctx, in)
				if errors.Is(err, store.ErrConflict) && attempt < 3 {
					continue // changed under us: reload and retry
				}
				if err != nil {
					return storeError(err, fmt.Sprintf("integration %q", c.Params("name")))
				}
			}
			s.eng.Apply(in)
			return c.JSON(s.view(ctx, in))
		}
	}
}

// storedSpec parses a stored integration's spec for Remove; nil when it no
// longer parses (a connector was removed from the catalogue).
func (s *Server) storedSpec(in store.Integration) *runtime.Spec {
	spec, err := s.eng.ParseSpec(in.Spec)
	if err != nil {
		return nil
	}
	return spec
}

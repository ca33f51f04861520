package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/vrsky/vrsky/platform/store"
	"github.com/vrsky/vrsky/registry"
	"github.com/vrsky/vrsky/runtime"
)

// Registry is what the API needs from the connector registry.
// *registry.Registry implements it.
type Registry interface {
	// Publish validates and stores an upload by tenant ("" the platform);
	// a failed rule is a *registry.Refusal.
	Publish(ctx context.Context, tenant string, up registry.Upload) (store.ConnectorVersion, error)
	// List returns a page of the catalogue the viewer sees.
	List(ctx context.Context, v registry.Viewer, q registry.Query) (registry.Page, error)
	// Get returns one connector with every version; registry.ErrNotFound.
	Get(ctx context.Context, v registry.Viewer, name string) (registry.Entry, error)
	// GetKind is Get for one kind, when a source and a sink share a name.
	GetKind(ctx context.Context, v registry.Viewer, name, kind string) (registry.Entry, error)
	// GetVersion returns one version of a connector.
	GetVersion(ctx context.Context, v registry.Viewer, name, version string) (registry.Entry, registry.Version, error)
	// Module returns a version's Wasm bytes.
	Module(ctx context.Context, v registry.Viewer, name, version string) ([]byte, error)
	// Deprecate marks a version deprecated or not.
	Deprecate(ctx context.Context, v registry.Viewer, name, version string, deprecated bool) error
	// Delete removes a version unless an integration uses it (registry.ErrInUse).
	Delete(ctx context.Context, v registry.Viewer, name, version string) error
}

var _ Registry = (*registry.Registry)(nil)

// connectorRoutes registers the catalogue and the registry's routes.
func (s *Server) connectorRoutes(v1 fiber.Router) {
	auth := s.authenticate
	v1.Get("/connectors", auth, s.listConnectors)
	v1.Get("/connectors/:name", auth, s.getConnector)
	// Uploads are bounded by the registry's module size limit, not the
	// API's body limit.
	reg := s.needRegistry
	v1.Post("/connectors", auth, reg, s.uploadConnector)
	v1.Get("/connectors/:name/:version", auth, reg, s.getConnectorVersion)
	v1.Get("/connectors/:name/:version/module", auth, reg, s.getConnectorModule)
	v1.Post("/connectors/:name/:version/deprecate", lim(s), auth, reg, s.deprecateConnector)
	v1.Delete("/connectors/:name/:version", auth, reg, s.deleteConnector)
}

func lim(s *Server) fiber.Handler { return s.limitBody }

// needRegistry answers 404 on the registry's routes of a server built
// without one (Config.Registry nil).
func (s *Server) needRegistry(c *fiber.Ctx) error {
	if s.registry == nil {
		return notFound("this server has no connector registry")
	}
	return c.Next()
}

// viewer is who looks at the catalogue: a tenant key's tenant; the admin,
// as the platform or as the tenant it names with ?tenant=.
func (s *Server) viewer(c *fiber.Ctx) registry.Viewer {
	p := caller(c)
	if !p.admin {
		return registry.Viewer{Tenant: p.tenant}
	}
	named := c.Query("tenant")
	if named == "" {
		named = c.Get(tenantHeader)
	}
	return registry.Viewer{Tenant: named, Admin: true}
}

// ruleErrors is what an upload refused by a registry rule answers, for the
// rules that are not a plain 400 bad_request: the client's input is fine
// but too big, collides with what exists, or could not be compiled within
// the server's bounds.
var ruleErrors = map[string]struct {
	status int
	code   Code
}{
	registry.RuleSize:          {http.StatusRequestEntityTooLarge, CodeBodyTooLarge},
	registry.RuleName:          {http.StatusConflict, CodeConflict},
	registry.RuleVersion:       {http.StatusConflict, CodeAlreadyExists},
	registry.RuleCompileBounds: {http.StatusUnprocessableEntity, CodeUnprocessable},
}

// registryError maps the registry's errors to API errors.
func registryError(err error) error {
	var ref *registry.Refusal
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ref):
		status, code := http.StatusBadRequest, CodeBadRequest
		if r, ok := ruleErrors[ref.Rule]; ok {
			status, code = r.status, r.code
		}
		return &Error{Status: status, Code: code, Field: ref.Field, Message: ref.Error(), cause: err}
	case errors.Is(err, registry.ErrNotFound):
		return &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: err.Error(), cause: err}
	case errors.Is(err, registry.ErrForbidden):
		return &Error{Status: http.StatusForbidden, Code: CodeForbidden, Message: err.Error(), cause: err}
	case errors.Is(err, registry.ErrInUse), errors.Is(err, registry.ErrBuiltin):
		return &Error{Status: http.StatusConflict, Code: CodeConflict, Message: err.Error(), cause: err}
	}
	return storeError(err, "connector registry")
}

// uploadedView is a published version as POST /connectors answers it.
type uploadedView struct {
	Name       string    `json:"name"`
	Version    string    `json:"version"`
	Kind       string    `json:"kind"`
	Visibility string    `json:"visibility"`
	Uploader   string    `json:"uploader"`
	Digest     string    `json:"digest"`
	Size       int64     `json:"size"`
	CreatedAt  time.Time `json:"created_at"`
}

// formPart reads a multipart part sent as a file or as a plain field.
func formPart(form *multipart.Form, name string) ([]byte, error) {
	if fs := form.File[name]; len(fs) > 0 {
		f, err := fs[0].Open()
		if err != nil {
			return nil, badRequest(name, "unreadable part: %v", err)
		}
		defer f.Close()
		b, err := io.ReadAll(f)
		if err != nil {
			return nil, badRequest(name, "unreadable part: %v", err)
		}
		return b, nil
	}
	if vs := form.Value[name]; len(vs) > 0 {
		return []byte(vs[0]), nil
	}
	return nil, nil
}

func (s *Server) uploadConnector(c *fiber.Ctx) error {
	v := s.viewer(c)
	tenant := v.Tenant
	if v.Admin && tenant != "" {
		if _, err := s.store.GetTenant(c.UserContext(), tenant); err != nil {
			return storeError(err, "tenant "+strconv.Quote(tenant))
		}
	}
	if !strings.HasPrefix(c.Get(fiber.HeaderContentType), fiber.MIMEMultipartForm) {
		return newError(http.StatusUnsupportedMediaType, CodeUnsupportedMedia, "Content-Type",
			"send the connector as multipart/form-data with parts manifest and module (and signature)")
	}
	form, err := c.MultipartForm()
	if err != nil {
		return badRequest("body", "not a multipart form: %v", err)
	}
	defer c.Request().RemoveMultipartFormFiles()
	var up registry.Upload
	for _, p := range []struct {
		name     string
		into     *[]byte
		required bool
	}{{"manifest", &up.Manifest, true}, {"module", &up.Module, true}, {"signature", &up.Signature, false}} {
		b, err := formPart(form, p.name)
		if err != nil {
			return err
		}
		if b == nil && p.required {
			return badRequest(p.name, "the %s part is missing", p.name)
		}
		*p.into = b
	}
	cv, err := s.registry.Publish(c.UserContext(), tenant, up)
	if err != nil {
		return registryError(err)
	}
	return c.Status(http.StatusCreated).JSON(uploadedView{
		Name: cv.Name, Version: cv.Version, Kind: cv.Kind, Visibility: cv.Visibility, Uploader: cv.Tenant,
		Digest: cv.Digest, Size: cv.Size, CreatedAt: cv.CreatedAt,
	})
}

// intQuery reads a positive integer query parameter (0 when absent).
func intQuery(c *fiber.Ctx, name string) (int, error) {
	q := c.Query(name)
	if q == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(q)
	if err != nil || n < 1 {
		return 0, badRequest(name, "%s must be a positive integer, not %q", name, q)
	}
	return n, nil
}

func (s *Server) listConnectors(c *fiber.Ctx) error {
	if s.registry == nil {
		list := s.eng.Catalog().List()
		out := make([]connectorView, 0, len(list))
		for _, x := range list {
			out = append(out, viewConnector(x, false))
		}
		return c.JSON(fiber.Map{"connectors": out})
	}
	q := registry.Query{Kind: c.Query("kind"), Tag: c.Query("tag"), Text: c.Query("q")}
	switch q.Kind {
	case "", string(runtime.KindSource), string(runtime.KindStep), string(runtime.KindSink):
	default:
		return badRequest("kind", "kind must be source, step or sink, not %q", q.Kind)
	}
	var err error
	if q.Page, err = intQuery(c, "page"); err != nil {
		return err
	}
	if q.Limit, err = intQuery(c, "limit"); err != nil {
		return err
	}
	page, err := s.registry.List(c.UserContext(), s.viewer(c), q)
	if err != nil {
		return registryError(err)
	}
	return c.JSON(page)
}

func (s *Server) getConnector(c *fiber.Ctx) error {
	name := c.Params("name")
	if s.registry == nil {
		x, ok := s.eng.Catalog().Lookup(name)
		if !ok {
			return notFound("connector %q not found", name)
		}
		return c.JSON(viewConnector(x, true))
	}
	if n, ver, ok := strings.Cut(name, "@"); ok { // name@version, as in specs
		return s.versionAnswer(c, n, ver)
	}
	kind := c.Query("kind") // a source and a sink may share a name
	switch kind {
	case "", string(runtime.KindSource), string(runtime.KindStep), string(runtime.KindSink):
	default:
		return badRequest("kind", "kind must be source, step or sink, not %q", kind)
	}
	e, err := s.registry.GetKind(c.UserContext(), s.viewer(c), name, kind)
	if err != nil {
		return registryError(err)
	}
	return c.JSON(e)
}

// versionView is one version of a connector: the connector's entry with
// Versions holding that version only.
type versionView struct {
	registry.Entry
	// Deprecated says whether this version is deprecated.
	Deprecated bool `json:"deprecated"`
}

func (s *Server) versionAnswer(c *fiber.Ctx, name, version string) error {
	e, v, err := s.registry.GetVersion(c.UserContext(), s.viewer(c), name, version)
	if err != nil {
		return registryError(err)
	}
	e.Latest = v.Version
	e.Digest = v.Digest
	if v.Manifest != nil {
		caps := v.Manifest.Capabilities
		e.ConfigSchema, e.Capabilities, e.Description = v.Manifest.ConfigSchema, &caps, v.Manifest.Description
	}
	e.Versions = []registry.Version{v}
	return c.JSON(versionView{Entry: e, Deprecated: v.Deprecated})
}

func (s *Server) getConnectorVersion(c *fiber.Ctx) error {
	return s.versionAnswer(c, c.Params("name"), c.Params("version"))
}

func (s *Server) getConnectorModule(c *fiber.Ctx) error {
	name, version := c.Params("name"), c.Params("version")
	b, err := s.registry.Module(c.UserContext(), s.viewer(c), name, version)
	if err != nil {
		return registryError(err)
	}
	c.Set(fiber.HeaderContentType, "application/wasm")
	c.Set(fiber.HeaderContentDisposition, `attachment; filename="`+name+"-"+version+`.wasm"`)
	return c.Send(b)
}

func (s *Server) deprecateConnector(c *fiber.Ctx) error {
	in := struct {
		Deprecated *bool `json:"deprecated"`
	}{}
	if body := c.BodyRaw(); len(strings.TrimSpace(string(body))) > 0 {
		if err := json.Unmarshal(body, &in); err != nil {
			return badRequest("body", "want {\"deprecated\": true|false}: %v", err)
		}
	}
	deprecated := in.Deprecated == nil || *in.Deprecated
	name, version := c.Params("name"), c.Params("version")
	if err := s.registry.Deprecate(c.UserContext(), s.viewer(c), name, version, deprecated); err != nil {
		return registryError(err)
	}
	return s.versionAnswer(c, name, version)
}

func (s *Server) deleteConnector(c *fiber.Ctx) error {
	if err := s.registry.Delete(c.UserContext(), s.viewer(c), c.Params("name"), c.Params("version")); err != nil {
		return registryError(err)
	}
	return c.SendStatus(http.StatusNoContent)
}

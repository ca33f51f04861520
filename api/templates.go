package api

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/gofiber/fiber/v2"
	"sigs.k8s.io/yaml"

	"github.com/vrsky/vrsky/examples"
	"github.com/vrsky/vrsky/runtime"
)

// Integration templates (package examples): the demos and common patterns,
// listed, shown with their parameters' JSON Schema, and rendered into a
// spec on the server, so that every client renders them the same way and
// the spec is checked against the caller's catalogue.

// templateRoutes registers the template routes; any valid key may use them.
func (s *Server) templateRoutes(v1 fiber.Router) {
	auth := s.authenticate
	v1.Get("/templates", auth, s.listTemplates)
	v1.Get("/templates/:name", auth, s.getTemplate)
	v1.Post("/templates/:name/render", s.limitBody, auth, s.renderTemplate)
}

// templateSummary is a template in the list: no spec, no schema.
type templateSummary struct {
	Name        string   `json:"name"`
	Title       string   `json:"title"`
	Description string   `json:"description"`
	Demo        bool     `json:"demo"`
	Parameters  []string `json:"parameters"`
}

func (s *Server) listTemplates(c *fiber.Ctx) error {
	var out []templateSummary
	for _, t := range examples.List() {
		out = append(out, templateSummary{Name: t.Name, Title: t.Title, Description: t.Description, Demo: t.Demo,
			Parameters: t.ParameterNames()})
	}
	return c.JSON(fiber.Map{"templates": out})
}

func lookupTemplate(c *fiber.Ctx) (*examples.Template, error) {
	t, err := examples.Lookup(c.Params("name"))
	if err != nil {
		return nil, &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: err.Error(), cause: err}
	}
	return t, nil
}

func (s *Server) getTemplate(c *fiber.Ctx) error {
	t, err := lookupTemplate(c)
	if err != nil {
		return err
	}
	return c.JSON(t)
}

// renderRequest is the body of POST /templates/{name}/render.
type renderRequest struct {
	// Parameters are the template's parameters; defaults fill the rest.
	Parameters map[string]any `json:"parameters"`
}

// renderTemplate answers the rendered spec, as YAML text (comments kept)
// and as JSON, once the parameters pass the template's schema and the spec
// passes the caller's catalogue (its tenant's, or the platform's for the
// admin key without ?tenant=). It stores nothing and checks nothing outside
// VRSky: creating the integration does that.
func (s *Server) renderTemplate(c *fiber.Ctx) error {
	t, err := lookupTemplate(c)
	if err != nil {
		return err
	}
	var req renderRequest
	if err := decodeJSON(c, &req, true); err != nil {
		return err
	}
	doc, err := t.Render(req.Parameters)
	if err != nil {
		var pe *examples.ParamError
		if errors.As(err, &pe) {
			return &Error{Status: http.StatusBadRequest, Code: CodeInvalidParameters, Field: pe.Field, Message: pe.Reason, cause: err}
		}
		return fmt.Errorf("render template %s: %w", t.Name, err)
	}
	var spec *runtime.Spec
	if p := caller(c); p.admin && c.Query("tenant") == "" && c.Get(tenantHeader) == "" {
		spec, err = s.eng.ParseSpec(doc)
	} else {
		tenant, serr := s.scope(c)
		if serr != nil {
			return serr
		}
		spec, err = s.eng.ParseSpecFor(tenant, doc)
	}
	if err != nil {
		var se *runtime.SpecError
		if errors.As(err, &se) {
			return &Error{Status: http.StatusBadRequest, Code: CodeInvalidSpec, Field: se.Field, Message: se.Reason, cause: err}
		}
		return fmt.Errorf("parse the rendered spec: %w", err)
	}
	asJSON, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return fmt.Errorf("render template %s: %w", t.Name, err)
	}
	return c.JSON(fiber.Map{"template": t.Name, "name": spec.Name, "yaml": string(doc), "spec": rawJSON(asJSON)})
}

// rawJSON is a JSON document fiber writes as it is.
type rawJSON []byte

func (r rawJSON) MarshalJSON() ([]byte, error) { return r, nil }

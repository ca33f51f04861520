package api

import (
	"context"
	_ "embed"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vrsky/vrsky/runtime"

	"github.com/vrsky/vrsky/platform/provision"
)

// readyTimeout bounds each readiness check.
const readyTimeout = 2 * time.Second

//go:embed openapi.json
var openapiDoc []byte

func (s *Server) healthz(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"status": "ok", "version": s.version})
}

// readyBody is /readyz's answer: each check "ok" or why it failed. Status
// is ready, degraded (the store fails: the API does, messages still flow)
// or unavailable (NATS fails: 503).
type readyBody struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
	// TenantNATS is the health of every dedicated tenant instance. It
	// does not make the node unready: the provisioner restarts an instance
	// that died, and only its tenant waits meanwhile.
	TenantNATS []provision.Health `json:"tenant_nats,omitempty"`
	Error      *errorDetail       `json:"error,omitempty"`
}

func (s *Server) readyz(c *fiber.Ctx) error {
	checks := map[string]Pinger{"store": s.store}
	if s.nats != nil {
		checks["nats"] = s.nats
	}
	body := readyBody{Status: "ready", Checks: map[string]string{}}
	var failed []string
	for _, name := range []string{"nats", "store"} {
		p, ok := checks[name]
		if !ok {
			continue
		}
		ctx, cancel := context.WithTimeout(c.UserContext(), readyTimeout)
		err := p.Ping(ctx)
		cancel()
		switch {
		case err == nil:
			body.Checks[name] = "ok"
		case name == "store":
			// The store alone does not make the node unready: webhooks and
			// pipelines run without it (the API answers 503 meanwhile), and
			// an outage of a database every node shares would otherwise take
			// every node out of its load balancer at once.
			body.Checks[name] = err.Error()
			body.Status = "degraded"
		default:
			body.Checks[name] = err.Error()
			failed = append(failed, name)
		}
	}
	if s.tenancy != nil {
		ctx, cancel := context.WithTimeout(c.UserContext(), readyTimeout)
		if hs, err := s.tenancy.Health(ctx); err == nil {
			body.TenantNATS = hs
		} else {
			body.Checks["tenant_nats"] = err.Error()
		}
		cancel()
	}
	if len(failed) == 0 {
		return c.JSON(body)
	}
	body.Status = "unavailable"
	msg := "not ready: " + failed[0]
	for _, f := range failed[1:] {
		msg += ", " + f
	}
	body.Error = &errorDetail{Code: CodeNotReady, Message: msg + " unavailable"}
	c.Set(fiber.HeaderRetryAfter, strconv.Itoa(retryAfter))
	return c.Status(http.StatusServiceUnavailable).JSON(body)
}

func (s *Server) metrics() fiber.Handler {
	return adaptor.HTTPHandler(promhttp.HandlerFor(s.gatherer, promhttp.HandlerOpts{}))
}

func (s *Server) openapi(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSONCharsetUTF8)
	return c.Send(openapiDoc)
}

// connectorView is a catalogue entry as the API shows it.
type connectorView struct {
	Name         string          `json:"name"`
	Version      string          `json:"version"`
	Kind         runtime.Kind    `json:"kind"`
	Description  string          `json:"description,omitempty"`
	Builtin      bool            `json:"builtin"`
	ConfigSchema json.RawMessage `json:"config_schema,omitempty"`
}

func viewConnector(x *runtime.Connector, withSchema bool) connectorView {
	v := connectorView{Name: x.Name, Version: x.Version, Kind: x.Kind, Description: x.Description, Builtin: x.Builtin}
	if withSchema {
		v.ConfigSchema = x.ConfigSchema
	}
	return v
}

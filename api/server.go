package api

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vrsky/vrsky/platform/store"
	"github.com/vrsky/vrsky/runtime"
)

// Engine is what the API needs from the data plane. *runtime.Engine
// implements it.
type Engine interface {
	// ParseSpec parses and validates a YAML or JSON integration spec; a
	// validation failure is a *runtime.SpecError naming the field.
	ParseSpec(doc []byte) (*runtime.Spec, error)
	// ParseSpecFor is ParseSpec for tenant: connectors private to another
	// tenant are unknown connectors.
	ParseSpecFor(tenant string, doc []byte) (*runtime.Spec, error)
	// Apply makes this node converge at once on the stored integration.
	Apply(in store.Integration)
	// CheckSpec checks a parsed spec's connector configs against the
	// world (tables exist, columns match); a *runtime.SpecError names the field.
	CheckSpec(ctx context.Context, tenant string, spec *runtime.Spec) error
	// Remove stops the integration, releases what its connectors hold
	// outside VRSky (spec may be nil), and deletes its streams and consumers.
	Remove(ctx context.Context, tenant, name string, spec *runtime.Spec) error
	// MoveTenant moves the tenant's NATS to placement to and returns once
	// it runs there.
	MoveTenant(ctx context.Context, tenant, to string) error
	// Moving reports whether the tenant's NATS is moving on this node's
	// view (its sources are refused meanwhile).
	Moving(tenant string) bool
	// Status reports the integration's state and counters.
	Status(ctx context.Context, tenant string, spec *runtime.Spec) runtime.Status
	// Hooks routes webhook requests to the sources that serve them.
	Hooks() *runtime.Hooks
	// Catalog lists the connectors specs may name.
	Catalog() *runtime.Catalog

	// Trace reports where a message of the last 7 days is;
	// runtime.ErrUnknownMessage when there is no record of it.
	Trace(ctx context.Context, tenant, integration, id string) (*runtime.MessageTrace, error)
	// ListDeadLetters returns a page of an integration's dead letters,
	// newest first, without payloads, and the Before cursor of the next
	// page ("" when there is none).
	ListDeadLetters(ctx context.Context, tenant, integration string, f runtime.DLQFilter) ([]runtime.DeadLetter, string, error)
	// GetDeadLetter returns one dead letter with its payload;
	// runtime.ErrNoDeadLetter when there is no such entry.
	GetDeadLetter(ctx context.Context, tenant, integration, id string) (*runtime.DeadLetter, error)
	// ReplayDeadLetter sends an entry back into the stage that failed and
	// removes it; runtime.ErrNoDeadLetter when there is no such entry.
	ReplayDeadLetter(ctx context.Context, tenant string, spec *runtime.Spec, id string) error
	// ReplayDeadLetters replays every entry (of one stage when stage is not
	// empty) and returns how many it replayed.
	ReplayDeadLetters(ctx context.Context, tenant string, spec *runtime.Spec, stage string) (int, error)
	// DeleteDeadLetter removes an entry without replaying it.
	DeleteDeadLetter(ctx context.Context, tenant, integration, id string) error
}

var _ Engine = (*runtime.Engine)(nil)

// Pinger is a backend /readyz checks. *natsx.Conn implements it.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Defaults for Config's zero values.
const (
	DefaultBodyLimit     = 1 << 20  // 1 MiB
	DefaultHookBodyLimit = 64 << 20 // 64 MiB
	DefaultHookTimeout   = 30 * time.Second
)

// Config configures a Server. Store, Engine and AdminKey are required.
type Config struct {
	// Store is the control-plane store: tenants, keys, integrations.
	Store store.Store
	// Engine is the data plane the API drives.
	Engine Engine
	// NATS is pinged by /readyz (with Store); nil leaves it out.
	NATS Pinger
	// Tenancy keeps each tenant's NATS account in step with its record
	// (platform/tenancy's Manager). Required.
	Tenancy Tenancy
	// AdminKey is the platform admin's key, in plain text. Only its
	// SHA-256 is kept; requests are compared against it in constant time.
	AdminKey string
	// Logger receives request failures; nil uses slog.Default().
	Logger *slog.Logger
	// Gatherer is what /metrics exposes; nil uses prometheus.DefaultGatherer.
	Gatherer prometheus.Gatherer
	// HTTPMetrics receives the request series (metrics.go); nil records
	// none.
	HTTPMetrics *HTTPMetrics
	// BodyLimit caps request bodies on /api routes, in bytes (default 1 MiB).
	BodyLimit int
	// HookBodyLimit caps webhook bodies on /hooks, in bytes (default 64 MiB).
	HookBodyLimit int
	// HookTimeout bounds how long a webhook request may wait for its
	// message to become durable (default 30s).
	HookTimeout time.Duration
	// Version is reported by /healthz.
	Version string
	// Registry serves the connector catalogue and uploads; nil lists the
	// engine's catalogue only, without the registry's routes.
	Registry Registry
	// AuthFailureBurst is how many failed authentications a client address,
	// or a tenant key's id, may make in a row before every key it sends is
	// answered 429 too_many_auth_failures (default 10; see throttle.go).
	AuthFailureBurst int
	// AuthFailureRefill is how often, once the burst is spent, one more
	// failed authentication is allowed (default 1s).
	AuthFailureRefill time.Duration
	// AuthFailureTrack caps how many client addresses, and how many key
	// ids, the throttle remembers (default 65,536 each); the least recently
	// failing are forgotten first.
	AuthFailureTrack int
	// UI is the web UI's built bundle (ui.Bundle()), served at /ui/
	// (ui.go); nil serves no UI.
	UI fs.FS
}

// Server is the REST API. Create it with New; serve it with Listen or
// ListenOn, or use App directly (e.g. app.Test in tests).
type Server struct {
	store    store.Store
	eng      Engine
	nats     Pinger
	tenancy  Tenancy
	log      *slog.Logger
	gatherer prometheus.Gatherer
	// httpMetrics and routeKnown: the request series (metrics.go).
	httpMetrics *HTTPMetrics
	routeKnown  map[string]bool
	adminHash   [sha256.Size]byte
	bodyLimit   int
	hookLimit   int
	hookWait    time.Duration
	version     string
	registry    Registry
	ui          fs.FS
	app         *fiber.App

	// Failed authentications per client address and per key id (throttle.go).
	addrFails, idFails *failLimiter

	// specMu serialises integration creates and updates on this node, so
	// that the quota and webhook-path checks and the write that follows
	// them are not interleaved with another request's. (Across nodes the
	// checks stay best effort; see RATIONALE.md.)
	specMu sync.Mutex
}

// New validates cfg and builds the server with every route registered.
func New(cfg Config) (*Server, error) {
	switch {
	case cfg.Store == nil:
		return nil, errors.New("api: Config.Store is required")
	case cfg.Engine == nil:
		return nil, errors.New("api: Config.Engine is required")
	case cfg.Tenancy == nil:
		return nil, errors.New("api: Config.Tenancy is required")
	case cfg.AdminKey == "":
		return nil, errors.New("api: Config.AdminKey is required")
	case cfg.BodyLimit < 0, cfg.HookBodyLimit < 0, cfg.HookTimeout < 0,
		cfg.AuthFailureBurst < 0, cfg.AuthFailureRefill < 0, cfg.AuthFailureTrack < 0:
		return nil, errors.New("api: limits must not be negative")
	}
	burst := cmp.Or(cfg.AuthFailureBurst, DefaultAuthFailureBurst)
	refill := cmp.Or(cfg.AuthFailureRefill, DefaultAuthFailureRefill)
	track := cmp.Or(cfg.AuthFailureTrack, DefaultAuthFailureTrack)
	s := &Server{
		store:       cfg.Store,
		eng:         cfg.Engine,
		nats:        cfg.NATS,
		tenancy:     cfg.Tenancy,
		log:         cfg.Logger,
		gatherer:    cfg.Gatherer,
		httpMetrics: cfg.HTTPMetrics,
		adminHash:   sha256.Sum256([]byte(cfg.AdminKey)),
		bodyLimit:   cmp.Or(cfg.BodyLimit, DefaultBodyLimit),
		hookLimit:   cmp.Or(cfg.HookBodyLimit, DefaultHookBodyLimit),
		hookWait:    cmp.Or(cfg.HookTimeout, DefaultHookTimeout),
		version:     cfg.Version,
		registry:    cfg.Registry,
		ui:          cfg.UI,
		addrFails:   newFailLimiter(burst, refill, track),
		idFails:     newFailLimiter(burst, refill, track),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.gatherer == nil {
		s.gatherer = prometheus.DefaultGatherer
	}
	s.app = fiber.New(fiber.Config{
		AppName:               "vrsky",
		DisableStartupMessage: true,
		// fasthttp enforces one limit for the whole server: the larger
		// one. API routes apply their own smaller limit (limitBody).
		BodyLimit: max(s.bodyLimit, s.hookLimit),
		// Webhook bodies over a few KiB are streamed into the object store
		// rather than buffered (hooks.go); every other route reads its
		// body whole, bounded, in bufferBody. With streaming on, fasthttp
		// no longer enforces BodyLimit itself.
		StreamRequestBody:            true,
		DisablePreParseMultipartForm: true,
		ErrorHandler:                 s.handleError,
		// Params and headers are stored and handed to the engine, which
		// may keep them: make them safe to retain.
		Immutable:     true,
		CaseSensitive: true,
		IdleTimeout:   2 * time.Minute,
	})
	if s.httpMetrics != nil {
		s.app.Use(s.measure)
	}
	s.app.Use(s.logRequests, recover.New(), s.bufferBody)
	s.routes()
	s.routeKnown = knownRoutes(s.app)
	return s, nil
}

// App returns the fiber app, for tests (app.Test) and for mounting.
func (s *Server) App() *fiber.App { return s.app }

// Listen serves on addr ("host:port") until Shutdown.
func (s *Server) Listen(addr string) error {
	if err := s.app.Listen(addr); err != nil {
		return fmt.Errorf("api: listen %s: %w", addr, err)
	}
	return nil
}

// ListenOn serves on ln until Shutdown.
func (s *Server) ListenOn(ln net.Listener) error {
	if err := s.app.Listener(ln); err != nil {
		return fmt.Errorf("api: serve on %s: %w", ln.Addr(), err)
	}
	return nil
}

// Shutdown stops accepting connections and waits for in-flight requests
// until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	if err := s.app.ShutdownWithContext(ctx); err != nil {
		return fmt.Errorf("api: shutdown: %w", err)
	}
	return nil
}

// routes registers every route. Keep openapi.json in step (a test checks).
func (s *Server) routes() {
	a := s.app
	// Operations: no key needed.
	a.Get("/healthz", s.healthz)
	a.Get("/readyz", s.readyz)
	a.Get("/metrics", s.metrics())
	a.Get("/api/v1/openapi.json", s.openapi)

	// Webhook ingress: sources authenticate their callers themselves
	// (HMAC), so no API key.
	a.Post("/hooks/:tenant/+", s.hook)

	v1 := a.Group("/api/v1")
	lim := s.limitBody
	auth := s.authenticate

	// Tenants: admin; a tenant's own key may read its tenant and manage its keys.
	v1.Post("/tenants", lim, auth, requireAdmin, s.createTenant)
	v1.Get("/tenants", auth, requireAdmin, s.listTenants)
	v1.Get("/tenants/:tenant", auth, ownTenant, s.getTenant)
	v1.Get("/tenants/:tenant/nats", auth, ownTenant, requireAdmin, s.getTenantNATS)
	v1.Patch("/tenants/:tenant", lim, auth, ownTenant, requireAdmin, s.patchTenant)
	v1.Delete("/tenants/:tenant", auth, ownTenant, requireAdmin, s.deleteTenant)
	v1.Post("/tenants/:tenant/keys", lim, auth, ownTenant, s.createKey)
	v1.Get("/tenants/:tenant/keys", auth, ownTenant, s.listKeys)
	v1.Delete("/tenants/:tenant/keys/:id", auth, ownTenant, s.deleteKey)

	// Integrations of the caller's tenant.
	v1.Post("/integrations", lim, auth, s.createIntegration)
	v1.Get("/integrations", auth, s.listIntegrations)
	v1.Get("/integrations/:name", auth, s.getIntegration)
	v1.Put("/integrations/:name", lim, auth, s.updateIntegration)
	v1.Delete("/integrations/:name", auth, s.deleteIntegration)
	v1.Post("/integrations/:name/start", auth, s.setDesired(store.StateRunning))
	v1.Post("/integrations/:name/stop", auth, s.setDesired(store.StateStopped))

	// Message tracking and dead letters of an integration of the caller's tenant.
	v1.Get("/integrations/:name/messages/:id", auth, s.getMessage)
	v1.Get("/integrations/:name/dlq", auth, s.listDeadLetters)
	v1.Post("/integrations/:name/dlq/replay", auth, s.replayDeadLetters)
	v1.Get("/integrations/:name/dlq/:id", auth, s.getDeadLetter)
	v1.Delete("/integrations/:name/dlq/:id", auth, s.deleteDeadLetter)
	v1.Post("/integrations/:name/dlq/:id/replay", auth, s.replayDeadLetter)

	// The connector catalogue and registry (connectors.go).
	s.connectorRoutes(v1)
	// Integration templates (templates.go).
	s.templateRoutes(v1)

	// The web UI's assets (ui.go), when Config.UI is set.
	s.uiRoutes()
}

// limitBody enforces the API body limit on the routes that take a JSON
// or YAML document.
func (s *Server) limitBody(c *fiber.Ctx) error {
	if err := readBody(c, s.bodyLimit); err != nil {
		return err
	}
	return c.Next()
}

// bufferBody reads the body of every request but a webhook's into memory,
// refusing more than the server's limit (connector uploads included),
// before any handler reads it.
func (s *Server) bufferBody(c *fiber.Ctx) error {
	if !strings.HasPrefix(c.Path(), "/hooks/") {
		if err := readBody(c, max(s.bodyLimit, s.hookLimit)); err != nil {
			return err
		}
	}
	return c.Next()
}

// readBody makes the request's body whole in memory, refusing more than
// limit bytes: by its Content-Length before reading anything, or as it
// reads a chunked one.
func readBody(c *fiber.Ctx, limit int) error {
	req := c.Request()
	if n := req.Header.ContentLength(); n > limit {
		c.Context().SetConnectionClose() // the body stays unread
		return bodyTooLarge(fmt.Sprintf("the request body is %d bytes, over the limit of %d", n, limit))
	}
	if !req.IsBodyStream() {
		if n := len(req.Body()); n > limit {
			return bodyTooLarge(fmt.Sprintf("the request body is %d bytes, over the limit of %d", n, limit))
		}
		return nil
	}
	b, err := io.ReadAll(io.LimitReader(req.BodyStream(), int64(limit)+1))
	if err != nil {
		c.Context().SetConnectionClose()
		return badRequest("body", "the request body could not be read: %v", err)
	}
	if len(b) > limit {
		c.Context().SetConnectionClose() // the rest stays unread
		return bodyTooLarge(fmt.Sprintf("the request body is over the limit of %d bytes", limit))
	}
	req.SetBody(b)
	return nil
}

func bodyTooLarge(msg string) error {
	return &Error{Status: fiber.StatusRequestEntityTooLarge, Code: CodeBodyTooLarge, Field: "body", Message: msg}
}

// logRequests logs each request at debug level, once its answer (error
// answers included) is written.
func (s *Server) logRequests(c *fiber.Ctx) error {
	if !s.log.Enabled(c.UserContext(), slog.LevelDebug) {
		return c.Next()
	}
	start := time.Now()
	if err := c.Next(); err != nil {
		if herr := s.handleError(c, err); herr != nil {
			return herr
		}
	}
	s.log.Debug("request", "method", c.Method(), "path", c.Path(),
		"status", c.Response().StatusCode(), "duration", time.Since(start))
	return nil
}

package api

import (
	"errors"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// The web UI (package ui builds and embeds it) is served at /ui/ from
// Config.UI: a single-page app, so any path under /ui/ that is not a file
// of the bundle answers index.html and the app's router takes over. Its
// calls go to the public /api/v1 like any client's.

// uiCSP keeps the UI to its own origin: scripts and styles from the bundle
// (inline style attributes allowed, for React's style props), API calls to
// this server.
const uiCSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"

// uiNotBuilt is /ui/ of a binary built without the bundle (a bare `go
// build` of a fresh clone).
const uiNotBuilt = `<!doctype html><meta charset="utf-8"><title>VRSky</title>
<p>The web UI is not built into this binary. Build it with <code>make build</code>
(which runs <code>make ui</code> first), or use the REST API at <code>/api/v1</code>.</p>
`

func (s *Server) uiRoutes() {
	if s.ui == nil {
		return
	}
	s.app.Get("/", func(c *fiber.Ctx) error { return c.Redirect("/ui/", fiber.StatusFound) })
	s.app.Get("/ui/*", s.serveUI)
}

// serveUI answers a file of the bundle, or index.html for any other path.
// Hashed assets (assets/*) are cached for a year; everything else is
// revalidated, so a new binary's UI is picked up at once.
func (s *Server) serveUI(c *fiber.Ctx) error {
	if c.Path() == "/ui" { // the route matches it too (non-strict routing)
		return c.Redirect("/ui/", fiber.StatusMovedPermanently)
	}
	name := strings.TrimPrefix(path.Clean("/"+c.Params("*")), "/")
	if name == "" || name == "." {
		name = "index.html"
	}
	b, err := fs.ReadFile(s.ui, name)
	if err != nil || strings.HasPrefix(path.Base(name), ".") {
		if strings.HasPrefix(name, "assets/") {
			return notFound("no UI asset %q", name)
		}
		name = "index.html"
		if b, err = fs.ReadFile(s.ui, name); errors.Is(err, fs.ErrNotExist) {
			c.Set(fiber.HeaderCacheControl, "no-store")
			c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
			return c.Status(http.StatusServiceUnavailable).SendString(uiNotBuilt)
		} else if err != nil {
			return err
		}
	}
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = fiber.MIMEOctetStream
	}
	c.Set(fiber.HeaderContentType, ct)
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	c.Set(fiber.HeaderReferrerPolicy, "no-referrer")
	if strings.HasPrefix(name, "assets/") {
		c.Set(fiber.HeaderCacheControl, "public, max-age=31536000, immutable")
	} else {
		c.Set(fiber.HeaderCacheControl, "no-cache")
		c.Set(fiber.HeaderContentSecurityPolicy, uiCSP)
		c.Set(fiber.HeaderXFrameOptions, "DENY")
	}
	return c.Send(b)
}

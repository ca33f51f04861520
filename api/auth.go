package api

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/vrsky/vrsky/platform/store"
)

// API keys look like "vrsk_<id>_<secret>": id is 16 hex digits and names
// the stored key (store.GetKey); secret is 64 hex digits from crypto/rand.
// The store keeps only SHA-256 of the whole text.
const keyPrefix = "vrsk_"

// newKey returns a fresh key text and its id.
func newKey() (text, id string, err error) {
	var b [8 + 32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", fmt.Errorf("generate key: %w", err)
	}
	id = hex.EncodeToString(b[:8])
	return keyPrefix + id + "_" + hex.EncodeToString(b[8:]), id, nil
}

// keyID extracts the id from a key text, or reports that it is malformed.
func keyID(text string) (string, bool) {
	rest, ok := strings.CutPrefix(text, keyPrefix)
	if !ok {
		return "", false
	}
	id, secret, ok := strings.Cut(rest, "_")
	if !ok || len(id) != 16 || len(secret) != 64 {
		return "", false
	}
	return id, true
}

// principal is who is calling.
type principal struct {
	admin  bool
	tenant string // for tenant keys
	keyID  string // for tenant keys
}

type principalKey struct{}

func caller(c *fiber.Ctx) *principal {
	p, _ := c.Locals(principalKey{}).(*principal)
	if p == nil {
		// Routes without authenticate never call caller; fail closed.
		return &principal{}
	}
	return p
}

func unauthorized(format string, args ...any) *Error {
	return newError(http.StatusUnauthorized, CodeUnauthorized, "Authorization", format, args...)
}

// authenticate resolves the bearer key to the admin or a tenant.
//
// Refused keys are charged to the client's address, and a wrong secret to
// its key id too; while either is over its budget, every key is answered
// 429 without being looked at (throttle.go).
//
// Keys are compared only as SHA-256 sums and only with
// subtle.ConstantTimeCompare, never with == or bytes.Equal, so the time
// an answer takes says nothing about how much of a guess was right
// (TestKeyComparisonIsConstantTime keeps it so).
func (s *Server) authenticate(c *fiber.Ctx) error {
	client := clientKey(c.IP())
	if wait := s.addrFails.wait(client); wait > 0 {
		return throttled(wait, "from this address")
	}
	h := c.Get(fiber.HeaderAuthorization)
	if h == "" {
		return unauthorized("missing API key: send Authorization: Bearer <key>")
	}
	scheme, text, ok := strings.Cut(h, " ")
	text = strings.TrimSpace(text)
	if !ok || !strings.EqualFold(scheme, "Bearer") || text == "" {
		s.authFailed(client, "")
		return unauthorized("the Authorization header must be \"Bearer <key>\"")
	}
	sum := sha256.Sum256([]byte(text))
	if subtle.ConstantTimeCompare(sum[:], s.adminHash[:]) == 1 {
		c.Locals(principalKey{}, &principal{admin: true})
		return c.Next()
	}
	id, ok := keyID(text)
	if !ok {
		s.authFailed(client, "")
		return unauthorized("invalid API key")
	}
	if wait := s.idFails.wait(id); wait > 0 {
		return throttled(wait, "for this key id")
	}
	k, err := s.store.GetKey(c.UserContext(), id)
	if errors.Is(err, store.ErrNotFound) {
		s.authFailed(client, "")
		return unauthorized("invalid API key")
	}
	if err != nil {
		return storeError(err, "API key")
	}
	if subtle.ConstantTimeCompare(sum[:], k.Hash) != 1 {
		s.authFailed(client, id)
		return unauthorized("invalid API key")
	}
	c.Locals(principalKey{}, &principal{tenant: k.Tenant, keyID: k.ID})
	return c.Next()
}

// requireAdmin admits only the admin key.
func requireAdmin(c *fiber.Ctx) error {
	if !caller(c).admin {
		return newError(http.StatusForbidden, CodeForbidden, "", "this route needs the admin key")
	}
	return c.Next()
}

// ownTenant admits the admin and the key of the tenant named in the path;
// to any other tenant the route's tenant does not exist.
func ownTenant(c *fiber.Ctx) error {
	p := caller(c)
	if !p.admin && p.tenant != c.Params("tenant") {
		return notFound("tenant %q not found", c.Params("tenant"))
	}
	return c.Next()
}

// tenantHeader lets the admin key name the tenant an integration route acts on.
const tenantHeader = "X-Vrsky-Tenant"

// scope returns the tenant an integration route acts on: a tenant key's own
// tenant, or the one the admin names with ?tenant= or X-Vrsky-Tenant.
func (s *Server) scope(c *fiber.Ctx) (string, error) {
	p := caller(c)
	named := c.Query("tenant")
	if named == "" {
		named = c.Get(tenantHeader)
	}
	if !p.admin {
		if named != "" && named != p.tenant {
			return "", notFound("tenant %q not found", named)
		}
		return p.tenant, nil
	}
	if named == "" {
		return "", badRequest("tenant", "the admin key must name the tenant: add ?tenant=<name> or the %s header", tenantHeader)
	}
	if _, err := s.store.GetTenant(c.UserContext(), named); err != nil {
		return "", storeError(err, fmt.Sprintf("tenant %q", named))
	}
	return named, nil
}

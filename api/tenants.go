package api

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/vrsky/vrsky/platform/store"
)

// tenantName is the pattern of tenant names: a DNS label. checkTenantName
// adds the rules a label alone does not give.
var tenantName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// reservedTenants are names the platform itself uses where a tenant's name
// goes, so a tenant of that name would share (or own) the platform's
// records. Names starting with "vrsky-" are reserved too.
var reservedTenants = map[string]string{
	// Object keys are <area>/<tenant>/...; modules are stored at
	// modules/sha256/<digest>, shared by every tenant (registry). The
	// other digests are kept for the day the store names them.
	"sha256": "the module store keeps modules under modules/sha256/",
	"sha384": "reserved for module digests",
	"sha512": "reserved for module digests",
	// The registry's smoke run of an upload acts as tenant vrsky-smoke,
	// integration smoke; subjects, buckets and the S3 prefix start with
	// vrsky.
	"vrsky":       "the platform's own namespace (subjects vrsky.>, buckets vrsky_*, the S3 prefix vrsky/)",
	"vrsky-smoke": "the registry's smoke run of uploaded connectors acts as this tenant",
	"smoke":       "the registry's smoke run uses this name",
	// Names an operator would read as the platform's.
	"system":   "reserved for the platform",
	"sys":      "reserved for the platform (NATS's system account is $SYS)",
	"admin":    "reserved for the platform: the admin key is no tenant",
	"platform": "reserved for the platform",
	"builtin":  "reserved for the platform's built-in connectors",
}

// checkTenantName refuses a name that is not a DNS label, that holds "--"
// (it upper-cases to "__", the end of a secret scope: see
// runtime.SecretEnvScope, whose scopes are exact only because no tenant
// name holds it), or that the platform reserves.
func checkTenantName(name string) error {
	switch {
	case name == "":
		return badRequest("name", "required")
	case !tenantName.MatchString(name):
		return badRequest("name", "must be 1-63 lowercase letters, digits and '-', starting and ending with a letter or digit")
	case strings.Contains(name, "--"):
		return badRequest("name", "must not contain \"--\": it would make the tenant's secret scope overlap another's")
	}
	if why, ok := reservedTenants[name]; ok {
		return badRequest("name", "%q is reserved: %s", name, why)
	}
	if strings.HasPrefix(name, "vrsky-") {
		return badRequest("name", "%q is reserved: names starting with vrsky- are the platform's", name)
	}
	return nil
}

type tenantCreate struct {
	Name        string       `json:"name"`
	DisplayName string       `json:"display_name"`
	Quotas      store.Quotas `json:"quotas"`
}

type quotasPatch struct {
	MaxIntegrations      *int   `json:"max_integrations"`
	MaxMessagesPerSecond *int   `json:"max_messages_per_second"`
	MaxStorageBytes      *int64 `json:"max_storage_bytes"`
}

type tenantPatch struct {
	DisplayName *string      `json:"display_name"`
	Quotas      *quotasPatch `json:"quotas"`
}

// tenantCreated is the answer to a tenant create: the tenant and its first
// key, shown this once.
type tenantCreated struct {
	store.Tenant
	APIKey string `json:"api_key"`
	KeyID  string `json:"key_id"`
}

func checkQuotas(q store.Quotas) error {
	switch {
	case q.MaxIntegrations < 0:
		return badRequest("quotas.max_integrations", "must not be negative")
	case q.MaxMessagesPerSecond < 0:
		return badRequest("quotas.max_messages_per_second", "must not be negative")
	case q.MaxStorageBytes < 0:
		return badRequest("quotas.max_storage_bytes", "must not be negative")
	}
	return nil
}

func (s *Server) createTenant(c *fiber.Ctx) error {
	var in tenantCreate
	if err := decodeJSON(c, &in, false); err != nil {
		return err
	}
	if err := checkTenantName(in.Name); err != nil {
		return err
	}
	if err := checkQuotas(in.Quotas); err != nil {
		return err
	}
	ctx := c.UserContext()
	t, err := s.store.CreateTenant(ctx, store.Tenant{Name: in.Name, DisplayName: in.DisplayName, Quotas: in.Quotas})
	if err != nil {
		return storeError(err, fmt.Sprintf("tenant %q", in.Name))
	}
	text, k, err := s.issueKey(c, t.Name, "initial")
	if err != nil {
		// Do not leave a tenant nobody can use.
		if derr := s.store.DeleteTenant(ctx, t.Name); derr != nil {
			s.log.Error("roll back tenant create", "tenant", t.Name, "err", derr)
		}
		return err
	}
	c.Location("/api/v1/tenants/" + url.PathEscape(t.Name))
	return c.Status(http.StatusCreated).JSON(tenantCreated{Tenant: t, APIKey: text, KeyID: k.ID})
}

func (s *Server) listTenants(c *fiber.Ctx) error {
	ts, err := s.store.ListTenants(c.UserContext())
	if err != nil {
		return storeError(err, "tenants")
	}
	if ts == nil {
		ts = []store.Tenant{}
	}
	return c.JSON(fiber.Map{"tenants": ts})
}

func (s *Server) getTenant(c *fiber.Ctx) error {
	name := c.Params("tenant")
	t, err := s.store.GetTenant(c.UserContext(), name)
	if err != nil {
		return storeError(err, fmt.Sprintf("tenant %q", name))
	}
	return c.JSON(t)
}

func (s *Server) patchTenant(c *fiber.Ctx) error {
	name := c.Params("tenant")
	var p tenantPatch
	if err := decodeJSON(c, &p, false); err != nil {
		return err
	}
	ctx := c.UserContext()
	t, err := s.store.GetTenant(ctx, name)
	if err != nil {
		return storeError(err, fmt.Sprintf("tenant %q", name))
	}
	if p.DisplayName != nil {
		t.DisplayName = *p.DisplayName
	}
	if q := p.Quotas; q != nil {
		if q.MaxIntegrations != nil {
			t.Quotas.MaxIntegrations = *q.MaxIntegrations
		}
		if q.MaxMessagesPerSecond != nil {
			t.Quotas.MaxMessagesPerSecond = *q.MaxMessagesPerSecond
		}
		if q.MaxStorageBytes != nil {
			t.Quotas.MaxStorageBytes = *q.MaxStorageBytes
		}
	}
	if err := checkQuotas(t.Quotas); err != nil {
		return err
	}
	t, err = s.store.UpdateTenant(ctx, t)
	if err != nil {
		return storeError(err, fmt.Sprintf("tenant %q", name))
	}
	return c.JSON(t)
}

// deleteTenant removes the tenant's records first, so that no reconcile
// loop restarts its integrations, then their streams.
func (s *Server) deleteTenant(c *fiber.Ctx) error {
	name := c.Params("tenant")
	ctx := c.UserContext()
	if _, err := s.store.GetTenant(ctx, name); err != nil {
		return storeError(err, fmt.Sprintf("tenant %q", name))
	}
	ins, err := s.store.ListIntegrations(ctx, name)
	if err != nil {
		return storeError(err, fmt.Sprintf("integrations of tenant %q", name))
	}
	if err := s.store.DeleteTenant(ctx, name); err != nil {
		return storeError(err, fmt.Sprintf("tenant %q", name))
	}
	var errs []error
	for _, in := range ins {
		if err := s.eng.Remove(ctx, name, in.Name, s.storedSpec(in)); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("tenant %q deleted, but removing its streams failed: %w", name, err)
	}
	return c.SendStatus(http.StatusNoContent)
}

// ---- keys ----

type keyCreate struct {
	Name string `json:"name"`
}

// keyView is a key as the API shows it: never its hash.
type keyView struct {
	ID        string    `json:"id"`
	Tenant    string    `json:"tenant"`
	Name      string    `json:"name,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// APIKey is the key text, only in the answer to its creation.
	APIKey string `json:"api_key,omitempty"`
}

func viewKey(k store.APIKey) keyView {
	return keyView{ID: k.ID, Tenant: k.Tenant, Name: k.Name, CreatedAt: k.CreatedAt}
}

// issueKey creates a key for tenant and returns its text, shown once.
func (s *Server) issueKey(c *fiber.Ctx, tenant, label string) (string, store.APIKey, error) {
	text, id, err := newKey()
	if err != nil {
		return "", store.APIKey{}, err
	}
	sum := sha256.Sum256([]byte(text))
	k, err := s.store.CreateKey(c.UserContext(), store.APIKey{ID: id, Tenant: tenant, Hash: sum[:], Name: label})
	if err != nil {
		return "", store.APIKey{}, storeError(err, fmt.Sprintf("tenant %q", tenant))
	}
	return text, k, nil
}

func (s *Server) createKey(c *fiber.Ctx) error {
	var in keyCreate
	if err := decodeJSON(c, &in, true); err != nil {
		return err
	}
	if len(in.Name) > 128 {
		return badRequest("name", "must be at most 128 characters")
	}
	text, k, err := s.issueKey(c, c.Params("tenant"), in.Name)
	if err != nil {
		return err
	}
	v := viewKey(k)
	v.APIKey = text
	return c.Status(http.StatusCreated).JSON(v)
}

func (s *Server) listKeys(c *fiber.Ctx) error {
	tenant := c.Params("tenant")
	ctx := c.UserContext()
	if _, err := s.store.GetTenant(ctx, tenant); err != nil {
		return storeError(err, fmt.Sprintf("tenant %q", tenant))
	}
	ks, err := s.store.ListKeys(ctx, tenant)
	if err != nil {
		return storeError(err, fmt.Sprintf("keys of tenant %q", tenant))
	}
	out := make([]keyView, 0, len(ks))
	for _, k := range ks {
		out = append(out, viewKey(k))
	}
	return c.JSON(fiber.Map{"keys": out})
}

func (s *Server) deleteKey(c *fiber.Ctx) error {
	tenant, id := c.Params("tenant"), c.Params("id")
	if err := s.store.DeleteKey(c.UserContext(), tenant, id); err != nil {
		return storeError(err, fmt.Sprintf("key %q", id))
	}
	return c.SendStatus(http.StatusNoContent)
}

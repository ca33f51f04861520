package api

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/vrsky/vrsky/platform/provision"
	"github.com/vrsky/vrsky/platform/store"
	"github.com/vrsky/vrsky/platform/tenancy"
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
	Placement   *string      `json:"placement"`
}

// Tenancy is the NATS side of tenants: each has an account of its own
// whose claims carry its storage quota (platform/tenancy's Manager).
type Tenancy interface {
	// Sync brings the tenant's account in line with t (created or updated).
	Sync(ctx context.Context, t store.Tenant) error
	// Remove deletes the tenant's streams and account.
	Remove(ctx context.Context, t store.Tenant) error
	// Account is the tenant's account public key.
	Account(t store.Tenant) (string, error)
	// Usage is what the tenant's account holds now.
	Usage(ctx context.Context, tenant string) (tenancy.Usage, error)
	// Endpoint is where the tenant's NATS lives now (service discovery).
	Endpoint(ctx context.Context, t store.Tenant) (store.Endpoint, error)
	// Dedicated reports whether dedicated instances can be provisioned.
	Dedicated() bool
	// Follow points this node at where the tenant lives now (its
	// endpoint record), which another node may have changed.
	Follow(ctx context.Context, t store.Tenant) error
	// Health of every dedicated instance.
	Health(ctx context.Context) ([]provision.Health, error)
}

// tenantView is a tenant with its usage, next to its quotas.
type tenantView struct {
	store.Tenant
	Usage *tenantUsage `json:"usage,omitempty"`
}

// tenantUsage is what the tenant uses of each quota.
type tenantUsage struct {
	Integrations int    `json:"integrations"`
	StorageBytes uint64 `json:"storage_bytes"`
	Streams      int    `json:"streams"`
	Consumers    int    `json:"consumers"`
}

// tenantNATS is service discovery's answer: where the tenant's NATS lives.
type tenantNATS struct {
	Placement string `json:"placement"`
	URL       string `json:"url"`
	Account   string `json:"account"`
	// Moving is the move under way, if any: where to, and its phase.
	Moving *tenantMove `json:"moving,omitempty"`
	// Instance is the dedicated instance's health, when dedicated.
	Instance *provision.Health `json:"instance,omitempty"`
}

type tenantMove struct {
	Placement string `json:"placement"`
	URL       string `json:"url"`
	Phase     string `json:"phase"`
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
	if err := s.tenancy.Sync(ctx, t); err != nil {
		// A tenant without its account could store nothing: roll back.
		if derr := s.store.DeleteTenant(ctx, t.Name); derr != nil {
			s.log.Error("roll back tenant create", "tenant", t.Name, "err", derr)
		}
		return fmt.Errorf("create the NATS account of tenant %q: %w", t.Name, err)
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

// getTenant answers the tenant with its usage; usage is left out when the
// tenant's NATS cannot be asked (the tenant itself is still shown).
func (s *Server) getTenant(c *fiber.Ctx) error {
	name := c.Params("tenant")
	ctx := c.UserContext()
	t, err := s.store.GetTenant(ctx, name)
	if err != nil {
		return storeError(err, fmt.Sprintf("tenant %q", name))
	}
	v := tenantView{Tenant: t}
	ins, err := s.store.ListIntegrations(ctx, name)
	if err != nil {
		return storeError(err, fmt.Sprintf("integrations of tenant %q", name))
	}
	if u, err := s.tenancy.Usage(ctx, name); err == nil {
		v.Usage = &tenantUsage{Integrations: len(ins), StorageBytes: u.StorageBytes, Streams: u.Streams, Consumers: u.Consumers}
	} else {
		s.log.Warn("tenant usage", "tenant", name, "err", err)
	}
	return c.JSON(v)
}

// getTenantNATS answers where the tenant's NATS lives (service discovery).
func (s *Server) getTenantNATS(c *fiber.Ctx) error {
	name := c.Params("tenant")
	t, err := s.store.GetTenant(c.UserContext(), name)
	if err != nil {
		return storeError(err, fmt.Sprintf("tenant %q", name))
	}
	ep, err := s.tenancy.Endpoint(c.UserContext(), t)
	if err != nil {
		return err
	}
	out := tenantNATS{Placement: ep.Placement, URL: ep.URL, Account: ep.Account}
	if m := ep.Moving; m != nil {
		out.Moving = &tenantMove{Placement: m.Placement, URL: m.URL, Phase: m.Phase}
	}
	if ep.Placement == store.PlacementDedicated {
		if hs, err := s.tenancy.Health(c.UserContext()); err == nil {
			for i := range hs {
				if hs[i].Tenant == name {
					out.Instance = &hs[i]
				}
			}
		}
	}
	return c.JSON(out)
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
	move := ""
	if p.Placement != nil && s.eng.Moving(name) {
		return newError(http.StatusConflict, CodeConflict, "placement", "tenant %q is being moved; change its placement once the move is done (GET .../nats)", name)
	}
	if p.Placement != nil {
		switch *p.Placement {
		case store.PlacementShared, "":
			t.Placement, move = "", store.PlacementShared
		case store.PlacementDedicated:
			if !s.tenancy.Dedicated() {
				return newError(http.StatusUnprocessableEntity, CodeUnprocessable, "placement", "dedicated NATS instances are not available on this server (start vrsky serve with --dedicated-nats); the tenant stays shared")
			}
			t.Placement, move = store.PlacementDedicated, store.PlacementDedicated
		default:
			return badRequest("placement", "must be %q or %q", store.PlacementShared, store.PlacementDedicated)
		}
	}
	t, err = s.store.UpdateTenant(ctx, t)
	if err != nil {
		return storeError(err, fmt.Sprintf("tenant %q", name))
	}
	if err := s.tenancy.Sync(ctx, t); err != nil {
		return fmt.Errorf("tenant %q updated, but its NATS account's limits were not: %w", name, err)
	}
	if move != "" {
		ep, err := s.tenancy.Endpoint(ctx, t)
		if err != nil {
			return err
		}
		if ep.Moving == nil && ep.Placement != move {
			// The move runs on: GET .../nats follows it.
			go func() {
				if err := s.eng.MoveTenant(context.WithoutCancel(ctx), name, move); err != nil {
					s.log.Error("tenant move failed", "tenant", name, "to", move, "err", err)
				}
			}()
			return c.Status(http.StatusAccepted).JSON(t)
		}
	}
	return c.JSON(t)
}

// deleteTenant removes the tenant's records first, so that no reconcile
// loop restarts its integrations, then their streams.
func (s *Server) deleteTenant(c *fiber.Ctx) error {
	name := c.Params("tenant")
	ctx := c.UserContext()
	t, err := s.store.GetTenant(ctx, name)
	if err != nil {
		return storeError(err, fmt.Sprintf("tenant %q", name))
	}
	ins, err := s.store.ListIntegrations(ctx, name)
	if err != nil {
		return storeError(err, fmt.Sprintf("integrations of tenant %q", name))
	}
	// The account, and where it lives, must be known here to remove the
	// streams (and a dedicated instance) once the record is gone.
	if err := s.tenancy.Follow(ctx, t); err != nil {
		return fmt.Errorf("the NATS endpoint of tenant %q: %w", name, err)
	}
	if err := s.tenancy.Sync(ctx, t); err != nil {
		return fmt.Errorf("the NATS account of tenant %q: %w", name, err)
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
	// The account goes last, with whatever streams are left.
	if err := s.tenancy.Remove(ctx, t); err != nil {
		errs = append(errs, fmt.Errorf("NATS account: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("tenant %q deleted, but removing its data failed: %w", name, err)
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

package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Connector visibilities.
const (
	// VisibilityPrivate connectors are seen by their owning tenant only.
	VisibilityPrivate = "private"
	// VisibilityPublic connectors are in every tenant's catalogue.
	VisibilityPublic = "public"
)

// ConnectorVersion is one published version of a connector in the registry's
// catalogue. The module's bytes live in the object store under ModuleKey.
type ConnectorVersion struct {
	// Tenant owns the connector; "" for platform connectors, which every
	// tenant sees whatever their visibility.
	Tenant string `json:"tenant"`
	// Name identifies the connector within its owner.
	Name string `json:"name"`
	// Version is unique within Tenant and Name (for example "1.4.0"). The
	// store does not interpret it: ordering by semantic version is the
	// registry's business.
	Version string `json:"version"`
	// Kind is what the connector does: "source", "sink", "converter", "filter", ….
	Kind string `json:"kind"`
	// Visibility is VisibilityPrivate (the default when empty) or
	// VisibilityPublic. The latest version's visibility is the connector's.
	Visibility string `json:"visibility"`
	// Manifest is the connector's manifest as JSON. Backends may re-format
	// it: compare it as JSON.
	Manifest []byte `json:"manifest"`
	// Digest is the hex SHA-256 of the module.
	Digest string `json:"digest"`
	// Size is the module's length in bytes.
	Size int64 `json:"size"`
	// ModuleKey is the module's key in the object store.
	ModuleKey string `json:"module_key"`
	// Deprecated versions stay resolvable for integrations that pin them
	// but should not be offered for new ones.
	Deprecated bool `json:"deprecated"`
	// CreatedAt is set by the store.
	CreatedAt time.Time `json:"created_at"`
}

// ConnectorStore keeps the registry's metadata. The NATS KV store and the
// PostgreSQL store implement it next to Store; storetest.Run checks it on
// every store that does.
//
// Deleting a tenant does not delete its connectors: public ones may be in
// use by other tenants. The registry decides what to do with them.
//
// A connector name has one owner across all tenants, the platform ("")
// included: the registry resolves "name@version" without knowing who asks.
// The first CreateConnectorVersion of a name claims it for its Tenant,
// atomically with respect to every other create, so of two tenants
// publishing a new name at once exactly one wins. The claim outlives the
// versions: deleting every version of a name, or its owner, does not free
// it, so a name other tenants have relied on cannot pass to another
// publisher. Connectors stored before claims existed keep their owner: a
// name with versions but no claim is claimed, on first sight, for the
// owner the registry resolved it to until then: the platform if it has
// versions of the name, else the first tenant by name that has, tenants
// that exist before deleted ones.
type ConnectorStore interface {
	// CreateConnectorVersion stores a new version: ErrNotFound if Tenant
	// is not "" and no such tenant exists, ErrNameTaken if another tenant
	// owns Name (claiming it first if nobody does), ErrExists if Tenant,
	// Name and Version are taken. CreatedAt is set.
	CreateConnectorVersion(ctx context.Context, v ConnectorVersion) (ConnectorVersion, error)
	// GetConnectorVersion returns one version, ErrNotFound if missing.
	GetConnectorVersion(ctx context.Context, tenant, name, version string) (ConnectorVersion, error)
	// ListConnectorVersions returns a connector's versions, oldest first;
	// none (not an error) if it has none.
	ListConnectorVersions(ctx context.Context, tenant, name string) ([]ConnectorVersion, error)
	// ListConnectors returns the latest version of every connector viewer
	// may see — the platform's, viewer's own, and other tenants' public
	// ones — sorted by tenant and name. Viewer "" sees the platform's and
	// public ones.
	ListConnectors(ctx context.Context, viewer string) ([]ConnectorVersion, error)
	// SetConnectorDeprecated marks a version deprecated or not; ErrNotFound if missing.
	SetConnectorDeprecated(ctx context.Context, tenant, name, version string, deprecated bool) error
	// DeleteConnectorVersion removes a version; ErrNotFound if missing.
	DeleteConnectorVersion(ctx context.Context, tenant, name, version string) error
}

// CheckConnectorVersion validates the fields every backend requires and
// fills in the default visibility.
func CheckConnectorVersion(v *ConnectorVersion) error {
	switch {
	case v.Name == "":
		return errors.New("store: connector name is empty")
	case v.Version == "":
		return errors.New("store: connector version is empty")
	case v.Kind == "":
		return errors.New("store: connector kind is empty")
	case !json.Valid(v.Manifest):
		return fmt.Errorf("store: connector %s@%s: manifest is not valid JSON", v.Name, v.Version)
	}
	switch v.Visibility {
	case "":
		v.Visibility = VisibilityPrivate
	case VisibilityPrivate, VisibilityPublic:
	default:
		return fmt.Errorf("store: connector visibility %q: want %q or %q", v.Visibility, VisibilityPrivate, VisibilityPublic)
	}
	return nil
}

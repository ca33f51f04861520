// Package store defines VRSky's control-plane store: tenants, API keys,
// integrations and tenants' NATS endpoints (service discovery). The embedded default keeps them in NATS KV buckets
// (NewNATS); production deployments use PostgreSQL. Every implementation
// passes the same contract suite in package storetest.
package store

import (
	"context"
	"errors"
	"time"
)

// Errors every implementation returns (wrapped) so callers can use errors.Is.
var (
	// ErrNotFound: the named record does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists: a create met a record with the same name.
	ErrExists = errors.New("already exists")
	// ErrConflict: an update carried a revision that is no longer current.
	ErrConflict = errors.New("revision conflict")
	// ErrUnavailable: the backend cannot be reached right now; retry later.
	ErrUnavailable = errors.New("store unavailable")
	// ErrNameTaken: a connector name belongs to another owner (see
	// ConnectorStore.CreateConnectorVersion).
	ErrNameTaken = errors.New("connector name taken by another owner")
)

// Tenant is one customer of the platform. Everything else belongs to a tenant.
type Tenant struct {
	// Name is the tenant's unique, DNS-label-like identifier.
	Name string `json:"name"`
	// DisplayName is free text for humans.
	DisplayName string `json:"display_name,omitempty"`
	// Quotas bound what the tenant may use; zero means the platform default.
	Quotas Quotas `json:"quotas"`
	// Placement is where the operator wants the tenant's NATS to live:
	// PlacementShared (also the meaning of "") or PlacementDedicated.
	// Where it lives now is the tenant's Endpoint.
	Placement string `json:"placement,omitempty"`
	// CreatedAt is set by the store on create.
	CreatedAt time.Time `json:"created_at"`
	// Revision is set by the store; pass it back to Update for optimistic
	// locking. It changes on every write and is never reused, not even by
	// a tenant deleted and created again under the same name.
	Revision uint64 `json:"-"`
}

// Placements of a tenant's NATS.
const (
	// PlacementShared: the tenant's own account on the platform servers.
	PlacementShared = "shared"
	// PlacementDedicated: the tenant's account on a NATS instance of its own.
	PlacementDedicated = "dedicated"
)

// Endpoint is service discovery's record of where a tenant's NATS lives
// now: every node resolves the tenant through it and follows its changes.
// A tenant without one lives on the platform servers (shared).
type Endpoint struct {
	// Tenant the record belongs to.
	Tenant string `json:"tenant"`
	// Placement is PlacementShared or PlacementDedicated.
	Placement string `json:"placement"`
	// URL is the dedicated instance's client URL; empty when shared.
	URL string `json:"url,omitempty"`
	// Account is the tenant's NATS account (its public key).
	Account string `json:"account"`
	// Moving, when set, is the placement the tenant is being moved to:
	// sources publish there already while the integrations drain here.
	Moving *Endpoint `json:"moving,omitempty"`
	// Phase is, in a Moving record, the step the move is at ("drain",
	// "hold": see runtime.Engine.MoveTenant).
	Phase string `json:"phase,omitempty"`
	// UpdatedAt is set by the store.
	UpdatedAt time.Time `json:"updated_at"`
	// Revision is set by the store; pass it back to PutEndpoint for
	// optimistic locking (zero: create).
	Revision uint64 `json:"-"`
}

// Quotas bound a tenant's usage. Zero values mean "platform default".
type Quotas struct {
	// MaxIntegrations caps how many integrations the tenant may define.
	MaxIntegrations int `json:"max_integrations,omitempty"`
	// MaxMessagesPerSecond caps the tenant's ingest rate.
	MaxMessagesPerSecond int `json:"max_messages_per_second,omitempty"`
	// MaxStorageBytes caps the JetStream storage the tenant's streams may hold.
	MaxStorageBytes int64 `json:"max_storage_bytes,omitempty"`
}

// APIKey is a tenant's credential. Only a hash of the secret is stored.
type APIKey struct {
	// ID is the public part of the key, unique across the platform.
	ID string `json:"id"`
	// Tenant owns the key.
	Tenant string `json:"tenant"`
	// Hash is SHA-256 of the full key text.
	Hash []byte `json:"hash"`
	// Name is an optional label.
	Name string `json:"name,omitempty"`
	// CreatedAt is set by the store on create.
	CreatedAt time.Time `json:"created_at"`
}

// Integration is a tenant's integration definition and its desired state.
type Integration struct {
	// Tenant owns the integration.
	Tenant string `json:"tenant"`
	// Name is unique within the tenant.
	Name string `json:"name"`
	// Spec is the validated integration spec, as canonical JSON. Backends
	// may re-format it (PostgreSQL's jsonb does): compare it as JSON.
	Spec []byte `json:"spec"`
	// Desired is the state the operator asked for: "running" or "stopped".
	Desired string `json:"desired"`
	// CreatedAt and UpdatedAt are set by the store.
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// Revision is set by the store; pass it back to UpdateIntegration for
	// optimistic locking.
	Revision uint64 `json:"-"`
}

// Desired states of an integration.
const (
	StateRunning = "running"
	StateStopped = "stopped"
)

// Store is the control-plane store. Implementations are safe for concurrent use.
//
// Errors wrap the sentinels above, so callers branch with errors.Is. Names
// are stored as given: validating them is the caller's job. Timestamps are
// UTC with microsecond precision. Lists are never nil.
type Store interface {
	// CreateTenant stores a new tenant; ErrExists if the name is taken.
	CreateTenant(ctx context.Context, t Tenant) (Tenant, error)
	// GetTenant returns ErrNotFound when the tenant does not exist.
	GetTenant(ctx context.Context, name string) (Tenant, error)
	// ListTenants returns all tenants sorted by name.
	ListTenants(ctx context.Context) ([]Tenant, error)
	// UpdateTenant replaces the tenant's display name, quotas and placement if
	// t.Revision is current: ErrConflict otherwise, ErrNotFound if it does
	// not exist. CreatedAt is kept; the new Revision is returned.
	UpdateTenant(ctx context.Context, t Tenant) (Tenant, error)
	// DeleteTenant removes the tenant, its keys, its integrations and its
	// endpoint.
	DeleteTenant(ctx context.Context, name string) error

	// CreateKey stores a key; ErrExists if the ID is taken, ErrNotFound if the tenant is missing.
	CreateKey(ctx context.Context, k APIKey) (APIKey, error)
	// GetKey returns a key by ID, whatever its tenant (for authentication);
	// ErrNotFound if there is none or its tenant has been deleted.
	GetKey(ctx context.Context, id string) (APIKey, error)
	// ListKeys returns the tenant's keys sorted by ID.
	ListKeys(ctx context.Context, tenant string) ([]APIKey, error)
	// DeleteKey removes the tenant's key; ErrNotFound if it is not the tenant's.
	DeleteKey(ctx context.Context, tenant, id string) error

	// CreateIntegration stores a new integration; ErrExists if the name is
	// taken in the tenant, ErrNotFound if the tenant is missing. CreatedAt,
	// UpdatedAt and Revision are set.
	CreateIntegration(ctx context.Context, in Integration) (Integration, error)
	// GetIntegration returns ErrNotFound when the tenant has no such integration.
	GetIntegration(ctx context.Context, tenant, name string) (Integration, error)
	// ListIntegrations returns the tenant's integrations sorted by name;
	// tenant "" lists every tenant's (for the runtime on start).
	ListIntegrations(ctx context.Context, tenant string) ([]Integration, error)
	// UpdateIntegration replaces Spec and Desired if in.Revision is current:
	// ErrConflict otherwise, ErrNotFound if the tenant has no such
	// integration. CreatedAt is kept, UpdatedAt set.
	UpdateIntegration(ctx context.Context, in Integration) (Integration, error)
	// DeleteIntegration removes it; ErrNotFound if missing.
	DeleteIntegration(ctx context.Context, tenant, name string) error

	// PutEndpoint creates the tenant's endpoint record when e.Revision is
	// zero (ErrExists if there is one) or replaces it if e.Revision is
	// current (ErrConflict otherwise, also when the record has been
	// deleted since); ErrNotFound if the tenant is missing. Moving is
	// stored as given. UpdatedAt and the new Revision are set.
	PutEndpoint(ctx context.Context, e Endpoint) (Endpoint, error)
	// GetEndpoint returns ErrNotFound when the tenant has no record.
	GetEndpoint(ctx context.Context, tenant string) (Endpoint, error)
	// ListEndpoints returns every record sorted by tenant.
	ListEndpoints(ctx context.Context) ([]Endpoint, error)
	// DeleteEndpoint removes the tenant's record; ErrNotFound if missing.
	// DeleteTenant removes it too.
	DeleteEndpoint(ctx context.Context, tenant string) error

	// Ping reports whether the backend is reachable (ErrUnavailable otherwise).
	Ping(ctx context.Context) error
}

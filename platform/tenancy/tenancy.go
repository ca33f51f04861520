// Package tenancy keeps tenants apart in NATS itself. Every tenant has an
// account of its own, derived from the platform's keys (natsx.Keys), whose
// claims carry the tenant's storage quota as JetStream limits, so the
// servers refuse what exceeds it and no user of one tenant's account can
// see, publish to or consume another's subjects and streams. The Manager
// pushes those claims, hands out connections as the tenant's users (one
// for the data plane, one narrower for Wasm guests) and removes a deleted
// tenant's account and data.
package tenancy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/vrsky/vrsky/abi"
	"github.com/vrsky/vrsky/platform/natsx"
	"github.com/vrsky/vrsky/platform/provision"
	"github.com/vrsky/vrsky/platform/store"
)

// Store is the part of the control-plane store the Manager reads.
type Store interface {
	GetTenant(ctx context.Context, name string) (store.Tenant, error)
	GetEndpoint(ctx context.Context, tenant string) (store.Endpoint, error)
	ListEndpoints(ctx context.Context) ([]store.Endpoint, error)
}

// Manager hands out tenants' NATS connections. It is safe for concurrent
// use.
type Manager struct {
	conn  *natsx.Conn
	store Store
	log   *slog.Logger

	mu         sync.Mutex
	tenants    map[string]*account
	urls       map[string]string         // tenants whose connections dial a dedicated instance (Switch)
	prov       Provisioner               // nil: no dedicated instances
	syncAlways bool                      // dedicated instances fsync each write (SetProvisioner)
	specs      map[string]provision.Spec // dedicated instances' specs, made once (Provision)
}

// account is one tenant's account on this node: its key, the revision of
// the tenant whose claims were pushed last, and its connections.
type account struct {
	mu        sync.Mutex // serialises sync and dial for one tenant
	key       nkeys.KeyPair
	pub       string
	created   int64
	pushedRev uint64 // 0: never pushed by this node
	pushedAt  int64  // the second (Unix) of the last push
	url       string // where the connections dial: "" for the platform servers
	data      *natsx.Conn
	guest     *natsx.Conn
}

// New returns a Manager acting with conn's keys; conn is the platform
// account's connection.
func New(conn *natsx.Conn, st Store, log *slog.Logger) *Manager {
	if log == nil {
		log = slog.Default()
	}
	return &Manager{conn: conn, store: st, log: log, tenants: map[string]*account{}}
}

// ErrNoTenant: the tenant does not exist (anymore).
var ErrNoTenant = errors.New("tenancy: no such tenant")

// Limits are the JetStream limits of a tenant's account: its storage quota
// (unlimited without one).
func Limits(t store.Tenant) natsx.AccountLimits {
	lim := natsx.Unlimited
	if t.Quotas.MaxStorageBytes > 0 {
		lim.StorageBytes = t.Quotas.MaxStorageBytes
	}
	return lim
}

// AccountName is the name a tenant's account carries in its claims.
func AccountName(tenant string) string { return "tenant-" + tenant }

// Account returns the public key of t's account.
func (m *Manager) Account(t store.Tenant) (string, error) {
	kp, err := m.conn.Keys().TenantAccount(t.Name, t.CreatedAt.UnixMicro())
	if err != nil {
		return "", err
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return "", fmt.Errorf("tenancy: account key of %s: %w", t.Name, err)
	}
	return pub, nil
}

// entry returns the node's record of t's account, replacing one that
// belonged to an earlier tenant of the same name.
func (m *Manager) entry(t store.Tenant) (*account, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	created := t.CreatedAt.UnixMicro()
	if a, ok := m.tenants[t.Name]; ok {
		if a.created == created {
			return a, nil
		}
		a.closeConns()
		delete(m.tenants, t.Name)
	}
	kp, err := m.conn.Keys().TenantAccount(t.Name, created)
	if err != nil {
		return nil, err
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("tenancy: account key of %s: %w", t.Name, err)
	}
	a := &account{key: kp, pub: pub, created: created, url: m.urls[t.Name]}
	m.tenants[t.Name] = a
	return a, nil
}

// Sync pushes t's account claims (its limits as of t) to the servers,
// unless this node already pushed them for t's revision. Call it after a
// tenant is created or its quotas change, and before its record is
// deleted (so that the account serves its removal); Conn calls it too.
func (m *Manager) Sync(ctx context.Context, t store.Tenant) error {
	a, err := m.entry(t)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return m.syncLocked(ctx, t, a)
}

func (m *Manager) syncLocked(ctx context.Context, t store.Tenant, a *account) error {
	if a.pushedRev == t.Revision && t.Revision != 0 {
		return nil
	}
	// A claims JWT's id hashes its common claims only (issuer, subject,
	// name, issue time in whole seconds), and the resolver ignores a JWT
	// whose id it has: claims issued within the second of the last ones
	// would be dropped. Wait for the next second.
	if now := time.Now(); now.Unix() == a.pushedAt {
		select {
		case <-time.After(time.Unix(now.Unix()+1, 0).Sub(now)):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	claims, err := m.conn.Keys().AccountJWT(a.pub, AccountName(t.Name), true, Limits(t))
	if err != nil {
		return err
	}
	if err := m.conn.PushAccount(ctx, a.url, claims); err != nil {
		return fmt.Errorf("tenancy: account of tenant %s: %w", t.Name, err)
	}
	a.pushedRev, a.pushedAt = t.Revision, time.Now().Unix()
	return nil
}

// tenant reads the tenant, mapping not-found to ErrNoTenant.
func (m *Manager) tenant(ctx context.Context, name string) (store.Tenant, error) {
	t, err := m.store.GetTenant(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return t, fmt.Errorf("%w: %s", ErrNoTenant, name)
	}
	if err != nil {
		return t, fmt.Errorf("tenancy: tenant %s: %w", name, err)
	}
	return t, nil
}

// Conn returns the tenant's data-plane connection: a user of its account
// with all of the account's rights, dialled on first use and kept. The
// account's claims are brought up to the tenant's current revision first.
func (m *Manager) Conn(ctx context.Context, tenant string) (*natsx.Conn, error) {
	return m.conn2(ctx, tenant, false)
}

// GuestNATS returns the connection the Wasm host's NATS functions use for
// the tenant: a user of its account that may publish only on the subjects
// guests may use (the tenant's "_app" namespace and single-token subjects,
// ABI.md §5) and subscribe only to reply inboxes, so that even a host bug
// cannot reach the platform's subjects or JetStream's API, let alone
// another tenant.
func (m *Manager) GuestNATS(ctx context.Context, tenant string) (*nats.Conn, error) {
	c, err := m.conn2(ctx, tenant, true)
	if err != nil {
		return nil, err
	}
	return c.NC, nil
}

// GuestPermissions are the permissions of a tenant's guest user.
func GuestPermissions(tenant string) *jwt.Permissions {
	base := "vrsky." + tenant + "."
	return &jwt.Permissions{
		Pub: jwt.Permission{Allow: jwt.StringList{base + abi.SubjectAppToken + ".>", base + "*"}},
		Sub: jwt.Permission{Allow: jwt.StringList{"_INBOX.>"}},
	}
}

func (m *Manager) conn2(ctx context.Context, tenant string, guest bool) (*natsx.Conn, error) {
	t, err := m.tenant(ctx, tenant)
	var a *account
	switch {
	case errors.Is(err, ErrNoTenant):
		// A tenant being deleted: its record goes first (so that no node
		// restarts its integrations), its integrations' streams after, and
		// its account last (Remove). Until then the account it had here
		// serves.
		m.mu.Lock()
		a = m.tenants[tenant]
		m.mu.Unlock()
		if a == nil {
			return nil, err
		}
		a.mu.Lock()
		defer a.mu.Unlock()
	case err != nil:
		return nil, err
	default:
		if a, err = m.entry(t); err != nil {
			return nil, err
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		if err := m.syncLocked(ctx, t, a); err != nil {
			return nil, err
		}
	}
	slot, as := &a.data, natsx.As{Name: "vrsky-tenant-" + tenant, Account: a.key, URL: a.url}
	if guest {
		slot, as = &a.guest, natsx.As{Name: "vrsky-guest-" + tenant, Account: a.key, Permissions: GuestPermissions(tenant), URL: a.url}
	}
	if *slot != nil {
		return *slot, nil
	}
	c, err := m.dial(ctx, as, guest)
	if err != nil {
		return nil, fmt.Errorf("tenancy: connect as tenant %s: %w", tenant, err)
	}
	*slot = c
	return c, nil
}

// dial opens a tenant connection; a guest's has no JetStream to wait for.
func (m *Manager) dial(ctx context.Context, as natsx.As, guest bool) (*natsx.Conn, error) {
	if !guest {
		return m.conn.DialAs(ctx, as)
	}
	return m.conn.DialCore(ctx, as)
}

// Usage is what a tenant's account holds now, from JetStream.
type Usage struct {
	StorageBytes uint64 `json:"storage_bytes"`
	Streams      int    `json:"streams"`
	Consumers    int    `json:"consumers"`
}

// Usage reads the tenant's JetStream usage from the servers.
func (m *Manager) Usage(ctx context.Context, tenant string) (Usage, error) {
	c, err := m.Conn(ctx, tenant)
	if err != nil {
		return Usage{}, err
	}
	ai, err := c.JS.AccountInfo(ctx)
	if err != nil {
		return Usage{}, fmt.Errorf("tenancy: usage of %s: %w", tenant, err)
	}
	return Usage{StorageBytes: ai.Store, Streams: ai.Streams, Consumers: ai.Consumers}, nil
}

// Remove deletes everything the tenant t keeps in NATS: its streams (KV
// buckets and object stores are streams too), then its account, whose
// users are disconnected. Call it after the tenant's integrations have
// stopped.
func (m *Manager) Remove(ctx context.Context, t store.Tenant) error {
	a, err := m.entry(t)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := m.syncLocked(ctx, t, a); err != nil {
		return err
	}
	if a.data == nil {
		if a.data, err = m.conn.DialAs(ctx, natsx.As{Name: "vrsky-tenant-" + t.Name, Account: a.key, URL: a.url}); err != nil {
			return fmt.Errorf("tenancy: connect as tenant %s: %w", t.Name, err)
		}
	}
	if err := DeleteStreams(ctx, a.data); err != nil {
		return fmt.Errorf("tenancy: remove tenant %s: %w", t.Name, err)
	}
	a.closeConns()
	dedicated := a.url != ""
	m.mu.Lock()
	if m.tenants[t.Name] == a {
		delete(m.tenants, t.Name)
	}
	delete(m.urls, t.Name)
	m.mu.Unlock()
	if dedicated {
		if err := m.Unprovision(ctx, t.Name); err != nil {
			return err
		}
	}
	if err := m.conn.DeleteAccount(ctx, "", a.pub); err != nil {
		return fmt.Errorf("tenancy: remove tenant %s: %w", t.Name, err)
	}
	return nil
}

// DeleteStreams deletes every stream of c's account (KV buckets and
// object stores are streams too); one it cannot delete does not stop the
// others.
func DeleteStreams(ctx context.Context, c *natsx.Conn) error {
	var errs []error
	names := c.JS.StreamNames(ctx)
	for name := range names.Name() {
		if err := c.JS.DeleteStream(ctx, name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			errs = append(errs, fmt.Errorf("delete stream %s: %w", name, err))
		}
	}
	if err := names.Err(); err != nil {
		errs = append(errs, fmt.Errorf("list streams: %w", err))
	}
	return errors.Join(errs...)
}

// Forget closes this node's connections of a tenant that another node
// removed.
func (m *Manager) Forget(tenant string) {
	m.mu.Lock()
	a := m.tenants[tenant]
	delete(m.tenants, tenant)
	m.mu.Unlock()
	if a != nil {
		a.mu.Lock()
		a.closeConns()
		a.mu.Unlock()
	}
}

// Tenants lists the tenants this node holds connections for.
func (m *Manager) Tenants() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.tenants))
	for name := range m.tenants {
		out = append(out, name)
	}
	return out
}

// Close closes every tenant connection.
func (m *Manager) Close() {
	m.mu.Lock()
	all := m.tenants
	m.tenants = map[string]*account{}
	m.mu.Unlock()
	for _, a := range all {
		a.mu.Lock()
		a.closeConns()
		a.mu.Unlock()
	}
}

// closeConns closes a's connections; a.mu (or exclusive ownership) held.
func (a *account) closeConns() {
	for _, c := range []**natsx.Conn{&a.data, &a.guest} {
		if *c != nil {
			(*c).Close()
			*c = nil
		}
	}
}

// IsStorageQuotaExceeded recognises JetStream refusing a write because the
// tenant's account is at its storage limit (its MaxStorageBytes quota).
func IsStorageQuotaExceeded(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	return apiErr.ErrorCode == jsAccountResourcesExceeded || apiErr.ErrorCode == jsStorageResourcesExceeded
}

// What nats-server answers a write beyond an account's limits.
const (
	jsAccountResourcesExceeded jetstream.ErrorCode = 10002 // JSAccountResourcesExceededErr
	jsStorageResourcesExceeded jetstream.ErrorCode = 10047 // JSStorageResourcesExceededErr
)

// URL is the client URL of the platform's NATS servers, "" when they have
// no network listener (the embedded server, in-process only).
func (m *Manager) URL() string { return m.conn.ClientURL() }

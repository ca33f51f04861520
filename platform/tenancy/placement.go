package tenancy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vrsky/vrsky/platform/natsx"
	"github.com/vrsky/vrsky/platform/provision"
	"github.com/vrsky/vrsky/platform/store"
)

// Placement: a tenant lives either in its account on the platform servers
// (shared) or in the same account on a NATS instance of its own
// (dedicated), which a Provisioner starts. Service discovery is the
// store's Endpoint record: every node reads it (Endpoints) and dials the
// tenant where it says (Switch); a move is driven by the engine
// (runtime.Engine.MoveTenant), which records it there.

// Provisioner starts, supervises and removes dedicated instances
// (provision.Local, provision/k8s.Provisioner).
type Provisioner interface {
	Ensure(ctx context.Context, spec provision.Spec) (provision.Instance, error)
	Remove(ctx context.Context, tenant string) error
	Health(ctx context.Context) ([]provision.Health, error)
}

// LocalProvisioner adapts provision.Local, whose Health needs no context.
// Its instances are this machine's child processes: they stop with
// vrsky serve and come back (EnsureKept) when it starts again.
func LocalProvisioner(l *provision.Local) Provisioner { return localProv{l} }

type localProv struct{ *provision.Local }

func (l localProv) Health(context.Context) ([]provision.Health, error) { return l.Local.Health(), nil }

// ErrNoDedicated: this server has no provisioner of dedicated instances.
var ErrNoDedicated = errors.New("tenancy: dedicated NATS instances are not available on this server")

// SetProvisioner gives the Manager its provisioner; without one,
// dedicated placement is refused (ErrNoDedicated). syncAlways makes the
// instances fsync every JetStream write before acknowledging it, as
// vrsky serve --nats-sync always does for the embedded server: with the
// default interval sync, an instance killed with SIGKILL may lose the
// writes of its last few milliseconds.
func (m *Manager) SetProvisioner(p Provisioner, syncAlways bool) {
	m.mu.Lock()
	m.prov, m.syncAlways = p, syncAlways
	m.mu.Unlock()
}

func (m *Manager) provisioner() Provisioner {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.prov
}

// Dedicated reports whether dedicated placement is available.
func (m *Manager) Dedicated() bool { return m.provisioner() != nil }

// Endpoint is where t's NATS lives now: its record, or shared on the
// platform servers when it has none.
func (m *Manager) Endpoint(ctx context.Context, t store.Tenant) (store.Endpoint, error) {
	ep, err := m.store.GetEndpoint(ctx, t.Name)
	if errors.Is(err, store.ErrNotFound) {
		acc, aerr := m.Account(t)
		if aerr != nil {
			return store.Endpoint{}, aerr
		}
		return store.Endpoint{Tenant: t.Name, Placement: store.PlacementShared, URL: m.URL(), Account: acc}, nil
	}
	if err != nil {
		return store.Endpoint{}, fmt.Errorf("tenancy: endpoint of %s: %w", t.Name, err)
	}
	if ep.Placement == store.PlacementShared && ep.URL == "" {
		ep.URL = m.URL()
	}
	return ep, nil
}

// Endpoints lists every tenant's endpoint record (tenants without one are
// shared).
func (m *Manager) Endpoints(ctx context.Context) (map[string]store.Endpoint, error) {
	list, err := m.store.ListEndpoints(ctx)
	if err != nil {
		return nil, fmt.Errorf("tenancy: endpoints: %w", err)
	}
	out := make(map[string]store.Endpoint, len(list))
	for _, ep := range list {
		out[ep.Tenant] = ep
	}
	return out, nil
}

// DialURL is the URL this node's connections of tenant dial: "" for the
// platform servers.
func (m *Manager) DialURL(tenant string) string {
	m.mu.Lock()
	a, url := m.tenants[tenant], m.urls[tenant]
	m.mu.Unlock()
	if a == nil {
		return url
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.url
}

// Switch points this node's connections of tenant at url ("": the
// platform servers), closing those that dial elsewhere. Stop what uses
// them first.
func (m *Manager) Switch(tenant, url string) {
	m.mu.Lock()
	if m.urls == nil {
		m.urls = map[string]string{}
	}
	if url == "" {
		delete(m.urls, tenant)
	} else {
		m.urls[tenant] = url
	}
	a := m.tenants[tenant]
	m.mu.Unlock()
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.url != url {
		a.closeConns()
		a.url = url
		a.pushedRev = 0 // push the claims to the new servers
	}
}

// Follow points this node's connections of t where its endpoint record
// says it lives, as every reconcile does: call it before acting on a
// tenant another node may have moved (deleting it).
func (m *Manager) Follow(ctx context.Context, t store.Tenant) error {
	ep, err := m.store.GetEndpoint(ctx, t.Name)
	if errors.Is(err, store.ErrNotFound) {
		m.Switch(t.Name, "")
		return nil
	}
	if err != nil {
		return fmt.Errorf("tenancy: endpoint of %s: %w", t.Name, err)
	}
	url := ""
	if ep.Placement == store.PlacementDedicated {
		url = ep.URL
	}
	if m.DialURL(t.Name) != url {
		m.Switch(t.Name, url)
	}
	return nil
}

// Spec is what t's dedicated instance needs to admit it.
func (m *Manager) Spec(t store.Tenant, syncAlways bool) (provision.Spec, error) {
	a, err := m.entry(t)
	if err != nil {
		return provision.Spec{}, err
	}
	k := m.conn.Keys()
	op, err := k.OperatorJWT()
	if err != nil {
		return provision.Spec{}, err
	}
	sys, err := k.AccountJWT(k.SystemAccount(), natsx.SystemAccountName, false, natsx.AccountLimits{})
	if err != nil {
		return provision.Spec{}, err
	}
	acc, err := k.AccountJWT(a.pub, AccountName(t.Name), true, Limits(t))
	if err != nil {
		return provision.Spec{}, err
	}
	return provision.Spec{
		Tenant: t.Name, OperatorJWT: op, SystemAccount: k.SystemAccount(), SystemAccountJWT: sys,
		Account: a.pub, AccountJWT: acc, SyncAlways: syncAlways,
	}, nil
}

// Provision starts (or finds) t's dedicated instance and returns its URL.
// The instance's spec is made once per tenant and process, so calling it
// again does not restart the instance for new JWTs of the same claims.
func (m *Manager) Provision(ctx context.Context, t store.Tenant) (string, error) {
	p := m.provisioner()
	if p == nil {
		return "", ErrNoDedicated
	}
	m.mu.Lock()
	spec, ok := m.specs[t.Name]
	m.mu.Unlock()
	if !ok || spec.AccountJWT == "" {
		var err error
		m.mu.Lock()
		syncAlways := m.syncAlways
		m.mu.Unlock()
		if spec, err = m.Spec(t, syncAlways); err != nil {
			return "", err
		}
		m.mu.Lock()
		if m.specs == nil {
			m.specs = map[string]provision.Spec{}
		}
		m.specs[t.Name] = spec
		m.mu.Unlock()
	}
	in, err := p.Ensure(ctx, spec)
	if err != nil {
		return "", fmt.Errorf("tenancy: dedicated instance of %s: %w", t.Name, err)
	}
	return in.URL, nil
}

// EnsureKept brings back t's dedicated instance when this node's
// provisioner keeps it on this machine (a local one, after a restart);
// instances a cluster runs (Kubernetes) need nothing.
func (m *Manager) EnsureKept(ctx context.Context, t store.Tenant) error {
	p := m.provisioner()
	lp, ok := p.(localProv)
	if !ok || !lp.Has(t.Name) {
		return nil
	}
	if lp.PID(t.Name) != 0 {
		return nil // running
	}
	_, err := m.Provision(ctx, t)
	return err
}

// Unprovision stops t's dedicated instance and deletes its data.
func (m *Manager) Unprovision(ctx context.Context, tenant string) error {
	p := m.provisioner()
	if p == nil {
		return nil
	}
	m.mu.Lock()
	delete(m.specs, tenant)
	m.mu.Unlock()
	if err := p.Remove(ctx, tenant); err != nil {
		return fmt.Errorf("tenancy: remove the dedicated instance of %s: %w", tenant, err)
	}
	return nil
}

// Health of every dedicated instance; nil without a provisioner.
func (m *Manager) Health(ctx context.Context) ([]provision.Health, error) {
	p := m.provisioner()
	if p == nil {
		return nil, nil
	}
	return p.Health(ctx)
}

// DialAt opens a new data-plane connection of t at url ("": the platform
// servers), after pushing its claims there, for a move that reads one
// placement while the tenant's connections use the other. The caller
// closes it.
func (m *Manager) DialAt(ctx context.Context, t store.Tenant, url string) (*natsx.Conn, error) {
	a, err := m.entry(t)
	if err != nil {
		return nil, err
	}
	claims, err := m.conn.Keys().AccountJWT(a.pub, AccountName(t.Name), true, Limits(t))
	if err != nil {
		return nil, err
	}
	if err := m.conn.PushAccount(ctx, url, claims); err != nil {
		return nil, fmt.Errorf("tenancy: account of %s at %q: %w", t.Name, url, err)
	}
	return m.conn.DialAs(ctx, natsx.As{Name: "vrsky-move-" + t.Name, Account: a.key, URL: url})
}

// Metrics of the dedicated instances, read from the provisioner when
// Prometheus scrapes (the Manager is a prometheus.Collector).
var (
	instanceReadyDesc = prometheus.NewDesc("vrsky_tenant_nats_ready",
		"Whether a tenant's dedicated NATS instance answers its health check (1) or not (0).", []string{"tenant"}, nil)
	instanceRestartsDesc = prometheus.NewDesc("vrsky_tenant_nats_restarts",
		"Times a tenant's dedicated NATS instance was restarted after it died.", []string{"tenant"}, nil)
)

// Describe implements prometheus.Collector.
func (m *Manager) Describe(ch chan<- *prometheus.Desc) {
	ch <- instanceReadyDesc
	ch <- instanceRestartsDesc
}

// Collect implements prometheus.Collector.
func (m *Manager) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hs, err := m.Health(ctx)
	if err != nil {
		return
	}
	for _, h := range hs {
		ready := 0.0
		if h.Ready {
			ready = 1
		}
		ch <- prometheus.MustNewConstMetric(instanceReadyDesc, prometheus.GaugeValue, ready, h.Tenant)
		ch <- prometheus.MustNewConstMetric(instanceRestartsDesc, prometheus.CounterValue, float64(h.Restarts), h.Tenant)
	}
}

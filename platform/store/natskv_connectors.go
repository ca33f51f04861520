package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// BucketConnectors holds the registry's connector versions, keyed
// <tenant>.<name>.<version> (the platform's tenant "" encodes as "=").
const BucketConnectors = "vrsky_connectors"

// BucketConnectorNames holds the owner of every connector name, keyed
// <name>. A claim is written once, with a create-only put, and never
// changed or deleted: see ConnectorStore.
const BucketConnectorNames = "vrsky_connector_names"

var _ ConnectorStore = (*NATSStore)(nil)

func connectorKey(tenant, name, version string) string {
	return seg(tenant) + "." + seg(name) + "." + seg(version)
}

// nameClaim is the value of a key in BucketConnectorNames.
type nameClaim struct {
	// Tenant owns the name; "" is the platform.
	Tenant string `json:"tenant"`
	// ClaimedAt is when the claim was written (for operators).
	ClaimedAt time.Time `json:"claimed_at"`
}

// CreateConnectorVersion implements ConnectorStore. The tenant is checked
// first (a missing tenant claims nothing), then the name is claimed, then
// the version is written.
func (s *NATSStore) CreateConnectorVersion(ctx context.Context, v ConnectorVersion) (ConnectorVersion, error) {
	if err := CheckConnectorVersion(&v); err != nil {
		return ConnectorVersion{}, err
	}
	ctx, cancel := opContext(ctx)
	defer cancel()
	v.CreatedAt = now()
	key := connectorKey(v.Tenant, v.Name, v.Version)
	err := s.claimName(ctx, v.Tenant, v.Name)
	if err == nil {
		if v.Tenant == "" {
			_, err = create(ctx, s.connectors, key, v)
		} else {
			_, err = s.createChild(ctx, v.Tenant, s.connectors, key, v)
		}
	}
	if err != nil {
		return ConnectorVersion{}, fmt.Errorf("store: create connector %s/%s@%s: %w", v.Tenant, v.Name, v.Version, err)
	}
	return v, nil
}

// claimName makes sure tenant owns the connector name: ErrNameTaken if
// another tenant does, ErrNotFound if tenant (not "") does not exist.
// Nobody owning it, the claim is written with a create-only put, so of two
// tenants claiming it at once one write fails and that tenant reads the
// winner's claim. A name that has versions but no claim (stored before
// claims existed) is claimed for their owner, whoever asks.
func (s *NATSStore) claimName(ctx context.Context, tenant, name string) error {
	if tenant != "" {
		if _, err := s.requireTenant(ctx, tenant); err != nil {
			return err
		}
	}
	key := seg(name)
	var c nameClaim
	_, err := get(ctx, s.names, key, &c)
	if errors.Is(err, ErrNotFound) {
		owner, found, lerr := s.unclaimedOwner(ctx, name)
		if lerr != nil {
			return fmt.Errorf("claim name %q: %w", name, lerr)
		}
		if !found {
			owner = tenant
		}
		c = nameClaim{Tenant: owner, ClaimedAt: now()}
		if _, err = create(ctx, s.names, key, c); errors.Is(err, ErrExists) {
			err = s.readClaim(ctx, key, &c) // another claim won: it decides
		}
	}
	if err != nil {
		return fmt.Errorf("claim name %q: %w", name, err)
	}
	if c.Tenant != tenant {
		return fmt.Errorf("name %q is owned by tenant %q: %w", name, c.Tenant, ErrNameTaken)
	}
	return nil
}

// readClaim reads the claim that a create just found in place. On a
// replicated bucket the read can, for a moment, miss a claim another
// client's create has just written (seen on a 3-node cluster under load),
// so a "not found" here is read again, for up to a second: the key is known
// to exist.
func (s *NATSStore) readClaim(ctx context.Context, key string, c *nameClaim) error {
	deadline := time.Now().Add(time.Second)
	for wait := 5 * time.Millisecond; ; wait *= 2 {
		_, err := get(ctx, s.names, key, c)
		if !errors.Is(err, ErrNotFound) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// unclaimedOwner finds the owner of a name's versions stored without a
// claim: the platform if it has some, else the first tenant by name that
// has, tenants that exist before deleted ones (the registry's resolution
// before claims).
func (s *NATSStore) unclaimedOwner(ctx context.Context, name string) (string, bool, error) {
	vs, err := s.scanConnectors(ctx, "*."+seg(name)+".*")
	if err != nil {
		return "", false, err
	}
	owners := map[string]bool{}
	for _, v := range vs {
		if v.Name == name {
			owners[v.Tenant] = true
		}
	}
	if len(owners) == 0 {
		return "", false, nil
	}
	if owners[""] {
		return "", true, nil
	}
	sorted := slices.Sorted(maps.Keys(owners))
	for _, t := range sorted {
		if _, err := s.requireTenant(ctx, t); err == nil {
			return t, true, nil
		} else if !errors.Is(err, ErrNotFound) {
			return "", false, err
		}
	}
	return sorted[0], true, nil
}

// GetConnectorVersion implements ConnectorStore.
func (s *NATSStore) GetConnectorVersion(ctx context.Context, tenant, name, version string) (ConnectorVersion, error) {
	ctx, cancel := opContext(ctx)
	defer cancel()
	var v ConnectorVersion
	if _, err := get(ctx, s.connectors, connectorKey(tenant, name, version), &v); err != nil {
		return ConnectorVersion{}, fmt.Errorf("store: get connector %s/%s@%s: %w", tenant, name, version, err)
	}
	return v, nil
}

type revVersion struct {
	ConnectorVersion
	rev uint64
}

func (s *NATSStore) scanConnectors(ctx context.Context, filter string) ([]revVersion, error) {
	var out []revVersion
	err := s.scan(ctx, s.connectors, filter, func(e jetstream.KeyValueEntry) error {
		var v ConnectorVersion
		if err := json.Unmarshal(e.Value(), &v); err != nil {
			return fmt.Errorf("decode %s: %w", e.Key(), err)
		}
		out = append(out, revVersion{v, e.Revision()})
		return nil
	})
	return out, err
}

// ListConnectorVersions implements ConnectorStore.
func (s *NATSStore) ListConnectorVersions(ctx context.Context, tenant, name string) ([]ConnectorVersion, error) {
	ctx, cancel := opContext(ctx)
	defer cancel()
	all, err := s.scanConnectors(ctx, seg(tenant)+"."+seg(name)+".*")
	if err != nil {
		return nil, fmt.Errorf("store: list versions of connector %s/%s: %w", tenant, name, err)
	}
	slices.SortFunc(all, func(a, b revVersion) int { return cmpUint(a.rev, b.rev) })
	out := make([]ConnectorVersion, len(all))
	for i, v := range all {
		out[i] = v.ConnectorVersion
	}
	return out, nil
}

// ListConnectors implements ConnectorStore.
func (s *NATSStore) ListConnectors(ctx context.Context, viewer string) ([]ConnectorVersion, error) {
	ctx, cancel := opContext(ctx)
	defer cancel()
	all, err := s.scanConnectors(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("store: list connectors for %q: %w", viewer, err)
	}
	type id struct{ tenant, name string }
	latest := map[id]revVersion{}
	for _, v := range all {
		k := id{v.Tenant, v.Name}
		if cur, ok := latest[k]; !ok || v.rev > cur.rev {
			latest[k] = v
		}
	}
	out := []ConnectorVersion{}
	for _, v := range latest {
		if v.Tenant == "" || (viewer != "" && v.Tenant == viewer) || v.Visibility == VisibilityPublic {
			out = append(out, v.ConnectorVersion)
		}
	}
	slices.SortFunc(out, func(a, b ConnectorVersion) int {
		if c := strings.Compare(a.Tenant, b.Tenant); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out, nil
}

// SetConnectorDeprecated implements ConnectorStore.
func (s *NATSStore) SetConnectorDeprecated(ctx context.Context, tenant, name, version string, deprecated bool) error {
	ctx, cancel := opContext(ctx)
	defer cancel()
	key := connectorKey(tenant, name, version)
	var err error
	for range 5 { // a concurrent writer makes the update conflict: read again
		var v ConnectorVersion
		var rev uint64
		if rev, err = get(ctx, s.connectors, key, &v); err != nil {
			break
		}
		v.Deprecated = deprecated
		if _, err = update(ctx, s.connectors, key, v, rev); !errors.Is(err, ErrConflict) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("store: deprecate connector %s/%s@%s: %w", tenant, name, version, err)
	}
	return nil
}

// DeleteConnectorVersion implements ConnectorStore.
func (s *NATSStore) DeleteConnectorVersion(ctx context.Context, tenant, name, version string) error {
	ctx, cancel := opContext(ctx)
	defer cancel()
	key := connectorKey(tenant, name, version)
	var v ConnectorVersion
	rev, err := get(ctx, s.connectors, key, &v)
	if err == nil {
		err = del(ctx, s.connectors, key, rev)
	}
	if err != nil {
		return fmt.Errorf("store: delete connector %s/%s@%s: %w", tenant, name, version, err)
	}
	return nil
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

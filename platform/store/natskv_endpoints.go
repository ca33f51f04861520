package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// BucketEndpoints holds service discovery's record of where each tenant's
// NATS lives, keyed <tenant>: a bucket of its own, so that nodes can watch
// every tenant's endpoint, and only that, to follow a tenant's moves.
const BucketEndpoints = "vrsky_tenant_endpoints"

// endpointRecord is the value of a key in BucketEndpoints: the Endpoint and
// the CreatedAt of the tenant it was written for. That tells the record of
// the tenant from one left behind by an earlier tenant of the same name (a
// DeleteTenant that failed half way) without comparing the clocks of the
// nodes that wrote them.
type endpointRecord struct {
	Endpoint
	TenantCreatedAt time.Time `json:"tenant_created_at"`
}

// PutEndpoint implements Store. A create checks the tenant before and after
// its write (see createChild); a replace is a compare-and-set on
// e.Revision and refuses a record written for an earlier tenant of the
// name.
func (s *NATSStore) PutEndpoint(ctx context.Context, e Endpoint) (Endpoint, error) {
	ctx, cancel := opContext(ctx)
	defer cancel()
	rev, err := s.putEndpoint(ctx, &e)
	if err != nil {
		return Endpoint{}, fmt.Errorf("store: put endpoint of %q: %w", e.Tenant, err)
	}
	e.Revision = rev
	return e, nil
}

func (s *NATSStore) putEndpoint(ctx context.Context, e *Endpoint) (uint64, error) {
	var t Tenant
	trev, err := get(ctx, s.tenants, seg(e.Tenant), &t)
	if errors.Is(err, ErrNotFound) {
		return 0, fmt.Errorf("tenant %q: %w", e.Tenant, ErrNotFound)
	}
	if err != nil {
		return 0, err
	}
	key := seg(e.Tenant)
	e.UpdatedAt = now()
	rec := endpointRecord{Endpoint: *e, TenantCreatedAt: t.CreatedAt}
	if e.Revision == 0 {
		return s.createChildAt(ctx, e.Tenant, trev, s.endpoints, key, rec)
	}
	var old endpointRecord
	orev, err := get(ctx, s.endpoints, key, &old)
	switch {
	case errors.Is(err, ErrNotFound):
		return 0, fmt.Errorf("revision %d: the record was deleted: %w", e.Revision, ErrConflict)
	case err != nil:
		return 0, err
	case orev != e.Revision:
		return 0, fmt.Errorf("revision %d: %w", e.Revision, ErrConflict)
	case !old.TenantCreatedAt.Equal(t.CreatedAt):
		return 0, fmt.Errorf("revision %d belongs to an earlier tenant of the name: %w", e.Revision, ErrConflict)
	}
	// The compare-and-set on orev replaces the record just checked, or fails.
	return update(ctx, s.endpoints, key, rec, orev)
}

// GetEndpoint implements Store. A record whose tenant is gone, or is a
// newer tenant of the name, is not the tenant's: ErrNotFound.
func (s *NATSStore) GetEndpoint(ctx context.Context, tenant string) (Endpoint, error) {
	ctx, cancel := opContext(ctx)
	defer cancel()
	var rec endpointRecord
	rev, err := get(ctx, s.endpoints, seg(tenant), &rec)
	if err == nil {
		err = s.requireGeneration(ctx, tenant, rec.TenantCreatedAt)
	}
	if err != nil {
		return Endpoint{}, fmt.Errorf("store: get endpoint of %q: %w", tenant, err)
	}
	rec.Revision = rev
	return rec.Endpoint, nil
}

// ListEndpoints implements Store. Records left behind by a DeleteTenant
// that failed half way are not listed.
func (s *NATSStore) ListEndpoints(ctx context.Context) ([]Endpoint, error) {
	ctx, cancel := opContext(ctx)
	defer cancel()
	live := map[string]time.Time{}
	err := s.scan(ctx, s.tenants, "", func(e jetstream.KeyValueEntry) error {
		var t Tenant
		if err := json.Unmarshal(e.Value(), &t); err == nil {
			live[t.Name] = t.CreatedAt
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: list endpoints: %w", err)
	}
	out := []Endpoint{}
	err = s.scan(ctx, s.endpoints, "", func(e jetstream.KeyValueEntry) error {
		var rec endpointRecord
		if err := json.Unmarshal(e.Value(), &rec); err != nil {
			return fmt.Errorf("decode %s: %w", e.Key(), err)
		}
		if created, ok := live[rec.Tenant]; ok && created.Equal(rec.TenantCreatedAt) {
			rec.Revision = e.Revision()
			out = append(out, rec.Endpoint)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: list endpoints: %w", err)
	}
	slices.SortFunc(out, func(a, b Endpoint) int { return strings.Compare(a.Tenant, b.Tenant) })
	return out, nil
}

// DeleteEndpoint implements Store. A record left behind by an earlier
// tenant of the name is not the tenant's (ErrNotFound) and stays for
// CreateTenant's sweep.
func (s *NATSStore) DeleteEndpoint(ctx context.Context, tenant string) error {
	ctx, cancel := opContext(ctx)
	defer cancel()
	key := seg(tenant)
	var rec endpointRecord
	rev, err := get(ctx, s.endpoints, key, &rec)
	if err == nil {
		err = s.requireGeneration(ctx, tenant, rec.TenantCreatedAt)
	}
	if err == nil {
		err = del(ctx, s.endpoints, key, rev)
	}
	if err != nil {
		return fmt.Errorf("store: delete endpoint of %q: %w", tenant, err)
	}
	return nil
}

// requireGeneration returns ErrNotFound unless tenant exists and was
// created at created, that is, unless a record written for it at that time
// is still its own.
func (s *NATSStore) requireGeneration(ctx context.Context, tenant string, created time.Time) error {
	var t Tenant
	_, err := get(ctx, s.tenants, seg(tenant), &t)
	if err == nil && !t.CreatedAt.Equal(created) {
		err = ErrNotFound
	}
	return err
}

// deleteEndpointOf is deleteTenantChildren's part for the endpoint. With
// before zero (DeleteTenant) the key is purged at whatever revision it has,
// so that a PutEndpoint racing the delete either is purged or fails its
// compare-and-set. Otherwise (CreateTenant) only a record written for
// another tenant of the name than the one created at before goes.
func (s *NATSStore) deleteEndpointOf(ctx context.Context, tenant string, before time.Time) error {
	key := seg(tenant)
	if before.IsZero() {
		if err := del(ctx, s.endpoints, key, 0); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		return nil
	}
	e, err := s.endpoints.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return mapErr(ctx, err)
	}
	var rec endpointRecord
	if err := json.Unmarshal(e.Value(), &rec); err == nil && rec.TenantCreatedAt.Equal(before) {
		return nil
	}
	if err := del(ctx, s.endpoints, key, e.Revision()); err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrConflict) {
		return err
	}
	return nil
}

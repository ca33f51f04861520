package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/vrsky/vrsky/platform/store"
)

const endpointCols = `tenant, placement, url, account, moving, updated_at, revision`

func scanEndpoint(row pgx.Row) (store.Endpoint, error) {
	var (
		e      store.Endpoint
		moving []byte
	)
	if err := row.Scan(&e.Tenant, &e.Placement, &e.URL, &e.Account, &moving, &e.UpdatedAt, &e.Revision); err != nil {
		return store.Endpoint{}, err
	}
	e.UpdatedAt = e.UpdatedAt.UTC()
	if moving != nil {
		e.Moving = new(store.Endpoint)
		if err := json.Unmarshal(moving, e.Moving); err != nil {
			return store.Endpoint{}, fmt.Errorf("decode moving of %q: %w", e.Tenant, err)
		}
	}
	return e, nil
}

// movingJSON is the moving column's value: NULL when the tenant is not moving.
func movingJSON(m *store.Endpoint) (any, error) {
	if m == nil {
		return nil, nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode moving: %w", err)
	}
	return b, nil
}

// PutEndpoint implements store.Store. A missing tenant fails the insert's
// foreign key (ErrNotFound); a replace is conditional on the revision, and
// revisions come from the one sequence, so one read before the tenant was
// deleted and created again never matches.
func (s *Store) PutEndpoint(ctx context.Context, e store.Endpoint) (store.Endpoint, error) {
	moving, err := movingJSON(e.Moving)
	if err != nil {
		return store.Endpoint{}, fmt.Errorf("pgstore: put endpoint of %q: %w", e.Tenant, err)
	}
	var out store.Endpoint
	err = s.do(ctx, func(ctx context.Context) (err error) {
		if e.Revision == 0 {
			out, err = scanEndpoint(s.pool.QueryRow(ctx, `
				INSERT INTO tenant_endpoints (tenant, placement, url, account, moving) VALUES ($1, $2, $3, $4, $5)
				RETURNING `+endpointCols,
				e.Tenant, e.Placement, e.URL, e.Account, moving))
			return err
		}
		out, err = scanEndpoint(s.pool.QueryRow(ctx, `
			UPDATE tenant_endpoints SET placement = $2, url = $3, account = $4, moving = $5,
				updated_at = greatest(now(), updated_at), revision = nextval('revisions')
			WHERE tenant = $1 AND revision = $6 RETURNING `+endpointCols,
			e.Tenant, e.Placement, e.URL, e.Account, moving, int64(e.Revision)))
		if errors.Is(err, pgx.ErrNoRows) {
			// A stale revision, or a record deleted since: ErrConflict
			// while the tenant exists, ErrNotFound once it does not.
			return s.conflictOrMissing(ctx, `SELECT 1 FROM tenants WHERE name = $1`, e.Tenant)
		}
		return err
	})
	if err != nil {
		return store.Endpoint{}, fmt.Errorf("pgstore: put endpoint of %q: %w", e.Tenant, err)
	}
	return out, nil
}

// GetEndpoint implements store.Store.
func (s *Store) GetEndpoint(ctx context.Context, tenant string) (store.Endpoint, error) {
	var out store.Endpoint
	err := s.do(ctx, func(ctx context.Context) (err error) {
		out, err = scanEndpoint(s.pool.QueryRow(ctx, `SELECT `+endpointCols+` FROM tenant_endpoints WHERE tenant = $1`, tenant))
		return err
	})
	if err != nil {
		return store.Endpoint{}, fmt.Errorf("pgstore: get endpoint of %q: %w", tenant, err)
	}
	return out, nil
}

// ListEndpoints implements store.Store.
func (s *Store) ListEndpoints(ctx context.Context) ([]store.Endpoint, error) {
	var out []store.Endpoint
	err := s.do(ctx, func(ctx context.Context) error {
		rows, err := s.pool.Query(ctx, `SELECT `+endpointCols+` FROM tenant_endpoints ORDER BY tenant COLLATE "C"`)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Endpoint, error) { return scanEndpoint(r) })
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("pgstore: list endpoints: %w", err)
	}
	return nonNil(out), nil
}

// DeleteEndpoint implements store.Store.
func (s *Store) DeleteEndpoint(ctx context.Context, tenant string) error {
	err := s.do(ctx, func(ctx context.Context) error {
		tag, err := s.pool.Exec(ctx, `DELETE FROM tenant_endpoints WHERE tenant = $1`, tenant)
		if err == nil && tag.RowsAffected() == 0 {
			return store.ErrNotFound
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("pgstore: delete endpoint of %q: %w", tenant, err)
	}
	return nil
}

package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/vrsky/vrsky/platform/store"
)

var _ store.ConnectorStore = (*Store)(nil)

const connectorCols = `tenant, name, version, kind, visibility, manifest, digest, size, module_key, deprecated, created_at`

func scanConnector(row pgx.Row) (store.ConnectorVersion, error) {
	var v store.ConnectorVersion
	err := row.Scan(&v.Tenant, &v.Name, &v.Version, &v.Kind, &v.Visibility, &v.Manifest, &v.Digest, &v.Size,
		&v.ModuleKey, &v.Deprecated, &v.CreatedAt)
	v.CreatedAt = v.CreatedAt.UTC()
	return v, err
}

// claimNameSQL claims a connector name for $2 unless it has an owner. A
// name with versions but no claim (stored by a VRSky older than migration
// 0004) is claimed for their owner instead, by the migration's rule. The
// primary key makes a concurrent claim wait for this transaction and then
// do nothing.
const claimNameSQL = `
	INSERT INTO connector_names (name, tenant)
	VALUES ($1, COALESCE((
		SELECT c.tenant FROM connectors c WHERE c.name = $1
		ORDER BY c.tenant <> '', NOT EXISTS (SELECT 1 FROM tenants t WHERE t.name = c.tenant), c.tenant COLLATE "C"
		LIMIT 1), $2))
	ON CONFLICT (name) DO NOTHING`

// CreateConnectorVersion implements store.ConnectorStore. The name is
// claimed in the transaction that writes the version: of two tenants
// creating a new name at once, one waits on the other's claim and then
// reads it.
func (s *Store) CreateConnectorVersion(ctx context.Context, v store.ConnectorVersion) (store.ConnectorVersion, error) {
	if err := store.CheckConnectorVersion(&v); err != nil {
		return store.ConnectorVersion{}, err
	}
	var out store.ConnectorVersion
	err := s.do(ctx, func(ctx context.Context) error {
		return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if v.Tenant != "" {
				// FOR SHARE holds off a concurrent DeleteTenant until we commit.
				var one int
				err := tx.QueryRow(ctx, `SELECT 1 FROM tenants WHERE name = $1 FOR SHARE`, v.Tenant).Scan(&one)
				if errors.Is(err, pgx.ErrNoRows) {
					return fmt.Errorf("tenant %q: %w", v.Tenant, store.ErrNotFound)
				}
				if err != nil {
					return err
				}
			}
			if _, err := tx.Exec(ctx, claimNameSQL, v.Name, v.Tenant); err != nil {
				return fmt.Errorf("claim name %q: %w", v.Name, err)
			}
			// A new statement: read committed sees a claim committed
			// while the insert above waited for it.
			var owner string
			if err := tx.QueryRow(ctx, `SELECT tenant FROM connector_names WHERE name = $1`, v.Name).Scan(&owner); err != nil {
				return fmt.Errorf("claim name %q: %w", v.Name, err)
			}
			if owner != v.Tenant {
				return fmt.Errorf("name %q is owned by tenant %q: %w", v.Name, owner, store.ErrNameTaken)
			}
			if _, err := tx.Exec(ctx, `
				INSERT INTO connectors (tenant, name, kind, visibility) VALUES ($1, $2, $3, $4)
				ON CONFLICT (tenant, name) DO UPDATE SET kind = excluded.kind, visibility = excluded.visibility`,
				v.Tenant, v.Name, v.Kind, v.Visibility); err != nil {
				return err
			}
			var err error
			out, err = scanConnector(tx.QueryRow(ctx, `
				INSERT INTO connector_versions (tenant, name, version, kind, visibility, manifest, digest, size, module_key, deprecated)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING `+connectorCols,
				v.Tenant, v.Name, v.Version, v.Kind, v.Visibility, v.Manifest, v.Digest, v.Size, v.ModuleKey, v.Deprecated))
			return err
		})
	})
	if err != nil {
		return store.ConnectorVersion{}, fmt.Errorf("pgstore: create connector %s/%s@%s: %w", v.Tenant, v.Name, v.Version, err)
	}
	return out, nil
}

// GetConnectorVersion implements store.ConnectorStore.
func (s *Store) GetConnectorVersion(ctx context.Context, tenant, name, version string) (store.ConnectorVersion, error) {
	var out store.ConnectorVersion
	err := s.do(ctx, func(ctx context.Context) (err error) {
		out, err = scanConnector(s.pool.QueryRow(ctx, `SELECT `+connectorCols+` FROM connector_versions
			WHERE tenant = $1 AND name = $2 AND version = $3`, tenant, name, version))
		return err
	})
	if err != nil {
		return store.ConnectorVersion{}, fmt.Errorf("pgstore: get connector %s/%s@%s: %w", tenant, name, version, err)
	}
	return out, nil
}

// ListConnectorVersions implements store.ConnectorStore.
func (s *Store) ListConnectorVersions(ctx context.Context, tenant, name string) ([]store.ConnectorVersion, error) {
	var out []store.ConnectorVersion
	err := s.do(ctx, func(ctx context.Context) error {
		rows, err := s.pool.Query(ctx, `SELECT `+connectorCols+` FROM connector_versions
			WHERE tenant = $1 AND name = $2 ORDER BY created_at, version COLLATE "C"`, tenant, name)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.ConnectorVersion, error) { return scanConnector(r) })
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("pgstore: list versions of connector %s/%s: %w", tenant, name, err)
	}
	return nonNil(out), nil
}

// ListConnectors implements store.ConnectorStore.
func (s *Store) ListConnectors(ctx context.Context, viewer string) ([]store.ConnectorVersion, error) {
	var out []store.ConnectorVersion
	err := s.do(ctx, func(ctx context.Context) error {
		rows, err := s.pool.Query(ctx, `
			SELECT `+connectorCols+` FROM (
				SELECT DISTINCT ON (tenant, name) `+connectorCols+` FROM connector_versions
				ORDER BY tenant, name, created_at DESC, version DESC
			) latest
			WHERE tenant = '' OR tenant = $1 OR visibility = 'public'
			ORDER BY tenant COLLATE "C", name COLLATE "C"`, viewer)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.ConnectorVersion, error) { return scanConnector(r) })
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("pgstore: list connectors for %q: %w", viewer, err)
	}
	return nonNil(out), nil
}

// SetConnectorDeprecated implements store.ConnectorStore.
func (s *Store) SetConnectorDeprecated(ctx context.Context, tenant, name, version string, deprecated bool) error {
	err := s.do(ctx, func(ctx context.Context) error {
		tag, err := s.pool.Exec(ctx, `UPDATE connector_versions SET deprecated = $4
			WHERE tenant = $1 AND name = $2 AND version = $3`, tenant, name, version, deprecated)
		if err == nil && tag.RowsAffected() == 0 {
			return store.ErrNotFound
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("pgstore: deprecate connector %s/%s@%s: %w", tenant, name, version, err)
	}
	return nil
}

// DeleteConnectorVersion implements store.ConnectorStore. The connector's
// row goes with its last version.
func (s *Store) DeleteConnectorVersion(ctx context.Context, tenant, name, version string) error {
	err := s.do(ctx, func(ctx context.Context) error {
		return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			// Lock the connector first, as CreateConnectorVersion's upsert
			// does, so a version created meanwhile is seen below and the
			// connector (whose delete cascades to versions) is kept.
			if _, err := tx.Exec(ctx, `SELECT 1 FROM connectors WHERE tenant = $1 AND name = $2 FOR UPDATE`, tenant, name); err != nil {
				return err
			}
			tag, err := tx.Exec(ctx, `DELETE FROM connector_versions WHERE tenant = $1 AND name = $2 AND version = $3`,
				tenant, name, version)
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 0 {
				return store.ErrNotFound
			}
			_, err = tx.Exec(ctx, `DELETE FROM connectors c WHERE tenant = $1 AND name = $2
				AND NOT EXISTS (SELECT 1 FROM connector_versions v WHERE v.tenant = c.tenant AND v.name = c.name)`,
				tenant, name)
			return err
		})
	})
	if err != nil {
		return fmt.Errorf("pgstore: delete connector %s/%s@%s: %w", tenant, name, version, err)
	}
	return nil
}

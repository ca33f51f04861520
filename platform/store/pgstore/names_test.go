package pgstore_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/vrsky/vrsky/internal/testenv/pgtest"
	"github.com/vrsky/vrsky/platform/store"
	"github.com/vrsky/vrsky/platform/store/storetest"
)

// TestLegacyNames: connectors stored before migration 0004 keep their
// owner, whether the migration claims their names or (for rows an older
// VRSky wrote after it ran, during an upgrade) CreateConnectorVersion does
// on first sight.
func TestLegacyNames(t *testing.T) {
	cases := []struct {
		name string
		// unclaim takes the database back to before migration 0004, if
		// set; migrate runs the migrations once the legacy rows are in.
		unclaim string
		migrate bool
	}{
		{"Migration", `DROP TABLE connector_names; DROP INDEX connectors_name_idx; DELETE FROM schema_migrations WHERE version = 4`, true},
		{"FirstSight", "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := open(t, pgtest.New(t))
			storetest.LegacyNames(t, s, func(ctx context.Context, vs []store.ConnectorVersion) error {
				if c.unclaim != "" {
					if _, err := s.Pool().Exec(ctx, c.unclaim); err != nil {
						return fmt.Errorf("undo migration 0004: %w", err)
					}
				}
				err := pgx.BeginFunc(ctx, s.Pool(), func(tx pgx.Tx) error {
					for _, v := range vs {
						if _, err := tx.Exec(ctx, `INSERT INTO connectors (tenant, name, kind, visibility, created_at)
							VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`, v.Tenant, v.Name, v.Kind, v.Visibility, v.CreatedAt); err != nil {
							return err
						}
						if _, err := tx.Exec(ctx, `INSERT INTO connector_versions (tenant, name, version, kind, visibility, manifest, digest, size, module_key)
							VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
							v.Tenant, v.Name, v.Version, v.Kind, v.Visibility, v.Manifest, v.Digest, v.Size, v.ModuleKey); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil || !c.migrate {
					return err
				}
				return s.Migrate(ctx)
			})
		})
	}
}

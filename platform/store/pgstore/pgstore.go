// Package pgstore is the PostgreSQL implementation of store.Store, the
// control plane of production deployments (`vrsky serve --database-url`).
//
// It uses a pgx connection pool and puts a deadline on every query. The
// schema is versioned by numbered SQL files embedded in the binary
// (migrations/NNNN_name.sql), applied by Open under a PostgreSQL advisory
// lock so that several processes starting together apply each migration
// once; migrations are forward-only and must never be edited once released.
//
// Revisions come from one database sequence, so they grow with every write
// and are never reused. Deleting a tenant cascades to its API keys,
// integrations and endpoint through foreign keys.
//
// Connection failures (server down, restarting, unreachable, too many
// connections) are reported as store.ErrUnavailable; the pool reconnects by
// itself once the server is back, without reopening the Store.
package pgstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vrsky/vrsky/platform/store"
)

// DefaultQueryTimeout bounds each store operation whose context has no
// earlier deadline.
const DefaultQueryTimeout = 5 * time.Second

// Store is the PostgreSQL control-plane store. It is safe for concurrent use.
type Store struct {
	pool    *pgxpool.Pool
	timeout time.Duration
	log     *slog.Logger
}

var _ store.Store = (*Store)(nil)

// Option tunes Open.
type Option func(*options)

type options struct {
	timeout   time.Duration
	logger    *slog.Logger
	noMigrate bool
	maxConns  int32
}

// WithQueryTimeout sets the deadline of each operation (DefaultQueryTimeout otherwise).
func WithQueryTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// WithLogger sets where migration notices go (slog.Default() otherwise).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithoutMigrations opens the database as it is, for read-only tooling such
// as `vrsky migrate status`; the Store's other methods need the schema.
func WithoutMigrations() Option { return func(o *options) { o.noMigrate = true } }

// WithMaxConns caps the pool (pgxpool's default, or pool_max_conns in the
// DSN, otherwise).
func WithMaxConns(n int32) Option { return func(o *options) { o.maxConns = n } }

// Open connects to the database at dsn (a postgres:// URL or a key=value
// string, as pgx accepts), applies missing migrations and returns the Store.
// An unreachable server is reported as store.ErrUnavailable.
func Open(ctx context.Context, dsn string, opts ...Option) (*Store, error) {
	o := options{timeout: DefaultQueryTimeout, logger: slog.Default()}
	for _, opt := range opts {
		opt(&o)
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's error may quote the DSN; keep the message but not the password.
		return nil, fmt.Errorf("pgstore: invalid database URL (--database-url): %w", redact(err))
	}
	if cfg.ConnConfig.ConnectTimeout == 0 || cfg.ConnConfig.ConnectTimeout > o.timeout {
		cfg.ConnConfig.ConnectTimeout = o.timeout
	}
	if o.maxConns > 0 {
		cfg.MaxConns = o.maxConns
	}
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = "vrsky"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgstore: %w", err)
	}
	s := &Store{pool: pool, timeout: o.timeout, log: o.logger.With("component", "pgstore")}
	if !o.noMigrate {
		mctx, cancel := context.WithTimeout(ctx, max(o.timeout, 2*time.Minute))
		defer cancel()
		if err := s.migrate(mctx); err != nil {
			pool.Close()
			return nil, fmt.Errorf("pgstore: migrate %s: %w", describe(cfg), mapErr(mctx, err))
		}
	} else if err := s.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("pgstore: %s: %w", describe(cfg), err)
	}
	return s, nil
}

// Migrate applies missing migrations, as Open does unless WithoutMigrations.
func (s *Store) Migrate(ctx context.Context) error {
	if err := s.migrate(ctx); err != nil {
		return fmt.Errorf("pgstore: migrate: %w", mapErr(ctx, err))
	}
	return nil
}

// Pool is the Store's connection pool, for packages that keep their own
// tables in the same database (the connector registry).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Close releases the pool's connections.
func (s *Store) Close() { s.pool.Close() }

// Ping implements store.Store.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("pgstore: ping: %w", mapErr(ctx, err))
	}
	return nil
}

// ---- tenants ----

const tenantCols = `name, display_name, max_integrations, max_messages_per_second, max_storage_bytes, placement, created_at, revision`

func scanTenant(row pgx.Row) (store.Tenant, error) {
	var t store.Tenant
	err := row.Scan(&t.Name, &t.DisplayName, &t.Quotas.MaxIntegrations, &t.Quotas.MaxMessagesPerSecond,
		&t.Quotas.MaxStorageBytes, &t.Placement, &t.CreatedAt, &t.Revision)
	t.CreatedAt = t.CreatedAt.UTC()
	return t, err
}

// CreateTenant implements store.Store.
func (s *Store) CreateTenant(ctx context.Context, t store.Tenant) (store.Tenant, error) {
	if t.Name == "" {
		return store.Tenant{}, errors.New("pgstore: tenant name is empty")
	}
	var out store.Tenant
	err := s.do(ctx, func(ctx context.Context) (err error) {
		out, err = scanTenant(s.pool.QueryRow(ctx, `
			INSERT INTO tenants (name, display_name, max_integrations, max_messages_per_second, max_storage_bytes, placement)
			VALUES ($1, $2, $3, $4, $5, $6) RETURNING `+tenantCols,
			t.Name, t.DisplayName, t.Quotas.MaxIntegrations, t.Quotas.MaxMessagesPerSecond, t.Quotas.MaxStorageBytes, t.Placement))
		return err
	})
	if err != nil {
		return store.Tenant{}, fmt.Errorf("pgstore: create tenant %q: %w", t.Name, err)
	}
	return out, nil
}

// GetTenant implements store.Store.
func (s *Store) GetTenant(ctx context.Context, name string) (store.Tenant, error) {
	var out store.Tenant
	err := s.do(ctx, func(ctx context.Context) (err error) {
		out, err = scanTenant(s.pool.QueryRow(ctx, `SELECT `+tenantCols+` FROM tenants WHERE name = $1`, name))
		return err
	})
	if err != nil {
		return store.Tenant{}, fmt.Errorf("pgstore: get tenant %q: %w", name, err)
	}
	return out, nil
}

// ListTenants implements store.Store.
func (s *Store) ListTenants(ctx context.Context) ([]store.Tenant, error) {
	var out []store.Tenant
	err := s.do(ctx, func(ctx context.Context) error {
		rows, err := s.pool.Query(ctx, `SELECT `+tenantCols+` FROM tenants ORDER BY name COLLATE "C"`)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Tenant, error) { return scanTenant(r) })
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("pgstore: list tenants: %w", err)
	}
	return nonNil(out), nil
}

// UpdateTenant implements store.Store.
func (s *Store) UpdateTenant(ctx context.Context, t store.Tenant) (store.Tenant, error) {
	var out store.Tenant
	err := s.do(ctx, func(ctx context.Context) (err error) {
		out, err = scanTenant(s.pool.QueryRow(ctx, `
			UPDATE tenants SET display_name = $2, max_integrations = $3, max_messages_per_second = $4,
				max_storage_bytes = $5, placement = $6, revision = nextval('revisions')
			WHERE name = $1 AND revision = $7 RETURNING `+tenantCols,
			t.Name, t.DisplayName, t.Quotas.MaxIntegrations, t.Quotas.MaxMessagesPerSecond, t.Quotas.MaxStorageBytes,
			t.Placement, int64(t.Revision)))
		if errors.Is(err, pgx.ErrNoRows) {
			return s.conflictOrMissing(ctx, `SELECT 1 FROM tenants WHERE name = $1`, t.Name)
		}
		return err
	})
	if err != nil {
		return store.Tenant{}, fmt.Errorf("pgstore: update tenant %q: %w", t.Name, err)
	}
	return out, nil
}

// DeleteTenant implements store.Store; keys, integrations and the endpoint
// go with it.
func (s *Store) DeleteTenant(ctx context.Context, name string) error {
	err := s.do(ctx, func(ctx context.Context) error {
		tag, err := s.pool.Exec(ctx, `DELETE FROM tenants WHERE name = $1`, name)
		if err == nil && tag.RowsAffected() == 0 {
			return store.ErrNotFound
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("pgstore: delete tenant %q: %w", name, err)
	}
	return nil
}

// ---- API keys ----

const keyCols = `id, tenant, hash, name, created_at`

func scanKey(row pgx.Row) (store.APIKey, error) {
	var k store.APIKey
	err := row.Scan(&k.ID, &k.Tenant, &k.Hash, &k.Name, &k.CreatedAt)
	k.CreatedAt = k.CreatedAt.UTC()
	return k, err
}

// CreateKey implements store.Store.
func (s *Store) CreateKey(ctx context.Context, k store.APIKey) (store.APIKey, error) {
	if k.ID == "" {
		return store.APIKey{}, errors.New("pgstore: key id is empty")
	}
	var out store.APIKey
	err := s.do(ctx, func(ctx context.Context) (err error) {
		out, err = scanKey(s.pool.QueryRow(ctx, `
			INSERT INTO api_keys (id, tenant, hash, name) VALUES ($1, $2, $3, $4) RETURNING `+keyCols,
			k.ID, k.Tenant, nonNilBytes(k.Hash), k.Name))
		return err
	})
	if err != nil {
		return store.APIKey{}, fmt.Errorf("pgstore: create key %q of %q: %w", k.ID, k.Tenant, err)
	}
	return out, nil
}

// GetKey implements store.Store.
func (s *Store) GetKey(ctx context.Context, id string) (store.APIKey, error) {
	var out store.APIKey
	err := s.do(ctx, func(ctx context.Context) (err error) {
		out, err = scanKey(s.pool.QueryRow(ctx, `SELECT `+keyCols+` FROM api_keys WHERE id = $1`, id))
		return err
	})
	if err != nil {
		return store.APIKey{}, fmt.Errorf("pgstore: get key %q: %w", id, err)
	}
	return out, nil
}

// ListKeys implements store.Store.
func (s *Store) ListKeys(ctx context.Context, tenant string) ([]store.APIKey, error) {
	var out []store.APIKey
	err := s.do(ctx, func(ctx context.Context) error {
		rows, err := s.pool.Query(ctx, `SELECT `+keyCols+` FROM api_keys WHERE tenant = $1 ORDER BY id COLLATE "C"`, tenant)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.APIKey, error) { return scanKey(r) })
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("pgstore: list keys of %q: %w", tenant, err)
	}
	return nonNil(out), nil
}

// DeleteKey implements store.Store.
func (s *Store) DeleteKey(ctx context.Context, tenant, id string) error {
	err := s.do(ctx, func(ctx context.Context) error {
		tag, err := s.pool.Exec(ctx, `DELETE FROM api_keys WHERE tenant = $1 AND id = $2`, tenant, id)
		if err == nil && tag.RowsAffected() == 0 {
			return store.ErrNotFound
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("pgstore: delete key %q of %q: %w", id, tenant, err)
	}
	return nil
}

// ---- integrations ----

const integrationCols = `tenant, name, spec, desired_state, created_at, updated_at, revision`

func scanIntegration(row pgx.Row) (store.Integration, error) {
	var in store.Integration
	err := row.Scan(&in.Tenant, &in.Name, &in.Spec, &in.Desired, &in.CreatedAt, &in.UpdatedAt, &in.Revision)
	in.CreatedAt, in.UpdatedAt = in.CreatedAt.UTC(), in.UpdatedAt.UTC()
	return in, err
}

// CreateIntegration implements store.Store.
func (s *Store) CreateIntegration(ctx context.Context, in store.Integration) (store.Integration, error) {
	if in.Name == "" {
		return store.Integration{}, errors.New("pgstore: integration name is empty")
	}
	var out store.Integration
	err := s.do(ctx, func(ctx context.Context) (err error) {
		out, err = scanIntegration(s.pool.QueryRow(ctx, `
			INSERT INTO integrations (tenant, name, spec, desired_state) VALUES ($1, $2, $3, $4)
			RETURNING `+integrationCols,
			in.Tenant, in.Name, specJSON(in.Spec), in.Desired))
		return err
	})
	if err != nil {
		return store.Integration{}, fmt.Errorf("pgstore: create integration %s/%s: %w", in.Tenant, in.Name, err)
	}
	return out, nil
}

// GetIntegration implements store.Store.
func (s *Store) GetIntegration(ctx context.Context, tenant, name string) (store.Integration, error) {
	var out store.Integration
	err := s.do(ctx, func(ctx context.Context) (err error) {
		out, err = scanIntegration(s.pool.QueryRow(ctx,
			`SELECT `+integrationCols+` FROM integrations WHERE tenant = $1 AND name = $2`, tenant, name))
		return err
	})
	if err != nil {
		return store.Integration{}, fmt.Errorf("pgstore: get integration %s/%s: %w", tenant, name, err)
	}
	return out, nil
}

// ListIntegrations implements store.Store.
func (s *Store) ListIntegrations(ctx context.Context, tenant string) ([]store.Integration, error) {
	var out []store.Integration
	err := s.do(ctx, func(ctx context.Context) error {
		q, args := `SELECT `+integrationCols+` FROM integrations ORDER BY tenant COLLATE "C", name COLLATE "C"`, []any{}
		if tenant != "" {
			q, args = `SELECT `+integrationCols+` FROM integrations WHERE tenant = $1 ORDER BY name COLLATE "C"`, []any{tenant}
		}
		rows, err := s.pool.Query(ctx, q, args...)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Integration, error) { return scanIntegration(r) })
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("pgstore: list integrations of %q: %w", tenant, err)
	}
	return nonNil(out), nil
}

// UpdateIntegration implements store.Store.
func (s *Store) UpdateIntegration(ctx context.Context, in store.Integration) (store.Integration, error) {
	var out store.Integration
	err := s.do(ctx, func(ctx context.Context) (err error) {
		out, err = scanIntegration(s.pool.QueryRow(ctx, `
			UPDATE integrations SET spec = $3, desired_state = $4, updated_at = greatest(now(), updated_at),
				revision = nextval('revisions')
			WHERE tenant = $1 AND name = $2 AND revision = $5 RETURNING `+integrationCols,
			in.Tenant, in.Name, specJSON(in.Spec), in.Desired, int64(in.Revision)))
		if errors.Is(err, pgx.ErrNoRows) {
			return s.conflictOrMissing(ctx, `SELECT 1 FROM integrations WHERE tenant = $1 AND name = $2`, in.Tenant, in.Name)
		}
		return err
	})
	if err != nil {
		return store.Integration{}, fmt.Errorf("pgstore: update integration %s/%s: %w", in.Tenant, in.Name, err)
	}
	return out, nil
}

// DeleteIntegration implements store.Store.
func (s *Store) DeleteIntegration(ctx context.Context, tenant, name string) error {
	err := s.do(ctx, func(ctx context.Context) error {
		tag, err := s.pool.Exec(ctx, `DELETE FROM integrations WHERE tenant = $1 AND name = $2`, tenant, name)
		if err == nil && tag.RowsAffected() == 0 {
			return store.ErrNotFound
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("pgstore: delete integration %s/%s: %w", tenant, name, err)
	}
	return nil
}

// ---- helpers ----

// do runs one operation under the query deadline, retries it once when
// pgx reports that nothing reached the server (a pooled connection that
// died while idle), and maps errors to the store's sentinels.
func (s *Store) do(ctx context.Context, op func(ctx context.Context) error) error {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	err := op(ctx)
	if err != nil && pgconn.SafeToRetry(err) && ctx.Err() == nil {
		err = op(ctx)
	}
	return mapErr(ctx, err)
}

// conflictOrMissing tells a stale revision (ErrConflict) from a missing
// record (ErrNotFound) after a conditional update matched no row.
func (s *Store) conflictOrMissing(ctx context.Context, query string, args ...any) error {
	var one int
	err := s.pool.QueryRow(ctx, query, args...).Scan(&one)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return store.ErrNotFound
	case err != nil:
		return err
	}
	return fmt.Errorf("stale revision: %w", store.ErrConflict)
}

func (s *Store) opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

// mapErr maps PostgreSQL and connection errors to the store's sentinels,
// keeping the cause in the chain.
func mapErr(ctx context.Context, err error) error {
	if err == nil || errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) ||
		errors.Is(err, store.ErrExists) || errors.Is(err, store.ErrUnavailable) || errors.Is(err, store.ErrNameTaken) {
		return err
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ErrNotFound
	}
	if pgErr := pgError(err); pgErr != nil {
		switch {
		case pgErr.Code == "23505": // unique_violation
			return fmt.Errorf("%w (%s)", store.ErrExists, pgErr.ConstraintName)
		case pgErr.Code == "23503": // foreign_key_violation: the tenant is missing
			return fmt.Errorf("tenant: %w", store.ErrNotFound)
		case pgErr.Code[:2] == "08", // connection exception
			pgErr.Code[:2] == "53",                       // insufficient resources (too many connections, …)
			pgErr.Code == "57P01", pgErr.Code == "57P02", // admin / crash shutdown
			pgErr.Code == "57P03", // cannot connect now (starting up, recovering)
			pgErr.Code == "57P05": // idle session timeout
			return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
		}
		return err
	}
	// The caller gave up: that is not the database's fault.
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return err
	}
	// Anything else did not come from the server: it could not be reached,
	// the connection broke, or it did not answer in time.
	return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
}

func pgError(err error) *pgconn.PgError {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr
	}
	return nil
}

// describe names the server without credentials, for error messages.
func describe(cfg *pgxpool.Config) string {
	return fmt.Sprintf("database %q on %s:%d", cfg.ConnConfig.Database, cfg.ConnConfig.Host, cfg.ConnConfig.Port)
}

// redact drops the text of a DSN parse error, which can contain the password.
func redact(err error) error {
	var perr *pgconn.ParseConfigError
	if errors.As(err, &perr) {
		return errors.New("cannot parse the connection string (check its syntax)")
	}
	return err
}

func specJSON(b []byte) []byte {
	if len(b) == 0 {
		return []byte("null")
	}
	return b
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func nonNilBytes(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

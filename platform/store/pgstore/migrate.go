package pgstore

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrationLockKey is the pg_advisory_lock key that serialises migrations
// between processes starting together ("vrsky" in ASCII).
const migrationLockKey int64 = 0x7672736b79

// Migration is one schema migration and whether the database has it.
type Migration struct {
	// Version is the number the file name starts with (0001_… is 1).
	Version int
	// Name is the file name without the number and ".sql".
	Name string
	// Checksum is the hex SHA-256 of the file's SQL.
	Checksum string
	// Applied reports whether the database has run it, and when.
	Applied   bool
	AppliedAt time.Time
	// Unknown marks a migration the database has applied but this binary
	// does not ship (the database was migrated by a newer VRSky).
	Unknown bool
}

type migration struct {
	Migration
	sql string
}

// migrations returns the embedded migrations ordered by version.
func migrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, e := range entries {
		num, name, ok := strings.Cut(strings.TrimSuffix(e.Name(), ".sql"), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration file %q: want NNNN_name.sql", e.Name())
		}
		b, err := migrationFiles.ReadFile(path.Join("migrations", e.Name()))
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(b)
		out = append(out, migration{Migration{Version: v, Name: name, Checksum: hex.EncodeToString(sum[:])}, string(b)})
	}
	slices.SortFunc(out, func(a, b migration) int { return a.Version - b.Version })
	for i := 1; i < len(out); i++ {
		if out[i].Version == out[i-1].Version {
			return nil, fmt.Errorf("two migrations with version %d", out[i].Version)
		}
	}
	return out, nil
}

const createMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    integer PRIMARY KEY,
	name       text        NOT NULL,
	checksum   text        NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now()
)`

// migrate applies the missing migrations, each in its own transaction,
// under a session advisory lock so that concurrent starts apply each once.
func (s *Store) migrate(ctx context.Context) error {
	all, err := migrations()
	if err != nil {
		return err
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire connection: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrationLockKey); err != nil {
		return fmt.Errorf("take migration lock: %w", err)
	}
	defer func() {
		// A fresh context: the lock must go even when ctx has expired. If
		// the unlock fails the connection is closed, which frees it too.
		uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(uctx, "SELECT pg_advisory_unlock($1)", migrationLockKey); err != nil {
			_ = conn.Conn().Close(uctx)
		}
	}()
	if _, err := conn.Exec(ctx, createMigrationsTable); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	applied, err := appliedMigrations(ctx, conn)
	if err != nil {
		return err
	}
	known := map[int]bool{}
	for _, m := range all {
		known[m.Version] = true
		if a, ok := applied[m.Version]; ok {
			if a.Checksum != m.Checksum {
				return fmt.Errorf("migration %d (%s) was changed after it was applied (checksum %s, applied %s): migrations are forward-only, add a new one",
					m.Version, m.Name, m.Checksum[:12], a.Checksum[:min(12, len(a.Checksum))])
			}
			continue
		}
		start := time.Now()
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
				m.Version, m.Name, m.Checksum)
			return err
		})
		if err != nil {
			return fmt.Errorf("apply migration %d (%s): %w", m.Version, m.Name, err)
		}
		s.log.Info("applied migration", "version", m.Version, "name", m.Name, "took", time.Since(start))
	}
	for v, a := range applied {
		if !known[v] {
			s.log.Warn("database has a migration this binary does not know: it was migrated by a newer VRSky",
				"version", v, "name", a.Name)
		}
	}
	return nil
}

type queryer interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func appliedMigrations(ctx context.Context, q queryer) (map[int]Migration, error) {
	rows, err := q.Query(ctx, "SELECT version, name, checksum, applied_at FROM schema_migrations")
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	out := map[int]Migration{}
	for rows.Next() {
		var m Migration
		if err := rows.Scan(&m.Version, &m.Name, &m.Checksum, &m.AppliedAt); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read schema_migrations: %w", err)
		}
		m.Applied = true
		out[m.Version] = m
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	return out, nil
}

// MigrationStatus lists the migrations this binary ships and those the
// database has applied, ordered by version (for `vrsky migrate status`).
func (s *Store) MigrationStatus(ctx context.Context) ([]Migration, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	all, err := migrations()
	if err != nil {
		return nil, err
	}
	applied, err := appliedMigrations(ctx, s.pool)
	if err != nil {
		var missing bool
		if pgErr := pgError(err); pgErr != nil && pgErr.Code == "42P01" { // undefined_table
			missing = true
		}
		if !missing {
			return nil, fmt.Errorf("pgstore: migration status: %w", mapErr(ctx, err))
		}
		applied = map[int]Migration{}
	}
	var out []Migration
	for _, m := range all {
		st := m.Migration
		if a, ok := applied[m.Version]; ok {
			st.Applied, st.AppliedAt = true, a.AppliedAt
			delete(applied, m.Version)
		}
		out = append(out, st)
	}
	for _, a := range applied {
		a.Unknown = true
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b Migration) int { return a.Version - b.Version })
	return out, nil
}

var _ queryer = (*pgxpool.Pool)(nil)

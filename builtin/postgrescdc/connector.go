package postgrescdc

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/vrsky/vrsky/runtime/connector"
)

//go:embed cdc.schema.json
var configSchema []byte

// Source is the postgres-cdc source connector.
var Source = connector.Connector{
	Name:         "postgres-cdc",
	Version:      "1.0.0",
	Kind:         connector.KindSource,
	Description:  "Streams committed inserts, updates and deletes of PostgreSQL tables (logical replication, pgoutput), optionally after a consistent snapshot.",
	ConfigSchema: configSchema,
	Builtin:      true,
	Singleton:    true,
	NewSource: func(cfg json.RawMessage, env connector.Env) (connector.Source, error) {
		s, err := parseConfig(cfg, env)
		if err != nil {
			return nil, err
		}
		return newSource(s, env), nil
	},
	Check:  check,
	Remove: remove,
}

// State keys (connector.State, scoped to this source).
const (
	// stateSlot holds the name of the slot this source created.
	stateSlot = "slot-created"
	// statePublication holds the name of the publication this source created.
	statePublication = "publication-created"
	// stateSnapshot holds the consistent point of the finished snapshot.
	stateSnapshot = "snapshot-done"
)

// checkTimeout bounds Check and Remove when their context has no deadline.
const checkTimeout = 30 * time.Second

// check verifies, at create time, that the source can run: the DSN
// connects with replication rights, wal_level is logical, the tables
// exist.
func check(ctx context.Context, cfg json.RawMessage, env connector.Env) error {
	s, err := parseConfig(cfg, env)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.dsn)
	if err != nil {
		return fmt.Errorf("postgres-cdc: connect with %s: %w", s.DSNEnv, err)
	}
	defer conn.Close(context.Background())
	var walLevel string
	if err := conn.QueryRow(ctx, "SHOW wal_level").Scan(&walLevel); err != nil {
		return fmt.Errorf("postgres-cdc: read wal_level: %w", err)
	}
	if walLevel != "logical" {
		return fmt.Errorf("postgres-cdc: the server runs with wal_level=%s; logical replication needs wal_level=logical (set it in postgresql.conf and restart)", walLevel)
	}
	var canReplicate bool
	if err := conn.QueryRow(ctx, "SELECT rolsuper OR rolreplication FROM pg_roles WHERE rolname = current_user").Scan(&canReplicate); err != nil {
		return fmt.Errorf("postgres-cdc: read the role's attributes: %w", err)
	}
	if !canReplicate {
		return fmt.Errorf("postgres-cdc: the role of %s has no REPLICATION attribute (ALTER ROLE ... WITH REPLICATION)", s.DSNEnv)
	}
	for i, t := range s.tables {
		var exists bool
		if err := conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", t.quoted()).Scan(&exists); err != nil {
			return fmt.Errorf("postgres-cdc: look up table %s: %w", t, err)
		}
		if !exists {
			return &connector.SpecError{Field: fmt.Sprintf("tables[%d]", i), Reason: fmt.Sprintf("table %s does not exist", t)}
		}
	}
	repl, err := connectReplication(ctx, s.dsn)
	if err != nil {
		return fmt.Errorf("postgres-cdc: %w", err)
	}
	defer repl.Close(context.Background())
	if _, err := pglogrepl.IdentifySystem(ctx, repl); err != nil {
		return fmt.Errorf("postgres-cdc: IDENTIFY_SYSTEM on the replication connection: %w", err)
	}
	return nil
}

// remove drops the slot (unless keep_slot_on_delete) and the publication
// if this source created it.
func remove(ctx context.Context, cfg json.RawMessage, env connector.Env) error {
	s, err := parseConfig(cfg, env)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.dsn)
	if err != nil {
		return fmt.Errorf("postgres-cdc: connect with %s: %w", s.DSNEnv, err)
	}
	defer conn.Close(context.Background())
	var errs []error
	if !s.KeepSlotOnDelete {
		if err := dropSlot(ctx, conn, s.Slot); err != nil {
			errs = append(errs, err)
		}
	}
	if env.State != nil {
		created, err := env.State.Get(ctx, statePublication)
		switch {
		case errors.Is(err, connector.ErrNoState):
		case err != nil:
			errs = append(errs, fmt.Errorf("postgres-cdc: read state: %w", err))
		case string(created) == s.Publication:
			if _, err := conn.Exec(ctx, "DROP PUBLICATION IF EXISTS "+pgx.Identifier{s.Publication}.Sanitize()); err != nil {
				errs = append(errs, fmt.Errorf("postgres-cdc: drop publication %s: %w", s.Publication, err))
			}
		}
	}
	return errors.Join(errs...)
}

// dropSlot drops slot if it exists. A walsender still streaming from it
// (the source on a node that has not stopped yet) is terminated first.
func dropSlot(ctx context.Context, conn *pgx.Conn, slot string) error {
	for {
		var pid *int32
		err := conn.QueryRow(ctx, "SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1", slot).Scan(&pid)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("postgres-cdc: look up slot %s: %w", slot, err)
		}
		if pid != nil {
			if _, err := conn.Exec(ctx, "SELECT pg_terminate_backend($1)", *pid); err != nil {
				return fmt.Errorf("postgres-cdc: stop the walsender (pid %d) of slot %s: %w", *pid, slot, err)
			}
		} else {
			_, err := conn.Exec(ctx, "SELECT pg_drop_replication_slot($1)", slot)
			var pgErr *pgconn.PgError
			switch {
			case err == nil:
				return nil
			case errors.As(err, &pgErr) && pgErr.Code == "42704": // undefined_object: gone meanwhile
				return nil
			case errors.As(err, &pgErr) && pgErr.Code == "55006": // object_in_use: a walsender took it again
			default:
				return fmt.Errorf("postgres-cdc: drop slot %s: %w", slot, err)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("postgres-cdc: drop slot %s: still in use: %w", slot, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// connectReplication opens a logical replication connection
// (replication=database) with dsn.
func connectReplication(ctx context.Context, dsn string) (*pgconn.PgConn, error) {
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return nil, connector.Permanent(fmt.Errorf("parse the DSN: %w", err))
	}
	cfg.RuntimeParams["replication"] = "database"
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("replication connection: %w", err)
	}
	return conn, nil
}

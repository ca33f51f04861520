package postgres

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vrsky/vrsky/runtime/connector"
)

//go:embed sink.schema.json
var sinkSchema []byte

// Sink is the postgres sink connector.
var Sink = connector.Connector{
	Name:         "postgres",
	Version:      "1.0.0",
	Kind:         connector.KindSink,
	Description:  "Writes JSON messages as rows of a PostgreSQL table, in batches: COPY (insert) or COPY then INSERT ... ON CONFLICT (upsert).",
	ConfigSchema: sinkSchema,
	Builtin:      true,
	NewSink: func(raw json.RawMessage, env connector.Env) (connector.Sink, error) {
		cfg, err := parseConfig(raw)
		if err != nil {
			return nil, err
		}
		return newSink(cfg, env)
	},
	Check: check,
}

// check connects and compares the config with the table: it exists, every
// mapped column exists and can be written, and in upsert mode the key has
// a primary key or unique index. Its errors are *connector.SpecError.
func check(ctx context.Context, raw json.RawMessage, _ connector.Env) error {
	cfg, err := parseConfig(raw)
	if err != nil {
		return err
	}
	dsn, err := cfg.dsn()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return &connector.SpecError{Field: "dsn_env", Reason: fmt.Sprintf("cannot connect with the DSN in %s: %v", cfg.DSNEnv, err)}
	}
	defer conn.Close(context.WithoutCancel(ctx))
	t, err := loadTable(ctx, conn, cfg.Schema, cfg.Table)
	if errors.Is(err, errNoTable) {
		return &connector.SpecError{Field: "table", Reason: fmt.Sprintf("table %s does not exist", pgx.Identifier{cfg.Schema, cfg.Table}.Sanitize())}
	}
	if err != nil {
		return err
	}
	_, err = newPlan(&cfg, t)
	return err
}

package postgrescdc_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vrsky/vrsky/builtin/postgrescdc"
	"github.com/vrsky/vrsky/internal/testenv/pgtest"
	"github.com/vrsky/vrsky/runtime/connector"
	"github.com/vrsky/vrsky/runtime/connectortest"
)

// acceptanceDSNEnv holds the DSN, named as a secret of tenant acme.
const acceptanceDSNEnv = "VRSKY_SECRET_ACME__CDC_ACCEPTANCE_DSN"

// acceptanceWait bounds every wait (a loaded 2-core machine).
const acceptanceWait = 60 * time.Second

// TestSourceAcceptance runs the connector acceptance suite on the
// postgres-cdc source against a real PostgreSQL with wal_level=logical
// (pgtest's shared cluster, a fresh database): in each of two runs, once
// the slot streams, three rows are inserted (three transactions) and the
// source must emit their changes; the second run resumes the slot the
// first created, with the same State.
func TestSourceAcceptance(t *testing.T) {
	dsn := pgtest.New(t)
	t.Setenv(acceptanceDSNEnv, dsn)
	const slot = "vrsky_acceptance"
	// query runs fn on a connection of its own (none is kept open across
	// the suite: it checks for goroutines left behind).
	query := func(t *testing.T, fn func(ctx context.Context, conn *pgx.Conn) error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), acceptanceWait)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		defer conn.Close(context.Background())
		if err := fn(ctx, conn); err != nil {
			t.Fatal(err)
		}
	}
	query(t, func(ctx context.Context, conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, `CREATE TABLE acceptance_items (id int PRIMARY KEY, note text)`)
		return err
	})

	cfg := json.RawMessage(`{"dsn_env":"` + acceptanceDSNEnv + `","slot":"` + slot + `","tables":["acceptance_items"],` +
		`"heartbeat":"0s","status_interval":"100ms"}`)
	env := connector.Env{Tenant: "acme", Integration: "acceptance", State: connectortest.NewState()}
	// The slot is the cluster's, not the database's: drop it (and the
	// publication the source created) before the database goes.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), acceptanceWait)
		defer cancel()
		if err := postgrescdc.Source.Remove(ctx, cfg, env); err != nil {
			t.Errorf("Remove: %v", err)
		}
	})

	connectortest.RunSource(t, connectortest.SourceCase{
		Connector: postgrescdc.Source,
		Config:    cfg,
		Env:       env,
		Bad: []connectortest.BadConfig{
			{Config: json.RawMessage(`{}`), Field: "dsn_env"},
			{Config: json.RawMessage(`{"dsn_env":"1BAD"}`), Field: "dsn_env"},
			{Config: json.RawMessage(`{"dsn_env":"VRSKY_SECRET_ACME__CDC_ACCEPTANCE_UNSET"}`), Field: "dsn_env"},
			{Config: json.RawMessage(`{"dsn_env":"` + acceptanceDSNEnv + `","slot":"Not-A-Slot"}`), Field: "slot"},
			{Config: json.RawMessage(`{"dsn_env":"` + acceptanceDSNEnv + `","publication":"9pub"}`), Field: "publication"},
			{Config: json.RawMessage(`{"dsn_env":"` + acceptanceDSNEnv + `","tables":[]}`), Field: "tables"},
			{Config: json.RawMessage(`{"dsn_env":"` + acceptanceDSNEnv + `","heartbeat":"10"}`), Field: "heartbeat"},
			{Config: json.RawMessage(`{"dsn_env":"` + acceptanceDSNEnv + `","status_interval":"0s"}`), Field: "status_interval"},
		},
		Produce: func(t *testing.T, round, n int) {
			// Changes committed before the first run has created the slot
			// are not streamed (no snapshot): wait until it streams.
			deadline := time.Now().Add(acceptanceWait)
			for streaming := false; !streaming; {
				query(t, func(ctx context.Context, conn *pgx.Conn) error {
					return conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_replication_slots s JOIN pg_stat_replication r ON r.pid = s.active_pid
						WHERE s.slot_name = $1 AND r.state IN ('catchup', 'streaming'))`, slot).Scan(&streaming)
				})
				if !streaming {
					if time.Now().After(deadline) {
						t.Fatalf("round %d: slot %s not streaming after %s", round, slot, acceptanceWait)
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
			query(t, func(ctx context.Context, conn *pgx.Conn) error {
				for i := range n {
					if _, err := conn.Exec(ctx, `INSERT INTO acceptance_items VALUES ($1, $2)`, round*100+i, fmt.Sprintf("round %d row %d", round, i)); err != nil {
						return err
					}
				}
				return nil
			})
		},
		N:       3,
		Timeout: acceptanceWait,
	})
}

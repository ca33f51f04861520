package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vrsky/vrsky/builtin/postgres"
	"github.com/vrsky/vrsky/internal/testenv/pgtest"
	"github.com/vrsky/vrsky/runtime/connector"
	"github.com/vrsky/vrsky/runtime/connectortest"
)

// acceptanceDSNEnv holds the DSN, named as a secret of tenant acme.
const acceptanceDSNEnv = "VRSKY_SECRET_ACME__PG_ACCEPTANCE_DSN"

// TestSinkAcceptance runs the connector acceptance suite on the postgres
// sink against a real PostgreSQL (pgtest's shared cluster, a fresh
// database). The destination fails the two ways the sink tells apart:
//   - retryable: the database stops accepting connections (ALLOW_CONNECTIONS
//     false, its backends terminated): the connect fails with SQLSTATE
//     55000, which is not about the data, so the sink fails retryably;
//   - permanent: a CHECK constraint every new row breaks (SQLSTATE 23514,
//     class 23): the message's row is rejected and fails permanently.
func TestSinkAcceptance(t *testing.T) {
	dsn := pgtest.New(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	dbName := strings.TrimPrefix(u.Path, "/")
	admin := *u
	admin.Path = "/postgres" // ALTER DATABASE from outside the database
	t.Setenv(acceptanceDSNEnv, dsn)

	// exec runs statements on a connection of its own (none is kept open
	// across the suite: it checks for goroutines left behind).
	exec := func(t *testing.T, dsn string, sqls ...string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		defer conn.Close(context.Background())
		for _, q := range sqls {
			if _, err := conn.Exec(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	}
	exec(t, dsn, `CREATE TABLE acceptance (msg_id text PRIMARY KEY, n int NOT NULL, note text)`)

	db := pgx.Identifier{dbName}.Sanitize()
	refuse := []string{
		`ALTER DATABASE ` + db + ` WITH ALLOW_CONNECTIONS false`,
		fmt.Sprintf(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '%s' AND pid <> pg_backend_pid()`, dbName),
	}
	accept := `ALTER DATABASE ` + db + ` WITH ALLOW_CONNECTIONS true`
	t.Cleanup(func() { exec(t, admin.String(), accept) }) // whatever a failed case left

	// n reads the payload's n, as the row stores it.
	n := func(m *connector.Message) string {
		var v struct {
			N json.Number `json:"n"`
		}
		if err := json.Unmarshal(m.Data, &v); err != nil {
			t.Fatalf("message %s: %v", m.ID, err)
		}
		return v.N.String()
	}
	jsonMsg := func(data string) *connector.Message {
		return &connector.Message{ID: connector.NewID(), Header: connector.Header{"Content-Type": {"application/json"}}, Data: []byte(data)}
	}
	connectortest.RunSink(t, connectortest.SinkCase{
		Connector: postgres.Sink,
		Config: json.RawMessage(`{"dsn_env":"` + acceptanceDSNEnv + `","table":"acceptance","id_column":"msg_id",` +
			`"batch_size":10,"max_wait":"10ms","concurrency":2}`),
		Env: connector.Env{Tenant: "acme", Integration: "acceptance", Name: "db"},
		Bad: []connectortest.BadConfig{
			{Config: json.RawMessage(`{"table":"acceptance"}`), Field: "dsn_env"},
			{Config: json.RawMessage(`{"dsn_env":"1BAD","table":"acceptance"}`), Field: "dsn_env"},
			{Config: json.RawMessage(`{"dsn_env":"VRSKY_SECRET_ACME__PG_ACCEPTANCE_UNSET","table":"acceptance"}`), Field: "dsn_env"},
			{Config: json.RawMessage(`{"dsn_env":"` + acceptanceDSNEnv + `"}`), Field: "table"},
			{Config: json.RawMessage(`{"dsn_env":"` + acceptanceDSNEnv + `","table":"acceptance","mode":"merge"}`), Field: "mode"},
			{Config: json.RawMessage(`{"dsn_env":"` + acceptanceDSNEnv + `","table":"acceptance","mode":"upsert"}`), Field: "key"},
			{Config: json.RawMessage(`{"dsn_env":"` + acceptanceDSNEnv + `","table":"acceptance","key":["n"]}`), Field: "key"},
			{Config: json.RawMessage(`{"dsn_env":"` + acceptanceDSNEnv + `","table":"acceptance","concurrency":0}`), Field: "concurrency"},
			{Config: json.RawMessage(`{"dsn_env":"` + acceptanceDSNEnv + `","table":"acceptance","max_wait":"soon"}`), Field: "max_wait"},
		},
		// JSON numbers, a number as a string (as CSV sends it), a null and
		// an absent field.
		Messages: []*connector.Message{
			jsonMsg(`{"n":1,"note":"one"}`),
			jsonMsg(`{"n":"2","note":null}`),
			jsonMsg(`{"n":3,"unknown":"ignored"}`),
		},
		Delivered: func(t *testing.T) []string {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			conn, err := pgx.Connect(ctx, dsn)
			if err != nil {
				t.Fatalf("connect: %v", err)
			}
			defer conn.Close(context.Background())
			rows, err := conn.Query(ctx, `SELECT msg_id || ':' || n FROM acceptance`)
			if err != nil {
				t.Fatal(err)
			}
			keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				t.Fatal(err)
			}
			return keys
		},
		// The row holds the message id and the payload's n.
		Key: func(m *connector.Message) string { return m.ID + ":" + n(m) },
		Fail: func(t *testing.T, permanent bool) {
			if permanent {
				exec(t, dsn, `ALTER TABLE acceptance ADD CONSTRAINT acceptance_n_negative CHECK (n < 0) NOT VALID`)
			} else {
				exec(t, admin.String(), refuse...)
			}
		},
		Restore: func(t *testing.T) {
			exec(t, admin.String(), accept)
			exec(t, dsn, `ALTER TABLE acceptance DROP CONSTRAINT IF EXISTS acceptance_n_negative`)
		},
	})
}

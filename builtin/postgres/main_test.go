package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/vrsky/vrsky/internal/testenv/pgtest"
	"github.com/vrsky/vrsky/runtime"
)

// TestMain stops the shared PostgreSQL cluster and then checks that the
// sinks left no goroutine behind (pools closed, copies finished).
func TestMain(m *testing.M) {
	code := m.Run()
	if err := pgtest.Cleanup(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines left behind:", err)
			code = 1
		}
	}
	os.Exit(code)
}

var envSeq atomic.Int64

// testDB is a fresh database: its DSN in an environment variable (named
// by env), and a connection for setting up and reading back.
type testDB struct {
	env  string
	conn *pgx.Conn
}

func newDB(t testing.TB, ddl ...string) *testDB {
	t.Helper()
	return openDB(t, pgtest.New(t), ddl...)
}

func openDB(t testing.TB, dsn string, ddl ...string) *testDB {
	t.Helper()
	env := fmt.Sprintf("VRSKY_PGSINK_TEST_DSN_%d", envSeq.Add(1))
	t.Setenv(env, dsn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	db := &testDB{env: env, conn: conn}
	for _, q := range ddl {
		db.exec(t, q)
	}
	return db
}

func (db *testDB) exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	if _, err := db.conn.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// int64 runs a query that returns one integer.
func (db *testDB) int64(t testing.TB, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := db.conn.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func (db *testDB) text(t testing.TB, sql string, args ...any) *string {
	t.Helper()
	var s *string
	if err := db.conn.QueryRow(context.Background(), sql, args...).Scan(&s); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return s
}

// config renders a sink config for db with the given fields.
func (db *testDB) config(t testing.TB, fields map[string]any) json.RawMessage {
	t.Helper()
	c := map[string]any{"dsn_env": db.env}
	for k, v := range fields {
		c[k] = v
	}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// newSinkFor builds the sink through the connector, as the engine does.
func newSinkFor(t testing.TB, db *testDB, fields map[string]any) runtime.BatchSink {
	t.Helper()
	s, err := Sink.NewSink(db.config(t, fields), runtime.Env{Tenant: "acme", Integration: "test", Name: "db"})
	if err != nil {
		t.Fatalf("new sink: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s.(runtime.BatchSink)
}

func msg(id, data string) *runtime.Message {
	return &runtime.Message{ID: id, Header: runtime.Header{}, Data: []byte(data)}
}

// deliverOK delivers msgs and fails the test on any error.
func deliverOK(t testing.TB, s runtime.BatchSink, msgs []*runtime.Message) {
	t.Helper()
	if errs := s.DeliverBatch(context.Background(), msgs); errs != nil {
		for i, err := range errs {
			if err != nil {
				t.Fatalf("message %d (%s): %v", i, msgs[i].ID, err)
			}
		}
		t.Fatal("DeliverBatch returned errors, all nil")
	}
}

// failures lists the indexes of failed messages.
func failures(errs []error) []int {
	var out []int
	for i, err := range errs {
		if err != nil {
			out = append(out, i)
		}
	}
	return out
}

func mustContain(t testing.TB, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%q does not contain %q", s, sub)
		}
	}
}

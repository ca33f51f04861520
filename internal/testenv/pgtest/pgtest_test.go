package pgtest_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vrsky/vrsky/internal/testenv/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestNewDatabasesAreSeparate(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dsn1, dsn2 := pgtest.New(t), pgtest.New(t)
	if dsn1 == dsn2 {
		t.Fatalf("New returned the same DSN twice: %s", dsn1)
	}
	c1 := connect(ctx, t, dsn1)
	c2 := connect(ctx, t, dsn2)
	if _, err := c1.Exec(ctx, "CREATE TABLE x (id int)"); err != nil {
		t.Fatalf("create table: %v", err)
	}
	if _, err := c2.Exec(ctx, "CREATE TABLE x (id int)"); err != nil {
		t.Fatalf("the second database is not empty: %v", err)
	}
}

func TestServerSettings(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn := connect(ctx, t, pgtest.New(t))
	for _, tc := range []struct{ setting, want string }{
		{"wal_level", "logical"},
		{"max_replication_slots", "20"},
		{"max_wal_senders", "20"},
		{"listen_addresses", "127.0.0.1"},
		{"server_encoding", "UTF8"},
	} {
		t.Run(tc.setting, func(t *testing.T) {
			var got string
			if err := conn.QueryRow(ctx, "SELECT current_setting($1)", tc.setting).Scan(&got); err != nil {
				t.Fatalf("current_setting: %v", err)
			}
			if got != tc.want {
				t.Errorf("%s = %q, want %q", tc.setting, got, tc.want)
			}
		})
	}
	var major int
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int / 10000").Scan(&major); err != nil {
		t.Fatalf("server version: %v", err)
	}
	if major < 15 {
		t.Errorf("PostgreSQL %d, want 15 or newer", major)
	}
}

func TestStopStart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := pgtest.Start(t)
	dsn := pgtest.NewDatabase(t, c)
	conn := connect(ctx, t, dsn)
	if _, err := conn.Exec(ctx, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('yes')"); err != nil {
		t.Fatalf("setup: %v", err)
	}
	if err := c.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if _, err := pgx.Connect(ctx, dsn); err == nil {
		t.Fatalf("connected to a stopped server")
	}
	if err := c.Start(); err != nil {
		t.Fatalf("Start again: %v", err)
	}
	var v string
	if err := connect(ctx, t, dsn).QueryRow(ctx, "SELECT v FROM kept").Scan(&v); err != nil || v != "yes" {
		t.Fatalf("data after restart: %q, %v", v, err)
	}
}

func connect(ctx context.Context, t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect %s: %v", dsn, err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

package postgrescdc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vrsky/vrsky/internal/testenv/pgtest"
	"github.com/vrsky/vrsky/runtime"
	"github.com/vrsky/vrsky/runtime/runtimetest"
)

// TestServerRestart: PostgreSQL goes down while the source streams; the
// source reconnects when it is back and resumes at the confirmed
// position: every change arrives, exactly once after dedup.
func TestServerRestart(t *testing.T) {
	c := pgtest.Start(t)
	dsn := pgtest.NewDatabase(t, c)
	t.Setenv("CDC_TEST_DSN", dsn)
	ctx := context.Background()
	connect := func() *db {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close(context.Background()) })
		return &db{dsn: dsn, env: "CDC_TEST_DSN", conn: conn}
	}
	d := connect()
	d.exec(t, "CREATE TABLE t (id int PRIMARY KEY)")
	em := &countingEmitter{}
	startSource(t, `{"dsn_env":"CDC_TEST_DSN","tables":["t"],"heartbeat":"0s"}`, runtime.Env{State: newState(t)}, em)
	d.waitStreaming(t, "vrsky_acme_orders")
	d.exec(t, "INSERT INTO t SELECT generate_series(1, 100)")
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	d = connect()
	d.exec(t, "INSERT INTO t SELECT generate_series(101, 200)")
	runtimetest.WaitFor(t, wait, "200 changes", func() bool { return len(em.Messages()) >= 200 })
	cs := decode(t, em.Messages())
	if len(cs) != 200 {
		t.Fatalf("%d changes, want 200", len(cs))
	}
	for i, c := range cs {
		if id := string(c.After["id"].(json.Number)); c.Op != "insert" || id != fmt.Sprint(i+1) {
			t.Fatalf("change %d: %s", i, c.Raw)
		}
	}
}

// TestRefusals: what the source cannot run with fails at once, with an
// error that says why (no retries).
func TestRefusals(t *testing.T) {
	d := newDB(t)
	d.exec(t, "CREATE TABLE t (id int PRIMARY KEY)")
	for _, tc := range []struct {
		name, cfg, setup, errHas string
	}{
		{name: "slot of another plugin", cfg: `{"dsn_env":"CDC_TEST_DSN","tables":["t"],"slot":"other_plugin"}`,
			setup: "SELECT pg_create_logical_replication_slot('other_plugin', 'test_decoding')", errHas: "not pgoutput"},
		{name: "foreign slot and a snapshot", cfg: `{"dsn_env":"CDC_TEST_DSN","tables":["t"],"slot":"theirs","snapshot":true}`,
			setup: "SELECT pg_create_logical_replication_slot('theirs', 'pgoutput')", errHas: "not created by this source"},
		{name: "missing table", cfg: `{"dsn_env":"CDC_TEST_DSN","tables":["nope"],"publication":"p_missing"}`, errHas: "does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != "" {
				d.exec(t, tc.setup)
			}
			r := startSource(t, tc.cfg, runtime.Env{State: newState(t)}, &runtimetest.Emitter{})
			var err error
			select {
			case err = <-r.done:
				r.done <- err
			case <-time.After(wait):
				t.Fatal("the source did not fail")
			}
			if !runtime.IsPermanent(err) || !strings.Contains(err.Error(), tc.errHas) {
				t.Fatalf("Run: %v, want a permanent error about %q", err, tc.errHas)
			}
		})
	}
	for _, slot := range []string{"other_plugin", "theirs"} {
		if err := dropSlot(context.Background(), d.conn, slot); err != nil {
			t.Fatal(err)
		}
	}
	// A config that cannot work does not build a source.
	_, err := Source.NewSource(json.RawMessage(`{"dsn_env":"CDC_UNSET_DSN"}`), runtime.Env{Tenant: "acme", Integration: "x"})
	var se *runtime.SpecError
	if !errors.As(err, &se) || se.Field != "dsn_env" {
		t.Fatalf("NewSource with an unset variable: %v", err)
	}
}

func TestDefaultName(t *testing.T) {
	for _, tc := range []struct{ tenant, integration, want string }{
		{"acme", "orders", "vrsky_acme_orders"},
		{"Acme-Corp", "orders.v2", "vrsky_acme_corp_orders_v2"},
		{"acme", strings.Repeat("x", 80), "vrsky_acme_" + strings.Repeat("x", 43) + "_"},
	} {
		got := defaultName(runtime.Env{Tenant: tc.tenant, Integration: tc.integration})
		if !strings.HasPrefix(got, tc.want) || len(got) > 63 {
			t.Errorf("defaultName(%s, %s) = %s, want %s… (≤ 63 bytes)", tc.tenant, tc.integration, got, tc.want)
		}
	}
}

package postgrescdc

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/vrsky/vrsky/internal/testenv/pgtest"
	"github.com/vrsky/vrsky/runtime"
	"github.com/vrsky/vrsky/runtime/runtimetest"
)

// TestLostSlot: a slot PostgreSQL invalidated (it fell behind
// max_slot_wal_keep_size) makes the source fail with an error that says
// how to recover; with resnapshot_on_lost it recreates the slot and reads
// the tables again. A private cluster, since the setting is server-wide.
func TestLostSlot(t *testing.T) {
	c := pgtest.Start(t)
	dsn := pgtest.NewDatabase(t, c)
	t.Setenv("CDC_TEST_DSN", dsn)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	d := &db{dsn: dsn, env: "CDC_TEST_DSN", conn: conn}
	d.exec(t, "ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'")
	d.exec(t, "SELECT pg_reload_conf()")
	d.exec(t, "CREATE TABLE t (id int PRIMARY KEY)")
	d.exec(t, "INSERT INTO t VALUES (1), (2)")

	st := newState(t)
	r := startSource(t, `{"dsn_env":"CDC_TEST_DSN","tables":["t"],"heartbeat":"0s"}`, runtime.Env{State: st}, &runtimetest.Emitter{})
	d.waitStreaming(t, "vrsky_acme_orders")
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	// Write and switch WAL segments until a checkpoint invalidates the
	// idle slot.
	runtimetest.WaitFor(t, wait, "the slot to be invalidated", func() bool {
		for range 3 {
			d.exec(t, "INSERT INTO t SELECT max(id) + 1 FROM t")
			d.exec(t, "SELECT pg_switch_wal()")
		}
		d.exec(t, "CHECKPOINT")
		var status *string
		if err := conn.QueryRow(ctx, "SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'vrsky_acme_orders'").Scan(&status); err != nil {
			var all string
			_ = conn.QueryRow(ctx, "SELECT coalesce(string_agg(slot_name || ' ' || coalesce(wal_status, '-'), ', '), 'none') FROM pg_replication_slots").Scan(&all)
			t.Fatalf("slot: %v (slots: %s)", err, all)
		}
		return status != nil && *status == "lost"
	})

	r = startSource(t, `{"dsn_env":"CDC_TEST_DSN","tables":["t"],"heartbeat":"0s"}`, runtime.Env{State: st}, &runtimetest.Emitter{})
	var runErr error
	select {
	case runErr = <-r.done:
	case <-ctxDone(t):
		t.Fatal("the source did not fail on a lost slot")
	}
	if runErr == nil || !runtime.IsPermanent(runErr) || !strings.Contains(runErr.Error(), "invalidated") || !strings.Contains(runErr.Error(), "resnapshot_on_lost") {
		t.Fatalf("Run: %v, want a permanent error explaining the lost slot", runErr)
	}
	r.done <- runErr // for the cleanup's stop

	var rows int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&rows); err != nil {
		t.Fatal(err)
	}
	em := &runtimetest.Emitter{}
	startSource(t, `{"dsn_env":"CDC_TEST_DSN","tables":["t"],"heartbeat":"0s","resnapshot_on_lost":true}`, runtime.Env{State: st}, em)
	d.waitStreaming(t, "vrsky_acme_orders")
	d.exec(t, "INSERT INTO t VALUES (100000)")
	runtimetest.WaitFor(t, wait, "snapshot and the new row", func() bool { return len(em.Messages()) >= rows+1 })
	cs := decode(t, em.Messages())
	if len(cs) != rows+1 {
		t.Fatalf("%d messages, want %d snapshot rows and 1 insert", len(cs), rows)
	}
	for i, c := range cs[:rows] {
		if c.Op != "snapshot" {
			t.Fatalf("message %d: %s, want a snapshot row", i, c.Raw)
		}
	}
	if c := cs[rows]; c.Op != "insert" || c.After["id"] == nil {
		t.Fatalf("last message %s, want the insert", c.Raw)
	}
}

// ctxDone is closed after the tests' wait.
func ctxDone(t *testing.T) <-chan struct{} {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return ctx.Done()
}

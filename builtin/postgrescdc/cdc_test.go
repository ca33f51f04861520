package postgrescdc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vrsky/vrsky/runtime"
	"github.com/vrsky/vrsky/runtime/runtimetest"
)

// TestChanges streams inserts, updates and deletes of every supported
// column type, a transaction of 1,000 rows and an update that leaves a
// TOASTed column alone, and checks every message, in order.
func TestChanges(t *testing.T) {
	d := newDB(t)
	d.exec(t, `CREATE TABLE items (
		id int PRIMARY KEY, name text, price numeric(10,2), ok bool, doc jsonb, at timestamptz,
		f float8, n bigint, big text)`)
	d.exec(t, `ALTER TABLE items ALTER COLUMN big SET STORAGE EXTERNAL`) // no compression: > 2 KB is TOASTed
	d.exec(t, `CREATE TABLE notes (id int PRIMARY KEY, body text)`)
	d.exec(t, `ALTER TABLE notes REPLICA IDENTITY FULL`)
	em := &runtimetest.Emitter{}
	startSource(t, `{"dsn_env":"CDC_TEST_DSN","tables":["items","public.notes"],"heartbeat":"0s"}`,
		runtime.Env{State: newState(t)}, em)
	d.waitStreaming(t, "vrsky_acme_orders")

	big := strings.Repeat("0123456789abcdef", 256) // 4 KiB
	d.exec(t, `INSERT INTO items VALUES (1, 'tea "green"', 12.50, true, '{"a":[1,2]}', '2026-01-02 03:04:05.5+00', 1.5, 9007199254740993, NULL)`)
	d.exec(t, `INSERT INTO items (id, name) VALUES (2, NULL)`)
	d.exec(t, `UPDATE items SET name = 'tea' WHERE id = 1`)
	d.exec(t, `DELETE FROM items WHERE id = 2`)
	d.exec(t, `INSERT INTO items (id, name) SELECT g, 'row ' || g FROM generate_series(1000, 1999) g`)
	d.exec(t, `INSERT INTO items (id, name, big) VALUES (3, 'big', $1)`, big)
	d.exec(t, `UPDATE items SET name = 'big2' WHERE id = 3`)
	d.exec(t, `INSERT INTO notes VALUES (1, 'x')`)
	d.exec(t, `UPDATE notes SET body = 'y' WHERE id = 1`)
	d.exec(t, `DELETE FROM notes WHERE id = 1`)
	d.exec(t, `UPDATE items SET id = 4 WHERE id = 3`) // key change: before carries the old key
	d.exec(t, `ALTER TABLE notes ADD COLUMN extra int DEFAULT 7`)
	d.exec(t, `INSERT INTO notes (id, body) VALUES (2, 'z')`) // the stream describes the new column
	d.exec(t, `TRUNCATE notes`)

	const total = 4 + 1000 + 2 + 3 + 1 + 2
	runtimetest.WaitFor(t, wait, fmt.Sprintf("%d changes", total), func() bool { return len(em.Messages()) >= total })
	cs := decode(t, em.Messages())
	if len(cs) != total {
		t.Fatalf("got %d changes, want %d", len(cs), total)
	}

	type want struct {
		op, table     string
		before, after string // JSON objects; "" means absent
		unchanged     []string
	}
	first := []want{
		{op: "insert", table: "items", after: `{"id":1,"name":"tea \"green\"","price":"12.50","ok":true,"doc":{"a":[1,2]},"at":"2026-01-02T03:04:05.5Z","f":1.5,"n":9007199254740993,"big":null}`},
		{op: "insert", table: "items", after: `{"id":2,"name":null,"price":null,"ok":null,"doc":null,"at":null,"f":null,"n":null,"big":null}`},
		{op: "update", table: "items", after: `{"id":1,"name":"tea","price":"12.50","ok":true,"doc":{"a":[1,2]},"at":"2026-01-02T03:04:05.5Z","f":1.5,"n":9007199254740993,"big":null}`},
		{op: "delete", table: "items", before: `{"id":2}`},
	}
	last := []want{
		{op: "insert", table: "items", after: `{"id":3,"name":"big","price":null,"ok":null,"doc":null,"at":null,"f":null,"n":null,"big":"` + big + `"}`},
		{op: "update", table: "items", after: `{"id":3,"name":"big2","price":null,"ok":null,"doc":null,"at":null,"f":null,"n":null}`, unchanged: []string{"big"}},
		{op: "insert", table: "notes", after: `{"id":1,"body":"x"}`},
		{op: "update", table: "notes", before: `{"id":1,"body":"x"}`, after: `{"id":1,"body":"y"}`},
		{op: "delete", table: "notes", before: `{"id":1,"body":"y"}`},
		{op: "update", table: "items", before: `{"id":3}`, after: `{"id":4,"name":"big2","price":null,"ok":null,"doc":null,"at":null,"f":null,"n":null}`, unchanged: []string{"big"}},
		{op: "insert", table: "notes", after: `{"id":2,"body":"z","extra":7}`},
		{op: "truncate", table: "notes"},
	}
	check := func(i int, c change, w want) {
		t.Helper()
		if c.Op != w.op || c.Schema != "public" || c.Table != w.table {
			t.Errorf("change %d: %s %s.%s, want %s public.%s", i, c.Op, c.Schema, c.Table, w.op, w.table)
		}
		sameJSON(t, fmt.Sprintf("change %d before", i), c.Before, w.before)
		sameJSON(t, fmt.Sprintf("change %d after", i), c.After, w.after)
		if fmt.Sprint(c.Unchanged) != fmt.Sprint(w.unchanged) {
			t.Errorf("change %d: unchanged %v, want %v", i, c.Unchanged, w.unchanged)
		}
	}
	for i, w := range first {
		check(i, cs[i], w)
	}
	for i, w := range last {
		check(total-len(last)+i, cs[total-len(last)+i], w)
	}
	// The 1,000-row transaction: in order, one xid, one commit.
	tx := cs[4 : 4+1000]
	for i, c := range tx {
		w := want{op: "insert", table: "items", after: fmt.Sprintf(`{"id":%d,"name":"row %d","price":null,"ok":null,"doc":null,"at":null,"f":null,"n":null,"big":null}`, 1000+i, 1000+i)}
		check(4+i, c, w)
		if c.XID != tx[0].XID || c.CommitLSN != tx[0].CommitLSN || c.CommitTime != tx[0].CommitTime {
			t.Fatalf("change %d: transaction %s/%s, want %s/%s", 4+i, c.XID, c.CommitLSN, tx[0].XID, tx[0].CommitLSN)
		}
		if want := fmt.Sprintf("-%d", i); !strings.HasSuffix(c.ID, want) {
			t.Fatalf("change %d: id %s does not end in its index %s", 4+i, c.ID, want)
		}
	}
	// Every message: a distinct id, positions and times that parse, and
	// commits in order.
	seen := map[string]bool{}
	var prevCommit uint64
	for i, c := range cs {
		if seen[c.ID] {
			t.Fatalf("change %d: id %s twice", i, c.ID)
		}
		seen[c.ID] = true
		if _, err := time.Parse(time.RFC3339Nano, c.CommitTime); err != nil {
			t.Fatalf("change %d: commit_time %q: %v", i, c.CommitTime, err)
		}
		commit := parseLSN(t, c.CommitLSN)
		if commit < prevCommit {
			t.Fatalf("change %d: commit %s before the previous one", i, c.CommitLSN)
		}
		prevCommit = commit
		if parseLSN(t, c.LSN) > commit {
			t.Fatalf("change %d: lsn %s after its commit %s", i, c.LSN, c.CommitLSN)
		}
	}
}

// sameJSON compares a decoded object with the expected JSON text ("" for
// absent).
func sameJSON(t *testing.T, what string, got map[string]any, want string) {
	t.Helper()
	if want == "" {
		if got != nil {
			t.Errorf("%s: got %v, want it absent", what, got)
		}
		return
	}
	var w map[string]any
	dec := json.NewDecoder(strings.NewReader(want))
	dec.UseNumber()
	if err := dec.Decode(&w); err != nil {
		t.Fatalf("%s: bad expectation: %v", what, err)
	}
	gb, _ := json.Marshal(got)
	wb, _ := json.Marshal(w)
	if string(gb) != string(wb) {
		t.Errorf("%s:\n got %s\nwant %s", what, gb, wb)
	}
}

// TestSnapshotThenStream: rows that exist before the source starts come
// as snapshot rows, rows written while it starts and after come as
// inserts; each row exactly once. A restart does not snapshot again.
func TestSnapshotThenStream(t *testing.T) {
	d := newDB(t)
	d.exec(t, `CREATE TABLE t (id int PRIMARY KEY, v text)`)
	d.exec(t, `CREATE TABLE empty (id int PRIMARY KEY)`)
	d.exec(t, `INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 2500) g`)
	const more = 300
	// Keep writing while the source creates its slot and reads the
	// snapshot: whatever the interleaving, nothing may fall in between.
	writer := make(chan error, 1)
	go func() {
		conn := d.conn
		for i := 1; i <= more; i++ {
			if _, err := conn.Exec(context.Background(), "INSERT INTO t VALUES ($1, 'w')", 2500+i); err != nil {
				writer <- err
				return
			}
			if i%10 == 0 {
				time.Sleep(5 * time.Millisecond)
			}
		}
		writer <- nil
	}()
	st := newState(t)
	em := &countingEmitter{}
	cfg := `{"dsn_env":"CDC_TEST_DSN","tables":["t","empty"],"snapshot":true}`
	r := startSource(t, cfg, runtime.Env{State: st}, em)
	if err := <-writer; err != nil {
		t.Fatal(err)
	}
	runtimetest.WaitFor(t, wait, "every row", func() bool { return len(em.Messages()) >= 2500+more })
	cs := decode(t, em.Messages())
	if len(cs) != 2500+more {
		t.Fatalf("got %d messages, want %d", len(cs), 2500+more)
	}
	got := map[string]string{} // id → op
	snapshots := 0
	for i, c := range cs {
		id := string(c.After["id"].(json.Number))
		if op, dup := got[id]; dup {
			t.Fatalf("row %s twice: %s then %s", id, op, c.Op)
		}
		got[id] = c.Op
		switch c.Op {
		case "snapshot":
			snapshots++
			if i >= snapshots && cs[i-1].Op != "snapshot" {
				t.Fatalf("snapshot row %s after a streamed change", id)
			}
			if c.CommitTime != "" || c.XID != "" || c.LSN == "" {
				t.Fatalf("snapshot row %s: %s", id, c.Raw)
			}
		case "insert":
		default:
			t.Fatalf("unexpected %s", c.Raw)
		}
	}
	if snapshots < 2500 {
		t.Fatalf("%d snapshot rows, want at least the 2500 written before the start", snapshots)
	}
	for i := 1; i <= 2500+more; i++ {
		if _, ok := got[fmt.Sprint(i)]; !ok {
			t.Fatalf("row %d missing", i)
		}
	}
	if v, err := st.Get(context.Background(), stateSnapshot); err != nil || len(v) == 0 {
		t.Fatalf("snapshot state: %q, %v", v, err)
	}

	// Restart: no second snapshot, the stream goes on.
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	snaps := em.snapshots.Load()
	startSource(t, cfg, runtime.Env{State: st}, em)
	d.exec(t, "INSERT INTO t VALUES (9999, 'after restart')")
	runtimetest.WaitFor(t, wait, "the change after the restart", func() bool { return len(em.Messages()) == 2500+more+1 })
	if n := em.snapshots.Load() - snaps; n != 0 {
		t.Fatalf("after the restart %d snapshot rows were emitted again", n)
	}
	if c := decode(t, em.Messages())[2500+more]; c.Op != "insert" || string(c.After["id"].(json.Number)) != "9999" {
		t.Fatalf("last change: %s", c.Raw)
	}
}

// TestCrashReplays cancels the source while a stream of transactions
// flows and starts it again: every change arrives, exactly once after
// dedup by id, in commit order, and the slot's confirmed position catches
// up with the server's.
func TestCrashReplays(t *testing.T) {
	d := newDB(t)
	d.exec(t, `CREATE TABLE t (id int PRIMARY KEY)`)
	st := newState(t)
	em := &countingEmitter{}
	cfg := `{"dsn_env":"CDC_TEST_DSN","tables":["t"],"heartbeat":"100ms","status_interval":"100ms"}`
	r := startSource(t, cfg, runtime.Env{State: st}, em)
	d.waitStreaming(t, "vrsky_acme_orders")
	const txs, per = 300, 10
	writer := make(chan error, 1)
	go func() {
		for i := range txs {
			_, err := d.conn.Exec(context.Background(), "INSERT INTO t SELECT g FROM generate_series($1::int, $2::int) g", i*per, i*per+per-1)
			if err != nil {
				writer <- err
				return
			}
		}
		writer <- nil
	}()
	runtimetest.WaitFor(t, wait, "the first changes", func() bool { return len(em.Messages()) >= 200 })
	if err := r.stop(); err != nil { // the crash: the source stops mid-stream
		t.Fatal(err)
	}
	if n := len(em.Messages()); n >= txs*per {
		t.Logf("all %d changes arrived before the crash; the replay is not exercised", n)
	}
	startSource(t, cfg, runtime.Env{State: st}, em)
	if err := <-writer; err != nil {
		t.Fatal(err)
	}
	end := d.currentLSN(t)
	runtimetest.WaitFor(t, wait, "every change", func() bool { return len(em.Messages()) >= txs*per })
	cs := decode(t, em.Messages())
	if len(cs) != txs*per {
		t.Fatalf("%d distinct changes, want %d", len(cs), txs*per)
	}
	for i, c := range cs {
		if c.Op != "insert" || string(c.After["id"].(json.Number)) != fmt.Sprint(i) {
			t.Fatalf("change %d: %s, want insert of id %d", i, c.Raw, i)
		}
	}
	t.Logf("%d changes emitted in all, %d distinct", em.raw.Load(), len(cs))
	runtimetest.WaitFor(t, wait, "confirmed_flush_lsn to catch up", func() bool {
		_, _, confirmed := d.slot(t, "vrsky_acme_orders")
		return confirmed >= end
	})
}

// TestHeartbeatAdvancesIdleSlot: with nothing to stream, the heartbeat
// still moves the slot's confirmed position, so it does not pin WAL.
func TestHeartbeatAdvancesIdleSlot(t *testing.T) {
	d := newDB(t)
	d.exec(t, `CREATE TABLE t (id int PRIMARY KEY)`)
	em := &runtimetest.Emitter{}
	startSource(t, `{"dsn_env":"CDC_TEST_DSN","tables":["t"],"heartbeat":"100ms","status_interval":"100ms"}`, runtime.Env{State: newState(t)}, em)
	d.waitStreaming(t, "vrsky_acme_orders")
	_, _, before := d.slot(t, "vrsky_acme_orders")
	d.exec(t, "CREATE TABLE unpublished (id int)") // WAL that the publication does not cover
	d.exec(t, "INSERT INTO unpublished SELECT generate_series(1, 1000)")
	target := d.currentLSN(t)
	runtimetest.WaitFor(t, wait, "confirmed_flush_lsn past the WAL written", func() bool {
		_, _, confirmed := d.slot(t, "vrsky_acme_orders")
		return confirmed >= target
	})
	if n := len(em.Messages()); n != 0 {
		t.Fatalf("%d messages emitted, want none (heartbeats are not changes)", n)
	}
	if target <= before {
		t.Fatalf("the test wrote no WAL: %d <= %d", target, before)
	}
}

func TestCheck(t *testing.T) {
	d := newDB(t)
	d.exec(t, `CREATE TABLE t (id int PRIMARY KEY)`)
	role := fmt.Sprintf("norepl_%d", time.Now().UnixNano())
	d.exec(t, "CREATE ROLE "+role+" LOGIN")
	t.Cleanup(func() { _, _ = d.conn.Exec(context.Background(), "DROP ROLE IF EXISTS "+role) })
	t.Setenv("CDC_NOREPL_DSN", d.dsn+"&user="+role)
	t.Setenv("CDC_DOWN_DSN", "postgres://postgres@127.0.0.1:1/x?connect_timeout=5")
	for _, tc := range []struct {
		name, cfg string
		field     string // want a *SpecError on this field
		errHas    string // else an error containing this ("" = no error)
	}{
		{name: "ok", cfg: `{"dsn_env":"CDC_TEST_DSN","tables":["t","public.t"]}`},
		{name: "all tables", cfg: `{"dsn_env":"CDC_TEST_DSN"}`},
		{name: "missing table", cfg: `{"dsn_env":"CDC_TEST_DSN","tables":["nope"]}`, field: "tables[0]"},
		{name: "second table missing", cfg: `{"dsn_env":"CDC_TEST_DSN","tables":["t","other.t"]}`, field: "tables[1]"},
		{name: "unset dsn env", cfg: `{"dsn_env":"CDC_UNSET_DSN"}`, field: "dsn_env"},
		{name: "server down", cfg: `{"dsn_env":"CDC_DOWN_DSN"}`, errHas: "connect"},
		{name: "no replication right", cfg: `{"dsn_env":"CDC_NOREPL_DSN"}`, errHas: "REPLICATION"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Source.Check(context.Background(), json.RawMessage(tc.cfg), runtime.Env{Tenant: "acme", Integration: "x"})
			var se *runtime.SpecError
			switch {
			case tc.field != "":
				if !errors.As(err, &se) || se.Field != tc.field {
					t.Fatalf("got %v, want a SpecError on %s", err, tc.field)
				}
			case tc.errHas != "":
				if err == nil || !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("got %v, want an error about %s", err, tc.errHas)
				}
			case err != nil:
				t.Fatal(err)
			}
		})
	}
}

// TestRemove: Remove drops the slot and the publication the source made;
// with keep_slot_on_delete the slot stays; a publication the source
// adopted stays.
func TestRemove(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cfg      string
		ownPub   bool // the publication exists before the source starts
		keepSlot bool
	}{
		{name: "drop", cfg: `{"dsn_env":"CDC_TEST_DSN","tables":["t"]}`},
		{name: "keep slot", cfg: `{"dsn_env":"CDC_TEST_DSN","tables":["t"],"keep_slot_on_delete":true}`, keepSlot: true},
		{name: "adopted publication", cfg: `{"dsn_env":"CDC_TEST_DSN","publication":"mine"}`, ownPub: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDB(t)
			d.exec(t, `CREATE TABLE t (id int PRIMARY KEY)`)
			pub := "vrsky_acme_orders"
			if tc.ownPub {
				pub = "mine"
				d.exec(t, `CREATE PUBLICATION mine FOR TABLE t`)
			}
			env := runtime.Env{Tenant: "acme", Integration: "orders", State: newState(t)}
			r := startSource(t, tc.cfg, env, &runtimetest.Emitter{})
			d.waitStreaming(t, "vrsky_acme_orders")
			// Remove while the source still streams (another node): its
			// walsender is terminated.
			if err := Source.Remove(context.Background(), json.RawMessage(tc.cfg), env); err != nil {
				t.Fatal(err)
			}
			_ = r.stop()
			exists, _, _ := d.slot(t, "vrsky_acme_orders")
			if exists != tc.keepSlot {
				t.Fatalf("slot exists: %v, want %v", exists, tc.keepSlot)
			}
			var pubExists bool
			if err := d.conn.QueryRow(context.Background(), "SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)", pub).Scan(&pubExists); err != nil {
				t.Fatal(err)
			}
			if pubExists != tc.ownPub {
				t.Fatalf("publication %s exists: %v, want %v", pub, pubExists, tc.ownPub)
			}
			if tc.keepSlot {
				if err := dropSlot(context.Background(), d.conn, "vrsky_acme_orders"); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// TestTablesChange: a table added to the config of a running integration
// joins the publication the source created at the next start.
func TestTablesChange(t *testing.T) {
	d := newDB(t)
	d.exec(t, `CREATE TABLE a (id int PRIMARY KEY)`)
	d.exec(t, `CREATE TABLE b (id int PRIMARY KEY)`)
	st := newState(t)
	em := &runtimetest.Emitter{}
	r := startSource(t, `{"dsn_env":"CDC_TEST_DSN","tables":["a"]}`, runtime.Env{State: st}, em)
	d.waitStreaming(t, "vrsky_acme_orders")
	d.exec(t, `INSERT INTO a VALUES (1)`)
	d.exec(t, `INSERT INTO b VALUES (1)`) // not published yet
	runtimetest.WaitFor(t, wait, "the insert into a", func() bool { return len(em.Messages()) >= 1 })
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	// Wait for the old walsender to go, or waitStreaming below could see
	// it and the insert could precede the ALTER PUBLICATION.
	runtimetest.WaitFor(t, wait, "the slot to be released", func() bool {
		_, active, _ := d.slot(t, "vrsky_acme_orders")
		return !active
	})
	startSource(t, `{"dsn_env":"CDC_TEST_DSN","tables":["a","b"]}`, runtime.Env{State: st}, em)
	d.waitStreaming(t, "vrsky_acme_orders")
	d.exec(t, `INSERT INTO b VALUES (2)`)
	runtimetest.WaitFor(t, wait, "the insert into b", func() bool { return len(em.Messages()) >= 2 })
	cs := decode(t, em.Messages())
	if len(cs) != 2 || cs[0].Table != "a" || cs[1].Table != "b" || string(cs[1].After["id"].(json.Number)) != "2" {
		var got []string
		for _, c := range cs {
			got = append(got, string(c.Raw))
		}
		t.Fatalf("got %v, want the insert into a, then the insert of 2 into b", got)
	}
}

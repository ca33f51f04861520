package postgres

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/vrsky/vrsky/internal/testenv/pgtest"
	"github.com/vrsky/vrsky/runtime"
)

const ordersDDL = `CREATE TABLE orders (
	id int PRIMARY KEY,
	customer text NOT NULL,
	total numeric(12,2) CHECK (total >= 0),
	paid bool,
	day date,
	at timestamptz,
	note text DEFAULT 'none',
	extra jsonb
)`

// TestInsertCountAndChecksum: N rows, in batches, arrive exactly once and
// intact (count, sum of ids and totals, and a digest of every row's text).
func TestInsertCountAndChecksum(t *testing.T) {
	db := newDB(t, ordersDDL)
	s := newSinkFor(t, db, map[string]any{"table": "orders"})
	const n = 2500
	var msgs []*runtime.Message
	var wantTotal float64
	digest := md5.New()
	for i := 1; i <= n; i++ {
		total := float64(i%1000) + 0.25
		wantTotal += total
		// Half the rows come as CSV would send them (strings), half as JSON types.
		var body string
		if i%2 == 0 {
			body = fmt.Sprintf(`{"id":"%d","customer":"c%d","total":"%.2f","paid":"true","day":"2024-01-%02d","at":"2024-01-02T10:00:00Z","unknown":"x"}`, i, i, total, i%28+1)
		} else {
			body = fmt.Sprintf(`{"id":%d,"customer":"c%d","total":%.2f,"paid":false,"day":"2024-01-%02d","at":"2024-01-02 10:00:00+00","extra":{"k":[%d]}}`, i, i, total, i%28+1, i)
		}
		msgs = append(msgs, msg(fmt.Sprintf("m%d", i), body))
		fmt.Fprintf(digest, "%d|c%d|%.2f|%s\n", i, i, total, fmt.Sprintf("2024-01-%02d", i%28+1))
	}
	for start := 0; start < n; start += 1000 {
		deliverOK(t, s, msgs[start:min(start+1000, n)])
	}
	if got := db.int64(t, `SELECT count(*) FROM orders`); got != n {
		t.Fatalf("rows: got %d, want %d", got, n)
	}
	if got := db.int64(t, `SELECT sum(id) FROM orders`); got != n*(n+1)/2 {
		t.Fatalf("sum(id): got %d, want %d", got, n*(n+1)/2)
	}
	if got := *db.text(t, `SELECT sum(total)::text FROM orders`); got != fmt.Sprintf("%.2f", wantTotal) {
		t.Fatalf("sum(total): got %s, want %.2f", got, wantTotal)
	}
	got := *db.text(t, `SELECT md5(string_agg(id || '|' || customer || '|' || total || '|' || day, E'\n' ORDER BY id) || E'\n') FROM orders`)
	if want := hex.EncodeToString(digest.Sum(nil)); got != want {
		t.Fatalf("row digest: got %s, want %s", got, want)
	}
	// Absent fields took the column default; JSON null would be NULL.
	if got := db.int64(t, `SELECT count(*) FROM orders WHERE note = 'none'`); got != n {
		t.Fatalf("rows with the default note: got %d, want %d", got, n)
	}
	if got := db.int64(t, `SELECT count(*) FROM orders WHERE paid AND at = '2024-01-02T10:00:00Z' AND extra IS NULL`); got != n/2 {
		t.Fatalf("CSV-style rows: got %d, want %d", got, n/2)
	}
	if got := db.int64(t, `SELECT count(*) FROM orders WHERE NOT paid AND (extra->'k'->>0)::int = id`); got != n/2 {
		t.Fatalf("JSON-typed rows with jsonb: got %d, want %d", got, n/2)
	}
}

// TestConversion: each value goes to a column of its type, as stored
// (read back as text), or fails its message permanently, naming the field
// and the column type; the failures do not hold back the rest.
func TestConversion(t *testing.T) {
	db := newDB(t, `CREATE TABLE conv (
		msg text PRIMARY KEY,
		i2 smallint, i4 integer, i8 bigint, num numeric(10,3), f8 double precision, f4 real,
		b bool, t text, vc varchar(20), d date, ts timestamp, tstz timestamptz,
		u uuid, j json, jb jsonb, by bytea
	)`)
	s := newSinkFor(t, db, map[string]any{"table": "conv", "id_column": "msg"})
	cases := []struct {
		name, col, value string // value is raw JSON
		want             string
		wantErr          string // substring; "" means success
	}{
		{"int from string", "i4", `"42"`, "42", ""},
		{"int from number", "i8", `9007199254740993`, "9007199254740993", ""},
		{"int with spaces", "i4", `" 7 "`, "7", ""},
		{"int from integral float", "i4", `"42.0"`, "42", ""},
		{"int from fraction", "i4", `"4.5"`, "", `field "i4": cannot store "4.5" in column i4 (integer)`},
		{"int from word", "i8", `"abc"`, "", `field "i8": cannot store "abc" in column i8 (bigint)`},
		{"smallint out of range", "i2", `"70000"`, "", `cannot store 70000 (out of range) in column i2 (smallint)`},
		{"int from bool", "i4", `true`, "", `cannot store the boolean true in column i4 (integer)`},
		{"int from object", "i4", `{"a":1}`, "", `cannot store a JSON object in column i4 (integer)`},
		{"empty string is null", "i4", `""`, "<null>", ""},
		{"json null is null", "t", `null`, "<null>", ""},
		{"numeric from string", "num", `"12.345"`, "12.345", ""},
		{"numeric scientific", "num", `1.5e2`, "150.000", ""},
		{"numeric from word", "num", `"12,5"`, "", `field "num": cannot store "12,5" in column num (numeric(10,3))`},
		{"float from string", "f8", `"2.5"`, "2.5", ""},
		{"real from number", "f4", `0.5`, "0.5", ""},
		{"bool true string", "b", `"true"`, "true", ""},
		{"bool yes", "b", `"YES"`, "true", ""},
		{"bool 0", "b", `"0"`, "false", ""},
		{"bool number 1", "b", `1`, "true", ""},
		{"bool word", "b", `"maybe"`, "", `field "b": cannot store "maybe" in column b (boolean)`},
		{"text from number", "t", `12.50`, "12.50", ""},
		{"text from bool", "t", `false`, "false", ""},
		{"text from object", "t", `{"a":1}`, `{"a":1}`, ""},
		{"empty text stays", "t", `""`, "", ""},
		{"varchar", "vc", `"hello"`, "hello", ""},
		{"date", "d", `"2024-01-02"`, "2024-01-02", ""},
		{"date from timestamp", "d", `"2024-01-02T23:30:00Z"`, "2024-01-02", ""},
		{"date bad", "d", `"2024-13-45"`, "", `field "d": cannot store "2024-13-45" in column d (date)`},
		{"timestamp keeps wall clock", "ts", `"2024-01-02T10:00:00+02:00"`, "2024-01-02 10:00:00", ""},
		{"timestamp with space", "ts", `"2024-01-02 10:00:00.5"`, "2024-01-02 10:00:00.5", ""},
		{"timestamptz offset", "tstz", `"2024-01-02T10:00:00+02:00"`, "2024-01-02 08:00:00+00", ""},
		{"timestamptz no zone is UTC", "tstz", `"2024-01-02 10:00:00"`, "2024-01-02 10:00:00+00", ""},
		{"timestamp bad", "ts", `"yesterday"`, "", `field "ts": cannot store "yesterday" in column ts (timestamp without time zone)`},
		{"timestamp from number", "tstz", `1700000000`, "", `cannot store the number 1700000000 in column tstz (timestamp with time zone)`},
		{"uuid", "u", `"0190a0c4-8f6e-7c3a-9b1d-2f4e5a6b7c8d"`, "0190a0c4-8f6e-7c3a-9b1d-2f4e5a6b7c8d", ""},
		{"uuid bad", "u", `"not-a-uuid"`, "", `field "u": cannot store "not-a-uuid" in column u (uuid)`},
		{"jsonb object", "jb", `{"b":2,"a":[1,"x"]}`, `{"a": [1, "x"], "b": 2}`, ""},
		{"jsonb from CSV string", "jb", `"{\"a\": 1}"`, `{"a": 1}`, ""},
		{"jsonb plain string", "jb", `"plain"`, `"plain"`, ""},
		{"jsonb number", "jb", `3`, `3`, ""},
		{"json keeps text", "j", `{"b":2, "a":1}`, `{"b":2,"a":1}`, ""},
		{"bytea hex", "by", `"\\x0a0b"`, `\x0a0b`, ""},
		{"bytea base64", "by", `"AQID"`, `\x010203`, ""},
		{"bytea bad", "by", `"%%%"`, "", `field "by": cannot store "%%%" in column by (bytea)`},
	}
	msgs := make([]*runtime.Message, len(cases))
	for i, c := range cases {
		msgs[i] = msg(fmt.Sprintf("case%02d", i), fmt.Sprintf(`{%q: %s}`, c.col, c.value))
	}
	errs := s.DeliverBatch(context.Background(), msgs)
	if len(errs) != len(msgs) {
		t.Fatalf("got %d results for %d messages", len(errs), len(msgs))
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.wantErr != "" {
				if errs[i] == nil {
					t.Fatalf("delivered; want error %q", c.wantErr)
				}
				if !runtime.IsPermanent(errs[i]) {
					t.Errorf("error is not permanent: %v", errs[i])
				}
				mustContain(t, errs[i].Error(), c.wantErr)
				if n := db.int64(t, `SELECT count(*) FROM conv WHERE msg = $1`, msgs[i].ID); n != 0 {
					t.Errorf("a failed message left %d rows", n)
				}
				return
			}
			if errs[i] != nil {
				t.Fatalf("error: %v", errs[i])
			}
			got := db.text(t, fmt.Sprintf(`SELECT %s::text FROM conv WHERE msg = $1`, c.col), msgs[i].ID)
			gotS := "<null>"
			if got != nil {
				gotS = *got
			}
			if gotS != c.want {
				t.Errorf("stored %q, want %q", gotS, c.want)
			}
		})
	}
}

// TestUpsert: the same rows twice leave one copy with the newer values;
// a key repeated within a batch keeps its last row; an absent field keeps
// the stored value.
func TestUpsert(t *testing.T) {
	db := newDB(t, `CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL, label text)`)
	s := newSinkFor(t, db, map[string]any{"table": "items", "mode": "upsert", "key": []string{"id"}})
	batch := func(v int) []*runtime.Message {
		var out []*runtime.Message
		for i := 1; i <= 100; i++ {
			out = append(out, msg(fmt.Sprintf("v%d-%d", v, i), fmt.Sprintf(`{"id":%d,"v":%d,"label":"l%d"}`, i, v, v)))
		}
		return out
	}
	deliverOK(t, s, batch(1))
	deliverOK(t, s, batch(2))
	if got := db.int64(t, `SELECT count(*) FROM items`); got != 100 {
		t.Fatalf("rows: got %d, want 100", got)
	}
	if got := db.int64(t, `SELECT count(*) FROM items WHERE v = 2 AND label = 'l2'`); got != 100 {
		t.Fatalf("rows with the newer values: got %d, want 100", got)
	}
	// Key 7 three times in one batch: the last wins. Key 8 without a label
	// keeps label l2. Key 500 is new.
	deliverOK(t, s, []*runtime.Message{
		msg("a", `{"id":7,"v":10,"label":"first"}`),
		msg("b", `{"id":7,"v":11,"label":"second"}`),
		msg("c", `{"id":8,"v":12}`),
		msg("d", `{"id":"7","v":"13","label":"last"}`),
		msg("e", `{"id":500,"v":1}`),
	})
	if got := *db.text(t, `SELECT v || label FROM items WHERE id = 7`); got != "13last" {
		t.Errorf("id 7: got %s, want 13last", got)
	}
	if got := *db.text(t, `SELECT v || label FROM items WHERE id = 8`); got != "12l2" {
		t.Errorf("id 8: got %s, want 12l2", got)
	}
	if got := db.int64(t, `SELECT count(*) FROM items`); got != 101 {
		t.Errorf("rows: got %d, want 101", got)
	}
	// Rows of one key with different field sets: applied in order.
	deliverOK(t, s, []*runtime.Message{
		msg("f", `{"id":20,"v":1,"label":"x"}`),
		msg("g", `{"id":21,"v":1,"label":"x"}`),
		msg("h", `{"id":20,"v":2}`),
		msg("i", `{"id":21,"v":2}`),
		msg("j", `{"id":20,"v":3,"label":"y"}`),
	})
	if got := *db.text(t, `SELECT string_agg(v || label, ' ' ORDER BY id) FROM items WHERE id IN (20, 21)`); got != "3y 2x" {
		t.Errorf("ids 20, 21: got %s, want 3y 2x", got)
	}
	// A row without its key fails alone.
	errs := s.DeliverBatch(context.Background(), []*runtime.Message{msg("nokey", `{"v":1}`), msg("ok", `{"id":9,"v":99}`)})
	if !slices.Equal(failures(errs), []int{0}) || !runtime.IsPermanent(errs[0]) {
		t.Fatalf("errors: %v", errs)
	}
	mustContain(t, errs[0].Error(), `field "id" (key column id) is missing`)
	if got := db.int64(t, `SELECT v FROM items WHERE id = 9`); got != 99 {
		t.Errorf("id 9: got %d, want 99", got)
	}
}

// TestUpsertOnMessageID: with id_column as the key, a redelivered message
// is written once (effectively-once to the table).
func TestUpsertOnMessageID(t *testing.T) {
	db := newDB(t, `CREATE TABLE events (msg_id uuid PRIMARY KEY, kind text, n int)`)
	s := newSinkFor(t, db, map[string]any{"table": "events", "mode": "upsert", "id_column": "msg_id", "batch_size": 50})
	var msgs []*runtime.Message
	for i := range 50 {
		msgs = append(msgs, msg(runtime.NewID(), fmt.Sprintf(`{"kind":"k","n":%d,"msg_id":"ignored"}`, i)))
	}
	deliverOK(t, s, msgs)
	deliverOK(t, s, msgs[10:30]) // a redelivery
	if got := db.int64(t, `SELECT count(*) FROM events`); got != 50 {
		t.Fatalf("rows: got %d, want 50", got)
	}
	if got := db.int64(t, `SELECT count(*) FROM events WHERE msg_id = $1::uuid AND n = 17`, msgs[17].ID); got != 1 {
		t.Fatalf("message 17's row not found by its id")
	}
	// A message id that is not a UUID cannot go in a uuid column.
	errs := s.DeliverBatch(context.Background(), []*runtime.Message{msg("not-a-uuid", `{"n":1}`)})
	if errs == nil || !runtime.IsPermanent(errs[0]) {
		t.Fatalf("errors: %v", errs)
	}
	mustContain(t, errs[0].Error(), `message id "not-a-uuid" cannot be stored in column msg_id (uuid)`)
}

// TestInsertRedeliveryOnMessageID: in insert mode, a message whose id is
// already in a unique id_column was delivered before (a lost ack): it
// counts as delivered, not as a bad row, and is not written twice.
func TestInsertRedeliveryOnMessageID(t *testing.T) {
	db := newDB(t, `CREATE TABLE log (msg_id text PRIMARY KEY, n int NOT NULL)`)
	s := newSinkFor(t, db, map[string]any{"table": "log", "id_column": "msg_id"})
	var msgs []*runtime.Message
	for i := range 30 {
		msgs = append(msgs, msg(fmt.Sprintf("m%02d", i), fmt.Sprintf(`{"n":%d}`, i)))
	}
	deliverOK(t, s, msgs[:20])
	again := append(slices.Clone(msgs[10:30]), msg("bad", `{"n":null}`)) // 10 redelivered, 10 new, 1 bad
	errs := s.DeliverBatch(context.Background(), again)
	if !slices.Equal(failures(errs), []int{20}) {
		t.Fatalf("failed: %v (%v)", failures(errs), errs)
	}
	mustContain(t, errs[20].Error(), `null value in column "n"`)
	if got := db.int64(t, `SELECT count(*) FROM log`); got != 30 {
		t.Fatalf("rows: got %d, want 30", got)
	}
	if got := db.int64(t, `SELECT sum(n) FROM log`); got != 29*30/2 {
		t.Fatalf("sum(n): got %d", got)
	}
	// The rows of an array message share their id: with a unique
	// id_column they collide, and the message fails rather than vanish.
	errs = s.DeliverBatch(context.Background(), []*runtime.Message{msg("arr", `[{"n":1},{"n":2}]`)})
	if errs == nil || !runtime.IsPermanent(errs[0]) {
		t.Fatalf("array message: %v", errs)
	}
	mustContain(t, errs[0].Error(), "log_pkey")
}

// TestConstraintViolationFailsAlone: in a batch of 100, the messages
// whose rows PostgreSQL rejects fail permanently, alone; the others are
// committed.
func TestConstraintViolationFailsAlone(t *testing.T) {
	good := func(i int) string { return fmt.Sprintf(`{"id":%d,"customer":"c%d","total":%d}`, i, i, i) }
	cases := []struct {
		name    string
		mode    string
		bad     map[int]string // message index → body
		preload string
		wantErr string
	}{
		{name: "not null", bad: map[int]string{50: `{"id":50,"customer":null,"total":1}`}, wantErr: `null value in column "customer"`},
		{name: "check", bad: map[int]string{37: `{"id":37,"customer":"x","total":-5}`}, wantErr: "orders_total_check"},
		{name: "unique within the batch", bad: map[int]string{99: good(3)}, wantErr: "orders_pkey"},
		{name: "unique against the table", preload: `INSERT INTO orders (id, customer) VALUES (1000, 'old')`,
			bad: map[int]string{0: `{"id":1000,"customer":"new"}`}, wantErr: "orders_pkey"},
		{name: "too long for the column", bad: map[int]string{10: `{"id":10,"customer":"c","note":"` + strings.Repeat("n", 30) + `"}`},
			wantErr: "value too long"},
		{name: "three bad ones", bad: map[int]string{
			1:  `{"id":1,"customer":null}`,
			2:  `{"id":2,"customer":"x","total":-1}`,
			98: `{"id":98,"customer":null}`,
		}, wantErr: "SQLSTATE 23"},
		{name: "upsert check", mode: "upsert", bad: map[int]string{64: `{"id":64,"customer":"x","total":-5}`}, wantErr: "orders_total_check"},
	}
	db := newDB(t) // one database, a schema per case: constraint names stay orders_*
	for n, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			schema := fmt.Sprintf("case%d", n)
			db.exec(t, "CREATE SCHEMA "+schema)
			db.exec(t, "SET search_path = "+schema)
			db.exec(t, strings.Replace(ordersDDL, "note text DEFAULT 'none'", "note varchar(20)", 1))
			if c.preload != "" {
				db.exec(t, c.preload)
			}
			cfg := map[string]any{"schema": schema, "table": "orders"}
			if c.mode == "upsert" {
				cfg["mode"], cfg["key"] = "upsert", []string{"id"}
			}
			s := newSinkFor(t, db, cfg)
			msgs := make([]*runtime.Message, 100)
			var wantBad []int
			for i := range msgs {
				body := good(i)
				if b, ok := c.bad[i]; ok {
					body = b
					wantBad = append(wantBad, i)
				}
				msgs[i] = msg(fmt.Sprintf("m%d", i), body)
			}
			errs := s.DeliverBatch(context.Background(), msgs)
			if got := failures(errs); !slices.Equal(got, wantBad) {
				t.Fatalf("failed messages: got %v, want %v (errors %v)", got, wantBad, errs)
			}
			for _, i := range wantBad {
				if !runtime.IsPermanent(errs[i]) {
					t.Errorf("message %d: not permanent: %v", i, errs[i])
				}
				if !strings.Contains(errs[i].Error(), c.wantErr) {
					t.Errorf("message %d: %v does not contain %q", i, errs[i], c.wantErr)
				}
			}
			want := int64(100 - len(wantBad))
			if c.preload != "" {
				want++
			}
			if got := db.int64(t, `SELECT count(*) FROM orders`); got != want {
				t.Fatalf("rows: got %d, want %d", got, want)
			}
		})
	}
}

// TestArrayMessages: an array of objects is several rows of one message,
// written all or none.
func TestArrayMessages(t *testing.T) {
	db := newDB(t, ordersDDL)
	s := newSinkFor(t, db, map[string]any{"table": "orders", "columns": map[string]string{
		"id": "id", "customer": "customer.name", "total": "amounts.0",
	}})
	msgs := []*runtime.Message{
		msg("three", `[{"id":1,"customer":{"name":"a"},"amounts":[1.5,9]},{"id":2,"customer":{"name":"b"}},{"id":3,"customer":{"name":"c"},"amounts":["3"]}]`),
		msg("empty", `[]`),
		msg("scalar-element", `[{"id":4,"customer":{"name":"d"}}, 5]`),
		msg("bad-value", `[{"id":6,"customer":{"name":"f"}},{"id":7,"customer":{"name":"g"},"amounts":["x"]}]`),
		msg("violates", `[{"id":8,"customer":{"name":"h"}},{"id":9,"customer":{"name":null}}]`),
		msg("one", `{"id":10,"customer":{"name":"j"}}`),
	}
	errs := s.DeliverBatch(context.Background(), msgs)
	if got := failures(errs); !slices.Equal(got, []int{2, 3, 4}) {
		t.Fatalf("failed messages: got %v, want [2 3 4] (%v)", got, errs)
	}
	mustContain(t, errs[2].Error(), "element 1 of the array is a JSON number")
	mustContain(t, errs[3].Error(), `field "[1].amounts.0": cannot store "x" in column total (numeric(12,2))`)
	mustContain(t, errs[4].Error(), `null value in column "customer"`)
	for _, err := range errs[2:5] {
		if !runtime.IsPermanent(err) {
			t.Errorf("not permanent: %v", err)
		}
	}
	if got := *db.text(t, `SELECT string_agg(id || ':' || customer || ':' || coalesce(total::text, '-'), ' ' ORDER BY id) FROM orders`); got != "1:a:1.50 2:b:- 3:c:3.00 10:j:-" {
		t.Fatalf("rows: %s", got)
	}
}

// TestMalformedMessages: payloads that are not a JSON object or array of
// objects fail permanently.
func TestMalformedMessages(t *testing.T) {
	db := newDB(t, ordersDDL)
	s := newSinkFor(t, db, map[string]any{"table": "orders"})
	cases := []struct{ body, want string }{
		{`{"id":1,`, "not valid JSON"},
		{`not json`, "not valid JSON"},
		{`42`, "the message is a JSON number"},
		{`"text"`, "the message is a JSON string"},
		{``, "not valid JSON"},
	}
	var msgs []*runtime.Message
	for i, c := range cases {
		msgs = append(msgs, msg(fmt.Sprint(i), c.body))
	}
	msgs = append(msgs, msg("ok", `{"id":1,"customer":"a"}`))
	errs := s.DeliverBatch(context.Background(), msgs)
	for i, c := range cases {
		if errs[i] == nil || !runtime.IsPermanent(errs[i]) {
			t.Errorf("%q: got %v, want a permanent error", c.body, errs[i])
			continue
		}
		mustContain(t, errs[i].Error(), c.want)
	}
	if errs[len(cases)] != nil {
		t.Errorf("the good message failed: %v", errs[len(cases)])
	}
	if got := db.int64(t, `SELECT count(*) FROM orders`); got != 1 {
		t.Errorf("rows: got %d, want 1", got)
	}
}

// TestPostgresDown: while the server is down every message fails with a
// retryable error; once it is back the same batch is delivered, once.
func TestPostgresDown(t *testing.T) {
	c := pgtest.Start(t)
	_, dsn, err := c.CreateDatabase(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	db := openDB(t, dsn, ordersDDL)
	warm := newSinkFor(t, db, map[string]any{"table": "orders"}) // pool and plan ready before the outage
	deliverOK(t, warm, []*runtime.Message{msg("before", `{"id":1,"customer":"a"}`)})
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	cold := newSinkFor(t, db, map[string]any{"table": "orders"}) // created while down
	batch := func(from int) []*runtime.Message {
		var out []*runtime.Message
		for i := from; i < from+10; i++ {
			out = append(out, msg(fmt.Sprint(i), fmt.Sprintf(`{"id":%d,"customer":"c"}`, i)))
		}
		return out
	}
	for name, s := range map[string]runtime.BatchSink{"warm": warm, "cold": cold} {
		from := 100
		if name == "cold" {
			from = 200
		}
		errs := s.DeliverBatch(context.Background(), batch(from))
		if len(failures(errs)) != 10 {
			t.Fatalf("%s sink while down: want 10 failures, got %v", name, errs)
		}
		for _, err := range errs {
			if runtime.IsPermanent(err) {
				t.Fatalf("%s sink while down: permanent error %v", name, err)
			}
		}
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	// The warm pool's connections died with the server; a batch may meet
	// one of them first and fail retryably, as the pipeline would retry.
	for name, s := range map[string]runtime.BatchSink{"warm": warm, "cold": cold} {
		from := 100
		if name == "cold" {
			from = 200
		}
		var errs []error
		for attempt := 0; attempt < 3; attempt++ {
			if errs = s.DeliverBatch(context.Background(), batch(from)); errs == nil {
				break
			}
		}
		if errs != nil {
			t.Fatalf("%s sink after restart: %v", name, errs)
		}
	}
	if err := db.conn.Close(context.Background()); err != nil {
		t.Log(err)
	}
	db = openDB(t, dsn)
	if got := db.int64(t, `SELECT count(*) FROM orders`); got != 21 {
		t.Fatalf("rows: got %d, want 21", got)
	}
}

// TestConcurrentBatches: batches delivered side by side (the pipeline's
// workers share one sink) all arrive.
func TestConcurrentBatches(t *testing.T) {
	db := newDB(t, ordersDDL)
	s := newSinkFor(t, db, map[string]any{"table": "orders", "concurrency": 4})
	var wg sync.WaitGroup
	errc := make(chan error, 40)
	for w := range 4 {
		wg.Go(func() {
			for b := range 10 {
				var msgs []*runtime.Message
				for i := range 100 {
					id := w*1000 + b*100 + i
					msgs = append(msgs, msg(fmt.Sprint(id), fmt.Sprintf(`{"id":%d,"customer":"c"}`, id)))
				}
				if errs := s.DeliverBatch(context.Background(), msgs); errs != nil {
					errc <- fmt.Errorf("worker %d batch %d: %v", w, b, errs)
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	if got := db.int64(t, `SELECT count(*) FROM orders`); got != 4000 {
		t.Fatalf("rows: got %d, want 4000", got)
	}
}

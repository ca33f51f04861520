package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vrsky/vrsky/runtime"
)

// TestCheck: Check compares the config with the database and names the
// field to fix.
func TestCheck(t *testing.T) {
	db := newDB(t,
		`CREATE TABLE orders (id int PRIMARY KEY, sku text, total numeric, region text, code text, at interval,
			total2 numeric GENERATED ALWAYS AS (total * 2) STORED)`,
		`CREATE UNIQUE INDEX orders_region_code ON orders (region, code)`,
		`CREATE TABLE nokey (id int, v text)`,
		`CREATE VIEW orders_view AS SELECT * FROM orders`,
		`CREATE SCHEMA sales`,
		`CREATE TABLE sales.leads (lead_id text PRIMARY KEY, name text)`,
	)
	cases := []struct {
		name      string
		cfg       map[string]any
		wantField string // "" means the check passes
		wantIn    string
	}{
		{"insert by name", map[string]any{"table": "orders"}, "", ""},
		{"explicit columns", map[string]any{"table": "orders", "columns": map[string]string{"id": "id", "total": "amount.value"}}, "", ""},
		{"upsert on primary key", map[string]any{"table": "orders", "mode": "upsert", "key": []string{"id"}}, "", ""},
		{"upsert on a two-column unique index, any order", map[string]any{"table": "orders", "mode": "upsert", "key": []string{"code", "region"}}, "", ""},
		{"other schema, id column as key", map[string]any{"schema": "sales", "table": "leads", "mode": "upsert", "id_column": "lead_id"}, "", ""},
		{"missing table", map[string]any{"table": "nope"}, "table", `table "public"."nope" does not exist`},
		{"missing schema", map[string]any{"schema": "nope", "table": "orders"}, "table", "does not exist"},
		{"a view is not a table", map[string]any{"table": "orders_view"}, "table", "does not exist"},
		{"missing column", map[string]any{"table": "orders", "columns": map[string]string{"id": "id", "totl": "total"}}, "columns.totl", `column "totl" does not exist`},
		{"generated column", map[string]any{"table": "orders", "columns": map[string]string{"total2": "x"}}, "columns.total2", "generated"},
		{"unsupported type", map[string]any{"table": "orders", "columns": map[string]string{"at": "at"}}, "columns.at", "type interval"},
		{"missing id column", map[string]any{"table": "orders", "id_column": "msg_id"}, "id_column", `column "msg_id" does not exist`},
		{"id column of the wrong type", map[string]any{"table": "orders", "id_column": "total"}, "id_column", "needs text, varchar or uuid"},
		{"upsert key without a unique index", map[string]any{"table": "nokey", "mode": "upsert", "key": []string{"id"}}, "key", "no primary key or unique index on exactly (id)"},
		{"upsert key covering part of an index", map[string]any{"table": "orders", "mode": "upsert", "key": []string{"region"}}, "key", "no primary key or unique index"},
		{"upsert key column missing", map[string]any{"table": "orders", "mode": "upsert", "key": []string{"nope"}}, "key[0]", `column "nope" does not exist`},
		{"upsert without key", map[string]any{"table": "orders", "mode": "upsert"}, "key", "needs key columns"},
		{"key in insert mode", map[string]any{"table": "orders", "key": []string{"id"}}, "key", "only used in upsert mode"},
		{"key not mapped", map[string]any{"table": "orders", "mode": "upsert", "key": []string{"id"}, "columns": map[string]string{"sku": "sku"}}, "key[0]", "neither in columns nor the id_column"},
		{"id column also mapped", map[string]any{"table": "orders", "id_column": "sku", "columns": map[string]string{"sku": "sku"}}, "columns.sku", "is the id_column"},
		{"empty path part", map[string]any{"table": "orders", "columns": map[string]string{"sku": "a..b"}}, "columns.sku", "empty part"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Sink.Check(context.Background(), db.config(t, c.cfg), runtime.Env{})
			if c.wantField == "" {
				if err != nil {
					t.Fatalf("check: %v", err)
				}
				return
			}
			var se *runtime.SpecError
			if !errors.As(err, &se) {
				t.Fatalf("got %v (%T), want a *runtime.SpecError", err, err)
			}
			if se.Field != c.wantField {
				t.Errorf("field: got %q, want %q (%s)", se.Field, c.wantField, se.Reason)
			}
			mustContain(t, se.Reason, c.wantIn)
		})
	}
}

// TestCheckConnection: an unset variable and a server that refuses both
// name dsn_env.
func TestCheckConnection(t *testing.T) {
	t.Setenv("VRSKY_PGSINK_DOWN", "postgres://postgres@127.0.0.1:1/x?sslmode=disable&connect_timeout=5")
	for name, c := range map[string]struct {
		env, want string
	}{
		"unset":   {"VRSKY_PGSINK_UNSET", "environment variable VRSKY_PGSINK_UNSET is not set"},
		"refused": {"VRSKY_PGSINK_DOWN", "cannot connect with the DSN in VRSKY_PGSINK_DOWN"},
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err := Sink.Check(ctx, json.RawMessage(`{"dsn_env":"`+c.env+`","table":"t"}`), runtime.Env{})
			var se *runtime.SpecError
			if !errors.As(err, &se) || se.Field != "dsn_env" || !strings.Contains(se.Reason, c.want) {
				t.Fatalf("got %#v, want dsn_env: %s", err, c.want)
			}
		})
	}
	// NewSink needs the variable too; it does not need the server.
	if _, err := Sink.NewSink(json.RawMessage(`{"dsn_env":"VRSKY_PGSINK_UNSET","table":"t"}`), runtime.Env{}); err == nil {
		t.Fatal("NewSink accepted an unset dsn_env")
	}
	s, err := Sink.NewSink(json.RawMessage(`{"dsn_env":"VRSKY_PGSINK_DOWN","table":"t"}`), runtime.Env{})
	if err != nil {
		t.Fatalf("NewSink with the server down: %v", err)
	}
	_ = s.Close()
}

// TestSchema: the catalogue accepts the connector and its schema rejects
// what it should, naming the field.
func TestSchema(t *testing.T) {
	cat, err := runtime.NewCatalog(Sink)
	if err != nil {
		t.Fatal(err)
	}
	x, ok := cat.Lookup("postgres@1.0.0")
	if !ok || x.Kind != runtime.KindSink || !x.Builtin {
		t.Fatalf("lookup: %+v %v", x, ok)
	}
	var doc struct {
		AdditionalProperties bool `json:"additionalProperties"`
		Properties           map[string]struct {
			Description string `json:"description"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(Sink.ConfigSchema, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.AdditionalProperties {
		t.Error("the schema allows unknown fields")
	}
	for name, p := range doc.Properties {
		if p.Description == "" {
			t.Errorf("field %s has no description", name)
		}
	}
	for _, c := range []struct{ spec, field string }{
		{`{dsn_env: X, table: t, extra: 1}`, "sinks[0].config"},
		{`{table: t}`, "sinks[0].config"},
		{`{dsn_env: X, table: t, mode: merge}`, "sinks[0].config.mode"},
		{`{dsn_env: X, table: t, batch_size: 0}`, "sinks[0].config.batch_size"},
		{`{dsn_env: X, table: t, max_wait: soon}`, "sinks[0].config.max_wait"},
		{`{dsn_env: "1X", table: t}`, "sinks[0].config.dsn_env"},
	} {
		spec := "name: s\nsource: {connector: src}\nsinks:\n  - name: db\n    connector: postgres\n    config: " + c.spec + "\n"
		cat, err := runtime.NewCatalog(Sink, runtime.Connector{Name: "src", Version: "1.0.0", Kind: runtime.KindSource,
			NewSource: func(json.RawMessage, runtime.Env) (runtime.Source, error) { return nil, nil }})
		if err != nil {
			t.Fatal(err)
		}
		_, err = runtime.ParseSpec([]byte(spec), cat)
		var se *runtime.SpecError
		if !errors.As(err, &se) {
			t.Errorf("%s: got %v, want a SpecError", c.spec, err)
			continue
		}
		if !strings.HasPrefix(se.Field, c.field) {
			t.Errorf("%s: field %q, want %q (%s)", c.spec, se.Field, c.field, se.Reason)
		}
	}
}

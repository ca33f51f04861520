package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	httpconn "github.com/vrsky/vrsky/builtin/http"
	"github.com/vrsky/vrsky/internal/testenv/pgtest"
	"github.com/vrsky/vrsky/platform/blob"
	"github.com/vrsky/vrsky/platform/natsx/natsxtest"
	"github.com/vrsky/vrsky/runtime"
	"github.com/vrsky/vrsky/runtime/runtimetest"
)

// feeds holds what each test-feed source emits, by feed name.
var feeds sync.Map

// feedSource is a test source: it emits its feed in one EmitBatch, then
// waits for the end.
var feedSource = runtime.Connector{
	Name: "test-feed", Version: "1.0.0", Kind: runtime.KindSource, Description: "test source",
	ConfigSchema: json.RawMessage(`{"type":"object","properties":{"feed":{"type":"string"}},"required":["feed"]}`),
	NewSource: func(cfg json.RawMessage, _ runtime.Env) (runtime.Source, error) {
		var c struct{ Feed string }
		if err := json.Unmarshal(cfg, &c); err != nil {
			return nil, err
		}
		msgs, ok := feeds.Load(c.Feed)
		if !ok {
			return nil, fmt.Errorf("no feed %q", c.Feed)
		}
		return sourceFunc(func(ctx context.Context, emit runtime.Emitter) error {
			if err := emit.EmitBatch(ctx, msgs.([]*runtime.Message)); err != nil {
				return err
			}
			<-ctx.Done()
			return nil
		}), nil
	},
}

type sourceFunc func(ctx context.Context, emit runtime.Emitter) error

func (f sourceFunc) Run(ctx context.Context, emit runtime.Emitter) error { return f(ctx, emit) }

// TestEndToEndBadRowToDLQ: 100 messages through a real engine; the one
// that violates a CHECK constraint is dead-lettered alone, at its first
// attempt, and the other 99 rows are in the table.
func TestEndToEndBadRowToDLQ(t *testing.T) {
	db := newDB(t, ordersDDL)
	var msgs []*runtime.Message
	bad := ""
	for i := range 100 {
		m := &runtime.Message{ID: runtime.NewID(), Header: runtime.Header{"Content-Type": {"application/json"}}}
		total := i
		if i == 50 {
			total, bad = -1, m.ID
		}
		m.Data = fmt.Appendf(nil, `{"id":%d,"customer":"c%d","total":%d}`, i, i, total)
		msgs = append(msgs, m)
	}
	feeds.Store("dlq", msgs)
	h := runtimetest.Start(t, []runtime.Connector{feedSource, Sink})
	h.Create(t, fmt.Sprintf(`
name: load
source: {connector: test-feed, config: {feed: dlq}}
sinks:
  - name: db
    connector: postgres
    config: {dsn_env: %s, table: orders, batch_size: 100, max_wait: 2s, concurrency: 1}
`, db.env))
	runtimetest.WaitFor(t, 60*time.Second, "99 rows and 1 dead letter", func() bool {
		return db.int64(t, `SELECT count(*) FROM orders`) == 99 && len(h.DeadLetters(t, "load")) == 1
	})
	dl := h.DeadLetters(t, "load")[0]
	if dl.MessageID != bad || dl.Stage != "sink:db" || dl.Attempts != 1 {
		t.Fatalf("dead letter: message %s stage %s attempts %d; want %s sink:db 1", dl.MessageID, dl.Stage, dl.Attempts, bad)
	}
	mustContain(t, dl.Error, "orders_total_check", "SQLSTATE 23514")
	if got := db.int64(t, `SELECT count(*) FROM orders WHERE id = 50`); got != 0 {
		t.Fatalf("the bad row is in the table")
	}
}

// TestEndToEndWebhookUpsertClaimChecked: a webhook array large enough to
// be claim-checked becomes 500 rows (read from the object store), keyed
// upserts update them, and the message id lands in id_column.
func TestEndToEndWebhookUpsertClaimChecked(t *testing.T) {
	db := newDB(t, `CREATE TABLE stock (sku text PRIMARY KEY, qty int NOT NULL, msg_id uuid)`)
	conn := natsxtest.Start(t)
	bs, err := blob.NewNATS(context.Background(), conn.JS, "vrsky-objects", 1)
	if err != nil {
		t.Fatal(err)
	}
	h := runtimetest.StartOn(t, conn, []runtime.Connector{httpconn.Webhook, Sink}, func(c *runtime.Config) {
		c.Blobs, c.ClaimThreshold = bs, 1024
	})
	spec := fmt.Sprintf(`
name: stock
source: {connector: http-webhook, config: {path: stock}}
sinks:
  - name: db
    connector: postgres
    config: {dsn_env: %s, table: stock, mode: upsert, key: [sku], id_column: msg_id}
`, db.env)
	h.Create(t, spec)
	var rows []string
	for i := range 500 {
		rows = append(rows, fmt.Sprintf(`{"sku":"s%d","qty":"%d"}`, i, i))
	}
	first := post(t, h, "stock", "["+strings.Join(rows, ",")+"]")
	runtimetest.WaitFor(t, 60*time.Second, "500 rows", func() bool {
		return db.int64(t, `SELECT count(*) FROM stock`) == 500
	})
	if got := db.int64(t, `SELECT count(*) FROM stock WHERE msg_id = $1::uuid AND qty::text = substr(sku, 2)`, first); got != 500 {
		t.Fatalf("rows of the first message: got %d, want 500", got)
	}
	second := post(t, h, "stock", `{"sku":"s7","qty":1000}`)
	runtimetest.WaitFor(t, 60*time.Second, "s7 updated", func() bool {
		return db.int64(t, `SELECT count(*) FROM stock WHERE sku = 's7' AND qty = 1000 AND msg_id = $1::uuid`, second) == 1
	})
	if got := db.int64(t, `SELECT count(*) FROM stock`); got != 500 {
		t.Fatalf("rows: got %d, want 500", got)
	}
	if n := len(h.DeadLetters(t, "stock")); n != 0 {
		t.Fatalf("%d dead letters", n)
	}
}

// TestEndToEndCheckAtCreate: the engine runs Check when an integration
// is created and reports the field under the sink's config.
func TestEndToEndCheckAtCreate(t *testing.T) {
	db := newDB(t, `CREATE TABLE t (id int)`)
	h := runtimetest.Start(t, []runtime.Connector{httpconn.Webhook, Sink})
	for _, c := range []struct{ config, field string }{
		{`{dsn_env: %s, table: missing}`, "sinks[0].config.table"},
		{`{dsn_env: %s, table: t, columns: {total: amount}}`, "sinks[0].config.columns.total"},
		{`{dsn_env: %s, table: t, mode: upsert, key: [id]}`, "sinks[0].config.key"},
	} {
		spec, err := h.Engine.ParseSpec(fmt.Appendf(nil, "name: c\nsource: {connector: http-webhook, config: {path: c}}\nsinks:\n  - {name: db, connector: postgres, config: %s}\n", fmt.Sprintf(c.config, db.env)))
		if err != nil {
			t.Fatal(err)
		}
		err = h.Engine.CheckSpec(context.Background(), h.Tenant, spec)
		var se *runtime.SpecError
		if !errors.As(err, &se) || se.Field != c.field {
			t.Errorf("%s: got %v, want a SpecError on %s", c.config, err, c.field)
		}
	}
}

// post sends a webhook request and returns the message id.
func post(t *testing.T, h *runtimetest.Harness, path, body string) string {
	t.Helper()
	resp, err := h.Engine.Hooks().Serve(context.Background(), h.Tenant, path, &runtime.HookRequest{
		Method: "POST", Header: runtime.Header{"Content-Type": {"application/json"}}, Body: []byte(body),
	})
	if err != nil {
		t.Fatalf("hook: %v", err)
	}
	if resp.Status != http.StatusAccepted {
		t.Fatalf("hook answered %d: %s", resp.Status, resp.Body)
	}
	return resp.Header.Get(runtime.HeaderMsgID)
}

// TestEndToEndPostgresDown: messages that arrive while PostgreSQL is down
// fail retryably (recorded as failed attempts, not dead-lettered) and are
// written once it is back.
func TestEndToEndPostgresDown(t *testing.T) {
	c := pgtest.Start(t)
	_, dsn, err := c.CreateDatabase(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	db := openDB(t, dsn, ordersDDL)
	h := runtimetest.Start(t, []runtime.Connector{httpconn.Webhook, Sink})
	h.Create(t, fmt.Sprintf(`
name: outage
source: {connector: http-webhook, config: {path: outage}}
sinks:
  - name: db
    connector: postgres
    config: {dsn_env: %s, table: orders, max_wait: 10ms}
retry: {max_attempts: 100, initial_backoff: 100ms, max_backoff: 500ms}
`, db.env))
	post(t, h, "outage", `{"id":1,"customer":"before"}`)
	runtimetest.WaitFor(t, 60*time.Second, "the first row", func() bool {
		return db.int64(t, `SELECT count(*) FROM orders`) == 1
	})
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := 2; i <= 11; i++ {
		ids = append(ids, post(t, h, "outage", fmt.Sprintf(`{"id":%d,"customer":"during"}`, i)))
	}
	runtimetest.WaitFor(t, 60*time.Second, "a failed attempt on every message", func() bool {
		for _, id := range ids {
			tr, err := h.Engine.Trace(context.Background(), h.Tenant, "outage", id)
			if err != nil || !slices.ContainsFunc(tr.Stages, func(r runtime.StageRecord) bool {
				return r.Stage == "sink:db" && r.Status == runtime.StatusFailed
			}) {
				return false
			}
		}
		return true
	})
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	check := openDB(t, dsn) // the old connection died with the server
	runtimetest.WaitFor(t, 60*time.Second, "11 rows", func() bool {
		return check.int64(t, `SELECT count(*) FROM orders`) == 11
	})
	if n := len(h.DeadLetters(t, "outage")); n != 0 {
		t.Fatalf("%d dead letters", n)
	}
	if got := check.int64(t, `SELECT count(*) FROM orders WHERE customer = 'during'`); got != 10 {
		t.Fatalf("rows written after the outage: got %d, want 10", got)
	}
}

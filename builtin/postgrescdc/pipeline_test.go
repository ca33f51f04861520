package postgrescdc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"testing"

	httpconn "github.com/vrsky/vrsky/builtin/http"
	"github.com/vrsky/vrsky/runtime"
	"github.com/vrsky/vrsky/runtime/runtimetest"
)

// receiver is an HTTP server that records the bodies it is sent.
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	bodies map[string][]byte // by Idempotency-Key
	posts  int
}

func newReceiver(t testing.TB) *receiver {
	r := &receiver{bodies: map[string][]byte{}}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, err := io.ReadAll(req.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		r.bodies[req.Header.Get("Idempotency-Key")] = b
		r.posts++
		r.mu.Unlock()
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.bodies)
}

// TestPipelineToHTTP runs the source in a real engine (on embedded NATS)
// with the http sink: a snapshot row and streamed changes reach the HTTP
// server; deleting the integration drops the slot and the publication.
func TestPipelineToHTTP(t *testing.T) {
	d := newDB(t)
	d.exec(t, `CREATE TABLE t (id int PRIMARY KEY, v text)`)
	d.exec(t, `INSERT INTO t SELECT g, 'old' FROM generate_series(1, 10) g`)
	rcv := newReceiver(t)
	h := runtimetest.Start(t, []runtime.Connector{Source, httpconn.Sink})

	// Check at create time names the missing table.
	bad, err := h.Engine.ParseSpec([]byte(fmt.Sprintf(`{"name":"bad","source":{"connector":"postgres-cdc","config":{"dsn_env":"CDC_TEST_DSN","tables":["nope"]}},
		"sinks":[{"name":"out","connector":"http","config":{"url":%q}}]}`, rcv.URL)))
	if err != nil {
		t.Fatal(err)
	}
	var se *runtime.SpecError
	if err := h.Engine.CheckSpec(context.Background(), h.Tenant, bad); !errors.As(err, &se) || se.Field != "source.config.tables[0]" {
		t.Fatalf("check: %v, want a SpecError on source.config.tables[0]", err)
	}

	spec := h.Create(t, fmt.Sprintf(`
name: orders
source:
  connector: postgres-cdc
  config: {dsn_env: CDC_TEST_DSN, tables: [t], snapshot: true, heartbeat: 200ms}
sinks:
  - name: out
    connector: http
    config: {url: %q}
`, rcv.URL))
	d.waitStreaming(t, "vrsky_acme_orders")
	d.exec(t, `INSERT INTO t SELECT g, 'new' FROM generate_series(11, 20) g`)
	d.exec(t, `UPDATE t SET v = 'changed' WHERE id = 1`)
	d.exec(t, `DELETE FROM t WHERE id = 2`)
	runtimetest.WaitFor(t, wait, "22 deliveries", func() bool { return rcv.count() >= 22 })

	rcv.mu.Lock()
	var got []string
	for _, b := range rcv.bodies {
		var c change
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatalf("body %s: %v", b, err)
		}
		row := c.After
		if c.Op == "delete" {
			row = c.Before
		}
		got = append(got, fmt.Sprintf("%s %v %v", c.Op, row["id"], row["v"]))
	}
	rcv.mu.Unlock()
	var want []string
	for i := 1; i <= 10; i++ {
		want = append(want, fmt.Sprintf("snapshot %d old", i))
	}
	for i := 11; i <= 20; i++ {
		want = append(want, fmt.Sprintf("insert %d new", i))
	}
	want = append(want, "update 1 changed", "delete 2 <nil>")
	sort.Strings(got)
	sort.Strings(want)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("delivered:\n%v\nwant:\n%v", got, want)
	}
	if dl := h.DeadLetters(t, "orders"); len(dl) != 0 {
		t.Fatalf("%d dead letters", len(dl))
	}

	h.Delete(t, spec)
	if exists, _, _ := d.slot(t, "vrsky_acme_orders"); exists {
		t.Fatal("the slot survived the integration's deletion")
	}
	var pub bool
	if err := d.conn.QueryRow(context.Background(), "SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = 'vrsky_acme_orders')").Scan(&pub); err != nil || pub {
		t.Fatalf("publication still exists: %v, %v", pub, err)
	}
}

// TestPipelineRestartMidStream stops the integration while transactions
// flow and starts it again: the source replays from the slot's confirmed
// position and JetStream's duplicate window drops what was already in, so
// the HTTP server gets every change exactly once.
func TestPipelineRestartMidStream(t *testing.T) {
	d := newDB(t)
	d.exec(t, `CREATE TABLE t (id int PRIMARY KEY)`)
	rcv := newReceiver(t)
	h := runtimetest.Start(t, []runtime.Connector{Source, httpconn.Sink})
	h.Create(t, fmt.Sprintf(`
name: orders
source:
  connector: postgres-cdc
  config: {dsn_env: CDC_TEST_DSN, tables: [t], heartbeat: 200ms, status_interval: 200ms}
sinks:
  - name: out
    connector: http
    config: {url: %q}
`, rcv.URL))
	d.waitStreaming(t, "vrsky_acme_orders")
	const txs, per = 200, 10
	writer := make(chan error, 1)
	go func() {
		for i := range txs {
			if _, err := d.conn.Exec(context.Background(), "INSERT INTO t SELECT generate_series($1::int, $2::int)", i*per, i*per+per-1); err != nil {
				writer <- err
				return
			}
		}
		writer <- nil
	}()
	runtimetest.WaitFor(t, wait, "the first deliveries", func() bool { return rcv.count() >= 300 })
	h.Engine.Stop(h.Tenant, "orders")
	t.Logf("stopped after %d deliveries", rcv.count())
	in, err := h.Store.GetIntegration(context.Background(), h.Tenant, "orders")
	if err != nil {
		t.Fatal(err)
	}
	h.Engine.Apply(in)
	if err := <-writer; err != nil {
		t.Fatal(err)
	}
	runtimetest.WaitFor(t, wait, "every change", func() bool { return rcv.count() >= txs*per })
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	ids := map[string]bool{}
	for _, b := range rcv.bodies {
		var c change
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatal(err)
		}
		ids[fmt.Sprint(c.After["id"])] = true
	}
	for i := range txs * per {
		if !ids[fmt.Sprint(i)] {
			t.Fatalf("row %d was never delivered", i)
		}
	}
	if len(rcv.bodies) != txs*per || rcv.posts != txs*per {
		t.Fatalf("%d distinct messages in %d requests, want %d of each", len(rcv.bodies), rcv.posts, txs*per)
	}
}
